//! The regression gate: compare every benchmark against a baseline, using confidence intervals
//! so that noise alone never fails a build, and every conformance cell against the baseline's.
//!
//! Besides a slower benchmark, the gate fails on each [`Loss`]: a conformance cell that now
//! fails (and did not), or is now skipped or gone (and passed or was declared); a benchmark of
//! the baseline that is missing from a current runner; a part of the run that failed as a
//! whole (a benchmark group, `strata check`; see [`crate::record::Failed`]).
//!
//! A benchmark is **slower** only when even the most favourable reading of the two intervals
//! is beyond the threshold: `current.ci.lo / baseline.ci.hi - 1 > threshold`. When the medians
//! differ by more than the threshold but the intervals do not separate that far, the verdict is
//! **inconclusive** (reported, never failing). Records without an interval count their median as
//! a zero-width interval.

use std::fmt;
use std::path::Path;

use crate::error::ReportError;
use crate::merge::{Dataset, human_ns};
use crate::record::{Benchmark, Conformance, ResultRecord, Status};

/// How one benchmark moved against the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Slower beyond the threshold, with the intervals separated: fails the gate.
    Slower,
    /// The medians moved beyond the threshold but the intervals overlap too much to tell.
    Inconclusive,
    /// Within the threshold.
    Unchanged,
    /// Faster beyond the threshold, with the intervals separated.
    Faster,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Slower => "slower",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Unchanged => "unchanged",
            Verdict::Faster => "faster",
        }
    }
}

/// One benchmark compared with its baseline. Times in nanoseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub id: String,
    pub runner: String,
    pub baseline_median: f64,
    pub baseline_ci: (f64, f64),
    pub current_median: f64,
    pub current_ci: (f64, f64),
    /// Change of the medians, in percent (positive = slower).
    pub change_pct: f64,
    /// Change between the nearest interval bounds, in percent: the smallest change the
    /// intervals allow (positive = certainly slower by at least this much).
    pub lower_change_pct: f64,
    pub verdict: Verdict,
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}]: {} -> {} ({:+.1}%, at least {:+.1}% by the 95% CIs): {}",
            self.id,
            self.runner,
            human_ns(self.baseline_median),
            human_ns(self.current_median),
            self.change_pct,
            self.lower_change_pct,
            self.verdict.as_str()
        )
    }
}

/// What a run is compared with: benchmarks (times in nanoseconds) and conformance cells.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub benchmarks: Vec<Benchmark>,
    pub conformance: Vec<Conformance>,
}

/// Reads a baseline: a strata result record (its benchmarks and conformance cells), or a
/// criterion directory (benchmarks only).
pub fn read_baseline(path: &Path) -> Result<Baseline, ReportError> {
    let (benches, conformance) = if path.is_dir() {
        (crate::criterion::read_criterion_dir(path)?, Vec::new())
    } else {
        let r = ResultRecord::read(path)?;
        (r.benchmarks, r.conformance)
    };
    let mut out = Vec::with_capacity(benches.len());
    for b in benches {
        let ns = b.to_ns().ok_or_else(|| {
            ReportError::input(
                path,
                format!(
                    "benchmark {}: unknown unit {:?} (use ns, us, ms or s)",
                    b.id, b.unit
                ),
            )
        })?;
        out.push(ns);
    }
    if out.is_empty() && conformance.is_empty() {
        return Err(ReportError::input(
            path,
            "baseline holds no benchmarks and no conformance results",
        ));
    }
    Ok(Baseline {
        benchmarks: out,
        conformance,
    })
}

/// Something the gate fails on besides a slower benchmark.
#[derive(Debug, Clone, PartialEq)]
pub enum Loss {
    /// A conformance cell that newly fails, or that passed (or was declared) and is now
    /// skipped or gone. `now` is `None` when the current run has no such cell.
    Cell {
        runner: String,
        driver: String,
        case: String,
        was: Status,
        now: Option<Status>,
        /// The current cell's detail (why it failed or was skipped), first line.
        detail: Option<String>,
    },
    /// A benchmark of the baseline that a current runner did not record.
    MissingBenchmark { runner: String, id: String },
    /// A part of the current run that failed as a whole.
    Failed {
        runner: String,
        what: String,
        reason: String,
    },
}

impl fmt::Display for Loss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Loss::Cell {
                runner,
                driver,
                case,
                was,
                now,
                detail,
            } => {
                let now = now.map_or("missing", |s| match s {
                    Status::Fail => "FAIL",
                    s => s.as_str(),
                });
                write!(f, "conformance {driver} {case} [{runner}]: {was} -> {now}")?;
                if let Some(d) = detail {
                    write!(f, ": {d}")?;
                }
                Ok(())
            }
            Loss::MissingBenchmark { runner, id } => {
                write!(f, "benchmark {id} [{runner}]: in the baseline, missing now")
            }
            Loss::Failed {
                runner,
                what,
                reason,
            } => write!(f, "{what} [{runner}] failed: {reason}"),
        }
    }
}

/// Whether a cell that was `was` and is now `now` is a loss.
fn lost(was: Status, now: Option<Status>) -> bool {
    let was_good = matches!(was, Status::Pass | Status::Declared);
    match now {
        Some(Status::Fail) => was != Status::Fail,
        Some(Status::Skip) | None => was_good,
        Some(Status::Pass | Status::Declared) => false,
    }
}

/// Every [`Loss`] of each current runner against the baseline, in the order: failed parts,
/// conformance cells (by driver and case), missing benchmarks.
pub fn losses(baseline: &Baseline, current: &Dataset) -> Vec<Loss> {
    let mut out = Vec::new();
    for r in &current.runners {
        let runner = &r.runner.id;
        out.extend(r.failed.iter().map(|f| Loss::Failed {
            runner: runner.clone(),
            what: f.what.clone(),
            reason: f.reason.clone(),
        }));
        let mut cells: Vec<&Conformance> = baseline.conformance.iter().collect();
        cells.sort_by(|a, b| (&a.driver, &a.case).cmp(&(&b.driver, &b.case)));
        for base in cells {
            let cur = r
                .conformance
                .iter()
                .find(|c| c.driver == base.driver && c.case == base.case);
            let now = cur.map(|c| c.status);
            if lost(base.status, now) {
                out.push(Loss::Cell {
                    runner: runner.clone(),
                    driver: base.driver.clone(),
                    case: base.case.clone(),
                    was: base.status,
                    now,
                    detail: cur
                        .and_then(|c| c.detail.as_deref())
                        .and_then(|d| d.lines().next())
                        .map(str::to_string),
                });
            }
        }
        for b in &baseline.benchmarks {
            if !r.benchmarks.iter().any(|c| c.id == b.id) {
                out.push(Loss::MissingBenchmark {
                    runner: runner.clone(),
                    id: b.id.clone(),
                });
            }
        }
    }
    out
}

/// Compares each runner's benchmarks with the baseline benchmark of the same id.
/// Benchmarks missing on either side are not compared. Sorted: slowest verdicts first.
pub fn compare(baseline: &[Benchmark], current: &Dataset, threshold_pct: f64) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (runner, cur) in current.benchmarks() {
        // Times measured under emulation are the emulator's: never gated.
        if crate::kernels::emulated(&runner.runner) {
            continue;
        }
        let Some(base) = baseline.iter().find(|b| b.id == cur.id) else {
            continue;
        };
        out.push(compare_one(base, cur, &runner.runner.id, threshold_pct));
    }
    out.sort_by(|a, b| {
        a.verdict
            .cmp(&b.verdict)
            .then(b.lower_change_pct.total_cmp(&a.lower_change_pct))
    });
    out
}

/// The verdict for one pair; see the module documentation for the rule.
pub fn compare_one(
    base: &Benchmark,
    cur: &Benchmark,
    runner: &str,
    threshold_pct: f64,
) -> Comparison {
    let (blo, bhi) = base.ci_or_median();
    let (clo, chi) = cur.ci_or_median();
    let pct = |a: f64, b: f64| if b > 0.0 { (a / b - 1.0) * 100.0 } else { 0.0 };
    let change_pct = pct(cur.median, base.median);
    // Slower: compare the current interval's low end with the baseline's high end.
    // Faster: the current high end with the baseline's low end.
    let slower_by = pct(clo, bhi);
    let faster_by = -pct(chi, blo);
    let (verdict, lower_change_pct) = if slower_by > threshold_pct {
        (Verdict::Slower, slower_by)
    } else if faster_by > threshold_pct {
        (Verdict::Faster, -faster_by)
    } else if change_pct.abs() > threshold_pct {
        (
            Verdict::Inconclusive,
            if change_pct > 0.0 {
                slower_by.max(0.0)
            } else {
                -faster_by.max(0.0)
            },
        )
    } else {
        (
            Verdict::Unchanged,
            if change_pct > 0.0 {
                slower_by.max(0.0)
            } else {
                -faster_by.max(0.0)
            },
        )
    };
    Comparison {
        id: cur.id.clone(),
        runner: runner.to_string(),
        baseline_median: base.median,
        baseline_ci: (blo, bhi),
        current_median: cur.median,
        current_ci: (clo, chi),
        change_pct,
        lower_change_pct,
        verdict,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn b(median: f64, lo: f64, hi: f64) -> Benchmark {
        Benchmark {
            id: "g/f/1".into(),
            group: "g".into(),
            driver: "f".into(),
            params: Default::default(),
            unit: "ns".into(),
            samples: vec![],
            median,
            mean: None,
            ci: Some([lo, hi]),
            throughput: None,
        }
    }

    #[test]
    fn which_conformance_changes_are_losses() {
        use Status::*;
        for (was, now, loss) in [
            (Pass, Some(Fail), true),
            (Declared, Some(Fail), true),
            (Skip, Some(Fail), true),
            (Fail, Some(Fail), false),
            (Pass, Some(Skip), true),
            (Declared, Some(Skip), true),
            (Skip, Some(Skip), false),
            (Pass, None, true),
            (Skip, None, false),
            (Pass, Some(Declared), false),
            (Fail, Some(Pass), false),
            (Skip, Some(Pass), false),
        ] {
            assert_eq!(lost(was, now), loss, "{was} -> {now:?}");
        }
    }

    #[test]
    fn verdicts() {
        let base = b(100.0, 98.0, 102.0);
        assert_eq!(
            compare_one(&base, &b(150.0, 147.0, 153.0), "r", 10.0).verdict,
            Verdict::Slower
        );
        assert_eq!(
            compare_one(&base, &b(104.0, 99.0, 110.0), "r", 10.0).verdict,
            Verdict::Unchanged
        );
        // Median 15% up, but the interval reaches back to the baseline: noise cannot be ruled out.
        assert_eq!(
            compare_one(&base, &b(115.0, 101.0, 140.0), "r", 10.0).verdict,
            Verdict::Inconclusive
        );
        assert_eq!(
            compare_one(&base, &b(50.0, 49.0, 51.0), "r", 10.0).verdict,
            Verdict::Faster
        );
        let c = compare_one(&base, &b(150.0, 147.0, 153.0), "r", 10.0);
        assert!((c.change_pct - 50.0).abs() < 1e-9);
        assert!((c.lower_change_pct - (147.0 / 102.0 - 1.0) * 100.0).abs() < 1e-9);
    }
}
