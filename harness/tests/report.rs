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
        err.starts_with("strata: error: 1 benchmark(s) got slower"),
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
