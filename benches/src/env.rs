//! A benchmark's world: a private mount namespace for the bench process and a tmpfs holding
//! the store, the fixtures and every mount target; all of it gone when dropped.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use strata_runtime::sandbox;
use strata_runtime::store::Store;

use crate::skip;

/// The private namespace and tmpfs of one benchmark binary.
pub struct BenchEnv {
    pub dir: tempfile::TempDir,
    pub tmpfs: PathBuf,
    pub store: Store,
    next: Cell<u64>,
}

impl BenchEnv {
    /// Enters a private mount namespace and mounts a tmpfs; `None` (with the reason printed)
    /// where benchmarks cannot mount.
    pub fn new(what: &str) -> Option<BenchEnv> {
        if !sandbox::is_root() {
            skip(what, "needs root to mount (run `cargo bench` as root)");
            return None;
        }
        if let Err(e) = sandbox::private_mount_namespace() {
            skip(what, &format!("no private mount namespace: {e}"));
            return None;
        }
        let dir = match tempfile::Builder::new().prefix("strata-bench-").tempdir() {
            Ok(d) => d,
            Err(e) => {
                skip(what, &format!("no temporary directory: {e}"));
                return None;
            }
        };
        let tmpfs = dir.path().join("tmpfs");
        let setup = || -> Result<Store, String> {
            std::fs::create_dir(&tmpfs).map_err(|e| e.to_string())?;
            nix::mount::mount(
                Some("tmpfs"),
                &tmpfs,
                Some("tmpfs"),
                nix::mount::MsFlags::empty(),
                Some("size=16g,mode=0755"),
            )
            .map_err(|e| format!("mount tmpfs: {e}"))?;
            Store::open(&tmpfs.join("root")).map_err(|e| e.to_string())
        };
        match setup() {
            Ok(store) => Some(BenchEnv {
                dir,
                tmpfs,
                store,
                next: Cell::new(0),
            }),
            Err(e) => {
                skip(what, &e);
                None
            }
        }
    }

    /// A path on the tmpfs.
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmpfs.join(name)
    }

    /// A fresh empty directory on the tmpfs.
    pub fn fresh_dir(&self, name: &str) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        let p = self.tmpfs.join(format!("{name}-{n}"));
        if let Err(e) = std::fs::create_dir_all(&p) {
            panic!("create {}: {e}", p.display());
        }
        p
    }

    /// The from-host root filesystem of `bins` (their libraries and ELF interpreter), built
    /// once on the tmpfs; returns its directory and its layer in the store.
    pub fn rootfs(&self, bins: &[&str]) -> (PathBuf, strata_runtime::store::StoredLayer) {
        let dir = self.fresh_dir("rootfs");
        let tar = self.path(&format!("rootfs-{}.tar", self.next.get()));
        let bins: Vec<String> = bins.iter().map(|b| b.to_string()).collect();
        let built = strata_runtime::rootfs::from_host_tar(&dir, &bins, &tar)
            .unwrap_or_else(|e| panic!("rootfs from host: {e}"));
        let layer = self
            .store
            .import_path(&tar)
            .unwrap_or_else(|e| panic!("import {}: {e}", tar.display()))
            .layer;
        if built.digest != Some(layer.info.diff_id) {
            panic!("the rootfs layer's digest changed on import");
        }
        (dir, layer)
    }
}

impl Drop for BenchEnv {
    fn drop(&mut self) {
        // Everything below the tmpfs (bind mounts, loop filesystems) goes with it.
        let _ = nix::mount::umount2(&self.tmpfs, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// True when `prog` is on PATH.
pub fn have(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| Path::new(&d).join(prog).is_file()))
}
