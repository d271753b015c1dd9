//! [`beside`]: two halves of a load that share nothing, run on two cores.

/// Runs `aside` on a thread of its own while this thread runs `here`; returns both
/// results. A panic in `aside` is raised again here, once `here` has finished.
pub fn beside<A: Send, B>(aside: impl FnOnce() -> A + Send, here: impl FnOnce() -> B) -> (A, B) {
    std::thread::scope(|s| {
        let aside = s.spawn(aside);
        let here = here();
        match aside.join() {
            Ok(aside) => (aside, here),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
