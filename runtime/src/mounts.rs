//! Mounting a stack: resolve layers, check the target, let the driver mount, record it.
//!
//! A [`Mount`] made here unmounts itself and removes its writable layer when dropped, unless
//! [`Mount::keep`] hands it over to the record under the store root (what `strata mount`
//! does), so another process can later commit or unmount it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::commit::{self, CommitOptions};
use crate::digest::Digest;
use crate::driver::{self, Driver, MountView};
use crate::error::{Error, Result};
use crate::store::{MountRecord, Store, StoredLayer};

/// A mounted stack.
pub struct Mount {
    store: Store,
    driver: &'static dyn Driver,
    view: MountView,
    record: MountRecord,
    /// This value owns the mount: dropping it unmounts.
    owned: bool,
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
    let target = check_target(target)?;
    if store.records()?.iter().any(|r| r.target == target) {
        return Err(Error::Usage(format!(
            "{}: already a strata mount",
            target.display()
        )));
    }
    let record = store.new_record(driver.name(), &target, &layers)?;
    let view = MountView {
        layers,
        scratch: store.mount_dir(&record.id),
        target,
    };
    if let Err(e) = driver.mount(&view) {
        let _ = store.remove_mount_dir(&record.id);
        return Err(e);
    }
    let m = Mount {
        store: store.clone(),
        driver,
        view,
        record,
        owned: true,
    };
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

/// Opens the recorded mount at `target` (made by this or another process). Dropping the
/// returned value leaves it mounted; call [`Mount::unmount`] to end it.
pub fn open(store: &Store, target: &Path) -> Result<Mount> {
    let record = store.record_for(target)?;
    from_record(store, record)
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
    })
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
        commit::write_file(path, |w| self.driver.commit(&self.view, opts, w))
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

    fn teardown(&self) -> Result<()> {
        match self.driver.unmount(&self.view) {
            Ok(()) => {}
            // Not mounted any more (a reboot, a manual umount): clean up all the same.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
            Err(e) => return Err(e),
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

/// Unmounts the recorded mount at `target` and removes its writable layer.
pub fn unmount_target(store: &Store, target: &Path) -> Result<MountRecord> {
    let m = open(store, target)?;
    let rec = m.record.clone();
    m.unmount()?;
    Ok(rec)
}

/// Unmounts every recorded mount (after a crash, say) and removes stale imports.
/// Returns each record with the outcome.
pub fn unmount_all(store: &Store) -> Result<Vec<(MountRecord, Result<()>)>> {
    let mut out = Vec::new();
    for rec in store.records()? {
        let result = from_record(store, rec.clone()).and_then(|m| m.unmount());
        out.push((rec, result));
    }
    store.clean_tmp()?;
    Ok(out)
}
