//! A loop-mounted xfs on the benchmark's tmpfs, for reflink (FICLONE) copies and copy-ups:
//! made, used and removed by the benchmark itself, so a plain ext4 host still measures them.

use std::path::PathBuf;
use std::process::Command;

use strata_runtime::store::Store;

use crate::env::{BenchEnv, have};

/// A mounted xfs image.
pub struct LoopFs {
    pub dir: PathBuf,
    pub store: Store,
}

impl LoopFs {
    /// An xfs with reflink of `size` bytes, with a store on it; `Err` says why not here.
    pub fn xfs(env: &BenchEnv, size: u64) -> Result<LoopFs, String> {
        if !have("mkfs.xfs") {
            return Err("mkfs.xfs is not installed (apt-get install xfsprogs)".into());
        }
        if !std::path::Path::new("/dev/loop-control").exists() {
            return Err("no loop devices (/dev/loop-control is missing)".into());
        }
        let image = env.path("xfs.img");
        let f = std::fs::File::create(&image)
            .map_err(|e| format!("create {}: {e}", image.display()))?;
        f.set_len(size)
            .map_err(|e| format!("size {}: {e}", image.display()))?;
        let out = Command::new("mkfs.xfs")
            .args(["-q", "-f", "-m", "reflink=1"])
            .arg(&image)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "mkfs.xfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let dir = env.fresh_dir("xfs");
        // mount -o loop sets autoclear: the loop device goes with the unmount.
        let out = Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "mount -o loop: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let store = Store::open(&dir.join("root")).map_err(|e| e.to_string())?;
        Ok(LoopFs { dir, store })
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::empty());
    }
}
