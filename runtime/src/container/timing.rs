//! Per-phase timing spans of a container start, in nanoseconds of CLOCK_MONOTONIC.
//!
//! The parent and the child read the same clock, so the child's spans (taken before exec and
//! sent over the report pipe) sit on the same time line as the parent's. Every span is
//! relative to the moment [`super::start`] was called.

use serde::Serialize;

/// Now, in ns of CLOCK_MONOTONIC (the vDSO: no system call, no allocation; safe in the child).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// One timed phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    /// The phase: `layers`, `init_layer`, `union_mount`, `cgroup`, `clone`, `ns:mount`, ...
    pub phase: String,
    /// Which process timed it: `parent` (strata) or `child` (the container before exec).
    pub process: &'static str,
    /// Start, in ns after the start of the run.
    pub start_ns: u64,
    /// Duration in ns.
    pub ns: u64,
}

/// The spans of one run, in the order they started.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// CLOCK_MONOTONIC at the start of the run (not serialized: spans are relative to it).
    #[serde(skip)]
    pub origin: u64,
    pub spans: Vec<Span>,
    /// From the start of the run to the end of the teardown.
    pub total_ns: u64,
}

impl Timings {
    /// Starts a time line now.
    pub fn start() -> Timings {
        Timings {
            origin: now_ns(),
            spans: Vec::with_capacity(32),
            total_ns: 0,
        }
    }

    /// Records `phase` from the absolute instant `from` to `to` (both [`now_ns`] values).
    pub fn record(&mut self, phase: &str, process: &'static str, from: u64, to: u64) {
        self.spans.push(Span {
            phase: phase.to_string(),
            process,
            start_ns: from.saturating_sub(self.origin),
            ns: to.saturating_sub(from),
        });
    }

    /// Records a parent phase that started at `from` and ends now; returns now.
    pub fn since(&mut self, phase: &str, from: u64) -> u64 {
        let now = now_ns();
        self.record(phase, "parent", from, now);
        now
    }

    /// The span of `phase`, if recorded.
    pub fn get(&self, phase: &str) -> Option<&Span> {
        self.spans.iter().find(|s| s.phase == phase)
    }

    /// Closes the time line now.
    pub fn finish(&mut self) {
        self.spans.sort_by_key(|s| s.start_ns);
        self.total_ns = now_ns().saturating_sub(self.origin);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_relative_to_the_origin_and_sorted() {
        let mut t = Timings::start();
        let a = now_ns();
        let b = t.since("late", a + 1);
        t.record("early", "child", a, a + 1);
        t.finish();
        assert_eq!(t.spans[0].phase, "early");
        assert_eq!(t.spans[0].start_ns, a - t.origin);
        assert_eq!(t.spans[1].ns, b.saturating_sub(a + 1));
        assert!(t.total_ns >= t.spans[1].start_ns);
        assert!(t.get("late").is_some());
    }
}
