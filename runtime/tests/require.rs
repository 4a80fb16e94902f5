//! `STRATA_REQUIRE` turns a skip into a failure. This binary runs its own probe test in a
//! child process whose PATH finds no tool, with and without the variable. Needs no root.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

use strata_runtime::require;

#[test]
#[ignore = "a probe: the test below runs it in a child process with an empty PATH"]
fn probe_needs_umoci() {
    if !require::tools(&["umoci"]) {
        return;
    }
    panic!("umoci found on PATH {:?}", std::env::var_os("PATH"));
}

/// Runs the probe with PATH leading nowhere and `STRATA_REQUIRE` set to `required`.
fn probe(required: Option<&str>) -> (Output, String) {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--ignored", "--exact", "probe_needs_umoci", "--nocapture"])
        .env("PATH", "/nonexistent")
        .env_remove(require::ENV);
    if let Some(r) = required {
        c.env(require::ENV, r);
    }
    let o = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o, text)
}

#[test]
fn a_missing_tool_is_a_printed_skip_and_a_failure_when_required() {
    let (o, text) = probe(None);
    assert!(o.status.success(), "{text}");
    assert!(
        text.contains("skipped: probe_needs_umoci: needs umoci on PATH"),
        "{text}"
    );

    // Another requirement leaves the skip a skip.
    let (o, text) = probe(Some("root,skopeo"));
    assert!(o.status.success(), "{text}");
    assert!(text.contains("skipped: probe_needs_umoci"), "{text}");

    let (o, text) = probe(Some("root, umoci"));
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("probe_needs_umoci: STRATA_REQUIRE names umoci, but needs umoci on PATH"),
        "{text}"
    );
    assert!(!text.contains("skipped:"), "{text}");

    // A misspelt name requires nothing, so it is refused rather than ignored.
    let (o, text) = probe(Some("umoic"));
    assert!(!o.status.success(), "{text}");
    assert!(
        text.contains("STRATA_REQUIRE: unknown name \"umoic\""),
        "{text}"
    );
}
