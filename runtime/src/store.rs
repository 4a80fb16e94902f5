//! The content-addressed layer store under `--root`, and the records of live mounts.
//!
//! ```text
//! ROOT/layers/sha256/<hex>/fs/            the layer in overlayfs lower form (shared by every mount)
//! ROOT/layers/sha256/<hex>/changes.json   its change set, for the model and the copy driver
//! ROOT/layers/sha256/<hex>/layer.json     diff-id, tar size, entry count, root attributes
//! ROOT/mounts/<id>/mount.json             a mount: driver, target, layers; written before the
//!                                         kernel mount (state "intent"), completed after it
//!                                         ("mounted", with the mount's id, type and source)
//! ROOT/mounts/<id>/...                    the mount's writable layer (driver-specific)
//! ROOT/tmp/                               imports in progress (renamed into place when whole)
//! ROOT/locks/                             lock files (per mount target)
//!
//! Locks are flock(2)s, which the kernel drops when their holder dies: a process using a
//! mount (a running container, a commit, an unmount) holds the lock on `ROOT/mounts/<id>`,
//! an import the lock on its staging directory under `ROOT/tmp`. What nobody holds and is
//! not whole is a crash's leftover (`strata gc`).
//! ROOT/blobs/sha256/<hex>                 image blobs: layer blobs, configs, manifests
//! ROOT/images/<name>/<tag>.json           image tags (see [`crate::image`])
//! ```

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::{Flock, remove_tree};
use crate::layer::{self, open_source};
use crate::model::{Change, ChangeSet, Meta};

/// The store under one root directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// What the store knows of a layer without reading its change set.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar (the OCI diff-id).
    pub diff_id: Digest,
    /// Length of the uncompressed tar in bytes.
    pub tar_size: u64,
    /// Number of tar entries in the change set.
    pub entries: usize,
    /// The attributes of the layer's root entry (`./`), when it has one.
    pub root: Option<Meta>,
    /// The layer has `.wh..wh..opq` at its root: it hides every layer below it.
    #[serde(default)]
    pub root_opaque: bool,
    /// Paths of the whiteout devices in its directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub whiteouts: Vec<String>,
    /// Where it was first imported from.
    pub source: String,
    /// When it was first imported (seconds since the epoch).
    pub imported_at: u64,
}

/// A layer in the store.
#[derive(Clone, Debug)]
pub struct StoredLayer {
    pub info: LayerInfo,
    /// `ROOT/layers/sha256/<hex>`.
    pub dir: PathBuf,
}

impl StoredLayer {
    /// The layer's files in overlayfs lower form.
    pub fn fs(&self) -> PathBuf {
        self.dir.join("fs")
    }

    /// The layer's change set.
    pub fn changes(&self) -> Result<ChangeSet> {
        read_json(&self.dir.join("changes.json"))
    }

    pub fn digest(&self) -> Digest {
        self.info.diff_id
    }
}

/// The result of an import.
#[derive(Clone, Debug)]
pub struct Imported {
    pub layer: StoredLayer,
    /// True when the store already held the layer (nothing new was written).
    pub reused: bool,
}

/// A live mount, recorded so another process can unmount or commit it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MountRecord {
    pub id: String,
    pub driver: String,
    /// The directory that shows the merged view (absolute).
    pub target: PathBuf,
    /// Layers, lowest first.
    pub layers: Vec<Digest>,
    /// Seconds since the epoch.
    pub created: u64,
    /// Paths (relative) strata made in the writable layer that are not the user's: a kept
    /// container's volume mount points. Every commit of the mount leaves them out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<crate::model::RelPath>,
    /// `intent` from before the kernel mount until it is recorded as `mounted`.
    #[serde(default)]
    pub state: RecordState,
    /// The mount as mountinfo showed it right after it was made: only a mount on the target
    /// that still matches is unmounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount: Option<MountSig>,
    /// The container (`strata run`) whose private namespace holds the mount, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The process that made it.
    #[serde(default)]
    pub pid: u32,
}

/// How far a mount got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordState {
    /// Recorded before the kernel mount: a crash may have left it mounted or not.
    Intent,
    /// Mounted and recorded.
    #[default]
    Mounted,
}

/// What identifies the mount strata made on a target (mountinfo's fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSig {
    pub mnt_id: u64,
    pub fstype: String,
    pub source: String,
    pub root: String,
}

impl MountSig {
    pub fn of(l: &crate::mountinfo::MountLine) -> MountSig {
        MountSig {
            mnt_id: l.id,
            fstype: l.fstype.clone(),
            source: l.source.clone(),
            root: l.root.clone(),
        }
    }

    pub fn matches(&self, l: &crate::mountinfo::MountLine) -> bool {
        *self == MountSig::of(l)
    }
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A name no other import or mount in this root is using.
pub fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{:x}{:x}{:x}",
        std::process::id(),
        nanos & 0xffff_ffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Reads a JSON file, naming it in the error.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Record {
        path: path.to_path_buf(),
        reason: format!("unreadable record: {e}"),
    })
}

/// Writes a JSON file atomically (a temporary beside it, then rename). Not fsynced: these are
/// records a crash may lose (`strata umount --all` and the tmp sweep cope), and an fsync per
/// container start would cost more than the start itself.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", unique_id()));
    let write = || -> io::Result<()> {
        let mut f = io::BufWriter::new(fs::File::create(&tmp)?);
        serde_json::to_writer(&mut f, value)?;
        f.write_all(b"\n")?;
        f.flush()?;
        fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("write", path, e)
    })
}

/// Makes a new directory (named by `name`) and locks it. gc may find it between the mkdir
/// and the lock, take it for a dead process's and remove it: then it is made again under a
/// new name, so the caller always holds the lock of a directory that exists.
fn locked_dir(name: impl Fn() -> PathBuf) -> Result<(PathBuf, Flock)> {
    let mut tries = 0;
    loop {
        let p = name();
        fs::create_dir(&p).map_err(|e| Error::io("create", &p, e))?;
        match Flock::wait_existing(&p) {
            Ok(lock) if lock.still_linked() => return Ok((p, lock)),
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) || tries >= 100 => return Err(e),
            _ if tries >= 100 => {
                return Err(Error::io(
                    "create",
                    &p,
                    io::Error::other("removed by another process as soon as made, 100 times"),
                ));
            }
            _ => tries += 1,
        }
    }
}

/// Removes a directory tree when dropped, unless disarmed.
struct TmpGuard(Option<PathBuf>);

impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = remove_tree(&p);
        }
    }
}

impl Store {
    /// Opens (creating if needed) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        for sub in [
            "layers/sha256",
            "mounts",
            "tmp",
            "blobs/sha256",
            "images",
            "locks",
        ] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(|e| Error::io("create store directory", &p, e))?;
        }
        let root = fs::canonicalize(root).map_err(|e| Error::io("resolve", root, e))?;
        Ok(Store { root })
    }

    /// The default root: `/var/lib/strata` as root, else `$XDG_DATA_HOME/strata`.
    pub fn default_root() -> PathBuf {
        if rustix::process::geteuid().is_root() {
            return PathBuf::from("/var/lib/strata");
        }
        if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("strata");
        }
        let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
        PathBuf::from(home).join(".local/share/strata")
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn layer_dir(&self, d: &Digest) -> PathBuf {
        self.root.join("layers/sha256").join(d.hex())
    }

    /// Imports a layer tar (plain, gzip, zstd) or a directory in OCI layer form.
    pub fn import_path(&self, src: &Path) -> Result<Imported> {
        let mut source = open_source(src)?;
        let reader = std::mem::replace(&mut source.reader, Box::new(io::empty()));
        let result = self.import_reader(reader, src);
        let writer = source.finish();
        match (result, writer) {
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
            (Ok(r), Ok(())) => Ok(r),
        }
    }

    /// Imports an uncompressed layer tar read from `r`; `label` names it in errors.
    pub fn import_reader(&self, r: impl Read, label: &Path) -> Result<Imported> {
        self.import_reader_from(r, label, &label.display().to_string())
    }

    /// [`Store::import_reader`] recording `source` as where the layer came from. Out of
    /// room, the error names the file in the store being written, and the store.
    pub fn import_reader_from(&self, r: impl Read, label: &Path, source: &str) -> Result<Imported> {
        self.import_staged(r, label, source)
            .map_err(|e| e.no_space("layer import", || self.place()))
    }

    /// `store ROOT`, for errors that say which store ran out of room.
    pub fn place(&self) -> String {
        format!("store {}", self.root.display())
    }

    fn import_staged(&self, r: impl Read, label: &Path, source: &str) -> Result<Imported> {
        // Held while the import runs: `umount --all` and gc leave a held staging dir alone.
        let (tmp, _staging) = self.staging_dir("import")?;
        let fs_dir = tmp.join("fs");
        fs::create_dir(&fs_dir).map_err(|e| Error::io("create", &fs_dir, e))?;
        let mut guard = TmpGuard(Some(tmp.clone()));
        let imported = layer::import_tar(r, label, &fs_dir)?;
        let final_dir = self.layer_dir(&imported.diff_id);
        if final_dir.join("layer.json").exists() {
            return Ok(Imported {
                layer: self.get(&imported.diff_id)?,
                reused: true,
            });
        }
        let info = LayerInfo {
            diff_id: imported.diff_id,
            tar_size: imported.tar_size,
            entries: imported.changes.changes.len(),
            root: imported.changes.root_meta().cloned(),
            whiteouts: imported.whiteout_devices.clone(),
            root_opaque: imported
                .changes
                .changes
                .iter()
                .any(|c| matches!(c, Change::Opaque { path } if path.is_empty())),
            source: source.to_string(),
            imported_at: now_secs(),
        };
        write_json(&tmp.join("changes.json"), &imported.changes)?;
        write_json(&tmp.join("layer.json"), &info)?;
        match fs::rename(&tmp, &final_dir) {
            Ok(()) => guard.0 = None,
            // Another import of the same layer won the race: its copy is as good as ours.
            Err(e) if final_dir.join("layer.json").exists() => drop(e),
            Err(e) => return Err(Error::io("store layer", &final_dir, e)),
        }
        Ok(Imported {
            layer: StoredLayer {
                info,
                dir: final_dir,
            },
            reused: false,
        })
    }

    /// The stored layer with diff-id `d`.
    pub fn get(&self, d: &Digest) -> Result<StoredLayer> {
        let dir = self.layer_dir(d);
        let meta = dir.join("layer.json");
        if !meta.exists() {
            return Err(Error::UnknownLayer {
                reference: d.to_string(),
                store: self.root.clone(),
            });
        }
        Ok(StoredLayer {
            info: read_json(&meta)?,
            dir,
        })
    }

    /// Finds a stored layer by full digest (`sha256:<hex>` or `<hex>`) or a unique prefix of
    /// at least 12 hex digits.
    pub fn find(&self, reference: &str) -> Result<StoredLayer> {
        let unknown = || Error::UnknownLayer {
            reference: reference.to_string(),
            store: self.root.clone(),
        };
        if let Some(d) = Digest::parse(reference) {
            return self.get(&d);
        }
        let prefix = reference.strip_prefix("sha256:").unwrap_or(reference);
        if prefix.len() < 12 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let matches: Vec<StoredLayer> = self
            .layers()?
            .into_iter()
            .filter(|l| l.info.diff_id.hex().starts_with(prefix))
            .collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().ok_or_else(unknown)?),
            0 => Err(unknown()),
            n => Err(Error::Usage(format!(
                "layer {reference}: prefix matches {n} layers; give more digits"
            ))),
        }
    }

    /// A layer reference from the command line: an existing path is imported; anything else
    /// must name a stored layer.
    pub fn resolve(&self, reference: &str) -> Result<StoredLayer> {
        let p = Path::new(reference);
        if p.exists() {
            return Ok(self.import_path(p)?.layer);
        }
        if reference.contains('/') || reference.ends_with(".tar") || reference.ends_with(".gz") {
            return Err(Error::io(
                "open layer",
                p,
                io::Error::from(io::ErrorKind::NotFound),
            ));
        }
        self.find(reference)
    }

    /// Layer references from the command line, lowest first: each a path (imported as a
    /// layer), an image (`NAME[:TAG]`, `NAME@sha256:...`, a manifest digest or image id: it
    /// stands for its layers, lowest first), or a stored layer's digest. See
    /// [`Store::resolve_stack_image`] for the rule between paths and image names.
    pub fn resolve_stack(&self, refs: &[String]) -> Result<Vec<StoredLayer>> {
        Ok(self.resolve_stack_image(refs)?.0)
    }

    /// [`Store::resolve_stack`], and the image the last reference names (its config says how
    /// a container of it runs).
    ///
    /// The rule between paths and image names: a reference starting with `/`, `./` or `../`
    /// is a path; any other is an image name or a layer digest when the store has one so
    /// named, else a path when one exists. A reference that is both a stored image and an
    /// existing path is refused as ambiguous.
    pub fn resolve_stack_image(
        &self,
        refs: &[String],
    ) -> Result<(Vec<StoredLayer>, Option<crate::image::Image>)> {
        let mut out = Vec::with_capacity(refs.len());
        let mut image = None;
        for r in refs {
            let (layers, img) = self.resolve_one(r)?;
            out.extend(layers);
            image = img;
        }
        Ok((out, image))
    }

    fn resolve_one(
        &self,
        reference: &str,
    ) -> Result<(Vec<StoredLayer>, Option<crate::image::Image>)> {
        let explicit_path = reference.starts_with('/')
            || reference.starts_with("./")
            || reference.starts_with("../")
            || reference == "."
            || reference == "..";
        let exists = Path::new(reference).exists();
        if explicit_path {
            return Ok((vec![self.resolve(reference)?], None));
        }
        if crate::image::reference::looks_like_id(reference) {
            return match self.find(reference) {
                Ok(l) => Ok((vec![l], None)),
                Err(e) => match crate::image::find(self, reference)? {
                    Some(img) => Ok((img.layers(self)?, Some(img))),
                    None if exists => Ok((vec![self.resolve(reference)?], None)),
                    None => Err(e),
                },
            };
        }
        if let Some(img) = crate::image::find(self, reference)? {
            if exists {
                return Err(Error::Usage(format!(
                    "{reference:?} is both an image in the store ({}) and a path here: write ./{reference} for the path, or the image id {} for the image",
                    img.record.reference(),
                    img.record.config
                )));
            }
            return Ok((img.layers(self)?, Some(img)));
        }
        if exists {
            return Ok((vec![self.resolve(reference)?], None));
        }
        let (_, tag) = crate::image::reference::split_tag(reference);
        if (reference.contains('@') || tag.is_some())
            && crate::image::reference::parse(reference).is_ok()
        {
            let first = reference.split('/').next().unwrap_or("");
            let from = if reference.contains('/') && (first.contains('.') || first.contains(':')) {
                format!("docker://{reference}")
            } else {
                format!("docker://HOST[:PORT]/{reference}")
            };
            return Err(Error::Usage(format!(
                "image {reference}: not in the store {} (see `strata image ls`; `strata image pull {from}` brings it from a registry)",
                self.root.display()
            )));
        }
        Ok((vec![self.resolve(reference)?], None))
    }

    /// Every stored layer, by digest.
    pub fn layers(&self) -> Result<Vec<StoredLayer>> {
        let dir = self.root.join("layers/sha256");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))? {
            let ent = ent.map_err(|e| Error::io("read", &dir, e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(d) = Digest::parse(&name) {
                out.push(self.get(&d)?);
            }
        }
        out.sort_by_key(|l| l.info.diff_id);
        Ok(out)
    }

    /// The directory of mount `id`.
    pub fn mount_dir(&self, id: &str) -> PathBuf {
        self.root.join("mounts").join(id)
    }

    /// Records a live mount.
    pub fn write_record(&self, rec: &MountRecord) -> Result<()> {
        write_json(&self.mount_dir(&rec.id).join("mount.json"), rec)
    }

    /// Every recorded mount.
    pub fn records(&self) -> Result<Vec<MountRecord>> {
        let dir = self.root.join("mounts");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))? {
            let ent = ent.map_err(|e| Error::io("read", &dir, e))?;
            let p = ent.path().join("mount.json");
            match read_json(&p) {
                Ok(r) => out.push(r),
                // No record (yet), or removed meanwhile by an unmount in another process.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a: &MountRecord, b| a.target.cmp(&b.target));
        Ok(out)
    }

    /// The record of the mount whose target is `target`.
    pub fn record_for(&self, target: &Path) -> Result<MountRecord> {
        let abs = fs::canonicalize(target).map_err(|e| Error::io("resolve", target, e))?;
        self.records()?
            .into_iter()
            .find(|r| r.target == abs)
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: not a strata mount under {} (see `strata umount --all`)",
                    target.display(),
                    self.root.display()
                ))
            })
    }

    /// A new mount record (its directory is created and locked; the record is written by the
    /// caller).
    pub fn new_record(
        &self,
        driver: &str,
        target: &Path,
        layers: &[StoredLayer],
    ) -> Result<(MountRecord, Flock)> {
        let (dir, lock) = locked_dir(|| self.mount_dir(&unique_id()))?;
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let rec = MountRecord {
            id,
            driver: driver.to_string(),
            target: target.to_path_buf(),
            layers: layers.iter().map(|l| l.info.diff_id).collect(),
            created: now_secs(),
            exclude: Vec::new(),
            state: RecordState::Intent,
            mount: None,
            container: None,
            pid: std::process::id(),
        };
        Ok((rec, lock))
    }

    /// Removes a mount's directory (its writable layer) and record.
    pub fn remove_mount_dir(&self, id: &str) -> Result<()> {
        let dir = self.mount_dir(id);
        if dir.exists() {
            remove_tree(&dir)
        } else {
            Ok(())
        }
    }

    /// Removes what crashed imports left in `ROOT/tmp`: every entry no live process holds
    /// the lock of. Returns the paths removed (with `dry_run`, that would be).
    pub fn clean_tmp(&self, dry_run: bool) -> Result<Vec<PathBuf>> {
        let dir = self.root.join("tmp");
        let mut out = Vec::new();
        for ent in fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))? {
            let ent = ent.map_err(|e| Error::io("read", &dir, e))?;
            let p = ent.path();
            let Some(_held) = Flock::try_take(&p)? else {
                continue;
            };
            if !dry_run {
                remove_tree(&p)?;
            }
            out.push(p);
        }
        Ok(out)
    }

    /// The lock file for mount target `target` (taken while a mount onto it is made).
    pub fn target_lock(&self, target: &Path) -> PathBuf {
        let d = Digest::of(target.as_os_str().as_encoded_bytes());
        self.root
            .join("locks")
            .join(format!("target-{}", &d.hex()[..32]))
    }

    /// A staging directory under `ROOT/tmp` named `prefix-<unique>`, locked while the
    /// returned lock lives (a crashed holder's is removed by `strata gc`).
    pub fn staging_dir(&self, prefix: &str) -> Result<(PathBuf, Flock)> {
        let tmp = self.root.join("tmp");
        locked_dir(|| tmp.join(format!("{prefix}-{}", unique_id())))
    }
}
