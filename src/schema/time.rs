//! Wall-clock time as the tables record it: milliseconds since the Unix epoch.
//!
//! Callers pass times in, so a transaction carries the time it was made with and every
//! node applies the same value.

/// Now, in milliseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
