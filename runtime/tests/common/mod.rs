//! Shared test support: a root check that skips with a printed reason (or fails when
//! `STRATA_REQUIRE` names root, see `strata_runtime::require`), a private mount namespace per
//! test thread, a temporary store, and helpers to import fixtures and compare views.
//!
//! The store's `btrfs/` is a loop-mounted btrfs image (when this machine can make one), so
//! every shared driver test runs the btrfs driver too, on a plain ext4 host.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use strata_runtime::driver::{self, Driver};
use strata_runtime::fixture::Layer;
use strata_runtime::loopfs::{self, FsType, LoopFs};
use strata_runtime::model::{self, ChangeSet, CompareOptions, Tree};
use strata_runtime::mounts::{self, Mount};
use strata_runtime::store::{Store, StoredLayer};
use strata_runtime::{require, sandbox};
use tempfile::TempDir;

/// A test's world: a temp dir, a store inside it, and a private mount namespace.
pub struct Env {
    /// The btrfs image mounted at the store's `btrfs/` (dropped, so unmounted, before the
    /// temp dir goes), when this machine can make one.
    pub btrfs: Option<LoopFs>,
    pub dir: TempDir,
    pub store: Store,
    next: std::cell::Cell<u32>,
}

/// Enters a private mount namespace and makes a store, or prints why the test is skipped
/// (not root) and returns `None` -- or panics when `STRATA_REQUIRE` names root.
pub fn env() -> Option<Env> {
    if !require::root() {
        return None;
    }
    sandbox::private_mount_namespace().expect("private mount namespace");
    let dir = tempfile::Builder::new()
        .prefix("strata-test-")
        .tempdir()
        .expect("tempdir");
    let store = Store::open(&dir.path().join("root")).expect("store");
    let btrfs = btrfs_for(&dir, &store);
    STORE_ROOT.with(|r| *r.borrow_mut() = Some(store.root().to_path_buf()));
    Some(Env {
        btrfs,
        dir,
        store,
        next: std::cell::Cell::new(0),
    })
}

thread_local! {
    /// The store root of this thread's test, for [`drivers`].
    static STORE_ROOT: std::cell::RefCell<Option<PathBuf>> = const { std::cell::RefCell::new(None) };
}

/// A store in a temp dir for a test that needs no privilege: no namespace, no btrfs (it
/// must not mount anything).
pub fn unprivileged_env() -> Env {
    let dir = tempfile::Builder::new()
        .prefix("strata-test-")
        .tempdir()
        .expect("tempdir");
    let store = Store::open(&dir.path().join("root")).expect("store");
    Env {
        btrfs: None,
        dir,
        store,
        next: std::cell::Cell::new(0),
    }
}

/// A btrfs image mounted at the store's `btrfs/`, or a printed line why not (the btrfs
/// driver is then unavailable for the store, and [`drivers`] skips it or fails).
fn btrfs_for(dir: &TempDir, store: &Store) -> Option<LoopFs> {
    let made = loopfs::check(FsType::Btrfs).and_then(|()| {
        LoopFs::create(
            FsType::Btrfs,
            &dir.path().join("btrfs.img"),
            1 << 30,
            &driver::btrfs::state_dir(store.root()),
        )
    });
    match made {
        Ok(l) => Some(l),
        Err(why) => {
            println!("note: no btrfs loop image for this test's store: {why}");
            None
        }
    }
}

/// `let e = need_root!();` at the top of a privileged test.
#[macro_export]
macro_rules! need_root {
    () => {
        match common::env() {
            Some(e) => e,
            None => return,
        }
    };
}

impl Env {
    /// A fresh empty directory inside the test's temp dir.
    pub fn fresh_dir(&self, name: &str) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        let p = self.dir.path().join(format!("{name}-{n}"));
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Imports a fixture layer.
    pub fn import(&self, l: &Layer) -> StoredLayer {
        let tar = l.to_tar().unwrap();
        self.store
            .import_reader(&tar[..], Path::new("fixture.tar"))
            .unwrap()
            .layer
    }

    /// Imports fixture layers, lowest first.
    pub fn import_all(&self, ls: &[Layer]) -> Vec<StoredLayer> {
        ls.iter().map(|l| self.import(l)).collect()
    }

    /// Mounts stored layers with `driver` at a fresh target.
    pub fn mount(&self, driver: &'static dyn Driver, layers: &[StoredLayer]) -> Mount {
        let target = self.fresh_dir(&format!("mnt-{}", driver.name()));
        mounts::mount(&self.store, driver, layers.to_vec(), &target).unwrap()
    }

    /// Imports a committed tar back as a layer (to read its change set).
    pub fn reimport(&self, tar: &[u8]) -> StoredLayer {
        self.store
            .import_reader(tar, Path::new("commit.tar"))
            .unwrap()
            .layer
    }
}

/// Every driver available here, for this thread's store; each one missing is a printed skip,
/// or a failure when `STRATA_REQUIRE` names it (CI names every driver).
pub fn drivers() -> Vec<&'static dyn Driver> {
    let root = STORE_ROOT
        .with(|r| r.borrow().clone())
        .expect("common::drivers() after common::env()");
    driver::all()
        .into_iter()
        .filter(|d| require::driver_in(*d, &root))
        .collect()
}

/// The model's view of fixture layers.
pub fn model_of(ls: &[Layer]) -> Tree {
    let sets: Vec<ChangeSet> = ls.iter().map(|l| l.changeset()).collect();
    model::apply(&sets).unwrap()
}

/// Asserts the tree under `dir` equals `expected`, printing every difference.
pub fn assert_tree(what: &str, dir: &Path, expected: &Tree, opts: &CompareOptions) {
    let actual = strata_runtime::scan::scan(dir).unwrap();
    let diffs = expected.compare(&actual, opts);
    assert!(
        diffs.is_empty(),
        "{what}: the view differs from the model:\n  {}\nexpected:\n{}actual:\n{}",
        diffs
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n  "),
        expected.render(),
        actual.render()
    );
}

/// The tree of every layer's directory in the store (to prove lower layers never change).
pub fn layer_trees(layers: &[StoredLayer]) -> Vec<Tree> {
    layers
        .iter()
        .map(|l| strata_runtime::scan::scan(&l.fs()).unwrap())
        .collect()
}

/// Commits a mount to memory.
pub fn commit(m: &Mount) -> Vec<u8> {
    let mut out = Vec::new();
    m.commit_to(&mut out).unwrap();
    out
}

/// The entry names of a tar, in order (`./` for the root).
pub fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

/// The current mount table of this thread, for leak checks.
pub fn mountinfo() -> String {
    sandbox::mountinfo().unwrap()
}
