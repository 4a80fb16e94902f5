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

/// The gate of `current` (the `gate/cells.json` fixture changed by `edit`) against the
/// unchanged fixture.
fn cells_gate(
    edit: impl FnOnce(&mut serde_json::Value),
) -> (tempfile::TempDir, strata_reports::ReportSummary) {
    let tmp = tempfile::tempdir().unwrap();
    let base = fixture("gate/cells.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    edit(&mut v);
    let current = tmp.path().join("current.json");
    std::fs::write(&current, v.to_string()).unwrap();
    let mut opts = ReportOptions::new(tmp.path().join("r"));
    opts.results = vec![current];
    opts.baseline = Some(base);
    let s = build_report(&opts).unwrap();
    (tmp, s)
}

/// The cell of `driver` and `case` in a record.
fn cell<'a>(v: &'a mut serde_json::Value, driver: &str, case: &str) -> &'a mut serde_json::Value {
    v["conformance"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|c| c["driver"] == driver && c["case"] == case)
        .unwrap()
}

#[test]
fn an_identical_record_passes_the_gate() {
    let (_tmp, s) = cells_gate(|_| {});
    assert!(!s.has_regressions(), "{s}");
    assert!(s.losses().is_empty(), "{s}");
    assert!(s.to_string().contains("losses: 0"), "{s}");
}

#[test]
fn a_conformance_cell_going_from_pass_to_fail_or_skip_fails_the_gate_and_is_named() {
    let (_tmp, s) = cells_gate(|v| {
        let c = cell(v, "fuse-overlayfs", "P-01");
        c["status"] = "fail".into();
        c["detail"] = "view: b: owner 0:0, expected 0:1\nmore".into();
        cell(v, "copy", "P-01")["status"] = "skip".into();
        // declared -> skip loses the cell too; fail -> fail and skip -> skip change nothing.
        let c = cell(v, "overlay", "R-07");
        c["status"] = "skip".into();
        c["detail"] = "driver overlay unavailable: no overlay in /proc/filesystems".into();
    });
    assert!(s.has_regressions(), "{s}");
    assert!(s.regressions().is_empty(), "no benchmark moved: {s}");
    let lost: Vec<String> = s.losses().iter().map(|l| l.to_string()).collect();
    assert_eq!(
        lost,
        vec![
            "conformance copy P-01 [ci-runner]: pass -> skip",
            "conformance fuse-overlayfs P-01 [ci-runner]: pass -> FAIL: view: b: owner 0:0, expected 0:1",
            "conformance overlay R-07 [ci-runner]: declared -> skip: driver overlay unavailable: no overlay in /proc/filesystems",
        ]
    );
    let text = s.to_string();
    assert!(
        text.contains("  lost: conformance fuse-overlayfs P-01 [ci-runner]: pass -> FAIL"),
        "{text}"
    );
    let md = std::fs::read_to_string(s.out.join("REPORT.md")).unwrap();
    assert!(
        md.contains("**3 lost**") && md.contains("fuse-overlayfs P-01"),
        "{md}"
    );
    let html = std::fs::read_to_string(s.out.join("index.html")).unwrap();
    assert!(
        html.contains("conformance copy P-01 [ci-runner]: pass -&gt; skip"),
        "{html}"
    );
}

#[test]
fn a_case_that_vanished_or_a_benchmark_that_vanished_fails_the_gate() {
    let (_tmp, s) = cells_gate(|v| {
        v["conformance"]
            .as_array_mut()
            .unwrap()
            .retain(|c| !(c["driver"] == "overlay" && c["case"] == "P-01"));
        v["benchmarks"]
            .as_array_mut()
            .unwrap()
            .retain(|b| b["group"] != "copy_up");
    });
    let lost: Vec<String> = s.losses().iter().map(|l| l.to_string()).collect();
    assert_eq!(
        lost,
        vec![
            "conformance overlay P-01 [ci-runner]: pass -> missing",
            "benchmark copy_up/copy/bytes=1048576 [ci-runner]: in the baseline, missing now",
        ]
    );
    assert!(s.has_regressions());
}

#[test]
fn a_failed_part_of_the_run_fails_the_gate() {
    let (_tmp, s) = cells_gate(|v| {
        v["failed"] = serde_json::json!([
            {"what": "benchmark group commit", "reason": "cargo bench --bench commit: exit status: 101"}
        ]);
    });
    let lost: Vec<String> = s.losses().iter().map(|l| l.to_string()).collect();
    assert_eq!(
        lost,
        vec![
            "benchmark group commit [ci-runner] failed: cargo bench --bench commit: exit status: 101"
        ]
    );
    assert!(s.has_regressions());
}

#[test]
fn a_cell_that_was_failing_or_skipped_is_no_loss_when_it_passes_now() {
    let (_tmp, s) = cells_gate(|v| {
        cell(v, "copy", "M-13")["status"] = "pass".into();
        cell(v, "btrfs", "R-07")["status"] = "pass".into();
    });
    assert!(!s.has_regressions(), "{s}");
}
