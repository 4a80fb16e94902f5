//! cgroups for a container: v2 where the needed controllers live in the unified hierarchy,
//! v1 otherwise (a v1/v2 hybrid keeps memory and pids in v1). Create, write the limits,
//! attach the child before exec, read OOM kills and pids-limit hits, remove.
//!
//! Where the cgroup goes:
//! - v2: `/sys/fs/cgroup/strata-<id>` (a direct child of the root: the root is the one cgroup
//!   that may hold processes and delegate controllers at once; the controllers are enabled in
//!   the root's `cgroup.subtree_control` when missing);
//! - v1: `<controller mount>/<this process's cgroup>/strata-<id>` for each controller asked
//!   for, so the container stays inside whatever limits strata itself runs under.
//!
//! Attachment: the parent opens each `cgroup.procs` (O_CLOEXEC) and the child writes `0`
//! (itself) into it as its first step, so the limits hold from before the first mount of the
//! container to its last process, and no cgroup fd survives exec.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};

/// statfs magic of cgroup2 and of a v1 cgroup hierarchy.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
/// Where cgroup filesystems are mounted on every distribution strata knows.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Limits asked for a container.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Bytes of memory (swap is not allowed on top).
    pub memory: Option<u64>,
    /// Processes and threads.
    pub pids: Option<u64>,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.memory.is_none() && self.pids.is_none()
    }
}

/// Parses a byte count: digits with an optional k, m, g or t suffix (powers of 1024),
/// optionally followed by `b`: `67108864`, `64m`, `64mb`, `1g`.
pub fn parse_bytes(s: &str) -> Result<u64> {
    let bad = || {
        Error::Usage(format!(
            "invalid --memory {s:?}: expected BYTES, a positive integer with an optional k, m, g or t suffix (powers of 1024)"
        ))
    };
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (digits, shift) = match t.as_bytes().last() {
        Some(b'k') => (&t[..t.len() - 1], 10),
        Some(b'm') => (&t[..t.len() - 1], 20),
        Some(b'g') => (&t[..t.len() - 1], 30),
        Some(b't') => (&t[..t.len() - 1], 40),
        _ => (t, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let v = n
        .checked_shl(shift)
        .filter(|v| v >> shift == n)
        .ok_or_else(bad)?;
    if v == 0 {
        return Err(bad());
    }
    Ok(v)
}

/// Which cgroup version holds the controllers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
}

/// Where new cgroups are made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// A cgroup2 hierarchy mounted at this directory.
    V2 { root: PathBuf },
    /// v1 hierarchies: the mount directory of each controller that is needed.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
}

fn fs_magic(p: &Path) -> Option<i64> {
    // f_type is i64 on x86_64 but narrower or unsigned elsewhere.
    #[allow(clippy::unnecessary_cast)]
    rustix::fs::statfs(p).ok().map(|s| s.f_type as i64)
}

fn read(p: &Path) -> Result<String> {
    fs::read_to_string(p).map_err(|e| Error::io("read", p, e))
}

fn write(p: &Path, value: &str) -> Result<()> {
    fs::write(p, value).map_err(|e| Error::io("write cgroup file", p, e))
}

/// True when the cgroup2 directory `root` offers `ctrl` to its children.
fn v2_has(root: &Path, ctrl: &str) -> bool {
    fs::read_to_string(root.join("cgroup.controllers"))
        .map(|s| s.split_whitespace().any(|c| c == ctrl))
        .unwrap_or(false)
}

/// Finds where the controllers `limits` need live: pure v2, v2 on a hybrid host when the
/// unified hierarchy has them all, else v1.
pub fn detect(limits: &Limits) -> Result<Layout> {
    let root = Path::new(CGROUP_ROOT);
    let needed: Vec<&str> = [limits.memory.map(|_| "memory"), limits.pids.map(|_| "pids")]
        .into_iter()
        .flatten()
        .collect();
    if fs_magic(root) == Some(CGROUP2_SUPER_MAGIC) {
        return Ok(Layout::V2 {
            root: root.to_path_buf(),
        });
    }
    let unified = root.join("unified");
    if fs_magic(&unified) == Some(CGROUP2_SUPER_MAGIC) && needed.iter().all(|c| v2_has(&unified, c))
    {
        return Ok(Layout::V2 { root: unified });
    }
    let v1 = |ctrl: &str| -> Result<Option<PathBuf>> {
        if !needed.contains(&ctrl) {
            return Ok(None);
        }
        let dir = root.join(ctrl);
        if fs_magic(&dir) == Some(CGROUP_SUPER_MAGIC) {
            Ok(Some(dir))
        } else {
            Err(Error::Usage(format!(
                "cgroups: no {ctrl} controller here (neither in a cgroup2 hierarchy at {} nor a v1 hierarchy at {}); --{} cannot be enforced",
                root.display(),
                dir.display(),
                if ctrl == "memory" { "memory" } else { "pids" }
            )))
        }
    };
    Ok(Layout::V1 {
        memory: v1("memory")?,
        pids: v1("pids")?,
    })
}

/// This process's cgroup path in the v1 hierarchy of `ctrl` (from /proc/self/cgroup).
fn own_v1_path(ctrl: &str) -> Result<String> {
    let p = Path::new("/proc/self/cgroup");
    let text = read(p)?;
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls
                .split(',')
                .any(|c| c == ctrl)
                .then(|| path.to_string())
        })
        .next()
        .ok_or_else(|| Error::Record {
            path: p.to_path_buf(),
            reason: format!("this process is in no v1 {ctrl} cgroup"),
        })
}

/// One container's cgroup (one directory on v2, one per controller on v1). Dropping it
/// removes it (killing what is left inside).
#[derive(Debug)]
pub struct Cgroup {
    pub version: Version,
    /// The directories made, in creation order.
    dirs: Vec<PathBuf>,
    memory_dir: Option<PathBuf>,
    pids_dir: Option<PathBuf>,
    removed: bool,
}

impl Cgroup {
    /// Makes the cgroup `strata-<id>` under `layout` and writes `limits`. On error nothing
    /// is left behind.
    pub fn create(layout: &Layout, id: &str, limits: &Limits) -> Result<Cgroup> {
        let name = format!("strata-{id}");
        let mut cg = Cgroup {
            version: match layout {
                Layout::V2 { .. } => Version::V2,
                Layout::V1 { .. } => Version::V1,
            },
            dirs: Vec::new(),
            memory_dir: None,
            pids_dir: None,
            removed: false,
        };
        // On error `cg` is dropped here, which removes what was made.
        cg.make(layout, &name, limits)?;
        Ok(cg)
    }

    fn mkdir(&mut self, dir: PathBuf) -> Result<PathBuf> {
        fs::create_dir(&dir).map_err(|e| Error::io("create cgroup", &dir, e))?;
        self.dirs.push(dir.clone());
        Ok(dir)
    }

    fn make(&mut self, layout: &Layout, name: &str, limits: &Limits) -> Result<()> {
        match layout {
            Layout::V2 { root } => {
                for (ctrl, wanted) in [("memory", limits.memory), ("pids", limits.pids)] {
                    if wanted.is_some() {
                        enable_v2(root, ctrl)?;
                    }
                }
                let dir = self.mkdir(root.join(name))?;
                if let Some(m) = limits.memory {
                    write(&dir.join("memory.max"), &m.to_string())?;
                    // Swap would let a memory hog page out instead of hitting the limit.
                    let swap = dir.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0")?;
                    }
                    self.memory_dir = Some(dir.clone());
                }
                if let Some(p) = limits.pids {
                    write(&dir.join("pids.max"), &p.to_string())?;
                    self.pids_dir = Some(dir.clone());
                }
            }
            Layout::V1 { memory, pids } => {
                if let (Some(mnt), Some(m)) = (memory, limits.memory) {
                    let own = own_v1_path("memory")?;
                    let dir = self.mkdir(mnt.join(own.trim_start_matches('/')).join(name))?;
                    write(&dir.join("memory.limit_in_bytes"), &m.to_string())?;
                    // Memory+swap, when swap accounting exists: no paging out past the limit.
                    let memsw = dir.join("memory.memsw.limit_in_bytes");
                    if memsw.exists() {
                        write(&memsw, &m.to_string())?;
                    }
                    self.memory_dir = Some(dir);
                }
                if let (Some(mnt), Some(p)) = (pids, limits.pids) {
                    let own = own_v1_path("pids")?;
                    let dir = self.mkdir(mnt.join(own.trim_start_matches('/')).join(name))?;
                    write(&dir.join("pids.max"), &p.to_string())?;
                    self.pids_dir = Some(dir);
                }
            }
        }
        Ok(())
    }

    /// The cgroup directories (one on v2).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Each `cgroup.procs`, opened for writing and close-on-exec: the child writes `0` into
    /// each to join before it execs.
    pub fn procs_files(&self) -> Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map(OwnedFd::from)
                    .map_err(|e| Error::io("open", &p, e))
            })
            .collect()
    }

    /// How many processes the OOM killer ended in this cgroup (v2 `memory.events`, v1
    /// `memory.oom_control`, both `oom_kill N`).
    pub fn oom_kills(&self) -> Result<u64> {
        let Some(d) = &self.memory_dir else {
            return Ok(0);
        };
        let file = match self.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        Ok(counter(&read(&d.join(file))?, "oom_kill"))
    }

    /// How many forks the pids limit refused (`pids.events`, `max N`, both versions).
    pub fn pids_limit_hits(&self) -> Result<u64> {
        let Some(d) = &self.pids_dir else {
            return Ok(0);
        };
        let p = d.join("pids.events");
        match fs::read_to_string(&p) {
            Ok(s) => Ok(counter(&s, "max")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("read", p, e)),
        }
    }

    /// Removes the cgroup: processes still inside (none, after a pid namespace's init has
    /// been reaped) are killed first; rmdir is retried while the kernel finishes them off.
    pub fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_dirs(&self.dirs)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_dirs(&self.dirs);
        }
    }
}

fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Makes `ctrl` available to the children of the cgroup2 directory `root`.
fn enable_v2(root: &Path, ctrl: &str) -> Result<()> {
    let sub = root.join("cgroup.subtree_control");
    if read(&sub)?.split_whitespace().any(|c| c == ctrl) {
        return Ok(());
    }
    if !v2_has(root, ctrl) {
        return Err(Error::Usage(format!(
            "cgroups: the cgroup2 hierarchy at {} has no {ctrl} controller",
            root.display()
        )));
    }
    fs::write(&sub, format!("+{ctrl}")).map_err(|e| {
        Error::io(
            "enable controller (processes in this cgroup? run strata from a delegated cgroup)",
            &sub,
            e,
        )
    })
}

fn remove_dirs(dirs: &[PathBuf]) -> Result<()> {
    let mut first_err = None;
    for d in dirs.iter().rev() {
        if let Err(e) = remove_one(d) {
            first_err.get_or_insert(e);
        }
    }
    first_err.map_or(Ok(()), Err)
}

fn remove_one(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut killed = false;
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                if !killed {
                    kill_all(dir);
                    killed = true;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => return Err(Error::io("remove cgroup", dir, e)),
        }
    }
}

/// Kills every process left in the cgroup at `dir` (v2 `cgroup.kill` when present, else one
/// by one from `cgroup.procs`).
fn kill_all(dir: &Path) {
    if fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: plain kill(2); a pid that is already gone gives ESRCH, which is fine.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_byte_counts() {
        assert_eq!(parse_bytes("4096").unwrap(), 4096);
        assert_eq!(parse_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("64M").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        for bad in [
            "",
            "m",
            "12x",
            "-5",
            "1.5g",
            "0",
            "99999999999999999999",
            "16777216t",
        ] {
            let e = parse_bytes(bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --memory"), "{bad}: {e}");
        }
    }

    #[test]
    fn reads_counters() {
        let ev = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(counter(ev, "oom_kill"), 1);
        assert_eq!(counter(ev, "max"), 3);
        assert_eq!(
            counter("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n", "oom_kill"),
            2
        );
        assert_eq!(counter("", "max"), 0);
    }
}
