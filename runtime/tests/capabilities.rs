//! Each driver's declared capabilities are what it really does; the 500-layer wall.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use strata_runtime::driver::{Driver, Overlay, OverlayApi};
use strata_runtime::fixture::Layer;
use strata_runtime::model::CompareOptions;
use strata_runtime::mounts;

#[test]
fn dir_rename_is_as_declared() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().dir("lowerdir").file("lowerdir/f", "x")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let r = fs::rename(m.target().join("lowerdir"), m.target().join("renamed"));
        if d.capabilities().dir_rename {
            r.unwrap();
            assert_eq!(
                fs::read_to_string(m.target().join("renamed/f")).unwrap(),
                "x"
            );
        } else {
            assert_eq!(
                r.unwrap_err().raw_os_error(),
                Some(libc::EXDEV),
                "{}",
                d.name()
            );
            assert!(m.target().join("lowerdir/f").exists());
        }
        // A directory made in the writable layer can always be renamed.
        fs::create_dir(m.target().join("fresh")).unwrap();
        fs::rename(m.target().join("fresh"), m.target().join("fresh2")).unwrap();
        m.unmount().unwrap();
    }
}

#[test]
fn hard_links_across_copy_up_are_as_declared() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().file("a", "old").hardlink("b", "a")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        fs::write(m.target().join("a"), "new").unwrap();
        let b = fs::read_to_string(m.target().join("b")).unwrap();
        let same_inode = fs::metadata(m.target().join("a")).unwrap().ino()
            == fs::metadata(m.target().join("b")).unwrap().ino();
        if d.capabilities().hardlinks_kept {
            assert_eq!((b.as_str(), same_inode), ("new", true), "{}", d.name());
        } else {
            assert_eq!(
                (b.as_str(), same_inode),
                ("old", false),
                "{}: declared split, but",
                d.name()
            );
        }
        m.unmount().unwrap();
    }
}

#[test]
fn inode_numbers_across_copy_up_are_as_declared() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().file("f", "x")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let p = m.target().join("f");
        let before = fs::metadata(&p).unwrap().ino();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap(); // copies it up
        fs::OpenOptions::new().append(true).open(&p).unwrap();
        let after = fs::metadata(&p).unwrap().ino();
        assert_eq!(
            before == after,
            d.capabilities().stable_ino,
            "{}: ino {before} -> {after}",
            d.name()
        );
        m.unmount().unwrap();
    }
}

#[test]
fn entries_under_a_lower_symlink_are_as_declared() {
    let e = need_root!();
    // P-08: usrmerge-style `lib -> usr/lib`, then a layer adds `lib/x` without a `lib/` entry.
    let layers = [
        Layer::new()
            .dir("usr")
            .dir("usr/lib")
            .symlink("lib", "usr/lib"),
        Layer::new().file("lib/x", "x"),
    ];
    let stored = e.import_all(&layers);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        if d.capabilities().follows_lower_symlinks {
            common::assert_tree(
                d.name(),
                t,
                &common::model_of(&layers),
                &CompareOptions::default(),
            );
        } else {
            assert!(
                fs::symlink_metadata(t.join("lib")).unwrap().is_dir(),
                "{}: the layer dir should hide the symlink",
                d.name()
            );
            assert_eq!(fs::read_to_string(t.join("lib/x")).unwrap(), "x");
            assert!(!t.join("usr/lib/x").exists());
        }
        m.unmount().unwrap();
    }
}

#[test]
fn implied_directory_attributes_are_as_declared() {
    let e = need_root!();
    let layers = [
        Layer::new().dir("d").mode(0o700).owner(7, 7),
        Layer::new().file("d/f", "x"),
    ];
    let stored = e.import_all(&layers);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let meta = fs::metadata(m.target().join("d")).unwrap();
        let got = (meta.mode() & 0o7777, meta.uid());
        if d.capabilities().implied_dirs_keep_lower_attrs {
            assert_eq!(got, (0o700, 7), "{}", d.name());
        } else {
            assert_eq!(got, (0o755, 0), "{}", d.name());
        }
        m.unmount().unwrap();
    }
}

#[test]
fn native_diff_reads_only_the_writable_layer() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().dir("d").file("d/f", "x")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        fs::write(m.target().join("d/new"), "n").unwrap();
        // Hide the stack's change sets: a native diff does not need them, a tree diff does.
        let cs = stored[0].dir.join("changes.json");
        fs::rename(&cs, cs.with_extension("hidden")).unwrap();
        let r = m.commit_to(&mut Vec::new());
        fs::rename(cs.with_extension("hidden"), &cs).unwrap();
        assert_eq!(
            r.is_ok(),
            d.capabilities().native_diff,
            "{}: {r:?}",
            d.name()
        );
        m.unmount().unwrap();
    }
}

fn deep_stack(n: usize) -> Vec<Layer> {
    (0..n)
        .map(|i| {
            Layer::new()
                .dir("etc")
                .file("etc/shared", format!("{i}"))
                .file(&format!("f{i:03}"), format!("{i}"))
        })
        .collect()
}

#[test]
fn five_hundred_layers_mount_with_every_driver_and_501_hit_overlays_wall() {
    let e = need_root!();
    let layers = deep_stack(501);
    let stored = e.import_all(&layers);
    let five_hundred = &stored[..500];
    let expected = common::model_of(&layers[..500]);
    for d in common::drivers() {
        let m = e.mount(d, five_hundred);
        assert_eq!(
            fs::read_to_string(m.target().join("etc/shared")).unwrap(),
            "499"
        );
        common::assert_tree(
            &format!("500 layers on {}", d.name()),
            m.target(),
            &expected,
            &CompareOptions::default(),
        );
        m.unmount().unwrap();
    }
    let target = e.fresh_dir("wall");
    let before = common::mountinfo();
    let overlay = strata_runtime::driver::by_name("overlay").unwrap();
    let err = mounts::mount(&e.store, overlay, stored.clone(), &target)
        .unwrap_err()
        .to_string();
    assert!(err.contains("501 layers") && err.contains("500"), "{err}");
    assert_eq!(common::mountinfo(), before);
    assert!(e.store.records().unwrap().is_empty());
    // copy has no such limit
    let copy = strata_runtime::driver::by_name("copy").unwrap();
    assert_eq!(copy.capabilities().max_layers, None);
    let m = mounts::mount(&e.store, copy, stored, &target).unwrap();
    assert_eq!(
        fs::read_to_string(m.target().join("etc/shared")).unwrap(),
        "500"
    );
    m.unmount().unwrap();
}

#[test]
fn overlay_uses_mount2_within_a_page_and_lowerdir_plus_beyond() {
    let e = need_root!();
    let stored = e.import_all(&deep_stack(200));
    static LEGACY: Overlay = Overlay {
        api: OverlayApi::Legacy,
    };
    static NEW: Overlay = Overlay {
        api: OverlayApi::NewApi,
    };
    // Two layers fit one page of options: both APIs mount them, with the same view.
    for d in [&LEGACY as &dyn Driver, &NEW] {
        let m = mounts::mount(&e.store, d, stored[..2].to_vec(), &e.fresh_dir("few")).unwrap();
        assert_eq!(
            fs::read_to_string(m.target().join("etc/shared")).unwrap(),
            "1"
        );
        m.unmount().unwrap();
    }
    // 200 store paths do not fit: mount(2) refuses, the new API mounts.
    let err = mounts::mount(&e.store, &LEGACY, stored.clone(), &e.fresh_dir("many")).unwrap_err();
    assert!(err.to_string().contains("more than one page"), "{err}");
    let m = mounts::mount(&e.store, &NEW, stored, &e.fresh_dir("many")).unwrap();
    assert_eq!(
        fs::read_to_string(m.target().join("etc/shared")).unwrap(),
        "199"
    );
    m.unmount().unwrap();
}

#[test]
fn setid_bits_across_copy_up_are_as_declared() {
    let e = need_root!();
    // Owned 0:1 (not 0:0): the case where a copy that is chowned after its mode loses them.
    let stored = e.import_all(&[Layer::new()
        .file("suid", "x")
        .mode(0o4755)
        .owner(0, 1)
        .file("sgid", "x")
        .mode(0o2755)
        .owner(0, 1)
        .file("root-suid", "x")
        .mode(0o4755)
        .dir("sgid-dir")
        .mode(0o2775)
        .owner(0, 1)
        .file("sgid-dir/f", "x")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        for f in ["suid", "sgid", "root-suid"] {
            // A metadata change copies the file up.
            let at = filetime(t.join(f));
            set_mtime(&t.join(f), at + 1);
        }
        fs::write(t.join("sgid-dir/new"), "n").unwrap(); // copies the directory up
        let mode = |p: &str| fs::metadata(t.join(p)).unwrap().mode() & 0o7777;
        let kept = d.capabilities().copy_up_keeps_setid;
        let (suid, sgid) = if kept {
            (0o4755, 0o2755)
        } else {
            (0o755, 0o755)
        };
        assert_eq!(mode("suid"), suid, "{}", d.name());
        assert_eq!(mode("sgid"), sgid, "{}", d.name());
        // Owned 0:0 and directories keep them whatever the driver.
        assert_eq!(mode("root-suid"), 0o4755, "{}", d.name());
        assert_eq!(mode("sgid-dir"), 0o2775, "{}", d.name());
        m.unmount().unwrap();
    }
}

fn filetime(p: std::path::PathBuf) -> i64 {
    fs::symlink_metadata(p).unwrap().mtime()
}

fn set_mtime(p: &std::path::Path, sec: i64) {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(sec as u64);
    fs::File::options()
        .write(true)
        .open(p)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn symlink_attributes_across_copy_up_are_as_declared() {
    let e = need_root!();
    let layer = Layer::new()
        .symlink("moved", "target")
        .owner(7, 8)
        .mtime(1_234_567_890, 0)
        .symlink("linked", "target")
        .owner(7, 8)
        .mtime(1_234_567_890, 0)
        .dir("d");
    let stored = e.import_all(std::slice::from_ref(&layer));
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        fs::rename(t.join("moved"), t.join("moved2")).unwrap(); // copies it up
        fs::hard_link(t.join("linked"), t.join("d/linked2")).unwrap(); // so does this
        for p in ["moved2", "linked", "d/linked2"] {
            let md = fs::symlink_metadata(t.join(p)).unwrap();
            let got = (md.uid(), md.gid(), md.mtime() == 1_234_567_890);
            if d.capabilities().copy_up_keeps_symlink_attrs {
                assert_eq!(got, (7, 8, true), "{}: {p}", d.name());
            } else {
                assert_eq!(got, (0, 0, false), "{}: {p}: declared lost", d.name());
            }
        }
        m.unmount().unwrap();
    }
}

#[test]
fn the_mtime_of_a_parent_copied_up_is_as_declared() {
    let e = need_root!();
    let layer = Layer::new()
        .dir("a")
        .mtime(1_234_567_890, 0)
        .dir("a/b")
        .file("a/b/f", "x")
        .dir("c")
        .mtime(1_234_567_890, 0);
    let stored = e.import_all(std::slice::from_ref(&layer));
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        fs::write(t.join("a/b/new"), "n").unwrap(); // copies up a and a/b
        fs::set_permissions(t.join("c"), fs::Permissions::from_mode(0o700)).unwrap(); // and c
        let kept = d.capabilities().copy_up_keeps_parent_mtime;
        assert_eq!(
            filetime(t.join("a")) == 1_234_567_890,
            kept,
            "{}: the parent's mtime",
            d.name()
        );
        assert_eq!(
            filetime(t.join("c")),
            1_234_567_890,
            "{}: a directory copied up for its own change keeps its mtime",
            d.name()
        );
        m.unmount().unwrap();
    }
}

#[test]
fn the_group_of_entries_made_in_a_setgid_directory_is_as_declared() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().dir("shared").mode(0o2775).owner(0, 5)]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        fs::write(t.join("shared/f"), "x").unwrap();
        fs::create_dir(t.join("shared/sub")).unwrap();
        std::os::unix::fs::symlink("f", t.join("shared/l")).unwrap();
        let gid = |p: &str| fs::symlink_metadata(t.join(p)).unwrap().gid();
        // A regular file takes the directory's group with every driver.
        assert_eq!(gid("shared/f"), 5, "{}", d.name());
        let want = if d.capabilities().setgid_dirs_pass_group {
            5
        } else {
            0
        };
        for p in ["shared/sub", "shared/l"] {
            assert_eq!(gid(p), want, "{}: {p}", d.name());
        }
        m.unmount().unwrap();
    }
}

#[test]
fn symlink_loops_under_directories_are_as_declared() {
    let e = need_root!();
    // A layer's `c -> c`, and `c/a/` in a higher one.
    let layers = [
        Layer::new().symlink("c", "c"),
        Layer::new().file("c/a/a", "x"),
    ];
    let stored = e.import_all(&layers);
    let sets: Vec<_> = layers.iter().map(|l| l.changeset()).collect();
    for d in common::drivers() {
        let caps = d.capabilities();
        let modeled = strata_runtime::model::apply_with(&sets, &caps.semantics());
        let target = e.fresh_dir("loop");
        let r = mounts::mount(&e.store, d, stored.clone(), &target);
        if !caps.mounts_symlink_loops_under_dirs {
            // Refused by the driver's own check, or (on the chain layout) already while its
            // lower directories are made, as the model refuses the loop.
            let err = r.unwrap_err().to_string();
            assert!(
                err.contains("symlink loop") || err.contains("too many levels of symbolic links"),
                "{}: {err}",
                d.name()
            );
            assert!(
                modeled.is_err(),
                "{}: the model must refuse it too",
                d.name()
            );
            continue;
        }
        match modeled {
            // Drivers that follow lower symlinks refuse it as a loop (the model does too).
            Err(_) => assert!(r.is_err(), "{}: mounted what the model refuses", d.name()),
            Ok(expected) => {
                let m = r.unwrap();
                common::assert_tree(d.name(), m.target(), &expected, &CompareOptions::default());
                m.unmount().unwrap();
            }
        }
    }
}
