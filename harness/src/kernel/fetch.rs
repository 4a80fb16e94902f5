//! Debian kernels for the matrix: resolved with apt-cache, downloaded with `apt-get download`
//! (apt checks the package against the signed archive index), checked again here against the
//! index's SHA256, unpacked with `dpkg -x` into a cache directory of their own and never
//! installed. Compressed modules (`.ko.xz`) are decompressed and `depmod` run, so the
//! initramfs's busybox `insmod` and the guest's `modprobe` can load them.
//!
//! The cache (`STRATA_KERNEL_CACHE`, else `/var/lib/strata/kernels` as root, else
//! `$XDG_CACHE_HOME/strata/kernels`) holds one directory per package, made whole or not at
//! all: it is unpacked in a staging directory that is renamed into place at the end, with a
//! `strata-kernel.json` stamp naming the package, its version and checksums. It must not lie
//! under /tmp, /run or /var/cache: virtme-ng's guest puts a tmpfs over those, so the guest
//! would not see the modules.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use strata_runtime::digest::Digest;

/// A kernel unpacked in the cache.
#[derive(Clone, Debug)]
pub struct Unpacked {
    /// `DIR/boot/vmlinuz-RELEASE`.
    pub image: PathBuf,
    pub stamp: Stamp,
}

/// What the cache records about a kernel it holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Stamp {
    /// The Debian package (`linux-image-6.1.0-57-cloud-amd64`).
    pub package: String,
    /// Its version (`6.1.158-1`).
    pub version: String,
    /// `uname -r` of the kernel.
    pub release: String,
    /// SHA256 of the .deb as downloaded (equal to the archive index's).
    pub deb_sha256: String,
    /// SHA256 of the unpacked kernel image, checked on every use.
    pub image_sha256: String,
}

/// Directories a virtme-ng guest covers with a tmpfs: a cache there is invisible to it.
const GUEST_HIDDEN: [&str; 4] = ["/tmp", "/run", "/var/cache", "/var/tmp"];

/// The kernel cache directory.
pub fn cache_dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("STRATA_KERNEL_CACHE").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None if rustix::process::geteuid().is_root() => PathBuf::from("/var/lib/strata/kernels"),
        None => {
            let base = std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .ok_or("no HOME to put the kernel cache in: set STRATA_KERNEL_CACHE")?;
            base.join("strata/kernels")
        }
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("kernel cache {}: create: {e}", dir.display()))?;
    let abs =
        std::fs::canonicalize(&dir).map_err(|e| format!("kernel cache {}: {e}", dir.display()))?;
    if let Some(h) = GUEST_HIDDEN.iter().find(|h| abs.starts_with(h)) {
        return Err(format!(
            "kernel cache {}: the VM's guest puts a tmpfs over {h}, so it would not see the \
             kernel's modules; set STRATA_KERNEL_CACHE to a directory elsewhere",
            abs.display()
        ));
    }
    Ok(abs)
}

/// The Debian package `debian:SERIES` names: the newest `linux-image-*-cloud-ARCH` of that
/// series the configured archives offer (`debian:6.1`, `debian:6.12`).
pub fn resolve_series(series: &str) -> Result<String, String> {
    let parts: Vec<&str> = series.split('.').collect();
    if parts.len() != 2
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "debian:{series}: a series is MAJOR.MINOR, as in debian:6.1 or debian:6.12"
        ));
    }
    let arch = dpkg_arch()?;
    let flavour = format!("-cloud-{arch}");
    let prefix = format!("linux-image-{series}.");
    let out = run_capture(
        Command::new("apt-cache")
            .args(["search", "--names-only"])
            .arg(format!("^linux-image-{}\\.", series.replace('.', "\\."))),
        "apt-cache search",
    )?;
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| l.split(" - ").next())
        .map(str::trim)
        .filter(|n| is_versioned_image(n, &prefix, &flavour))
        .map(str::to_string)
        .collect();
    names.sort_by_key(|n| version_key(n));
    names.pop().ok_or_else(|| {
        format!(
            "debian:{series}: no linux-image-{series}.*{flavour} package in the configured \
             archives (apt-cache search; bookworm has 6.1, bookworm-backports or the security \
             archive 6.12; run apt-get update?)"
        )
    })
}

/// `linux-image-6.1.0-57-cloud-amd64` or `linux-image-6.12.118+deb12-cloud-amd64`: a real
/// image (not a meta package, not -dbg or -unsigned).
fn is_versioned_image(name: &str, prefix: &str, flavour: &str) -> bool {
    let Some(mid) = name
        .strip_prefix(prefix)
        .and_then(|r| r.strip_suffix(flavour))
    else {
        return false;
    };
    // The patch level, then -ABI or +debN.
    let digits = mid.bytes().take_while(u8::is_ascii_digit).count();
    let rest = &mid[digits..];
    digits > 0
        && (rest.is_empty()
            || rest
                .strip_prefix('-')
                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit()))
            || rest
                .strip_prefix("+deb")
                .is_some_and(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_digit())))
}

/// The numbers in a package name, in order: sorts 6.1.0-9 before 6.1.0-57.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(u64::MAX))
        .collect()
}

fn dpkg_arch() -> Result<String, String> {
    let a = run_capture(
        Command::new("dpkg").arg("--print-architecture"),
        "dpkg --print-architecture",
    )?;
    Ok(a.trim().to_string())
}

/// Runs `cmd`; its stdout, or one line: what, the exit status and the last line of stderr.
fn run_capture(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("{what}: {}: {}", out.status, last.trim()));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A field of `apt-cache show --no-all-versions PACKAGE`.
fn apt_field(show: &str, field: &str) -> Option<String> {
    show.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}: ")))
        .map(|v| v.trim().to_string())
}

fn sha256_file(p: &Path) -> Result<String, String> {
    let f = std::fs::File::open(p).map_err(|e| format!("{}: open: {e}", p.display()))?;
    let (d, _) = Digest::of_reader(std::io::BufReader::new(f))
        .map_err(|e| format!("{}: read: {e}", p.display()))?;
    Ok(d.hex())
}

/// The package `package` unpacked in the cache: fetched, checked and unpacked when the cache
/// does not hold it yet. `progress` gets one line per step.
pub fn fetch(package: &str, progress: &mut dyn FnMut(&str)) -> Result<Unpacked, String> {
    if !package.starts_with("linux-image-")
        || !package
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".+-".contains(&b))
    {
        return Err(format!(
            "{package}: not a Debian kernel image package name (linux-image-...)"
        ));
    }
    let cache = cache_dir()?;
    let dir = cache.join(package);
    if dir.exists() {
        return cached(&dir);
    }
    let show = run_capture(
        Command::new("apt-cache").args(["show", "--no-all-versions", package]),
        &format!("apt-cache show {package}"),
    )?;
    let version = apt_field(&show, "Version")
        .ok_or_else(|| format!("{package}: apt-cache show gives no Version"))?;
    let want_sha = apt_field(&show, "SHA256")
        .ok_or_else(|| format!("{package}: apt-cache show gives no SHA256"))?;
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{package}-"))
        .tempdir_in(&cache)
        .map_err(|e| format!("{}: staging directory: {e}", cache.display()))?;
    progress(&format!("fetching {package} {version} (apt-get download)"));
    let dl = staging.path().join("deb");
    std::fs::create_dir(&dl).map_err(|e| format!("{}: {e}", dl.display()))?;
    run_capture(
        Command::new("apt-get")
            .args(["download", "-q", "-o", "APT::Sandbox::User=root"])
            .arg(format!("{package}={version}"))
            .current_dir(&dl),
        &format!("apt-get download {package}"),
    )?;
    let deb = std::fs::read_dir(&dl)
        .map_err(|e| format!("{}: {e}", dl.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| format!("apt-get download {package}: no .deb was written"))?;
    let got_sha = sha256_file(&deb)?;
    if got_sha != want_sha {
        return Err(format!(
            "{}: SHA256 {got_sha} is not the archive index's {want_sha}",
            deb.display()
        ));
    }
    progress(&format!(
        "unpacking {package} (dpkg -x; modules decompressed, depmod)"
    ));
    let root = staging.path().join("root");
    run_capture(
        Command::new("dpkg").arg("-x").arg(&deb).arg(&root),
        &format!("dpkg -x {}", deb.display()),
    )?;
    // The .deb is not kept: the stamp keeps its checksum.
    std::fs::remove_file(&deb).map_err(|e| format!("{}: remove: {e}", deb.display()))?;
    let (image, release) = find_image(&root)?;
    let moddir = root.join("lib/modules").join(&release);
    decompress_modules(&moddir)?;
    run_capture(
        Command::new("depmod").arg("-b").arg(&root).arg(&release),
        &format!("depmod -b {} {release}", root.display()),
    )?;
    let stamp = Stamp {
        package: package.to_string(),
        version,
        release,
        deb_sha256: got_sha,
        image_sha256: sha256_file(&image)?,
    };
    let json = serde_json::to_string_pretty(&stamp).map_err(|e| format!("stamp: {e}"))?;
    let stamp_path = root.join("strata-kernel.json");
    std::fs::write(&stamp_path, json).map_err(|e| format!("{}: {e}", stamp_path.display()))?;
    std::fs::rename(&root, &dir).map_err(|e| {
        format!(
            "{}: cannot move the unpacked kernel into place: {e}",
            dir.display()
        )
    })?;
    drop(staging);
    cached(&dir)
}

/// A cached kernel, its image checked against the stamp.
fn cached(dir: &Path) -> Result<Unpacked, String> {
    let stamp_path = dir.join("strata-kernel.json");
    let text = std::fs::read_to_string(&stamp_path).map_err(|e| {
        format!(
            "{}: {e} (an incomplete cache entry: remove {} to fetch it again)",
            stamp_path.display(),
            dir.display()
        )
    })?;
    let stamp: Stamp =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", stamp_path.display()))?;
    let image = dir.join("boot").join(format!("vmlinuz-{}", stamp.release));
    let sha = sha256_file(&image)?;
    if sha != stamp.image_sha256 {
        return Err(format!(
            "{}: SHA256 {sha} is not the {} the cache recorded (remove {} to fetch it again)",
            image.display(),
            stamp.image_sha256,
            dir.display()
        ));
    }
    Ok(Unpacked { image, stamp })
}

/// `boot/vmlinuz-RELEASE` in an unpacked package, and RELEASE.
pub fn find_image(root: &Path) -> Result<(PathBuf, String), String> {
    let boot = root.join("boot");
    let entries = std::fs::read_dir(&boot).map_err(|e| format!("{}: {e}", boot.display()))?;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(release) = name.strip_prefix("vmlinuz-") {
            return Ok((e.path(), release.to_string()));
        }
    }
    Err(format!("{}: no vmlinuz-* in it", boot.display()))
}

/// Decompresses every `*.ko.xz` under `dir` in place (`unxz`).
fn decompress_modules(dir: &Path) -> Result<(), String> {
    let mut xz = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in entries.flatten() {
            let p = e.path();
            let ft = e
                .file_type()
                .map_err(|err| format!("{}: {err}", p.display()))?;
            if ft.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".ko.xz") {
                xz.push(p);
            }
        }
    }
    for chunk in xz.chunks(200) {
        run_capture(
            Command::new("unxz").arg("-q").args(chunk),
            &format!("unxz (modules under {})", dir.display()),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versioned_images_and_their_order() {
        let f = "-cloud-amd64";
        assert!(is_versioned_image(
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.",
            f
        ));
        assert!(is_versioned_image(
            "linux-image-6.12.118+deb12-cloud-amd64",
            "linux-image-6.12.",
            f
        ));
        for no in [
            "linux-image-6.12-cloud-amd64",
            "linux-image-6.1.0-57-cloud-amd64-dbg",
            "linux-image-6.1.0-57-cloud-amd64-unsigned",
            "linux-image-6.1.0-57-amd64",
            "linux-image-6.1.0-rt-cloud-amd64",
        ] {
            assert!(!is_versioned_image(no, "linux-image-6.1.", f), "{no}");
        }
        let mut v = [
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.0-9-cloud-amd64",
            "linux-image-6.1.0-100-cloud-amd64",
        ];
        v.sort_by_key(|n| version_key(n));
        assert_eq!(v[2], "linux-image-6.1.0-100-cloud-amd64");
        assert_eq!(v[0], "linux-image-6.1.0-9-cloud-amd64");
    }

    #[test]
    fn a_series_is_major_minor() {
        for bad in ["6", "6.1.2", "x.1", "6.", ""] {
            let e = resolve_series(bad).unwrap_err();
            assert!(e.contains("MAJOR.MINOR"), "{e}");
        }
    }
}
