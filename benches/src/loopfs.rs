//! Loop-mounted filesystems on the benchmark's tmpfs, made, used and removed by the benchmark
//! itself, so a plain ext4 host still measures them: an xfs with reflink for FICLONE copies
//! and copy-ups, and a btrfs under the store for the btrfs driver. The image, loop device and
//! mount are strata_runtime::loopfs's (unmounted on drop, the device detached with it).

use std::path::PathBuf;

use strata_runtime::driver::btrfs;
use strata_runtime::loopfs::{self, FsType};
use strata_runtime::store::Store;

use crate::env::BenchEnv;

/// A mounted xfs image.
pub struct LoopFs {
    pub dir: PathBuf,
    pub store: Store,
    /// Unmounts (and so detaches the loop device) when dropped.
    _mount: loopfs::LoopFs,
}

impl LoopFs {
    /// An xfs with reflink of `size` bytes, with a store on it; `Err` says why not here.
    pub fn xfs(env: &BenchEnv, size: u64) -> Result<LoopFs, String> {
        let mount = loopfs::LoopFs::create(
            FsType::Xfs,
            &env.path("xfs.img"),
            size,
            &env.fresh_dir("xfs"),
        )?;
        let dir = mount.path().to_path_buf();
        let store = Store::open(&dir.join("root")).map_err(|e| e.to_string())?;
        Ok(LoopFs {
            dir,
            store,
            _mount: mount,
        })
    }
}

/// A btrfs image of `size` bytes mounted at the bench store's `btrfs/`, where the btrfs
/// driver keeps its subvolumes and snapshots (the layers themselves stay on the tmpfs);
/// `Err` says why not here. Keep the guard for as long as the driver is benchmarked.
pub fn btrfs_state(env: &BenchEnv, size: u64) -> Result<loopfs::LoopFs, String> {
    loopfs::LoopFs::create(
        FsType::Btrfs,
        &env.path("btrfs.img"),
        size,
        &btrfs::state_dir(env.store.root()),
    )
}
