//! Progress of a long operation: records and bytes done, rate, time left.

use std::time::{Duration, Instant};

/// Progress of a long operation (export, import): records and bytes done, the rate and
/// the time left, reported every so often through a callback.
pub struct Progress {
    what: &'static str,
    started: Instant,
    last_report: Instant,
    every: Duration,
    /// Expected totals, if known (import knows them after checking the file).
    pub total_records: Option<u64>,
    /// The total bytes expected, when known (for the time left).
    pub total_bytes: Option<u64>,
    /// Records done.
    pub records: u64,
    /// Bytes done.
    pub bytes: u64,
    report: Box<dyn FnMut(&str) + Send>,
}

impl Progress {
    /// Reports through `report` at most every `every` (and once at the end).
    pub fn new(what: &'static str, every: Duration, report: impl FnMut(&str) + Send + 'static) -> Self {
        let now = Instant::now();
        Progress {
            what,
            started: now,
            last_report: now,
            every,
            total_records: None,
            total_bytes: None,
            records: 0,
            bytes: 0,
            report: Box::new(report),
        }
    }

    /// Progress that reports nothing.
    pub fn silent(what: &'static str) -> Self {
        Self::new(what, Duration::MAX, |_| {})
    }

    /// Counts `records` and `bytes` more, reporting if it is time to.
    pub fn add(&mut self, records: u64, bytes: u64) {
        self.records += records;
        self.bytes += bytes;
        if self.last_report.elapsed() >= self.every {
            self.last_report = Instant::now();
            let line = self.line();
            (self.report)(&line);
        }
    }

    /// Reports the final figures.
    pub fn finish(&mut self) {
        let line = format!("{} (done)", self.line());
        (self.report)(&line);
    }

    /// `export: 120000/1000000 records, 12.1/100.0 MiB, 52000 records/s, 17 s left`
    pub fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let rate = self.records as f64 / secs;
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let records = match self.total_records {
            Some(t) => format!("{}/{t} records", self.records),
            None => format!("{} records", self.records),
        };
        let bytes = match self.total_bytes {
            Some(t) => format!("{:.1}/{:.1} MiB", mib(self.bytes), mib(t)),
            None => format!("{:.1} MiB", mib(self.bytes)),
        };
        let left = match self.total_records {
            Some(t) if rate > 0.0 && t >= self.records => format!(", {:.0} s left", (t - self.records) as f64 / rate),
            _ => String::new(),
        };
        format!("{}: {records}, {bytes}, {rate:.0} records/s{left}", self.what)
    }
}
