//! The btrfs driver's own promises, on the loop-mounted btrfs every test store has at
//! `ROOT/btrfs` (the shared view, commit and capability tests run it too, via
//! `common::drivers()`): chains shared and read-only, nothing left after unmount, subvolumes
//! a container made deleted with it, a clear reason off btrfs.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use strata_runtime::driver::{self, Driver};
use strata_runtime::fixture::Layer;
use strata_runtime::model::CompareOptions;
use strata_runtime::mounts;
use strata_runtime::store::Store;

fn btrfs() -> &'static dyn Driver {
    driver::by_name("btrfs").unwrap()
}

/// The test's env when its store has a btrfs, else a printed reason.
macro_rules! need_btrfs {
    () => {{
        let e = need_root!();
        if e.btrfs.is_none() {
            strata_runtime::require::skip_or_fail(
                "btrfs",
                "no btrfs loop image here (see the note above)",
            );
            return;
        }
        e
    }};
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn state(e: &common::Env) -> PathBuf {
    driver::btrfs::state_dir(e.store.root())
}

fn subvolumes(dir: &Path) -> usize {
    names(dir).iter().filter(|n| !n.ends_with(".json")).count()
}

#[test]
fn chains_are_built_once_shared_by_stacks_and_read_only() {
    let e = need_btrfs!();
    let l0 = Layer::new().dir("etc").file("etc/os", "base").dir("keep");
    let l1 = Layer::new().dir("etc").file("etc/app", "one");
    let l2 = Layer::new().file("other", "two");
    let stored = e.import_all(&[l0.clone(), l1.clone(), l2.clone()]);
    let chains = state(&e).join("chains");
    let a = e.mount(btrfs(), &stored[..2]);
    let b = e.mount(btrfs(), &stored[..2]);
    assert_eq!(subvolumes(&chains), 2, "{:?}", names(&chains));
    // A stack sharing the bottom layer shares its chain: one more subvolume, not two.
    let c = e.mount(btrfs(), &[stored[0].clone(), stored[2].clone()]);
    assert_eq!(subvolumes(&chains), 3, "{:?}", names(&chains));
    common::assert_tree(
        "l0+l2",
        c.target(),
        &common::model_of(&[l0.clone(), l2]),
        &CompareOptions::default(),
    );
    // Chains are read-only; each mount writes its own snapshot.
    for id in names(&chains).iter().filter(|n| !n.ends_with(".json")) {
        let err = fs::write(chains.join(id).join("x"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{id}");
    }
    fs::write(a.target().join("etc/os"), "changed").unwrap();
    assert_eq!(
        fs::read_to_string(b.target().join("etc/os")).unwrap(),
        "base"
    );
    assert_eq!(names(&state(&e).join("mounts")).len(), 3);
    for m in [a, b, c] {
        m.unmount().unwrap();
    }
    assert!(names(&state(&e).join("mounts")).is_empty());
    assert_eq!(subvolumes(&chains), 3, "chains stay cached");
    let m = e.mount(btrfs(), &stored[..2]);
    common::assert_tree(
        "cached l0+l1",
        m.target(),
        &common::model_of(&[l0, l1]),
        &CompareOptions::default(),
    );
}

#[test]
fn a_chain_a_crash_cut_short_is_rebuilt() {
    let e = need_btrfs!();
    let layers = [Layer::new().file("a", "1"), Layer::new().file("b", "2")];
    let stored = e.import_all(&layers);
    e.mount(btrfs(), &stored).unmount().unwrap();
    // The top chain without its record: as if the process died before writing it.
    let chains = state(&e).join("chains");
    let top = names(&chains)
        .into_iter()
        .filter(|n| n.ends_with(".json"))
        .find(|n| {
            fs::read_to_string(chains.join(n))
                .unwrap()
                .contains(&stored[1].info.diff_id.to_string())
        })
        .unwrap();
    fs::remove_file(chains.join(&top)).unwrap();
    let m = e.mount(btrfs(), &stored);
    common::assert_tree(
        "rebuilt",
        m.target(),
        &common::model_of(&layers),
        &CompareOptions::default(),
    );
    assert!(chains.join(&top).exists());
}

/// Creates a subvolume with btrfs-progs (what a container with CAP_SYS_ADMIN can do).
fn subvolume_create(p: &Path) -> bool {
    match Command::new("btrfs")
        .args(["-q", "subvolume", "create"])
        .arg(p)
        .status()
    {
        Ok(s) => {
            assert!(s.success(), "btrfs subvolume create {}", p.display());
            true
        }
        Err(_) => false,
    }
}

#[test]
fn subvolumes_a_container_made_go_with_its_unmount() {
    // moby/moby#9939: removing a container left the subvolumes it had made.
    let e = need_btrfs!();
    let stored = e.import_all(&[Layer::new().dir("var")]);
    let m = e.mount(btrfs(), &stored);
    let t = m.target().to_path_buf();
    if !subvolume_create(&t.join("var/sub")) {
        strata_runtime::require::skip_or_fail(
            "btrfs",
            "the btrfs command (btrfs-progs) is not installed",
        );
        return;
    }
    fs::write(t.join("var/sub/f"), "x").unwrap();
    assert!(subvolume_create(&t.join("var/sub/deeper")));
    fs::write(t.join("var/sub/deeper/g"), "y").unwrap();
    m.unmount().unwrap();
    assert!(names(&state(&e).join("mounts")).is_empty());
    assert!(e.store.records().unwrap().is_empty());
}

#[test]
fn off_btrfs_the_driver_says_why_and_mounts_nothing() {
    let e = need_root!();
    // A store on the test's temp dir (ext4 or tmpfs here), with no btrfs below it.
    let store = Store::open(&e.dir.path().join("plain")).unwrap();
    let why = btrfs().availability_in(store.root()).unwrap_err();
    assert!(why.contains("not btrfs") && why.contains("plain"), "{why}");
    let stored = store
        .import_reader(
            &Layer::new().file("f", "x").to_tar().unwrap()[..],
            Path::new("f.tar"),
        )
        .unwrap()
        .layer;
    let before = common::mountinfo();
    let err = mounts::mount(&store, btrfs(), vec![stored], &e.fresh_dir("t"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("not btrfs"), "{err}");
    assert_eq!(common::mountinfo(), before);
    assert!(store.records().unwrap().is_empty());
}

#[test]
fn untouched_directories_keep_their_mtimes_up_the_chain() {
    let e = need_btrfs!();
    let layers = [
        Layer::new()
            .dir("keep")
            .mtime(1_111_111_111, 5)
            .file("keep/f", "x")
            .dir("touched")
            .mtime(1_222_222_222, 7)
            .dir("gone")
            .file("gone/f", "y"),
        Layer::new()
            .file("touched/new", "n")
            .whiteout("gone/f")
            .file("top", "t"),
        Layer::new().file("keep2", "k"),
    ];
    let stored = e.import_all(&layers);
    let m = e.mount(btrfs(), &stored);
    common::assert_tree(
        "mtimes",
        m.target(),
        &common::model_of(&layers),
        &CompareOptions::default(),
    );
    m.unmount().unwrap();
}
