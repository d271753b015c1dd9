//! The replicants streaming from this core, for `cluster status`: each stream registers
//! itself and is removed when it ends.

use crate::engine::members::{MemberEvent, MemberFeed};
use crate::status::Subscriber;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Replicants streaming from this core, for `cluster status`.
pub struct Subscribers {
    next: std::sync::atomic::AtomicU64,
    live: Mutex<BTreeMap<u64, Subscriber>>,
    /// Where a replicant's coming and going is told.
    events: Arc<MemberFeed>,
}

pub(crate) struct Registered<'a>(&'a Subscribers, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let gone = self.0.live.lock().ok().and_then(|mut l| l.remove(&self.1));
        if let Some(s) = gone {
            self.0.events.send(MemberEvent::ReplicantDisconnected { name: s.name });
        }
    }
}

impl Subscribers {
    pub(crate) fn new(events: Arc<MemberFeed>) -> Self {
        Subscribers { next: Default::default(), live: Default::default(), events }
    }

    pub(crate) fn register(&self, s: Subscriber) -> Registered<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.events.send(MemberEvent::ReplicantConnected { name: s.name.clone() });
        if let Ok(mut l) = self.live.lock() {
            l.insert(id, s);
        }
        Registered(self, id)
    }

    pub fn list(&self) -> Vec<Subscriber> {
        self.live.lock().map(|l| l.values().cloned().collect()).unwrap_or_default()
    }
}
