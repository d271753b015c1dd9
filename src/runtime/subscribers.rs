//! The replicants streaming from this core, for `cluster status`: each stream registers
//! itself and is removed when it ends.

use crate::status::Subscriber;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Replicants streaming from this core, for `cluster status`.
#[derive(Default)]
pub struct Subscribers {
    next: std::sync::atomic::AtomicU64,
    live: Mutex<BTreeMap<u64, Subscriber>>,
}

pub(crate) struct Registered<'a>(&'a Subscribers, u64);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Ok(mut l) = self.0.live.lock() {
            l.remove(&self.1);
        }
    }
}

impl Subscribers {
    pub(crate) fn register(&self, s: Subscriber) -> Registered<'_> {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut l) = self.live.lock() {
            l.insert(id, s);
        }
        Registered(self, id)
    }

    pub fn list(&self) -> Vec<Subscriber> {
        self.live.lock().map(|l| l.values().cloned().collect()).unwrap_or_default()
    }
}
