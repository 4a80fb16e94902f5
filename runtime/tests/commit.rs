//! Commit: the writable layer as an OCI layer tar. For each driver, after real writes through
//! the merged view: the model of (lower layers + committed tar) equals the merged view, and
//! the tar holds exactly the expected entries (whiteouts, opaque markers, parents).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use strata_runtime::fixture::Layer;
use strata_runtime::model::{self, CompareOptions, MtimeCompare};

fn base() -> Vec<Layer> {
    vec![
        Layer::new()
            .dir("etc")
            .file("etc/hosts", "127.0.0.1 localhost\n")
            .file("etc/profile", "export A=1\n")
            .file("etc/unchanged", "u")
            .file("etc/unexpected", "x")
            .file("etc/same", "abcd")
            .dir("d0")
            .file("d0/a", "a")
            .dir("d1")
            .dir("d1/d2")
            .file("d1/d2/f1", "f")
            .dir("recreated")
            .file("recreated/old", "o")
            .dir("todir")
            .file("todir/c", "c")
            .file("tofile", "t")
            .file("hl", "h")
            .hardlink("hl2", "hl"),
        Layer::new().dir("etc").file("etc/passwd", "root:x:0:0\n"),
    ]
}

/// Real writes through the merged view; returns nothing, the view is the truth.
fn act(t: &Path) {
    fs::write(t.join("etc/hosts"), "10.0.0.1 other\n").unwrap(); // content change
    fs::set_permissions(t.join("etc/profile"), fs::Permissions::from_mode(0o666)).unwrap(); // chmod only
    fs::remove_file(t.join("etc/unexpected")).unwrap(); // file whiteout
    fs::create_dir(t.join("root")).unwrap(); // new dir with a file
    fs::set_permissions(t.join("root"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(t.join("root/.bashrc"), "alias l=ls\n").unwrap();
    fs::remove_dir_all(t.join("d1")).unwrap(); // subtree whiteout (W-10)
    fs::remove_dir_all(t.join("recreated")).unwrap(); // replaced whole: opaque
    fs::create_dir(t.join("recreated")).unwrap();
    fs::write(t.join("recreated/new"), "n").unwrap();
    fs::remove_dir_all(t.join("todir")).unwrap(); // dir -> file
    fs::write(t.join("todir"), "now a file").unwrap();
    fs::remove_file(t.join("tofile")).unwrap(); // file -> dir
    fs::create_dir(t.join("tofile")).unwrap();
    // A same-size rewrite that keeps the mtime is still a change (moby#31805).
    let m = fs::metadata(t.join("etc/same")).unwrap();
    fs::write(t.join("etc/same"), "wxyz").unwrap();
    fs::File::options()
        .write(true)
        .open(t.join("etc/same"))
        .unwrap()
        .set_modified(m.modified().unwrap())
        .unwrap();
    assert_eq!(
        fs::metadata(t.join("etc/same")).unwrap().mtime_nsec(),
        m.mtime_nsec()
    );
    fs::hard_link(t.join("root/.bashrc"), t.join("root/.bashrc.bak")).unwrap(); // new hard link
}

#[test]
fn commit_round_trips_through_the_model_for_every_driver() {
    let e = need_root!();
    let layers = base();
    let stored = e.import_all(&layers);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        act(m.target());
        let tar = common::commit(&m);
        let names = common::tar_names(&tar);
        let committed = e.reimport(&tar);
        let mut sets: Vec<_> = layers.iter().map(|l| l.changeset()).collect();
        sets.push(committed.changes().unwrap());
        let expected = model::apply(&sets).unwrap();
        // Directory mtimes move with every change inside them; everything else must match.
        let opts = CompareOptions {
            mtime: MtimeCompare::NonDirs,
            ..Default::default()
        };
        common::assert_tree(
            &format!("commit round trip on {}", d.name()),
            m.target(),
            &expected,
            &opts,
        );

        let has = |n: &str| names.iter().any(|x| x.trim_end_matches('/') == n);
        for want in [
            "etc",
            "etc/hosts",
            "etc/profile",
            "etc/.wh.unexpected",
            "etc/same",
            "root",
            "root/.bashrc",
            "root/.bashrc.bak",
            ".wh.d1",
            "recreated",
            "recreated/.wh..wh..opq",
            "recreated/new",
            "todir",
            "tofile",
        ] {
            assert!(has(want), "{}: commit lacks {want}: {names:?}", d.name());
        }
        for unwanted in [
            "etc/unchanged",
            "etc/passwd",
            "d1/d2",
            "d1/d2/f1",
            ".wh.d1/d2",
            "d0",
            "d0/a",
            "hl",
            "hl2",
            "recreated/.wh.old",
        ] {
            assert!(
                !has(unwanted),
                "{}: commit holds {unwanted}: {names:?}",
                d.name()
            );
        }
        // Whiteouts come before their sibling entries; a parent before its children.
        let pos = |n: &str| {
            names
                .iter()
                .position(|x| x.trim_end_matches('/') == n)
                .unwrap()
        };
        assert!(
            pos("etc") < pos("etc/.wh.unexpected") && pos("etc/.wh.unexpected") < pos("etc/hosts"),
            "{names:?}"
        );
        assert!(
            pos("recreated/.wh..wh..opq") < pos("recreated/new"),
            "{names:?}"
        );
        m.unmount().unwrap();
    }
}

#[test]
fn commit_of_an_untouched_mount_is_empty_and_deterministic() {
    let e = need_root!();
    let stored = e.import_all(&base());
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let tar = common::commit(&m);
        assert!(
            common::tar_names(&tar).is_empty(),
            "{}: {:?}",
            d.name(),
            common::tar_names(&tar)
        );
        fs::write(m.target().join("etc/hosts"), "x").unwrap();
        let a = common::commit(&m);
        let b = common::commit(&m);
        assert_eq!(a, b, "{}: two commits of one state differ", d.name());
        m.unmount().unwrap();
    }
}

#[test]
fn hard_links_commit_as_one_data_entry_and_links() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().dir("d")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        fs::write(t.join("d/a"), "data").unwrap();
        fs::hard_link(t.join("d/a"), t.join("d/b")).unwrap();
        let tar = common::commit(&m);
        let mut ar = tar::Archive::new(&tar[..]);
        let mut kinds = Vec::new();
        for ent in ar.entries().unwrap() {
            let ent = ent.unwrap();
            let name = String::from_utf8(ent.path_bytes().into_owned()).unwrap();
            kinds.push((
                name,
                ent.header().entry_type(),
                ent.link_name().unwrap().map(|l| l.display().to_string()),
            ));
        }
        assert!(
            kinds.contains(&("d/a".into(), tar::EntryType::Regular, None)),
            "{kinds:?}"
        );
        assert!(
            kinds.contains(&("d/b".into(), tar::EntryType::Link, Some("d/a".into()))),
            "{kinds:?}"
        );
        m.unmount().unwrap();
    }
}

#[test]
fn a_name_that_looks_like_a_whiteout_cannot_be_committed() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().dir("d")]);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let made = fs::write(m.target().join("d/.wh.trick"), "x");
        if d.capabilities().creates_whiteout_names {
            made.unwrap();
        } else {
            let errno = made.unwrap_err().raw_os_error();
            assert_eq!(errno, Some(libc::EINVAL), "{}: declared EINVAL", d.name());
            // Other calls make such a name all the same; commit must refuse it.
            fs::create_dir(m.target().join("d/.wh.trick")).unwrap();
        }
        let err = m.commit_to(&mut Vec::new()).unwrap_err().to_string();
        assert!(
            err.contains(".wh.trick") && err.contains("cannot be committed"),
            "{err}"
        );
        m.unmount().unwrap();
    }
}

#[test]
fn commit_to_a_file_is_atomic() {
    let e = need_root!();
    let stored = e.import_all(&[Layer::new().dir("d")]);
    let m = e.mount(common::drivers()[0], &stored);
    fs::write(m.target().join("d/.wh.trick"), "x").unwrap();
    let out = e.dir.path().join("out.tar");
    assert!(m.commit_file(&out).is_err());
    assert!(!out.exists(), "a failed commit left {}", out.display());
    let leftovers: Vec<_> = fs::read_dir(e.dir.path())
        .unwrap()
        .filter_map(|x| x.ok())
        .filter(|x| x.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    fs::remove_file(m.target().join("d/.wh.trick")).unwrap();
    let digest = m.commit_file(&out).unwrap();
    assert_eq!(digest, strata_runtime::Digest::of(&fs::read(&out).unwrap()));
    m.unmount().unwrap();
}

#[test]
fn excluded_paths_and_the_parents_kept_only_for_them_stay_out_of_the_commit() {
    let e = need_root!();
    let stored = e.import_all(&base());
    let opts = strata_runtime::commit::CommitOptions {
        exclude: vec!["etc/hosts".into()],
    };
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        fs::write(t.join("etc/hosts"), "edited inside\n").unwrap();
        let mut tar = Vec::new();
        m.commit_with(&opts, &mut tar).unwrap();
        assert!(
            common::tar_names(&tar).is_empty(),
            "{}: {:?}",
            d.name(),
            common::tar_names(&tar)
        );
        fs::write(t.join("etc/new"), "n").unwrap();
        let mut tar = Vec::new();
        m.commit_with(&opts, &mut tar).unwrap();
        assert_eq!(
            common::tar_names(&tar),
            vec!["etc/", "etc/new"],
            "{}",
            d.name()
        );
        fs::remove_file(t.join("etc/new")).unwrap();
        fs::set_permissions(t.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
        let mut tar = Vec::new();
        m.commit_with(&opts, &mut tar).unwrap();
        assert_eq!(
            common::tar_names(&tar),
            vec!["etc/"],
            "{}: a changed dir stays",
            d.name()
        );
        m.unmount().unwrap();
    }
}

/// Issue 11, item 3: a hard link to a symlink (`ln -P`) in a view commits as a hard link
/// entry naming the symlink entry, and that very tar imports again, on every driver: commit
/// then import round-trips every view a driver can produce.
#[test]
fn hard_links_to_symlinks_round_trip_on_every_driver() {
    let e = need_root!();
    let layers = vec![
        Layer::new()
            .file("f", "f")
            .dir("d")
            .file("d/x", "x")
            .symlink("sym", "f")
            .symlink("dsym", "d")
            .symlink("dang", "/nowhere")
            .dir("sub")
            .symlink("sub/up", "../f"),
    ];
    let stored = e.import_all(&layers);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let t = m.target();
        fs::create_dir(t.join("new")).unwrap();
        for (from, to) in [
            ("sym", "newname"),
            ("dsym", "new/dlink"),
            ("dang", "new/danglink"),
            ("sub/up", "sub/up2"),
        ] {
            // link(2) never follows the symlink: the new name is the symlink itself.
            nix::unistd::linkat(
                nix::fcntl::AT_FDCWD,
                &t.join(from),
                nix::fcntl::AT_FDCWD,
                &t.join(to),
                nix::fcntl::AtFlags::empty(),
            )
            .unwrap();
            assert!(fs::symlink_metadata(t.join(to)).unwrap().is_symlink());
        }
        let tar = common::commit(&m);
        let committed = e.reimport(&tar);
        let mut sets: Vec<_> = layers.iter().map(|l| l.changeset()).collect();
        sets.push(committed.changes().unwrap());
        let expected = model::apply_with(&sets, &d.capabilities().semantics()).unwrap();
        let opts = CompareOptions {
            mtime: MtimeCompare::NonDirs,
            ..Default::default()
        };
        common::assert_tree(
            &format!("hard links to symlinks on {}", d.name()),
            t,
            &expected,
            &opts,
        );
        let names = common::tar_names(&tar);
        assert!(
            names.iter().any(|n| n == "newname") && names.iter().any(|n| n == "new/dlink"),
            "{}: {names:?}",
            d.name()
        );
    }
}

/// Issue 13: a commit never changes a directory the container did not touch. L1 has `d/`
/// 0700 5:5 with an old mtime, L2 only `d/sub/b`; the container writes `d/sub/new`. The
/// view shows `d` as the image has it (overlay2, Docker's per-layer layout, declares that it
/// shows 0755 root), and the committed layer applied by the copy driver over L1 + L2 shows
/// `d` 0700 5:5 again, mtime included where the driver's copy-up keeps it.
#[test]
fn commit_keeps_the_attributes_of_directories_on_the_way_to_a_change() {
    let e = need_root!();
    let layers = vec![
        Layer::new()
            .dir("d")
            .mode(0o700)
            .owner(5, 5)
            .mtime(1_234_567_890, 0),
        Layer::new().file("d/sub/b", "b"),
    ];
    let stored = e.import_all(&layers);
    let copy = strata_runtime::driver::by_name("copy").unwrap();
    for d in common::drivers() {
        let caps = d.capabilities();
        let m = e.mount(d, &stored);
        let st = fs::metadata(m.target().join("d")).unwrap();
        let shown = (st.mode() & 0o7777, st.uid(), st.gid(), st.mtime());
        if caps.implied_dirs_keep_lower_attrs {
            assert_eq!(shown, (0o700, 5, 5, 1_234_567_890), "{}: view", d.name());
        } else {
            assert_eq!(
                (shown.0, shown.1, shown.2),
                (0o755, 0, 0),
                "{}: view",
                d.name()
            );
        }
        fs::write(m.target().join("d/sub/new"), "n").unwrap();
        let tar = common::commit(&m);
        m.unmount().unwrap();
        if !caps.implied_dirs_keep_lower_attrs {
            continue;
        }
        let mut all = stored.clone();
        all.push(e.reimport(&tar));
        let again = e.mount(copy, &all);
        let st = fs::metadata(again.target().join("d")).unwrap();
        assert_eq!(
            (st.mode() & 0o7777, st.uid(), st.gid()),
            (0o700, 5, 5),
            "{}: the commit changed d",
            d.name()
        );
        if caps.copy_up_keeps_parent_mtime {
            assert_eq!(
                st.mtime(),
                1_234_567_890,
                "{}: the commit moved d's mtime",
                d.name()
            );
        }
        assert_eq!(
            fs::read_to_string(again.target().join("d/sub/new")).unwrap(),
            "n"
        );
        again.unmount().unwrap();
    }
}

/// Issue 13: `lib -> usr/lib` in L1 and `lib/libc.so` in L2: on every driver that follows
/// lower symlinks (all but overlay2, which declares it) `lib` stays a symlink and
/// `usr/lib/libc.so` is L2's file.
#[test]
fn an_entry_under_a_lower_symlink_lands_behind_it() {
    let e = need_root!();
    let layers = vec![
        Layer::new()
            .dir("usr")
            .dir("usr/lib")
            .symlink("lib", "usr/lib"),
        Layer::new().file("lib/libc.so", "libc"),
    ];
    let stored = e.import_all(&layers);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        let lib = fs::symlink_metadata(m.target().join("lib")).unwrap();
        if d.capabilities().follows_lower_symlinks {
            assert!(lib.is_symlink(), "{}: lib is no longer a symlink", d.name());
            assert_eq!(
                fs::read_to_string(m.target().join("usr/lib/libc.so")).unwrap(),
                "libc",
                "{}",
                d.name()
            );
        } else {
            assert!(
                lib.is_dir(),
                "{}: declared: a layer's directory hides it",
                d.name()
            );
        }
        m.unmount().unwrap();
    }
}

/// The chain layout copies a layer only where applying it in context changes it: a layer
/// whose tar names every directory on the way (as Docker's builder writes them) stacks its
/// own store directory; one that implies a directory existing below, or writes through a
/// lower symlink, gets a chain directory. Each view is the image either way.
#[test]
fn a_layer_that_lands_as_extracted_stacks_its_own_directory() {
    let e = need_root!();
    let overlay = strata_runtime::driver::by_name("overlay").unwrap();
    let base = || {
        Layer::new()
            .dir("d")
            .mode(0o700)
            .owner(5, 5)
            .mtime(1_234_567_890, 0)
            .file("d/a", "a")
            .dir("usr")
            .dir("usr/lib")
            .symlink("lib", "usr/lib")
    };
    let named = Layer::new()
        .dir("d")
        .mode(0o700)
        .owner(5, 5)
        .mtime(1_234_567_891, 0)
        .file("d/b", "b")
        .dir("new")
        .file("new/c", "c")
        .whiteout("d/a");
    let implied = Layer::new().file("d/b", "b");
    let through_symlink = Layer::new().file("lib/libc.so", "libc");
    for (what, top, reused) in [
        ("names its parents", named, true),
        ("implies d", implied, false),
        ("writes through lib", through_symlink, false),
    ] {
        let stored = e.import_all(&[base(), top]);
        let id = strata_runtime::driver::btrfs::chain_ids(&stored)[1].hex();
        let m = e.mount(overlay, &stored);
        let chain = e.store.root().join("overlay/chains").join(&id);
        assert!(
            chain.join("chain.json").is_file(),
            "{what}: no chain record"
        );
        assert_eq!(!chain.join("fs").exists(), reused, "{what}: chain {id}");
        // The view is the image's.
        let st = fs::symlink_metadata(m.target().join("d")).unwrap();
        let mtime = if reused { 1_234_567_891 } else { 1_234_567_890 };
        assert_eq!(
            (st.mode() & 0o7777, st.uid(), st.gid(), st.mtime()),
            (0o700, 5, 5, mtime),
            "{what}: d"
        );
        assert!(
            fs::symlink_metadata(m.target().join("lib"))
                .unwrap()
                .is_symlink()
        );
        let listed = |p: &str| {
            let mut v: Vec<String> = fs::read_dir(m.target().join(p))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let want_d: &[&str] = if reused { &["b"] } else { &["a", "b"] };
        if what != "writes through lib" {
            assert_eq!(listed("d"), want_d, "{what}: d/");
        } else {
            assert_eq!(listed("usr/lib"), ["libc.so"], "{what}: usr/lib/");
        }
        m.unmount().unwrap();
    }
}

/// Issue 13: `mkdir d; rmdir d` in a view commits nothing on every driver (fuse-overlayfs
/// leaves a whiteout of a name nothing below had; overlay a copied-up parent), and a device
/// node of the image works in every view (a FUSE mount is nodev unless asked).
#[test]
fn a_directory_made_and_removed_commits_nothing_and_devices_work() {
    let e = need_root!();
    let layers = vec![
        Layer::new()
            .dir("tmp")
            .dir("dev")
            .chardev("dev/null", 1, 3)
            .mode(0o666),
    ];
    let stored = e.import_all(&layers);
    for d in common::drivers() {
        let m = e.mount(d, &stored);
        fs::create_dir(m.target().join("tmp/d")).unwrap();
        fs::remove_dir(m.target().join("tmp/d")).unwrap();
        let names = common::tar_names(&common::commit(&m));
        assert!(names.is_empty(), "{}: commit holds {names:?}", d.name());
        let null = fs::read(m.target().join("dev/null"))
            .unwrap_or_else(|err| panic!("{}: read dev/null: {err}", d.name()));
        assert!(null.is_empty());
        fs::write(m.target().join("dev/null"), "gone").unwrap();
        m.unmount().unwrap();
    }
}
