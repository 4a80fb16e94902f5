//! A test thread's world: a private mount namespace, a tmpfs in a temporary directory holding
//! the store and every mount target, all unmounted when it is dropped. The store's `btrfs/`
//! is a loop-mounted btrfs image (when this machine can make one), so the btrfs driver runs
//! too.

use std::path::{Path, PathBuf};

use strata_runtime::loopfs::{self, FsType, LoopFs};
use strata_runtime::model::Tree;
use strata_runtime::store::{Store, StoredLayer};
use strata_runtime::{require, sandbox};

use crate::stack::Stack;

/// A private mount namespace with a tmpfs store.
pub struct World {
    pub dir: tempfile::TempDir,
    pub store: Store,
    tmpfs: PathBuf,
    btrfs: Option<LoopFs>,
    next: std::cell::Cell<u64>,
}

impl World {
    /// Enters a private mount namespace and mounts a tmpfs, or prints why the test cannot run
    /// here (not root) and returns `None` -- or panics when `STRATA_REQUIRE` names root. Each
    /// driver unavailable for the store is a printed skip, or a panic when `STRATA_REQUIRE`
    /// names it (the properties then run on the drivers that are available).
    pub fn new(test: &str) -> Option<World> {
        if !require::root() {
            return None;
        }
        if let Err(e) = sandbox::private_mount_namespace() {
            panic!("{test}: cannot make a private mount namespace: {e}");
        }
        let dir = match tempfile::Builder::new().prefix("strata-prop-").tempdir() {
            Ok(d) => d,
            Err(e) => panic!("{test}: tempdir: {e}"),
        };
        let tmpfs = dir.path().join("tmpfs");
        let setup = || -> Result<Store, String> {
            std::fs::create_dir(&tmpfs).map_err(|e| e.to_string())?;
            nix::mount::mount(
                Some("tmpfs"),
                &tmpfs,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=4g,mode=0755"),
            )
            .map_err(|e| format!("mount tmpfs: {e}"))?;
            Store::open(&tmpfs.join("root")).map_err(|e| e.to_string())
        };
        let store = setup().unwrap_or_else(|e| panic!("{test}: {e}"));
        // The image lives in the tmpfs: its transaction commits (one per snapshot) then
        // flush to memory, not to the disk under the temp dir.
        let btrfs = loopfs::check(FsType::Btrfs)
            .and_then(|()| {
                LoopFs::create(
                    FsType::Btrfs,
                    &tmpfs.join("btrfs.img"),
                    4 << 30,
                    &strata_runtime::driver::btrfs::state_dir(store.root()),
                )
            })
            .map_err(|why| println!("note: {test}: no btrfs loop image for the store: {why}"))
            .ok();
        let w = World {
            dir,
            store,
            tmpfs,
            btrfs,
            next: std::cell::Cell::new(0),
        };
        // check::drivers() leaves out what is unavailable; here each one left out says so (a
        // panic when required unmounts the world on the way out).
        let wanted = std::env::var("STRATA_DRIVERS").ok();
        for d in strata_runtime::driver::all() {
            let named = wanted
                .as_deref()
                .is_none_or(|w| w.split(',').any(|n| n.trim() == d.name()));
            if named {
                require::driver_in(d, w.store.root());
            }
        }
        Some(w)
    }

    /// A fresh empty directory on the tmpfs.
    pub fn target(&self) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        let p = self.tmpfs.join(format!("mnt-{n}"));
        if let Err(e) = std::fs::create_dir(&p) {
            panic!("create {}: {e}", p.display());
        }
        p
    }

    /// Imports every layer of `stack` (stored once however often a case repeats it).
    pub fn import(&self, stack: &Stack) -> Result<Vec<StoredLayer>, String> {
        stack
            .fixtures()
            .iter()
            .map(|l| {
                let tar = l.to_tar().map_err(|e| e.to_string())?;
                self.store
                    .import_reader(&tar[..], Path::new("generated.tar"))
                    .map(|i| i.layer)
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    /// Imports a committed layer tar.
    pub fn import_tar(&self, tar: &[u8]) -> Result<StoredLayer, String> {
        self.store
            .import_reader(tar, Path::new("commit.tar"))
            .map(|i| i.layer)
            .map_err(|e| e.to_string())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // The btrfs inside the tmpfs first: its loop device goes with it.
        drop(self.btrfs.take());
        let _ = nix::mount::umount2(&self.tmpfs, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The tree under `dir`.
pub fn scan(dir: &Path) -> Result<Tree, String> {
    strata_runtime::scan::scan(dir).map_err(|e| e.to_string())
}

/// An open fd of a view's root, for operations.
pub fn open_root(dir: &Path) -> Result<std::os::fd::OwnedFd, String> {
    strata_runtime::fsutil::open_dir(dir).map_err(|e| e.to_string())
}

/// [`World::new`] for a proptest body: a panic (a requirement `STRATA_REQUIRE` names that is
/// missing here) becomes an error kept for every later case of the thread, so the failure is
/// reported at once instead of a world being made again for every shrinking step.
pub fn new_for_proptest(test: &str) -> Result<Option<World>, String> {
    caught(test, || World::new(test))
}

/// Runs `make` (a test thread's setup), turning a panic into its message.
pub fn caught<T>(test: &str, make: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(make)).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| format!("{test}: the setup panicked"))
    })
}
