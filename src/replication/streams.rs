//! The replication feature's own state on a core: the replicants streaming from it and the
//! log entries their streams still need. The composition (`node`) makes one [`Streams`]
//! per node and gives it to the log server, which registers each stream and pins the log
//! for it. The runtime only reads it, through two views it is lent at open: the pins (its
//! log store's purge leaves pinned entries on disk) and [`StreamedTo`] (the status and the
//! version gate list the replicants).

use crate::engine::members::{MemberEvent, MemberFeed};
use crate::error::Result;
use crate::runtime::StreamedTo;
use crate::status::Subscriber;
use crate::storage::db::Db;
use crate::storage::log_store::{Pin, RetentionPins};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The replicants streaming from this core and the log their streams hold.
#[derive(Default)]
pub(crate) struct Streams {
    next: AtomicU64,
    live: Mutex<BTreeMap<u64, Subscriber>>,
    pins: RetentionPins,
}

/// A stream's place in the registry: it leaves the registry, and the membership feed hears
/// of it, when this is dropped.
pub(crate) struct Registered<'a> {
    streams: &'a Streams,
    id: u64,
    events: Arc<MemberFeed>,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let gone = self.streams.live.lock().ok().and_then(|mut l| l.remove(&self.id));
        if let Some(s) = gone {
            self.events.send(MemberEvent::ReplicantDisconnected { name: s.name });
        }
    }
}

impl Streams {
    /// Registers replicant `s` until the guard drops, and tells `events` it came.
    pub(crate) fn register(&self, s: Subscriber, events: Arc<MemberFeed>) -> Registered<'_> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        events.send(MemberEvent::ReplicantConnected { name: s.name.clone() });
        if let Ok(mut l) = self.live.lock() {
            l.insert(id, s);
        }
        Registered { streams: self, id, events }
    }

    /// The log's retention pins, lent to the runtime for its log store.
    pub(crate) fn pins(&self) -> RetentionPins {
        self.pins.clone()
    }

    /// Holds the log from `index` for a stream (released when the pin is dropped).
    pub(crate) fn pin_log(&self, index: u64) -> Result<Pin> {
        self.pins.pin(index)
    }

    /// Holds the log of `db` from `from` if it is still retained, for a stream resuming at
    /// `applied`; `None`: the stream needs a snapshot.
    pub(crate) fn pin_log_if_retained(&self, db: &Db, from: u64, applied: u64) -> Result<Option<Pin>> {
        self.pins.pin_if_retained(db, from, applied)
    }
}

impl StreamedTo for Streams {
    fn replicants(&self) -> Vec<Subscriber> {
        self.live.lock().map(|l| l.values().cloned().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str) -> Subscriber {
        Subscriber { name: name.into(), addr: "h:1".into(), protocol: 1 }
    }

    #[test]
    fn a_stream_is_listed_while_registered_and_its_going_is_told() {
        let streams = Streams::default();
        let events = Arc::new(MemberFeed::default());
        let mut seen = events.subscribe();
        {
            let _a = streams.register(sub("r1@h"), events.clone());
            let _b = streams.register(sub("r2@h"), events.clone());
            let names: Vec<_> = streams.replicants().into_iter().map(|s| s.name).collect();
            assert_eq!(names, ["r1@h", "r2@h"]);
        }
        assert!(streams.replicants().is_empty());
        let told: Vec<_> = std::iter::from_fn(|| seen.try_recv().ok()).collect();
        assert_eq!(
            told,
            [
                MemberEvent::ReplicantConnected { name: "r1@h".into() },
                MemberEvent::ReplicantConnected { name: "r2@h".into() },
                MemberEvent::ReplicantDisconnected { name: "r2@h".into() },
                MemberEvent::ReplicantDisconnected { name: "r1@h".into() },
            ]
        );
    }
}
