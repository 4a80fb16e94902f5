//! The peer runtimes, crun and runc, started on an OCI bundle holding the same rootfs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::env::have;

/// An OCI bundle for one runtime.
pub struct Bundle {
    pub runtime: &'static str,
    pub dir: PathBuf,
}

/// Makes a bundle whose config runs /bin/true on `rootfs` (read-only) with the runtime's
/// default namespaces (pid, net, ipc, uts, mount); `Err` says why not here.
pub fn bundle(runtime: &'static str, rootfs: &Path, dir: &Path) -> Result<Bundle, String> {
    if !have(runtime) {
        return Err(format!(
            "{runtime} is not installed (apt-get install {runtime})"
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let out = Command::new(runtime)
        .arg("spec")
        .current_dir(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{runtime} spec: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let mut cfg: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["/bin/true"]);
    cfg["root"] = serde_json::json!({ "path": rootfs, "readonly": true });
    std::fs::write(&path, cfg.to_string()).map_err(|e| e.to_string())?;
    Ok(Bundle {
        runtime,
        dir: dir.to_path_buf(),
    })
}

impl Bundle {
    /// `RUNTIME run --bundle DIR ID`, output discarded; the exit status.
    pub fn run(&self, id: &str) -> Result<(), String> {
        let st = Command::new(self.runtime)
            .args(["run", "--bundle"])
            .arg(&self.dir)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| e.to_string())?;
        if st.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} run: {}",
                self.runtime,
                String::from_utf8_lossy(&st.stderr).trim()
            ))
        }
    }
}

/// crun refuses a cgroup v1/v2 hybrid whose v2 hierarchy still offers controllers; inside
/// the benchmark's private mount namespace the unified mount can simply be taken away.
pub fn hide_unified_cgroup() {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.join("cgroup.controllers").exists() {
        let _ = nix::mount::umount2(unified, nix::mount::MntFlags::MNT_DETACH);
    }
}
