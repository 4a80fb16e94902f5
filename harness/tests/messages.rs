//! Usage errors name what is missing, in one line, and nothing is written for a reference
//! without a transport (no root needed).
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output};

fn strata(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--root")
        .arg(dir.join("root"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn error_of(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(e.lines().count(), 1, "not one line: {e}");
    assert!(e.starts_with("strata: error: "), "{e}");
    e
}

#[test]
fn missing_arguments_are_named_and_usage_is_readable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (args, says) in [
        (&["mount", "img"][..], "mount needs LAYER... TARGET"),
        (&["commit", "somewhere"][..], "--output <OUT.tar>"),
        (&["report"][..], "--out <DIR>"),
        (&["rootfs", "from-host", "/bin/sh"][..], "--out <DIR>"),
        (&["image", "pull"][..], "<SRC>"),
        (&["image", "tag", "a"][..], "<NAME[:TAG]>"),
    ] {
        let e = error_of(&strata(d, args));
        assert!(e.contains(says), "strata {args:?}: {e}");
    }
    let help = String::from_utf8_lossy(&strata(d, &["mount", "--help"]).stdout).to_string();
    assert!(
        help.contains("Usage: strata mount [OPTIONS] <LAYER>... <TARGET>"),
        "{help}"
    );
    let help = String::from_utf8_lossy(&strata(d, &["run", "--help"]).stdout).to_string();
    assert!(help.contains("`run` writes it to stderr"), "{help}");
    for flag in [
        "--workdir",
        "--user",
        "--entrypoint",
        "--env-file",
        "--volume",
        "--mount",
        "--tty",
        "--interactive",
        "--commit-image",
    ] {
        assert!(help.contains(flag), "run --help lacks {flag}");
    }
}

#[test]
fn a_push_destination_without_a_transport_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("root")).unwrap();
    let e = error_of(&strata(
        d,
        &["image", "push", "img:v1", "127.0.0.1:5000/z:v1"],
    ));
    assert!(
        e.contains("docker://HOST[:PORT]/NAME[:TAG]") && e.contains("oci:DIR[:TAG]"),
        "{e}"
    );
    let names: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("root")]);
    let e = error_of(&strata(d, &["image", "pull", "127.0.0.1:5000/z:v1"]));
    assert!(e.contains("docker://HOST[:PORT]/NAME"), "{e}");
}
