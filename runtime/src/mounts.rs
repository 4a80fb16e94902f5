//! Mounting a stack: resolve layers, check the target, let the driver mount, record it.
//!
//! A [`Mount`] made here unmounts itself and removes its writable layer when dropped, unless
//! [`Mount::keep`] hands it over to the record under the store root (what `strata mount`
//! does), so another process can later commit or unmount it.
//!
//! Crash safety: the record is written (state `intent`) before the kernel mount and
//! completed after it with the mount's mountinfo identity, so every mount strata makes is
//! findable; while a process uses a mount it holds the flock on its directory, so nothing
//! else unmounts it under a running container or a commit; a mount onto a target is made
//! under that target's lock, so parallel mounts onto one target serialize (the second is
//! refused); and a mount is only ever unmounted when mountinfo still shows the one strata
//! made there (never a mount someone else put on the target since).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::commit::{self, CommitOptions};
use crate::digest::Digest;
use crate::driver::{self, Driver, MountView};
use crate::error::{Error, Result};
use crate::fsutil::Flock;
use crate::mountinfo::{self, MountLine};
use crate::store::{MountRecord, MountSig, RecordState, Store, StoredLayer};

/// A mounted stack.
pub struct Mount {
    store: Store,
    driver: &'static dyn Driver,
    view: MountView,
    record: MountRecord,
    /// This value owns the mount: dropping it unmounts.
    owned: bool,
    /// The lock on the mount's directory, held while this process uses the mount.
    lock: Option<Flock>,
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount")
            .field("driver", &self.driver.name())
            .field("target", &self.view.target)
            .finish()
    }
}

/// Checks `target` is an existing, empty directory and returns its absolute path.
fn check_target(target: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(target).map_err(|e| Error::io("mount target", target, e))?;
    if !meta.is_dir() {
        return Err(Error::Usage(format!(
            "{}: mount target is not a directory",
            target.display()
        )));
    }
    let mut entries =
        std::fs::read_dir(target).map_err(|e| Error::io("read mount target", target, e))?;
    if entries.next().is_some() {
        return Err(Error::Usage(format!(
            "{}: mount target is not empty (the mount would hide its files)",
            target.display()
        )));
    }
    std::fs::canonicalize(target).map_err(|e| Error::io("resolve", target, e))
}

/// Mounts `layers` (lowest first) with `driver` at the empty directory `target`.
pub fn mount(
    store: &Store,
    driver: &'static dyn Driver,
    layers: Vec<StoredLayer>,
    target: &Path,
) -> Result<Mount> {
    mount_as(store, driver, layers, target, None)
}

/// [`mount`] for container `container` (recorded, so gc knows whose it is).
pub fn mount_as(
    store: &Store,
    driver: &'static dyn Driver,
    layers: Vec<StoredLayer>,
    target: &Path,
    container: Option<&str>,
) -> Result<Mount> {
    driver.availability().map_err(|reason| Error::Driver {
        driver: driver.name().into(),
        reason: format!("unavailable: {reason}"),
    })?;
    if layers.is_empty() {
        return Err(Error::Usage(
            "no layers given: a mount needs at least one".into(),
        ));
    }
    if let Some(max) = driver.capabilities().max_layers
        && layers.len() > max
    {
        return Err(Error::Driver {
            driver: driver.name().into(),
            reason: format!("{} layers exceed its limit of {max}", layers.len()),
        });
    }
    let abs = std::fs::canonicalize(target).map_err(|e| Error::io("mount target", target, e))?;
    // From the target check to the completed record, one mount onto this target at a time.
    let _target_lock = Flock::wait(&store.target_lock(&abs))?;
    let target = check_target(target)?;
    if let Some(r) = store.records()?.iter().find(|r| r.target == target) {
        return Err(Error::Usage(format!(
            "{}: already a strata mount (record {}; `strata umount` it first)",
            target.display(),
            store.mount_dir(&r.id).display()
        )));
    }
    let (mut record, lock) = store.new_record(driver.name(), &target, &layers)?;
    record.container = container.map(str::to_string);
    // The intent: written before the kernel mount, so a crash after it is findable.
    if let Err(e) = store.write_record(&record) {
        let _ = store.remove_mount_dir(&record.id);
        return Err(e.no_space("mount", || store.place()));
    }
    let view = MountView {
        layers,
        scratch: store.mount_dir(&record.id),
        target,
    };
    if let Err(e) = driver.mount(&view) {
        let _ = store.remove_mount_dir(&record.id);
        // A copy materialised into ROOT/mounts/ (or a btrfs snapshot) that ran out of room.
        return Err(e.no_space("mount", || store.place()));
    }
    let mut m = Mount {
        store: store.clone(),
        driver,
        view,
        record,
        owned: true,
        lock: Some(lock),
    };
    let lines = mountinfo::read()?;
    let top = mountinfo::top_at(&lines, &m.view.target).ok_or_else(|| Error::Driver {
        driver: driver.name().into(),
        reason: format!(
            "{}: not a mount point after mounting",
            m.view.target.display()
        ),
    })?;
    m.record.mount = Some(MountSig::of(top));
    m.record.state = RecordState::Mounted;
    m.store.write_record(&m.record)?;
    Ok(m)
}

/// Resolves layer references (paths are imported, digests looked up, an image stands for its
/// layers: [`Store::resolve_stack`]) and mounts them.
pub fn mount_refs(
    store: &Store,
    driver_name: &str,
    refs: &[String],
    target: &Path,
) -> Result<Mount> {
    let driver = driver::by_name(driver_name)?;
    let layers = store.resolve_stack(refs)?;
    mount(store, driver, layers, target)
}

/// Opens the recorded mount at `target` (made by this or another process) and takes its
/// lock: refused while another process uses it. Dropping the returned value leaves it
/// mounted; call [`Mount::unmount`] to end it.
pub fn open(store: &Store, target: &Path) -> Result<Mount> {
    let record = store.record_for(target)?;
    let lock = Flock::try_take(&store.mount_dir(&record.id))?.ok_or_else(|| busy(&record))?;
    let mut m = from_record(store, record)?;
    m.lock = Some(lock);
    Ok(m)
}

fn busy(record: &MountRecord) -> Error {
    Error::Usage(format!(
        "{}: in use by a live strata process ({}): left alone",
        record.target.display(),
        match &record.container {
            Some(c) => format!("container {c} is running on it"),
            None => "a commit or unmount of it".into(),
        }
    ))
}

fn from_record(store: &Store, record: MountRecord) -> Result<Mount> {
    let driver = driver::by_name(&record.driver)?;
    let mut layers = Vec::with_capacity(record.layers.len());
    for d in &record.layers {
        layers.push(store.get(d)?);
    }
    Ok(Mount {
        store: store.clone(),
        driver,
        view: MountView {
            layers,
            scratch: store.mount_dir(&record.id),
            target: record.target.clone(),
        },
        record,
        owned: false,
        lock: None,
    })
}

/// Whose the mount on a record's target is.
#[derive(Debug)]
pub enum Ownership {
    /// The topmost mount there is the one strata made.
    Ours,
    /// Nothing strata made is mounted there (any mount there is someone else's, left alone).
    Gone,
    /// strata's mount is there, but under a mount strata did not make.
    Covered(MountLine),
}

/// True when `l` is the mount `rec` describes: its recorded identity, or for an intent
/// record (a crash before the identity was written) a mount that names the record's own
/// directory (overlay's upperdir, a bind mount's root), or a fuse-overlayfs whose daemon
/// serves that directory.
fn is_ours(store: &Store, rec: &MountRecord, l: &MountLine) -> bool {
    if let Some(sig) = &rec.mount {
        return sig.matches(l);
    }
    let dir = format!("/mounts/{}/", rec.id);
    let end = format!("/mounts/{}", rec.id);
    if l.root.contains(&dir) || l.root.ends_with(&end) || l.super_opts.contains(&dir) {
        return true;
    }
    l.fstype.starts_with("fuse") && fuse_daemon(store, rec).is_some()
}

/// The fuse-overlayfs daemon serving the mount of `rec`, if one runs: the pid in its
/// directory, when that process is fuse-overlayfs with the directory in its arguments.
pub fn fuse_daemon(store: &Store, rec: &MountRecord) -> Option<i32> {
    let scratch = store.mount_dir(&rec.id);
    let pid: i32 = std::fs::read_to_string(scratch.join("fuse-overlayfs.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let cmdline = String::from_utf8_lossy(&cmdline);
    (cmdline.contains("fuse-overlayfs") && cmdline.contains(&*scratch.to_string_lossy()))
        .then_some(pid)
}

/// Whose the mount on `rec`'s target is, as this thread's mount namespace shows it.
pub fn ownership(store: &Store, rec: &MountRecord) -> Result<Ownership> {
    let lines = mountinfo::read()?;
    let at: Vec<&MountLine> = lines
        .iter()
        .filter(|l| l.mount_point == rec.target)
        .collect();
    match at.last() {
        None => Ok(Ownership::Gone),
        Some(top) if is_ours(store, rec, top) => Ok(Ownership::Ours),
        Some(top) if at.iter().any(|l| is_ours(store, rec, l)) => {
            Ok(Ownership::Covered((*top).clone()))
        }
        Some(_) => Ok(Ownership::Gone),
    }
}

impl Mount {
    pub fn target(&self) -> &Path {
        &self.view.target
    }

    pub fn view(&self) -> &MountView {
        &self.view
    }

    pub fn driver(&self) -> &'static dyn Driver {
        self.driver
    }

    pub fn record(&self) -> &MountRecord {
        &self.record
    }

    /// Writes the writable layer as an OCI layer tar to `out`; returns its sha256.
    pub fn commit_to(&self, out: &mut dyn Write) -> Result<Digest> {
        self.commit_with(&CommitOptions::default(), out)
    }

    /// [`Mount::commit_to`] leaving out what `opts` excludes.
    pub fn commit_with(&self, opts: &CommitOptions, out: &mut dyn Write) -> Result<Digest> {
        let mut hw = crate::digest::HashingWriter::new(out);
        self.driver.commit(&self.view, opts, &mut hw)?;
        Ok(hw.finish().0)
    }

    /// Writes the commit to `path` (atomically: whole or not at all); returns its sha256.
    pub fn commit_file(&self, path: &Path) -> Result<Digest> {
        self.commit_file_with(&CommitOptions::default(), path)
    }

    /// [`Mount::commit_file`] leaving out what `opts` excludes.
    pub fn commit_file_with(&self, opts: &CommitOptions, path: &Path) -> Result<Digest> {
        commit::write_file("commit", path, |w| self.driver.commit(&self.view, opts, w))
    }

    /// Unmounts and removes the writable layer.
    pub fn unmount(mut self) -> Result<()> {
        self.owned = false;
        self.teardown()
    }

    /// Leaves the stack mounted after this value is gone; the record under the store root
    /// lets `strata umount` end it.
    pub fn keep(mut self) -> MountRecord {
        self.owned = false;
        if self.record.container.take().is_some() {
            // No container holds it any more: an idle mount like `strata mount`'s.
            let _ = self.store.write_record(&self.record);
        }
        self.lock = None;
        self.record.clone()
    }

    /// [`Mount::keep`], recording `exclude` (paths strata made that no commit may take, e.g.
    /// a container's volume mount points) in the mount's record. The mount is kept even when
    /// the record cannot be rewritten; that error is returned beside it.
    pub fn keep_excluding(
        mut self,
        exclude: Vec<crate::model::RelPath>,
    ) -> (MountRecord, Result<()>) {
        let written = if exclude.is_empty() {
            Ok(())
        } else {
            self.record.exclude = exclude;
            self.store.write_record(&self.record)
        };
        (self.keep(), written)
    }

    /// Unmounts (only the mount strata made: one someone put on the target since is left
    /// alone) and removes the writable layer and the record.
    fn teardown(&self) -> Result<()> {
        match ownership(&self.store, &self.record)? {
            Ownership::Ours => match self.driver.unmount(&self.view) {
                Ok(()) => {}
                // Not mounted any more (a reboot, a manual umount): clean up all the same.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
                Err(e) => return Err(e),
            },
            Ownership::Covered(l) => {
                return Err(Error::Usage(format!(
                    "{}: strata's mount is covered by a mount it did not make ({} from {}, mount id {}): unmount that first; nothing was changed",
                    self.record.target.display(),
                    l.fstype,
                    l.source,
                    l.id
                )));
            }
            Ownership::Gone => {
                // The driver's own cleanup (a btrfs snapshot, a fuse daemon), with a target
                // that is surely no mount point: the scratch directory itself.
                let view = MountView {
                    target: self.view.scratch.clone(),
                    ..self.view.clone()
                };
                match self.driver.unmount(&view) {
                    Err(e) if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {
                        return Err(e);
                    }
                    _ => {}
                }
            }
        }
        self.store.remove_mount_dir(&self.record.id)
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.teardown();
        }
    }
}

/// Unmounts the recorded mount at `target` and removes its writable layer (refused while a
/// live process uses it).
pub fn unmount_target(store: &Store, target: &Path) -> Result<MountRecord> {
    let m = open(store, target)?;
    let rec = m.record.clone();
    m.unmount()?;
    Ok(rec)
}

/// Unmounts (if strata's mount is still there) and removes the mount of `rec`, whose lock
/// the caller holds.
pub fn release(store: &Store, rec: MountRecord) -> Result<()> {
    from_record(store, rec)?.unmount()
}

/// What `umount --all` did with one record.
#[derive(Debug)]
pub enum Outcome {
    Unmounted,
    /// A live process uses it (a running container): left alone.
    Busy(String),
    Failed(Error),
}

/// Unmounts every idle recorded mount (after a crash, say) and removes stale imports; a
/// mount a live process holds (a running container, a commit in progress) is left alone.
/// Returns each record with the outcome.
pub fn unmount_all(store: &Store) -> Result<Vec<(MountRecord, Outcome)>> {
    let mut out = Vec::new();
    for rec in store.records()? {
        let Some(lock) = Flock::try_take(&store.mount_dir(&rec.id))? else {
            let why = busy(&rec).to_string();
            out.push((rec, Outcome::Busy(why)));
            continue;
        };
        let result = from_record(store, rec.clone()).and_then(|mut m| {
            m.lock = Some(lock);
            m.unmount()
        });
        out.push((
            rec,
            match result {
                Ok(()) => Outcome::Unmounted,
                Err(e) => Outcome::Failed(e),
            },
        ));
    }
    store.clean_tmp(false)?;
    Ok(out)
}
