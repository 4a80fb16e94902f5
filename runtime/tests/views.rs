//! For fixed layer stacks, every driver's merged view equals the model's, field by field
//! (kind, content, mode, owner, mtime, xattrs, link targets, hard-link groups). Case ids
//! are the catalog's (harness/cases/README.md).
#![allow(clippy::unwrap_used)]

mod common;

use strata_runtime::fixture::Layer;
use strata_runtime::model::CompareOptions;

/// A valid `security.capability` (v2, effective, cap_net_bind_service permitted).
pub const CAP_NET_BIND: [u8; 20] = [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];

fn cases() -> Vec<(&'static str, Vec<Layer>)> {
    vec![
        (
            // P-01, P-02, P-03, P-04, P-05, P-06
            "precedence",
            vec![
                Layer::new()
                    .file("f", "from_l1")
                    .dir("shared")
                    .file("shared/file1", "1")
                    .dir("d")
                    .mode(0o700)
                    .owner(1, 1)
                    .xattr("user.a", "1")
                    .dir("x")
                    .file("x/y", "y")
                    .file("dir1", "a file"),
                Layer::new()
                    .file("f", "from_l2")
                    .dir("shared")
                    .file("shared/file2", "2")
                    .dir("d")
                    .file("x", "file"),
                Layer::new()
                    .file("f", "from_l3")
                    .whiteout("dir1")
                    .dir("dir1")
                    .dir("dir1/dir2")
                    .file("dir1/dir2/f1", "f"),
            ],
        ),
        (
            // W-09, W-10, W-14, W-15, W-16, and a whiteout never deleting its own layer's entry
            "whiteouts",
            vec![
                Layer::new()
                    .file("foo", "1")
                    .file("foobar", "2")
                    .file(".baz", "3")
                    .file("baz", "4")
                    .dir("d1")
                    .dir("d1/d2")
                    .file("d1/d2/f1", "5")
                    .file("d1-before", "6")
                    .dir("foo2")
                    .dir("foo2/cde")
                    .file("foo2/cde/def", "7")
                    .file("same", "old")
                    .file("same2", "old"),
                Layer::new()
                    .whiteout("foobar")
                    .whiteout("d1")
                    .whiteout("baz")
                    .whiteout("nothing")
                    .dir("foo2")
                    .file("foo2/.abc", "8")
                    .whiteout("foo2/cde")
                    .whiteout("same")
                    .file("same", "new")
                    .file("same2", "new")
                    .whiteout("same2"),
                Layer::new(),
            ],
        ),
        (
            // O-04, O-05 (opaque at the root), O-06, opaque keeps its own layer's entries
            "opaque",
            vec![
                Layer::new()
                    .dir("a")
                    .dir("a/b")
                    .dir("a/b/c")
                    .file("a/b/c/bar", "1")
                    .dir("bin")
                    .file("bin/a", "2")
                    .dir("bin/sub")
                    .file("bin/sub/b", "3"),
                Layer::new()
                    .dir("a")
                    .dir("a/b")
                    .dir("a/b/c")
                    .file("a/b/c/foo", "4")
                    .opaque("a")
                    .dir("bin")
                    .opaque("bin")
                    .file("bin/c", "5"),
            ],
        ),
        (
            "opaque-root",
            vec![
                Layer::new()
                    .file("old", "1")
                    .dir("olddir")
                    .file("olddir/x", "2"),
                Layer::new()
                    .file(".abc", "3")
                    .opaque("")
                    .file("foobar", "4"),
            ],
        ),
        (
            // W-22 and delete in one layer, recreate in a higher one
            "recreate",
            vec![
                Layer::new()
                    .dir("d")
                    .file("d/old", "o")
                    .dir("e")
                    .file("e/old", "o")
                    .file("f", "old"),
                Layer::new()
                    .whiteout("d")
                    .dir("d")
                    .file("d/new", "n")
                    .whiteout("e")
                    .whiteout("f"),
                Layer::new()
                    .dir("e")
                    .mode(0o700)
                    .file("e/new", "n")
                    .file("f", "new"),
            ],
        ),
        (
            // P-12, M-12, M-18 and xattrs incl. security.capability (C-17)
            "metadata",
            vec![
                Layer::new()
                    .dir("a subdir")
                    .mode(0o1705)
                    .owner(1, 2)
                    .file("a file", "Some data")
                    .mode(0o4222)
                    .file("sgid", "x")
                    .mode(0o2755)
                    .owner(5, 6)
                    .mtime(1_234_567_890, 987_654_321)
                    .file("cap", "bin")
                    .mode(0o755)
                    .xattr("security.capability", CAP_NET_BIND)
                    .xattr("user.note", "hello")
                    .symlink("rel", "a file")
                    .symlink("abs", "/etc")
                    .symlink("dangling", "no/such/thing")
                    .symlink("climb", "../../../breakout")
                    .owner(7, 8)
                    .chardev("null", 1, 3)
                    .blockdev("loop", 7, 0)
                    .fifo("fifo")
                    .mode(0o600)
                    .file("empty", "")
                    .file("big", vec![7u8; 3 << 20]),
                Layer::new()
                    .file("sgid", "y")
                    .mode(0o2711)
                    .owner(9, 9)
                    .symlink("rel", "sgid"),
            ],
        ),
        (
            // M-13
            "hardlinks",
            vec![
                Layer::new()
                    .dir("etc")
                    .file("etc/hosts", "h")
                    .hardlink("etc/hosts.allow", "etc/hosts")
                    .file("etc/x", "x")
                    .hardlink("etc/y", "etc/x")
                    .hardlink("etc/z", "etc/y"),
                Layer::new()
                    .dir("etc")
                    .file("etc/hosts", "new")
                    .hardlink("etc/hosts.deny", "etc/hosts"),
            ],
        ),
    ]
}

#[test]
fn every_driver_shows_the_models_view_of_fixed_stacks() {
    let e = need_root!();
    for (name, layers) in cases() {
        let expected = common::model_of(&layers);
        let stored = e.import_all(&layers);
        for d in common::drivers() {
            let m = e.mount(d, &stored);
            common::assert_tree(
                &format!("{name} on {}", d.name()),
                m.target(),
                &expected,
                &CompareOptions::default(),
            );
            m.unmount().unwrap();
        }
    }
}

#[test]
fn the_store_holds_each_layer_once_and_every_mount_shares_it() {
    let e = need_root!();
    let l = Layer::new().file("f", "x");
    let a = e.import(&l);
    let again = e
        .store
        .import_reader(&l.to_tar().unwrap()[..], std::path::Path::new("again.tar"))
        .unwrap();
    assert!(again.reused);
    assert_eq!(a.info.diff_id, again.layer.info.diff_id);
    assert_eq!(e.store.layers().unwrap().len(), 1);
    let m1 = e.mount(common::drivers()[0], std::slice::from_ref(&a));
    let m2 = e.mount(common::drivers()[0], std::slice::from_ref(&a));
    assert_eq!(m1.view().layers[0].fs(), m2.view().layers[0].fs());
}

#[test]
fn copy_up_never_changes_a_lower_layer_and_two_mounts_are_isolated() {
    let e = need_root!();
    let layers = [
        Layer::new()
            .dir("etc")
            .file("etc/hosts", "lower")
            .dir("d")
            .file("d/x", "x")
            .dir("d/sub")
            .file("d/sub/y", "y")
            .file("hl", "h")
            .hardlink("hl2", "hl"),
        Layer::new().dir("etc").file("etc/passwd", "root"),
    ];
    let stored = e.import_all(&layers);
    let before = common::layer_trees(&stored);
    for d in common::drivers() {
        let a = e.mount(d, &stored);
        let b = e.mount(d, &stored);
        let t = a.target();
        std::fs::write(t.join("etc/hosts"), "written").unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(t.join("etc/passwd"))
            .unwrap();
        std::fs::remove_file(t.join("d/x")).unwrap();
        std::fs::remove_dir_all(t.join("d/sub")).unwrap();
        std::fs::write(t.join("new"), "n").unwrap();
        std::fs::write(t.join("hl2"), "changed").unwrap();
        nix::unistd::chown(&t.join("etc/passwd"), Some(5.into()), Some(5.into())).unwrap();
        // The other mount of the same layers sees none of it.
        let expected = common::model_of(&layers);
        common::assert_tree(
            &format!("second mount on {}", d.name()),
            b.target(),
            &expected,
            &CompareOptions::default(),
        );
        assert_eq!(
            std::fs::read_to_string(t.join("etc/hosts")).unwrap(),
            "written"
        );
        a.unmount().unwrap();
        b.unmount().unwrap();
    }
    let after = common::layer_trees(&stored);
    for (i, (x, y)) in before.iter().zip(&after).enumerate() {
        let diffs = x.compare(y, &CompareOptions::default());
        assert!(diffs.is_empty(), "layer {i} changed: {diffs:?}");
    }
}

#[test]
fn mounts_leave_no_trace_after_unmount_or_drop() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().file("f", "x")]);
    let before = common::mountinfo();
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        assert_ne!(common::mountinfo(), before, "{} mounted nothing", d.name());
        let scratch = m.view().scratch.clone();
        drop(m);
        assert_eq!(
            common::mountinfo(),
            before,
            "{} left a mount after drop",
            d.name()
        );
        assert!(!scratch.exists(), "{} left its writable layer", d.name());
    }
    assert!(e.store.records().unwrap().is_empty());
}
