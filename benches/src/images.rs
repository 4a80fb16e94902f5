//! Real images for the container_start benchmark, beside the from-host rootfs:
//!
//! - `busybox`: busybox-static's binary as `/bin/busybox` with its applets installed as
//!   symlinks (`busybox --install -s`, run in a chroot of the new rootfs, which only works for
//!   a static binary), plus `/etc/passwd` and `/etc/group`. Built offline on the benchmark's
//!   tmpfs in well under a second, so never cached.
//! - `debian`: a `debootstrap --variant=minbase` of the host's Debian suite from the host's
//!   apt mirror (the first `URIs:`/`Suites:` of /etc/apt/sources.list.d/debian.sources), built
//!   once per machine and kept as a layer tar in the cache directory ([`cache_dir`]); later
//!   runs import that tar and need no network.
//!
//! Each is imported into the benchmark's store as one layer; `Err` says why an image cannot
//! be had here (the benchmark prints it as a skip).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_runtime::store::StoredLayer;

use crate::env::{BenchEnv, have};

/// Makes an image's layer in a benchmark's store; `Err` says why it cannot be had here.
pub type Make = fn(&BenchEnv) -> Result<StoredLayer, String>;

/// The images, by the name the series' `image=` parameter gives them.
pub const ALL: [(&str, Make); 2] = [("busybox", busybox), ("debian", debian)];

/// Where built images are kept between runs: `$XDG_CACHE_HOME/strata`, else
/// `/var/cache/strata` as root, else `~/.cache/strata`.
pub fn cache_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("strata"));
    }
    if strata_runtime::sandbox::is_root() {
        return Ok(PathBuf::from("/var/cache/strata"));
    }
    std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/strata"))
        .ok_or_else(|| "no cache directory: neither XDG_CACHE_HOME nor HOME is set".to_string())
}

/// The busybox image's layer (see the module's documentation).
pub fn busybox(env: &BenchEnv) -> Result<StoredLayer, String> {
    let bin = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(Path::new)
        .find(|p| p.is_file())
        .ok_or("no /bin/busybox: install busybox-static (ci/provision.sh does)")?;
    let root = env.fresh_dir("busybox");
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "tmp",
    ] {
        let p = root.join(d);
        std::fs::create_dir_all(&p).map_err(|e| format!("create {}: {e}", p.display()))?;
    }
    set_mode(&root.join("tmp"), 0o1777)?;
    let dst = root.join("bin/busybox");
    std::fs::copy(bin, &dst)
        .map_err(|e| format!("copy {} to {}: {e}", bin.display(), dst.display()))?;
    set_mode(&dst, 0o755)?;
    write(&root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    write(&root.join("etc/group"), "root:x:0:\n")?;
    // In the chroot /proc/self/exe cannot be read, so busybox links to its argv[0].
    let out = Command::new("chroot")
        .arg(&root)
        .args(["/bin/busybox", "--install", "-s"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("chroot {}: {e}", root.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --install -s in a chroot failed ({}): {} (a dynamically linked busybox cannot run there: install busybox-static)",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let t = root.join("bin/true");
    if std::fs::read_link(&t).is_err() {
        return Err(format!("busybox --install -s made no {}", t.display()));
    }
    env.store
        .import_path(&root)
        .map(|i| i.layer)
        .map_err(|e| format!("import {}: {e}", root.display()))
}

/// The Debian minbase image's layer, from the cache or built once into it (see the module's
/// documentation).
pub fn debian(env: &BenchEnv) -> Result<StoredLayer, String> {
    let (mirror, suite) = host_mirror()?;
    let arch = dpkg_arch()?;
    let cache = cache_dir()?;
    let tar = cache.join(format!("debian-minbase-{suite}-{arch}.tar"));
    if !tar.is_file() {
        build_debian(&cache, &tar, &mirror, &suite)?;
    }
    env.store
        .import_path(&tar)
        .map(|i| i.layer)
        .map_err(|e| format!("import {}: {e}", tar.display()))
}

fn build_debian(cache: &Path, tar: &Path, mirror: &str, suite: &str) -> Result<(), String> {
    if !have("debootstrap") {
        return Err("debootstrap is not installed (ci/provision.sh installs it)".to_string());
    }
    mirror_answers(mirror, suite)?;
    std::fs::create_dir_all(cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
    let stage = tempfile::Builder::new()
        .prefix("debootstrap-")
        .tempdir_in(cache)
        .map_err(|e| format!("a staging directory in {}: {e}", cache.display()))?;
    let root = stage.path().join("rootfs");
    eprintln!(
        "strata-bench: building the debian image once: debootstrap --variant=minbase {suite} {} {mirror} (kept as {})",
        root.display(),
        tar.display()
    );
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(&root)
        .arg(mirror)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("debootstrap: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let log =
            std::fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let last = err
            .lines()
            .chain(log.lines())
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("")
            .to_string();
        return Err(format!(
            "debootstrap --variant=minbase {suite} {mirror} failed ({}): {last}",
            out.status
        ));
    }
    // Device nodes, /proc and /sys are the runtime's, not the image's.
    let part = stage.path().join("image.tar");
    let out = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--xattrs-include=*", "-C"])
        .arg(&root)
        .args([
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--exclude=./sys/*",
        ])
        .arg("-cf")
        .arg(&part)
        .arg(".")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("tar: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tar of {}: {}",
            root.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    std::fs::rename(&part, tar)
        .map_err(|e| format!("rename {} to {}: {e}", part.display(), tar.display()))
}

/// The first `URIs:` and the first of its `Suites:` in the host's deb822 Debian sources.
fn host_mirror() -> Result<(String, String), String> {
    let path = Path::new("/etc/apt/sources.list.d/debian.sources");
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (not a Debian host with deb822 sources)",
            path.display()
        )
    })?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_string)
    };
    match (field("URIs:"), field("Suites:")) {
        (Some(u), Some(s)) => Ok((u, s)),
        _ => Err(format!("{}: no URIs: or Suites: line", path.display())),
    }
}

fn dpkg_arch() -> Result<String, String> {
    let out = Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .map_err(|e| format!("dpkg --print-architecture: {e}"))?;
    let a = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || a.is_empty() {
        return Err("dpkg --print-architecture gave nothing".to_string());
    }
    Ok(a)
}

/// `HEAD MIRROR/dists/SUITE/Release` answers 200 within a few seconds (plain HTTP mirrors
/// only, as debootstrap fetches them).
fn mirror_answers(mirror: &str, suite: &str) -> Result<(), String> {
    let rest = mirror.strip_prefix("http://").ok_or_else(|| {
        format!("apt mirror {mirror}: only an http:// mirror is checked and used here")
    })?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let unreachable = |why: String| format!("apt mirror {mirror} does not answer: {why}");
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable(format!("{addr} has no address")))?;
    let mut s = TcpStream::connect_timeout(&sock, Duration::from_secs(5))
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let path = format!("/{}/dists/{suite}/Release", path.trim_end_matches('/')).replace("//", "/");
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| unreachable(e.to_string()))?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).map_err(|e| unreachable(e.to_string()))?;
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    if line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(unreachable(format!(
            "HEAD {path} answered {:?}",
            line.lines().next().unwrap_or("")
        )))
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", p.display()))
}

fn write(p: &Path, text: &str) -> Result<(), String> {
    std::fs::write(p, text).map_err(|e| format!("write {}: {e}", p.display()))
}
