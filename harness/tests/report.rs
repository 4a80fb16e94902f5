//! `strata report` as a user meets it: a report from criterion output and runner records,
//! the regression gate's exit status, and one line for bad input.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../reports/tests/fixtures")
}

fn strata(args: &[&str]) -> Output {
    let root = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(root.path())
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_report_from_criterion_output_and_two_runners() {
    let f = fixtures();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("report");
    let o = strata(&[
        "--json",
        "report",
        "--criterion",
        &s(&f.join("criterion")),
        "--results",
        &s(&f.join("runner-a.json")),
        &s(&f.join("runner-b.json")),
        "--out",
        &s(&dir),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["charts"].as_array().unwrap().len() >= 5, "{v}");
    let runners: Vec<&str> = v["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        runners.contains(&"runner-a") && runners.contains(&"runner-b"),
        "{runners:?}"
    );
    for f in ["index.html", "REPORT.md"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
}

#[test]
fn the_regression_gate_fails_on_a_slowdown_and_passes_on_noise() {
    let f = fixtures().join("gate");
    let out = tempfile::tempdir().unwrap();
    let run = |current: &str, name: &str| {
        strata(&[
            "report",
            "--results",
            &s(&f.join(current)),
            "--baseline",
            &s(&f.join("baseline.json")),
            "--threshold",
            "10",
            "--out",
            &s(&out.path().join(name)),
        ])
    };
    let slow = run("slow.json", "slow");
    let err = String::from_utf8_lossy(&slow.stderr);
    assert_eq!(slow.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("strata: error: the gate failed: 1 benchmark(s) slower"),
        "{err}"
    );
    assert!(
        String::from_utf8_lossy(&slow.stdout).contains("union_prepare/overlay_mount2/layers=16")
    );
    let noise = run("noise.json", "noise");
    assert!(
        noise.status.success(),
        "{}",
        String::from_utf8_lossy(&noise.stderr)
    );
}

#[test]
fn the_gate_fails_naming_a_lost_conformance_cell_and_a_missing_benchmark_and_passes_unchanged() {
    let base = fixtures().join("gate/cells.json");
    let out = tempfile::tempdir().unwrap();
    let run = |current: &Path, name: &str| {
        strata(&[
            "report",
            "--results",
            &s(current),
            "--baseline",
            &s(&base),
            "--out",
            &s(&out.path().join(name)),
        ])
    };
    let same = run(&base, "same");
    assert!(
        same.status.success(),
        "{}",
        String::from_utf8_lossy(&same.stderr)
    );
    for (what, lost) in [
        ("fail", "conformance overlay P-01 [ci-runner]: pass -> FAIL"),
        ("skip", "conformance overlay P-01 [ci-runner]: pass -> skip"),
        (
            "no-bench",
            "benchmark copy_up/copy/bytes=1048576 [ci-runner]: in the baseline, missing now",
        ),
    ] {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
        match what {
            "no-bench" => v["benchmarks"]
                .as_array_mut()
                .unwrap()
                .retain(|b| b["group"] != "copy_up"),
            status => {
                let cells = v["conformance"].as_array_mut().unwrap();
                let c = cells
                    .iter_mut()
                    .find(|c| c["driver"] == "overlay" && c["case"] == "P-01")
                    .unwrap();
                c["status"] = status.into();
            }
        }
        let current = out.path().join(format!("{what}.json"));
        std::fs::write(&current, v.to_string()).unwrap();
        let o = run(&current, what);
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(o.status.code(), Some(1), "{what}: {stdout}{stderr}");
        assert!(
            stdout.contains(&format!("  lost: {lost}")),
            "{what}: {stdout}"
        );
        assert!(
            stderr.starts_with("strata: error: the gate failed: 0 benchmark(s) slower")
                && stderr.contains("1 loss(es)"),
            "{what}: {stderr}"
        );
    }
}

#[test]
fn bad_input_is_one_line_naming_the_file() {
    let bad = fixtures().join("bad/truncated.json");
    let out = tempfile::tempdir().unwrap();
    let o = strata(&[
        "report",
        "--results",
        &s(&bad),
        "--out",
        &s(&out.path().join("r")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("truncated.json"), "{err}");
    assert!(!out.path().join("r").join("index.html").exists());
}
