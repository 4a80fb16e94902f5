//! A loop-mounted xfs on the benchmark's tmpfs, for reflink (FICLONE) copies and copy-ups:
//! made, used and removed by the benchmark itself, so a plain ext4 host still measures them.
//! The image, loop device and mount are strata_runtime::loopfs's (unmounted on drop).

use std::path::PathBuf;

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
