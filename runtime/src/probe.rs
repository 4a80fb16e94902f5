//! What this host offers a container storage benchmark: kernel, CPU, memory, cgroup mode,
//! the filesystem under the store (and whether it can reflink), the mount table's size, and
//! overlayfs's parameters and features (`lowerdir+`, `userxattr`), each found by asking the
//! kernel, not by version numbers.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

/// The host as strata sees it.
#[derive(Clone, Debug, Serialize)]
pub struct Probe {
    /// `uname -r`.
    pub kernel: String,
    /// PRETTY_NAME of /etc/os-release.
    pub os: String,
    /// The CPU model.
    pub cpu: String,
    pub cores: u32,
    /// Bytes of RAM.
    pub memory: u64,
    /// `v1`, `v2`, `hybrid`, or `none`.
    pub cgroup: String,
    /// The filesystem holding the store root.
    pub store_fs: FsInfo,
    /// Lines of /proc/self/mountinfo.
    pub host_mounts: usize,
    /// Running as root.
    pub privileged: bool,
    pub overlay: OverlayProbe,
    /// The filesystems the kernel knows (/proc/filesystems).
    pub filesystems: Vec<String>,
}

/// A filesystem and what it can do.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FsInfo {
    /// The mount point holding the path.
    pub mount_point: String,
    pub fs_type: String,
    pub options: String,
    /// FICLONE between two files there works.
    pub reflink: Option<bool>,
}

/// overlayfs on this kernel.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OverlayProbe {
    pub available: bool,
    /// /sys/module/overlay/parameters (redirect_dir, index, metacopy, xino_auto, ...).
    pub params: BTreeMap<String, String>,
    /// fsconfig accepts `lowerdir+` (Linux 6.8+): stacks past one page of options mount.
    pub lowerdir_plus: Option<bool>,
    /// fsconfig accepts `userxattr` (overlay in a user namespace).
    pub userxattr: Option<bool>,
    /// The kernel's limit on lower layers.
    pub max_layers: usize,
    /// How many layers of this store fit in one page of mount(2) options (past it the
    /// overlay driver mounts through the new mount API), computed from its real paths.
    pub mount_page_layers: usize,
}

fn read_trim(p: &str) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

/// Probes the host; `store_root` is where the store (and so the writable layers) lives.
pub fn probe(store_root: &Path) -> Probe {
    Probe {
        kernel: read_trim("/proc/sys/kernel/osrelease").unwrap_or_default(),
        os: os_name(),
        cpu: cpu_model(),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        memory: mem_total(),
        cgroup: cgroup_mode().to_string(),
        store_fs: fs_info(store_root),
        host_mounts: fs::read_to_string("/proc/self/mountinfo").map_or(0, |s| s.lines().count()),
        privileged: rustix::process::geteuid().is_root(),
        overlay: overlay(store_root),
        filesystems: fs::read_to_string("/proc/filesystems")
            .map(|s| {
                s.lines()
                    .filter_map(|l| l.split_whitespace().last().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn os_name() -> String {
    fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn fs_magic(p: &str) -> Option<i64> {
    rustix::fs::statfs(p).ok().map(|s| s.f_type)
}

/// `v2` (a cgroup2 at /sys/fs/cgroup), `hybrid` (v1 controllers plus cgroup2 at
/// /sys/fs/cgroup/unified), `v1`, or `none`.
pub fn cgroup_mode() -> &'static str {
    if fs_magic("/sys/fs/cgroup") == Some(CGROUP2_SUPER_MAGIC) {
        "v2"
    } else if fs_magic("/sys/fs/cgroup/unified") == Some(CGROUP2_SUPER_MAGIC) {
        "hybrid"
    } else if Path::new("/sys/fs/cgroup/memory").exists()
        || Path::new("/sys/fs/cgroup/pids").exists()
    {
        "v1"
    } else {
        "none"
    }
}

/// The mount holding `path` (the longest mount point that is a prefix of it), from
/// /proc/self/mountinfo, and whether it can reflink.
pub fn fs_info(path: &Path) -> FsInfo {
    let abs = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut best = FsInfo::default();
    if let Ok(mi) = fs::read_to_string("/proc/self/mountinfo") {
        for line in mi.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let Some(sep) = fields.iter().position(|f| *f == "-") else {
                continue;
            };
            let (Some(mp), Some(fstype)) = (fields.get(4), fields.get(sep + 1)) else {
                continue;
            };
            let mp = mp.replace("\\040", " ");
            if abs.starts_with(&mp) && mp.len() >= best.mount_point.len() {
                best = FsInfo {
                    mount_point: mp,
                    fs_type: fstype.to_string(),
                    options: fields.get(5).map(|s| s.to_string()).unwrap_or_default(),
                    reflink: None,
                };
            }
        }
    }
    best.reflink = can_reflink(&abs);
    best
}

/// Tries FICLONE between two scratch files in `dir`; `None` when it cannot even try.
pub fn can_reflink(dir: &Path) -> Option<bool> {
    let dir = if dir.is_dir() {
        dir.to_path_buf()
    } else {
        dir.parent()?.to_path_buf()
    };
    let a = tempfile_in(&dir, "a")?;
    let b = tempfile_in(&dir, "b");
    let result = b
        .as_ref()
        .map(|(_, bf)| rustix::fs::ioctl_ficlone(bf, &a.1).is_ok());
    let _ = fs::remove_file(&a.0);
    if let Some((p, _)) = &b {
        let _ = fs::remove_file(p);
    }
    result
}

fn tempfile_in(dir: &Path, tag: &str) -> Option<(std::path::PathBuf, fs::File)> {
    let p = dir.join(format!(".strata-probe-{tag}-{}", crate::store::unique_id()));
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .ok()?;
    use std::io::Write;
    let _ = f.write_all(&[0u8; 4096]);
    Some((p, f))
}

fn overlay(store_root: &Path) -> OverlayProbe {
    let mut o = OverlayProbe {
        available: crate::driver::kernel_has_fs("overlay"),
        max_layers: crate::driver::overlay::MAX_LAYERS,
        mount_page_layers: crate::driver::overlay::page_layers(store_root),
        ..Default::default()
    };
    if let Ok(entries) = fs::read_dir("/sys/module/overlay/parameters") {
        for e in entries.flatten() {
            if let Some(v) = read_trim(&e.path().display().to_string()) {
                o.params
                    .insert(e.file_name().to_string_lossy().into_owned(), v);
            }
        }
    }
    if o.available && rustix::process::geteuid().is_root() {
        // An fs context accepts or refuses each option: nothing is mounted.
        let dir = if store_root.is_dir() {
            store_root.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        o.lowerdir_plus = lowerdir_plus_mounts(&dir);
        o.userxattr = fs_context_accepts(|fs| rustix::mount::fsconfig_set_flag(fs, "userxattr"));
    }
    o
}

/// Whether overlayfs mounts a stack given by `lowerdir+` (Linux 6.8+): a read-only overlay
/// of two empty lower directories made in `dir`, created and mounted detached (fsmount; never
/// attached anywhere, gone when its fd closes). Setting the key alone proves nothing: before
/// 6.5 overlay parses its options through the legacy fs context, which takes any key and
/// only fails when the mount is created. `None` when it cannot try (no fsopen, no root, no
/// directory to make).
pub fn lowerdir_plus_mounts(dir: &Path) -> Option<bool> {
    use rustix::mount::{
        FsMountFlags, MountAttrFlags, fsconfig_create, fsconfig_set_string, fsmount,
    };
    let fs = rustix::mount::fsopen("overlay", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC).ok()?;
    let scratch = dir.join(format!(".strata-probe-ovl-{}", crate::store::unique_id()));
    let (a, b) = (scratch.join("a"), scratch.join("b"));
    if fs::create_dir_all(&a).is_err() || fs::create_dir_all(&b).is_err() {
        let _ = fs::remove_dir_all(&scratch);
        return None;
    }
    let mounted = fsconfig_set_string(&fs, "source", "strata-probe").is_ok()
        && fsconfig_set_string(&fs, "lowerdir+", a.as_path()).is_ok()
        && fsconfig_set_string(&fs, "lowerdir+", b.as_path()).is_ok()
        && fsconfig_create(&fs).is_ok()
        && fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty()).is_ok();
    drop(fs);
    let _ = fs::remove_dir_all(&scratch);
    Some(mounted)
}

fn fs_context_accepts(
    f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> rustix::io::Result<()>,
) -> Option<bool> {
    use std::os::fd::AsFd;
    let fs = rustix::mount::fsopen("overlay", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC).ok()?;
    Some(f(fs.as_fd()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_describes_this_host() {
        let dir = tempfile::tempdir().unwrap();
        let p = probe(dir.path());
        assert!(!p.kernel.is_empty());
        assert!(p.cores >= 1 && p.memory > 0);
        assert!(["v1", "v2", "hybrid", "none"].contains(&p.cgroup.as_str()));
        assert!(!p.store_fs.fs_type.is_empty(), "{:?}", p.store_fs);
        assert!(p.host_mounts > 0);
        assert!(p.filesystems.iter().any(|f| f == "proc"));
        if p.privileged && p.overlay.available {
            assert!(p.overlay.lowerdir_plus.is_some());
        }
    }

    /// The probe mounts: its answer is whether a two-lower `lowerdir+` overlay really
    /// mounts here, which the legacy mount(2) with the same two layers confirms is possible.
    #[test]
    fn the_lowerdir_plus_probe_mounts_and_leaves_nothing() {
        if !rustix::process::geteuid().is_root() || !crate::driver::kernel_has_fs("overlay") {
            println!(
                "skipped: the_lowerdir_plus_probe_mounts_and_leaves_nothing: needs root and overlay"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let before = fs::read_to_string("/proc/self/mountinfo").unwrap();
        let got = lowerdir_plus_mounts(dir.path());
        assert!(got.is_some());
        // The kernel's own word, asked another way: 6.8 added `lowerdir+`.
        let release = read_trim("/proc/sys/kernel/osrelease").unwrap();
        let mut v = release
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|x| x.parse::<u32>().ok());
        let (major, minor) = (v.next().unwrap(), v.next().unwrap());
        assert_eq!(got, Some((major, minor) >= (6, 8)), "kernel {release}");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "scratch left behind"
        );
        assert_eq!(fs::read_to_string("/proc/self/mountinfo").unwrap(), before);
    }
}
