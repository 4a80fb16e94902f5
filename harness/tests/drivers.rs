//! `strata drivers` tells the truth for the store it is given: btrfs is available only where
//! ROOT/btrfs is on btrfs, and otherwise the line says what to do.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use strata_runtime::loopfs::{self, FsType, LoopFs};
use strata_runtime::{driver, require, sandbox};

/// `strata --root ROOT --json drivers`: the btrfs row's (available, reason), and the text
/// output's btrfs line.
fn btrfs_row(root: &Path) -> (bool, Option<String>, String) {
    let run = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
        c.arg("--root").arg(root);
        if json {
            c.arg("--json");
        }
        let o = c.arg("drivers").output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let v: serde_json::Value = serde_json::from_str(&run(true)).unwrap();
    let row = v["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "btrfs")
        .unwrap()
        .clone();
    let line = run(false)
        .lines()
        .find(|l| l.starts_with("btrfs "))
        .unwrap()
        .to_string();
    (
        row["available"].as_bool().unwrap(),
        row["reason"].as_str().map(str::to_string),
        line,
    )
}

#[test]
fn btrfs_is_available_only_where_the_store_has_a_btrfs() {
    if !require::root() {
        return;
    }
    // The binary's mounts (none here) and the loop btrfs stay in this namespace.
    sandbox::private_mount_namespace().unwrap();
    let dir = tempfile::Builder::new()
        .prefix("strata-drivers-")
        .tempdir()
        .unwrap();

    // A store on the temp dir's filesystem (not btrfs here: the test checks that first).
    let plain = dir.path().join("plain");
    let (available, reason, line) = btrfs_row(&plain);
    let why = reason.unwrap_or_default();
    assert!(!available, "btrfs available on {}: {line}", plain.display());
    assert!(why.contains("not btrfs"), "{why}");
    let state = driver::btrfs::state_dir(&plain);
    assert!(
        why.contains(&format!("mount a btrfs at {}", state.display())),
        "the reason says what to do: {why}"
    );
    assert!(
        line.contains("unavailable:") && line.contains("not btrfs"),
        "{line}"
    );

    // The same store with a btrfs mounted at ROOT/btrfs.
    if let Err(why) = loopfs::check(FsType::Btrfs) {
        require::skip_or_fail("btrfs", &format!("no btrfs loop image here: {why}"));
        return;
    }
    std::fs::create_dir_all(&state).unwrap();
    let img = LoopFs::create(FsType::Btrfs, &dir.path().join("b.img"), 1 << 30, &state).unwrap();
    let (available, reason, line) = btrfs_row(&plain);
    assert!(available, "{reason:?}");
    assert_eq!(line.trim_end(), "btrfs            available", "{line}");
    drop(img);

    // Unmounted again: unavailable again.
    let (available, _, _) = btrfs_row(&plain);
    assert!(!available);
}
