//! What the property suite found running fuse-overlayfs 1.10, as named cases on every driver
//! (each view and commit checked against the model under the driver's declared semantics),
//! and fuse-overlayfs's own layer limit.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use strata_runtime::commit::CommitOptions;
use strata_runtime::conformance::{self, Action, Checked, Finding, Options};
use strata_runtime::driver::{self, fuse};
use strata_runtime::fixture::Layer;
use strata_runtime::model::ops::Op;
use strata_runtime::model::{ChangeSet, Timespec, Tree};
use strata_runtime::mounts;

/// Runs the conformance loop on every driver: the fresh view, each operation's outcome, the
/// view after (every mtime: the model's, or the clock window of the operation that stamped
/// it), a second mount seeing none of it, the commit read back onto the layers and mounted
/// with them, the lower layers untouched. A stack the model refuses must not mount.
fn case(e: &common::Env, what: &str, layers: &[Layer], ops: &[Op]) {
    let stored = e.import_all(layers);
    let sets: Vec<ChangeSet> = layers.iter().map(|l| l.changeset()).collect();
    let actions: Vec<Action> = ops.iter().cloned().map(Action::Op).collect();
    for d in common::drivers() {
        let name = format!("{what} on {}", d.name());
        let target = |w: &str| Ok(e.fresh_dir(&format!("mnt-{}-{w}", d.name())));
        let no_reads = |_: &Tree, _: &str| Ok(None);
        let opts = Options {
            commit: CommitOptions::default(),
            round_trip_ignore: Vec::new(),
            isolation: true,
            remount: true,
            model_read: &no_reads,
            target: &target,
            on_view: None,
        };
        match conformance::check(&e.store, d, &stored, &sets, &actions, opts) {
            Ok(Checked::Ran(run)) => {
                let found: Vec<String> = run
                    .findings
                    .iter()
                    .map(|f| match f {
                        Finding::Tree { stage, diffs, .. } => format!("{stage}: {diffs:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect();
                assert!(found.is_empty(), "{name}:\n{}", found.join("\n"));
            }
            Ok(Checked::Refused { .. }) => {}
            Err(why) => panic!("{name}: {why}"),
        }
    }
}

#[test]
fn devices_and_fifos_stay_what_they_are_when_copied_up() {
    // fuse-overlayfs 1.10 copies them up as empty regular files (and the call gets EIO).
    let e = need_root!();
    let layers = [Layer::new()
        .fifo("p")
        .mode(0o640)
        .owner(7, 8)
        .fifo("q")
        .chardev("c", 1, 3)
        .owner(7, 8)
        .blockdev("dev/loop", 7, 0)
        .dir("d")];
    let ops = [
        Op::Rename {
            from: "p".into(),
            to: "p2".into(),
        },
        Op::Chmod {
            path: "q".into(),
            mode: 0o600,
        },
        Op::Link {
            from: "c".into(),
            to: "d/c2".into(),
        },
        Op::Chown {
            path: "dev/loop".into(),
            uid: 1,
            gid: 1,
        },
    ];
    case(&e, "devices and fifos", &layers, &ops);
}

#[test]
fn setid_directories_keep_their_bits_when_copied_up() {
    // fuse-overlayfs 1.10 makes the copy with mkdir(2), which drops setuid and setgid.
    let e = need_root!();
    let layers = [Layer::new()
        .dir("c")
        .mode(0o4755)
        .file("c/a/a", "")
        .dir("g")
        .mode(0o2775)
        .owner(0, 5)];
    let ops = [
        Op::Symlink {
            target: "a".into(),
            path: "c/b".into(),
        },
        Op::Create {
            path: "g/f".into(),
            data: b"x".to_vec(),
            mode: 0o644,
        },
        Op::Mkdir {
            path: "g/sub".into(),
            mode: 0o755,
        },
    ];
    case(&e, "setid directories", &layers, &ops);
}

#[test]
fn a_directory_over_a_file_over_a_directory_shows_only_its_own() {
    // fuse-overlayfs 1.10 finds `b/a` through the file `b` once something looks it up.
    let e = need_root!();
    let layers = [
        Layer::new(),
        Layer::new().file("b/a", ""),
        Layer::new().file("b", ""),
        Layer::new().file("b/b", ""),
    ];
    let ops = [
        Op::Rename {
            from: "b".into(),
            to: "b/a".into(),
        },
        Op::Create {
            path: "b/a".into(),
            data: Vec::new(),
            mode: 0o600,
        },
    ];
    case(&e, "dir over file over dir", &layers, &ops);
}

#[test]
fn a_directory_over_a_whiteout_over_a_directory_shows_only_its_own() {
    // fuse-overlayfs 1.10 ends a listing of `b` at the whiteout, not a lookup of `b/c`
    // (found by the union property test).
    let e = need_root!();
    let layers = [
        Layer::new().file("b/c", "lowest"),
        Layer::new().whiteout("b"),
        Layer::new(),
        Layer::new().file("b/a", "top"),
    ];
    let ops = [
        Op::Rename {
            from: "b".into(),
            to: "b/c".into(),
        },
        Op::Create {
            path: "b/c".into(),
            data: Vec::new(),
            mode: 0o600,
        },
    ];
    case(&e, "dir over whiteout over dir", &layers, &ops);
}

#[test]
fn a_directory_over_a_file_over_a_directory_below_a_file_shows_only_its_own() {
    // Found by the union property test: fuse-overlayfs 1.10 found `a/a/b` of layer 2
    // through the file `a/a` of layer 3 (rename a/a/b a/a: ENOTEMPTY, not ENOENT).
    let e = need_root!();
    let layers = [
        Layer::new().file("a", ""),
        Layer::new(),
        Layer::new().dir("a/a/b").mode(0o644),
        Layer::new().file("a/a", ""),
        Layer::new(),
        Layer::new().file("a/a/c", ""),
    ];
    let ops = [Op::Rename {
        from: "a/a/b".into(),
        to: "a/a".into(),
    }];
    case(&e, "dir over file over dir, over a file", &layers, &ops);
}

#[test]
fn a_rename_into_an_ancestor_does_not_find_what_an_opaque_directory_hides() {
    // With timeout=0, fuse-overlayfs 1.10 found `a/a/b` below the opaque `a/a` (ENOTEMPTY, not
    // ENOENT) and listed it from then on; whiteouts in a shim below hold.
    let e = need_root!();
    let layers = [
        Layer::new().dir("a/a/b").file("a/a/b/x", "lower"),
        Layer::new().dir("a/a").opaque("a/a").file("a/a/c", "top"),
    ];
    let ops = [
        Op::Rename {
            from: "a/a/b".into(),
            to: "a/a".into(),
        },
        Op::Mkdir {
            path: "a/a/b".into(),
            mode: 0o755,
        },
    ];
    case(
        &e,
        "rename into an ancestor under an opaque dir",
        &layers,
        &ops,
    );
}

#[test]
fn lower_hard_links_stay_linked_through_copy_up_and_commit() {
    // fuse-overlayfs 1.10 copies the inode up under one name only, and counts st_nlink by
    // the names it has looked up.
    let e = need_root!();
    let layers = [Layer::new()
        .file("b/a/a", "")
        .hardlink("a", "b/a/a")
        .file("x", "x")
        .hardlink("y", "x")
        .file("m", "m")
        .hardlink("n", "m")];
    let ops = [
        Op::Chown {
            path: "a".into(),
            uid: 0,
            gid: 0,
        },
        Op::Rename {
            from: "y".into(),
            to: "b/y".into(),
        },
        Op::Append {
            path: "n".into(),
            data: b"more".to_vec(),
        },
        // Changed through one name, then another name renamed: 1.10 splits them upstairs.
        Op::Truncate {
            path: "m".into(),
            len: 0,
        },
        Op::Rename {
            from: "n".into(),
            to: "b/n".into(),
        },
    ];
    case(&e, "lower hard links", &layers, &ops);
}

#[test]
fn written_files_and_copied_symlinks_show_the_times_they_keep() {
    // With the kernel's writeback cache and cached attributes, fuse-overlayfs's view showed
    // times its upper directory (and so a commit) did not have.
    let e = need_root!();
    let layers = [Layer::new()
        .symlink("c", "a")
        .owner(7, 8)
        .mtime(1_234_567_890, 5)
        .symlink("s", "a")
        .dir("d")];
    let ops = [
        Op::Create {
            path: "new".into(),
            data: b"x".to_vec(),
            mode: 0o644,
        },
        Op::Link {
            from: "c".into(),
            to: "d/c".into(),
        },
        Op::Rename {
            from: "s".into(),
            to: "d/s".into(),
        },
        Op::SetMtime {
            path: "d".into(),
            mtime: Timespec::new(5, 6),
        },
    ];
    case(&e, "times", &layers, &ops);
}

#[test]
fn the_first_name_of_a_lower_hard_link_looked_up_counts_every_name() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().file("b/a/a", "").hardlink("a", "b/a/a")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let a = fs::symlink_metadata(m.target().join("a")).unwrap();
        let b = fs::symlink_metadata(m.target().join("b/a/a")).unwrap();
        assert_eq!((a.nlink(), a.ino()), (2, b.ino()), "{}", d.name());
        m.unmount().unwrap();
    }
}

#[test]
fn fuse_overlayfs_stacks_its_declared_limit_and_refuses_one_more() {
    let e = need_root!();
    let d = driver::by_name("fuse-overlayfs").unwrap();
    if !strata_runtime::require::driver_in(d, e.store.root()) {
        return;
    }
    let max = d.capabilities().max_layers.unwrap();
    assert_eq!(max, fuse::MAX_LAYERS);
    let layers: Vec<Layer> = (0..=max)
        .map(|i| Layer::new().file("shared", format!("{i}")))
        .collect();
    let stored = e.import_all(&layers);
    let m = e.mount(d, &stored[..max]);
    assert_eq!(
        fs::read_to_string(m.target().join("shared")).unwrap(),
        format!("{}", max - 1)
    );
    m.unmount().unwrap();
    let before = common::mountinfo();
    let err = mounts::mount(&e.store, d, stored, &e.fresh_dir("over"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{}", max + 1)), "{err}");
    assert_eq!(common::mountinfo(), before);
}

#[test]
fn fuse_overlayfs_leaves_no_daemon_after_unmount() {
    let e = need_root!();
    let d = driver::by_name("fuse-overlayfs").unwrap();
    if !strata_runtime::require::driver_in(d, e.store.root()) {
        return;
    }
    let stored = e.import_all(&[Layer::new().file("f", "x")]);
    let m = e.mount(d, &stored);
    let target = m.target().display().to_string();
    let daemons = || {
        fs::read_dir("/proc")
            .unwrap()
            .filter_map(|p| fs::read(p.ok()?.path().join("cmdline")).ok())
            .filter(|c| String::from_utf8_lossy(c).contains(&target))
            .count()
    };
    assert_eq!(daemons(), 1, "one daemon serves the mount");
    let pid = fs::read_to_string(m.view().scratch.join("fuse-overlayfs.pid")).unwrap();
    m.unmount().unwrap();
    // The daemon exited with the mount and was reaped: not even a zombie is left.
    assert_eq!(daemons(), 0, "the fuse-overlayfs daemon outlived its mount");
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the daemon {pid} was not reaped"
    );
}

#[test]
fn a_directory_over_a_lower_symlink_loop_lists() {
    // fuse-overlayfs 1.10 failed every listing of the root with ENOMEM here.
    let e = need_root!();
    let layers = [
        Layer::new().symlink("c", "c"),
        Layer::new().file("c/a/a", ""),
    ];
    let ops = [Op::Create {
        path: "c/a/b".into(),
        data: Vec::new(),
        mode: 0o644,
    }];
    case(&e, "dir over a symlink loop", &layers, &ops);
}

#[test]
fn a_lower_hard_link_changed_then_renamed_commits_as_the_view_shows_it() {
    // Found at case 199 of 600: 1.10 left `c/b` in its upper directory with the old time,
    // not linked to `c/a/a`, while the view showed them linked with the new one.
    let e = need_root!();
    let layers = [Layer::new().file("c/a/a", "").hardlink("b", "c/a/a")];
    let ops = [
        Op::Truncate {
            path: "b".into(),
            len: 0,
        },
        Op::Rename {
            from: "b".into(),
            to: "c/b".into(),
        },
    ];
    case(&e, "hard link changed then renamed", &layers, &ops);
}
