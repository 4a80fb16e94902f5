//! `strata gc`: finds and removes what a crash left in a store, never what a live process
//! holds (a held flock says a process is alive; the kernel drops it when the process dies).
//!
//! - mount records no live process holds that are not idle mounts: intent records (a crash
//!   around the kernel mount), mounts of containers whose `strata run` died (the fuse-overlayfs
//!   daemon such a run leaves is ended), records whose mount is gone (a reboot, a manual
//!   umount); the mount is unmounted only when it is the one strata made;
//! - mount directories without a record, staging directories of dead imports (`ROOT/tmp`);
//! - btrfs subvolumes no record names: a mount's snapshot whose mount directory is gone, a
//!   chain subvolume without its record (`ROOT/btrfs`, when it is on btrfs);
//! - empty container root directories (`ROOT/containers/<id>`) no record names;
//! - cgroups `strata-<id>` (v2 and v1) of this store's containers whose run died (processes
//!   still in one are killed).
//!
//! An idle mount (`strata mount`, `strata run --keep`) is not garbage: `strata umount` ends it.

use std::fs;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fsutil::Flock;
use crate::mounts::{self, Ownership};
use crate::store::{RecordState, Store};

/// One leftover and what was done with it.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// `mount`, `mount-dir`, `staging`, `container-dir`, `cgroup`, `fuse-daemon`,
    /// `btrfs-subvolume`, `btrfs-temp`, `layer`.
    pub kind: &'static str,
    pub path: PathBuf,
    /// Why it is garbage.
    pub reason: String,
    /// Removed (false with `--dry-run`, or when removing failed: see `error`).
    pub removed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a gc run found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Mounts a live process holds (left alone).
    pub live: usize,
    /// Idle mounts (left alone).
    pub idle: usize,
}

impl Report {
    fn push(&mut self, kind: &'static str, path: PathBuf, reason: String, r: Option<Result<()>>) {
        let (removed, error) = match r {
            None => (false, None),
            Some(Ok(())) => (true, None),
            Some(Err(e)) => (false, Some(e.to_string())),
        };
        self.findings.push(Finding {
            kind,
            path,
            reason,
            removed,
            error,
        });
    }

    /// Findings that could not be removed.
    pub fn errors(&self) -> usize {
        self.findings.iter().filter(|f| f.error.is_some()).count()
    }
}

/// Collects (with `dry_run`, only lists) what crashes left in `store`.
pub fn gc(store: &Store, dry_run: bool) -> Result<Report> {
    let mut rep = Report::default();
    let act = |f: &dyn Fn() -> Result<()>| if dry_run { None } else { Some(f()) };
    let records = store.records()?;
    let mut live_containers = Vec::new();
    // Containers of this store whose run is dead: their cgroups are garbage too.
    let mut dead_containers: Vec<String> = Vec::new();
    // Targets of the records that stay (live and idle mounts).
    let mut kept: Vec<PathBuf> = Vec::new();
    for rec in &records {
        let dir = store.mount_dir(&rec.id);
        let Some(lock) = Flock::try_take(&dir)? else {
            kept.push(rec.target.clone());
            rep.live += 1;
            live_containers.extend(rec.container.clone());
            continue;
        };
        dead_containers.extend(rec.container.clone());
        let reason = if rec.state == RecordState::Intent {
            "intent record of a mount whose process died".to_string()
        } else if let Some(c) = &rec.container {
            format!("mount of container {c}, whose strata run died")
        } else {
            match mounts::ownership(store, rec)? {
                Ownership::Gone => "recorded mount no longer mounted".to_string(),
                Ownership::Ours | Ownership::Covered(_) => {
                    kept.push(rec.target.clone());
                    rep.idle += 1;
                    continue;
                }
            }
        };
        // A fuse-overlayfs daemon of this mount: read before the directory (and the pid
        // file in it) goes; it exits by itself when its mount is unmounted here, but a dead
        // run's mount lives in a namespace only the daemon still holds.
        let daemon = mounts::fuse_daemon(store, rec);
        let r = act(&|| mounts::release(store, rec.clone()));
        drop(lock);
        rep.push("mount", rec.target.clone(), reason, r);
        if let Some(pid) = daemon {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if alive_daemon(pid) {
                let r = act(&|| kill(pid));
                rep.push(
                    "fuse-daemon",
                    PathBuf::from(format!("/proc/{pid}")),
                    format!("fuse-overlayfs daemon of {}", rec.target.display()),
                    r,
                );
            }
        }
    }
    // Mount directories without a record: a crash before the intent record was written.
    let mdir = store.root().join("mounts");
    for ent in fs::read_dir(&mdir).map_err(|e| Error::io("read", &mdir, e))? {
        let p = ent.map_err(|e| Error::io("read", &mdir, e))?.path();
        if p.join("mount.json").exists() {
            continue;
        }
        let Some(_held) = Flock::try_take(&p)? else {
            continue;
        };
        let r = act(&|| crate::fsutil::remove_tree(&p));
        rep.push("mount-dir", p, "mount directory without a record".into(), r);
    }
    // btrfs subvolumes no record names (after the records: a dead mount's snapshot went
    // with its mount above).
    crate::driver::btrfs::gc_leftovers(store.root(), dry_run, &mut |kind, p, why, r| {
        rep.push(kind, p, why.into(), r)
    })?;
    // Removed (or listed) under their lock, so an import that locks its new directory
    // meanwhile never loses it.
    for p in store.clean_tmp(dry_run)? {
        let r = (!dry_run).then_some(Ok(()));
        rep.push("staging", p, "staging directory of a dead import".into(), r);
    }
    let cdir = store.root().join("containers");
    if let Ok(rd) = fs::read_dir(&cdir) {
        for ent in rd.flatten() {
            let p = ent.path();
            dead_containers.push(ent.file_name().to_string_lossy().into_owned());
            let empty = || fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
            // A dead run's record goes above (in a dry run: would go), and its directory
            // with it; only a kept mount's target stays.
            if !empty() || kept.contains(&p) {
                continue;
            }
            // A running container holds the lock of its directory (whose mount lives in the
            // run's own namespace: the directory looks empty from here).
            let Some(_held) = Flock::try_take(&p)? else {
                continue;
            };
            if !empty() {
                continue;
            }
            let r = act(&|| fs::remove_dir(&p).map_err(|e| Error::io("remove", &p, e)));
            rep.push(
                "container-dir",
                p,
                "empty root directory of an ended container".into(),
                r,
            );
        }
    }
    // Only cgroups of this store's containers: another store's run may be between making
    // its cgroup and moving its child in.
    for cg in strata_cgroups() {
        let name = cg
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let id = name.trim_start_matches("strata-");
        if live_containers.iter().any(|c| c == id) || !dead_containers.iter().any(|c| c == id) {
            continue;
        }
        let procs = fs::read_to_string(cg.join("cgroup.procs")).unwrap_or_default();
        let reason = if procs.trim().is_empty() {
            "cgroup of a dead run".to_string()
        } else {
            format!(
                "cgroup of a dead run, processes {} killed",
                procs.split_whitespace().collect::<Vec<_>>().join(" ")
            )
        };
        let r = act(&|| {
            for pid in procs
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok())
            {
                // SAFETY: kill(2) of a process in the cgroup of this store's dead run.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let mut tries = 0;
            loop {
                match fs::remove_dir(&cg) {
                    // Killed processes leave the cgroup when they are reaped.
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    r => return r.map_err(|e| Error::io("remove cgroup", &cg, e)),
                }
            }
        });
        rep.push("cgroup", cg, reason, r);
    }
    Ok(rep)
}

/// The store's own consistency: every record names stored layers, every layer directory is
/// whole. Each problem is a finding (never removed here).
pub fn check(store: &Store) -> Result<Vec<Finding>> {
    let mut out = Vec::new();
    let ldir = store.root().join("layers/sha256");
    for ent in fs::read_dir(&ldir).map_err(|e| Error::io("read", &ldir, e))? {
        let p = ent.map_err(|e| Error::io("read", &ldir, e))?.path();
        if !p.join("layer.json").exists() || !p.join("fs").is_dir() {
            out.push(Finding {
                kind: "layer",
                path: p,
                reason: "layer directory without layer.json or fs/".into(),
                removed: false,
                error: None,
            });
        }
    }
    for rec in store.records()? {
        for d in &rec.layers {
            if store.get(d).is_err() {
                out.push(Finding {
                    kind: "mount",
                    path: store.mount_dir(&rec.id),
                    reason: format!("record names layer {d}, not in the store"),
                    removed: false,
                    error: None,
                });
            }
        }
    }
    Ok(out)
}

/// True when `pid` is still a fuse-overlayfs process (not yet exited, not reused).
fn alive_daemon(pid: i32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains("fuse-overlayfs"))
}

fn kill(pid: i32) -> Result<()> {
    // SAFETY: kill(2) of a process checked to be the daemon of this mount.
    if unsafe { libc::kill(pid, libc::SIGKILL) } < 0 {
        return Err(Error::io(
            "kill fuse-overlayfs",
            format!("/proc/{pid}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Every `strata-<id>` cgroup: v2 under the root, v1 anywhere up to six levels down in
/// each controller's hierarchy (below this process's cgroup there).
fn strata_cgroups() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![(PathBuf::from("/sys/fs/cgroup"), 0)];
    while let Some((d, depth)) = dirs.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for ent in rd.flatten() {
            if !ent.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = ent.path();
            if ent.file_name().to_string_lossy().starts_with("strata-") {
                out.push(p);
            } else if depth < 6 {
                dirs.push((p, depth + 1));
            }
        }
    }
    out.sort();
    out
}
