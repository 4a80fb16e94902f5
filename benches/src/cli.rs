//! The `strata` binary, run as a whole process: the series a peer runtime (crun, runc) is
//! compared with, like for like.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The `strata` binary of this build: `STRATA_BIN` when set, else `strata` beside the
/// directory holding this benchmark's executable (`target/<profile>/strata`); `Err` says how
/// to build it.
pub fn strata_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("STRATA_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/<bench>-<hash> -> target/<profile>/strata
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("strata"))
        .filter(|p| p.is_file());
    bin.ok_or_else(|| {
        "no strata binary beside the benchmark: build it first (cargo build --release -p strata-harness) or set STRATA_BIN".to_string()
    })
}

/// `strata --root ROOT run --driver DRIVER --ns NS LAYER -- /bin/true`, output discarded;
/// `Err` with its stderr when it fails.
pub fn run_true(
    bin: &Path,
    root: &Path,
    driver: &str,
    ns: &str,
    layer: &str,
) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("--root")
        .arg(root)
        .args([
            "run",
            "--driver",
            driver,
            "--ns",
            ns,
            layer,
            "--",
            "/bin/true",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "strata run --driver {driver}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}
