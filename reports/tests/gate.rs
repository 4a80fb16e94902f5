//! The regression gate: a real slowdown fails it, noise alone does not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::fixture;
use strata_reports::regress::Verdict;
use strata_reports::{ReportOptions, build_report};

fn gate(current: &str, threshold_pct: f64) -> (tempfile::TempDir, strata_reports::ReportSummary) {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ReportOptions::new(tmp.path().join("r"));
    opts.results = vec![fixture(current)];
    opts.baseline = Some(fixture("gate/baseline.json"));
    opts.threshold_pct = threshold_pct;
    let summary = build_report(&opts).unwrap();
    // The page shows the gate too.
    let html = std::fs::read_to_string(summary.out.join("index.html")).unwrap();
    assert!(html.contains("id=\"regressions\""));
    (tmp, summary)
}

#[test]
fn real_slowdown_fails_the_gate() {
    let (_tmp, s) = gate("gate/slow.json", 10.0);
    let slower: Vec<&str> = s.regressions().iter().map(|c| c.id.as_str()).collect();
    assert_eq!(slower, vec!["union_prepare/overlay_mount2/layers=16"]);
    assert!(s.has_regressions());
    let c = s.regressions()[0];
    assert!(
        (c.change_pct - 60.0).abs() < 0.5,
        "median change {}",
        c.change_pct
    );
    assert!(
        c.lower_change_pct > 50.0,
        "the CIs guarantee {}",
        c.lower_change_pct
    );
    // pivot_root moved 2%: within the threshold.
    let g = s.gate.as_ref().unwrap();
    assert_eq!(g.comparisons.len(), 4);
    assert_eq!(
        g.comparisons
            .iter()
            .filter(|c| c.verdict == Verdict::Unchanged)
            .count(),
        3
    );
    let text = s.to_string();
    assert!(
        text.contains("regressions: 1 of 4 benchmarks slower than"),
        "{text}"
    );
    assert!(
        text.contains(
            "slower: union_prepare/overlay_mount2/layers=16 [ci-runner]: 2.20 ms -> 3.52 ms (+60.0%"
        ),
        "{text}"
    );
    let md = std::fs::read_to_string(s.out.join("REPORT.md")).unwrap();
    assert!(
        md.contains("**1 of 4 benchmarks**") && md.contains("**slower**"),
        "{md}"
    );
}

#[test]
fn noise_alone_passes_the_gate() {
    let (_tmp, s) = gate("gate/noise.json", 10.0);
    assert!(!s.has_regressions(), "{s}");
    let g = s.gate.as_ref().unwrap();
    assert_eq!(g.comparisons.len(), 4);
    // copy_up's median is 14% up, beyond the threshold, but its interval reaches back into the
    // baseline's: inconclusive, reported, not failing.
    let copy = g
        .comparisons
        .iter()
        .find(|c| c.id == "copy_up/copy/bytes=1048576")
        .unwrap();
    assert!(copy.change_pct > 10.0, "{copy}");
    assert_eq!(copy.verdict, Verdict::Inconclusive);
    assert!(
        s.to_string().contains("regressions: 0 of 4 benchmarks"),
        "{s}"
    );
    assert!(
        s.to_string().contains("(1 inconclusive within noise)"),
        "{s}"
    );
}

#[test]
fn threshold_decides_what_counts() {
    // The 60% slowdown is not a regression at a 70% threshold.
    assert!(!gate("gate/slow.json", 70.0).1.has_regressions());
    // Identical inputs never regress, even at a zero threshold.
    assert!(!gate("gate/baseline.json", 0.0).1.has_regressions());
}

#[test]
fn a_criterion_directory_can_be_the_baseline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = ReportOptions::new(tmp.path().join("r"));
    opts.criterion = Some(fixture("criterion"));
    opts.baseline = Some(fixture("criterion"));
    let s = build_report(&opts).unwrap();
    let g = s.gate.as_ref().unwrap();
    assert_eq!(g.comparisons.len(), 17);
    assert!(
        g.comparisons
            .iter()
            .all(|c| c.verdict == Verdict::Unchanged)
    );
}
