//! The model checked against independent implementations of OCI layer application: generated
//! layer stacks, written as real layer tars, applied by `umoci unpack` (a Go implementation)
//! and mounted by kernel overlayfs, each compared with the model's tree.
//!
//! - [`IStack`]: a generated stack, every entry kind included (root entries, hard links to any
//!   non-directory, `.wh.`-named directories and entries under them), made valid for import and
//!   written in the order the image-spec asks producers for;
//! - [`stack`]: the proptest strategy;
//! - [`Lab`]: a private mount namespace with a tmpfs holding a layer store and scratch space;
//! - [`umoci_view`], [`overlay_view`]: what each implementation shows for a stack;
//! - [`umoci_deviations`]: the documented ways umoci differs from the model, each narrow,
//!   named and with its source, so that every other difference is a failure.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use strata_runtime::driver;
use strata_runtime::image::layout::LayoutWriter;
use strata_runtime::image::oci::{self, Config, Descriptor, Manifest, RootFs};
use strata_runtime::model::{
    self, ChangeSet, CompareOptions, Entry, EntryKind, FileData, Meta, Mismatch, Timespec, Tree,
    join, parent_and_name,
};
use strata_runtime::mounts;
use strata_runtime::sandbox;
use strata_runtime::store::{Store, StoredLayer};
use strata_runtime::tarw::TarWriter;

use crate::stack::{Content, GenMeta};
use crate::strategy::CAP_NET_BIND;

/// One generated entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IItem {
    /// The layer's root entry `./`.
    Root {
        meta: GenMeta,
    },
    File {
        path: String,
        content: Content,
        meta: GenMeta,
    },
    Dir {
        path: String,
        meta: GenMeta,
    },
    Symlink {
        path: String,
        target: String,
        meta: GenMeta,
    },
    /// A hard link to the `nth` earlier non-directory of the layer (modulo their number): a
    /// file, symlink, fifo or device.
    HardLink {
        path: String,
        nth: usize,
    },
    Fifo {
        path: String,
        meta: GenMeta,
    },
    CharDev {
        path: String,
        minor: u32,
        meta: GenMeta,
    },
    /// `.wh.NAME` (a regular file): deletes `path` below.
    Whiteout {
        path: String,
    },
    /// `DIR/.wh..wh..opq`.
    Opaque {
        path: String,
    },
    /// A *directory* entry `.wh.NAME/` at `path`'s parent: read as a whiteout of `path`, as
    /// containerd and moby read it (issue 11, item 4).
    WhDir {
        path: String,
        meta: GenMeta,
    },
    /// A file `DIR/.wh.NAME/file`: an entry under a `.wh.` component, which no image root can
    /// hold (issue 11, item 4: refused at import).
    UnderWh {
        dir: String,
        name: String,
        file: String,
    },
}

impl IItem {
    /// The tar name (without a trailing slash), `""` for the root.
    fn tar_name(&self) -> String {
        match self {
            IItem::Root { .. } => String::new(),
            IItem::File { path, .. }
            | IItem::Dir { path, .. }
            | IItem::Symlink { path, .. }
            | IItem::HardLink { path, .. }
            | IItem::Fifo { path, .. }
            | IItem::CharDev { path, .. } => path.clone(),
            IItem::Whiteout { path } | IItem::WhDir { path, .. } => {
                let (d, n) = parent_and_name(path).unwrap_or(("", path));
                join(d, &format!(".wh.{n}"))
            }
            IItem::Opaque { path } => join(path, ".wh..wh..opq"),
            IItem::UnderWh { dir, name, file } => join(&join(dir, &format!(".wh.{name}")), file),
        }
    }
}

/// What a layer holds at a path while it is made valid (as the import checks it).
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Dir,
    Implied,
    Symlink,
    Other,
}

/// A generated stack, lowest layer first; valid for import by construction of [`IStack::new`].
#[derive(Clone, PartialEq, Eq)]
pub struct IStack {
    pub layers: Vec<Vec<IItem>>,
}

/// Compares two tar names in the order the image-spec asks producers for: a directory before
/// what is in it, and in each directory whiteouts (and the opaque marker) before their
/// siblings ("Implementations SHOULD generate layers such that the whiteout files appear
/// before sibling directory entries", layer.md, Whiteouts).
fn producer_order(a: &str, b: &str) -> std::cmp::Ordering {
    let ca: Vec<&str> = a.split('/').filter(|c| !c.is_empty()).collect();
    let cb: Vec<&str> = b.split('/').filter(|c| !c.is_empty()).collect();
    for (x, y) in ca.iter().zip(&cb) {
        if x != y {
            let (wx, wy) = (x.starts_with(".wh."), y.starts_with(".wh."));
            return wy.cmp(&wx).then(x.cmp(y));
        }
    }
    ca.len().cmp(&cb.len())
}

impl IStack {
    /// Orders each layer as a producer would (hard links last, after their targets) and drops
    /// what a tar writer could never have produced or the import refuses for another reason
    /// than the rule under test: a tar name twice, an entry under a symlink or non-directory
    /// of the same layer, a hard link with no non-directory before it.
    pub fn new(raw: Vec<Vec<IItem>>) -> IStack {
        IStack {
            layers: raw.into_iter().map(valid_layer).collect(),
        }
    }

    /// Each layer as an uncompressed layer tar.
    pub fn tars(&self) -> Vec<Vec<u8>> {
        self.layers.iter().map(|l| layer_tar(l)).collect()
    }

    /// True when some layer has an entry under a `.wh.` component.
    pub fn has_entry_under_whiteout_name(&self) -> bool {
        self.layers
            .iter()
            .flatten()
            .any(|i| matches!(i, IItem::UnderWh { .. }))
    }

    /// True when some layer has a root entry `./`.
    pub fn has_root_entry(&self) -> bool {
        self.layers
            .iter()
            .flatten()
            .any(|i| matches!(i, IItem::Root { .. }))
    }
}

fn ancestors(p: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = p;
    while let Some((parent, _)) = parent_and_name(cur) {
        if parent.is_empty() {
            break;
        }
        out.push(parent.to_string());
        cur = parent;
    }
    out
}

fn valid_layer(items: Vec<IItem>) -> Vec<IItem> {
    let (mut links, mut rest): (Vec<IItem>, Vec<IItem>) = items
        .into_iter()
        .partition(|i| matches!(i, IItem::HardLink { .. }));
    rest.sort_by(|a, b| producer_order(&a.tar_name(), &b.tar_name()));
    rest.append(&mut links);
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut names: BTreeSet<String> = BTreeSet::new();
    let mut nondirs: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for item in rest {
        let name = item.tar_name();
        if !names.insert(name.clone()) {
            continue;
        }
        // The path whose parents must be directories of this layer (or not in it).
        let blocked = |p: &str| {
            ancestors(p)
                .iter()
                .any(|a| matches!(held.get(a), Some(Held::Symlink | Held::Other)))
        };
        let ok = match &item {
            IItem::Root { .. } => true,
            IItem::Opaque { path } => {
                !blocked(&join(path, "x"))
                    && !matches!(held.get(path), Some(Held::Symlink | Held::Other))
            }
            IItem::Whiteout { path } | IItem::WhDir { path, .. } => !blocked(path),
            IItem::Dir { path, .. } => {
                !blocked(path) && !matches!(held.get(path), Some(Held::Symlink | Held::Other))
            }
            IItem::HardLink { path, .. } => {
                !blocked(path) && !held.contains_key(path) && !nondirs.is_empty()
            }
            _ => !blocked(&name) && !held.contains_key(&name),
        };
        if !ok {
            continue;
        }
        for a in ancestors(&name) {
            held.entry(a).or_insert(Held::Implied);
        }
        let item = match item {
            IItem::HardLink { path, nth } => IItem::HardLink {
                path,
                nth: nth % nondirs.len(),
            },
            other => other,
        };
        match &item {
            IItem::Root { .. } | IItem::Whiteout { .. } | IItem::WhDir { .. } => {}
            IItem::Opaque { path } => {
                held.entry(path.clone()).or_insert(Held::Implied);
            }
            IItem::Dir { path, .. } => {
                held.insert(path.clone(), Held::Dir);
            }
            IItem::Symlink { path, .. } => {
                held.insert(path.clone(), Held::Symlink);
                nondirs.push(path.clone());
            }
            IItem::HardLink { path, .. } => {
                held.insert(path.clone(), Held::Other);
            }
            _ => {
                held.insert(name.clone(), Held::Other);
                nondirs.push(name.clone());
            }
        }
        out.push(item);
    }
    out
}

fn meta_of(m: &GenMeta) -> Meta {
    Meta {
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
        mtime: m.mtime,
        xattrs: m.xattrs.iter().cloned().collect(),
    }
}

fn layer_tar(items: &[IItem]) -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    let mut nondirs: Vec<String> = Vec::new();
    for item in items {
        let entry = |path: &str, kind: EntryKind, meta: Meta| Entry {
            path: path.to_string(),
            kind,
            meta,
        };
        let r = match item {
            IItem::Root { meta } => w.entry(&entry("", EntryKind::Dir, meta_of(meta)), None),
            IItem::File {
                path,
                content,
                meta,
            } => {
                nondirs.push(path.clone());
                let bytes = content.bytes();
                let e = entry(
                    path,
                    EntryKind::File(FileData::from_bytes(bytes.clone())),
                    meta_of(meta),
                );
                w.entry(&e, Some(&mut bytes.as_slice()))
            }
            IItem::Dir { path, meta } => w.entry(&entry(path, EntryKind::Dir, meta_of(meta)), None),
            IItem::WhDir { meta, .. } => w.entry(
                &entry(&item.tar_name(), EntryKind::Dir, meta_of(meta)),
                None,
            ),
            IItem::Symlink { path, target, meta } => {
                nondirs.push(path.clone());
                let kind = EntryKind::Symlink {
                    target: target.clone(),
                };
                w.entry(&entry(path, kind, meta_of(meta)), None)
            }
            IItem::HardLink { path, nth } => {
                let kind = EntryKind::HardLink {
                    target: nondirs[*nth].clone(),
                };
                w.entry(&entry(path, kind, Meta::mode(0o644)), None)
            }
            IItem::Fifo { path, meta } => {
                nondirs.push(path.clone());
                w.entry(&entry(path, EntryKind::Fifo, meta_of(meta)), None)
            }
            IItem::CharDev { path, minor, meta } => {
                nondirs.push(path.clone());
                let kind = EntryKind::CharDev {
                    major: 1,
                    minor: *minor,
                };
                w.entry(&entry(path, kind, meta_of(meta)), None)
            }
            IItem::Whiteout { path } => w.whiteout(path),
            IItem::Opaque { path } => w.opaque(path, &Meta::mode(0o755)),
            IItem::UnderWh { .. } => {
                let name = item.tar_name();
                nondirs.push(name.clone());
                let e = entry(
                    &name,
                    EntryKind::File(FileData::from_bytes(b"under".to_vec())),
                    Meta::mode(0o644),
                );
                w.entry(&e, Some(&mut &b"under"[..]))
            }
        };
        // Writing into a Vec cannot fail but for a malformed header (a generator bug).
        if let Err(e) = r {
            panic!("writing tar entry {:?}: {e}", item.tar_name());
        }
    }
    match w.finish() {
        Ok(v) => v,
        Err(e) => panic!("finishing tar: {e}"),
    }
}

impl fmt::Debug for IStack {
    /// A shrunk failure prints as the tar listing of each layer, in tar order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Stack (lowest layer first, entries in tar order):")?;
        for (i, items) in self.layers.iter().enumerate() {
            writeln!(f, "  layer {i}:")?;
            let mut nondirs = Vec::new();
            for item in items {
                let m = |m: &GenMeta| {
                    let x: Vec<&str> = m.xattrs.iter().map(|(k, _)| k.as_str()).collect();
                    format!(
                        "{:04o} {}:{} mtime {}{}",
                        m.mode,
                        m.uid,
                        m.gid,
                        m.mtime,
                        if x.is_empty() {
                            String::new()
                        } else {
                            format!(" xattrs {}", x.join(","))
                        }
                    )
                };
                let name = item.tar_name();
                match item {
                    IItem::Root { meta } => writeln!(f, "    dir      ./  {}", m(meta))?,
                    IItem::File {
                        path,
                        content,
                        meta,
                    } => {
                        nondirs.push(path.clone());
                        let c = match content {
                            Content::Bytes(b) if b.len() <= 16 => {
                                format!("{:?}", String::from_utf8_lossy(b))
                            }
                            Content::Bytes(b) => format!("{} bytes", b.len()),
                            Content::Sparse { len, marks } => {
                                format!("sparse {len} bytes, {} set", marks.len())
                            }
                        };
                        writeln!(f, "    file     {path} = {c}  {}", m(meta))?
                    }
                    IItem::Dir { path, meta } => writeln!(f, "    dir      {path}/  {}", m(meta))?,
                    IItem::WhDir { meta, .. } => writeln!(f, "    dir      {name}/  {}", m(meta))?,
                    IItem::Symlink { path, target, meta } => {
                        nondirs.push(path.clone());
                        writeln!(f, "    symlink  {path} -> {target}  {}", m(meta))?
                    }
                    IItem::HardLink { path, nth } => writeln!(
                        f,
                        "    link     {path} => {}",
                        nondirs.get(*nth).map(String::as_str).unwrap_or("?")
                    )?,
                    IItem::Fifo { path, meta } => {
                        nondirs.push(path.clone());
                        writeln!(f, "    fifo     {path}  {}", m(meta))?
                    }
                    IItem::CharDev { path, minor, meta } => {
                        nondirs.push(path.clone());
                        writeln!(f, "    chardev  {path} 1:{minor}  {}", m(meta))?
                    }
                    IItem::Whiteout { .. } => writeln!(f, "    whiteout {name}")?,
                    IItem::Opaque { .. } => writeln!(f, "    opaque   {name}")?,
                    IItem::UnderWh { .. } => {
                        nondirs.push(name.clone());
                        writeln!(f, "    file     {name} = \"under\"")?
                    }
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Strategies.

const NAMES: [&str; 3] = ["a", "b", "c"];

/// A path of depth 1 to 3 over the names a, b, c (so names collide across layers).
fn path() -> impl Strategy<Value = String> {
    vec(prop::sample::select(&NAMES[..]), 1..=3).prop_map(|cs| cs.join("/"))
}

fn parent_path() -> impl Strategy<Value = String> {
    vec(prop::sample::select(&NAMES[..]), 0..=2).prop_map(|cs| cs.join("/"))
}

fn mode() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => prop::sample::select(vec![0o644u32, 0o755, 0o600, 0o700, 0o711, 0o750]),
        1 => prop::sample::select(vec![0o4755u32, 0o2755, 0o1777, 0o6711, 0o2770]),
        1 => 0u32..0o7777,
    ]
}

/// Never 0 (the model's mark of an implied directory) and before 2017, so that no header
/// time can be mistaken for the time an implementation stamps on what it makes itself.
fn mtime() -> impl Strategy<Value = Timespec> {
    (
        1i64..1_480_000_000,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(s, n)| Timespec::new(s, n))
}

fn xattrs(file: bool) -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let one = prop_oneof![
        3 => (prop::sample::select(vec!["user.a", "user.b"]), vec(any::<u8>(), 0..8)).prop_map(|(k, v)| (k.to_string(), v)),
        1 => Just(("security.capability".to_string(), CAP_NET_BIND.to_vec())),
    ];
    vec(one, 0..=2).prop_map(move |mut xs| {
        if !file {
            xs.retain(|(k, _)| k != "security.capability");
        }
        xs.sort();
        xs.dedup_by(|a, b| a.0 == b.0);
        xs
    })
}

/// Metadata; `xattrs`: 0 none (symlinks, fifos, devices: user.* xattrs are refused there),
/// 1 a directory's, 2 a file's.
fn meta(kind_xattrs: u8) -> impl Strategy<Value = GenMeta> {
    (
        mode(),
        prop_oneof![3 => Just(0u32), 1 => 1u32..4],
        prop_oneof![3 => Just(0u32), 1 => 1u32..4],
        mtime(),
        xattrs(kind_xattrs == 2),
    )
        .prop_map(move |(mode, uid, gid, mtime, xattrs)| GenMeta {
            mode,
            uid,
            gid,
            mtime,
            xattrs: if kind_xattrs == 0 { Vec::new() } else { xattrs },
        })
}

fn content() -> impl Strategy<Value = Content> {
    prop_oneof![
        2 => Just(Content::Bytes(Vec::new())),
        12 => vec(prop::sample::select(b"xyz\n".to_vec()), 1..48).prop_map(Content::Bytes),
        1 => (0u64..4096).prop_map(|extra| Content::Sparse { len: (1 << 20) + extra, marks: vec![(7, b'x'), ((1 << 20) - 1, b'y')] }),
    ]
}

fn symlink_target() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => path(),                                   // relative: a file, a directory, or dangling
        1 => path().prop_map(|p| format!("/{p}")),      // absolute, resolved inside the root
        1 => path().prop_map(|p| format!("../{p}")),    // climbing, clamped at the root
        1 => Just("/dne".to_string()),                  // dangling, absolute
        1 => Just("nowhere".to_string()),               // dangling, relative
    ]
}

fn item() -> impl Strategy<Value = IItem> {
    // An entry under a `.wh.` name makes the whole stack refused at import (issue 11 item 4),
    // so it is rare enough to leave most stacks comparable (about 1 in 16 stacks).
    prop_oneof![
        60 => (path(), content(), meta(2)).prop_map(|(path, content, meta)| IItem::File { path, content, meta }),
        50 => (path(), meta(1)).prop_map(|(path, meta)| IItem::Dir { path, meta }),
        40 => (path(), symlink_target(), meta(0)).prop_map(|(path, target, meta)| IItem::Symlink { path, target, meta }),
        30 => (path(), 0usize..6).prop_map(|(path, nth)| IItem::HardLink { path, nth }),
        10 => (path(), meta(0)).prop_map(|(path, meta)| IItem::Fifo { path, meta }),
        10 => (path(), prop::sample::select(vec![3u32, 5]), meta(0)).prop_map(|(path, minor, meta)| IItem::CharDev { path, minor, meta }),
        50 => path().prop_map(|path| IItem::Whiteout { path }),
        30 => path().prop_map(|path| IItem::Opaque { path }),
        10 => (path(), meta(1)).prop_map(|(path, meta)| IItem::WhDir { path, meta }),
        1 => (parent_path(), prop::sample::select(&NAMES[..]), prop::sample::select(&NAMES[..]))
            .prop_map(|(dir, name, file)| IItem::UnderWh { dir, name: name.to_string(), file: file.to_string() }),
        10 => meta(1).prop_map(|meta| IItem::Root { meta }),
    ]
}

/// A stack of 1 to 6 layers of up to 10 entries each.
pub fn stack() -> impl Strategy<Value = IStack> {
    let layers = prop_oneof![6 => 1usize..=3, 3 => 4usize..=6];
    layers
        .prop_flat_map(|n| vec(vec(item(), 0..=10), n))
        .prop_map(IStack::new)
}

// ---------------------------------------------------------------------------------------
// The lab: a private mount namespace and a tmpfs.

/// A private mount namespace with a tmpfs (store, layouts, bundles, mount targets), unmounted
/// when dropped.
pub struct Lab {
    _dir: tempfile::TempDir,
    tmpfs: PathBuf,
    pub store: Store,
    next: std::cell::Cell<u64>,
}

impl Lab {
    /// Enters a private mount namespace (for this thread) and mounts a tmpfs in a temp dir.
    pub fn new() -> Result<Lab, String> {
        sandbox::private_mount_namespace()
            .map_err(|e| format!("cannot make a private mount namespace: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix("strata-indep-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let tmpfs = dir.path().join("tmpfs");
        std::fs::create_dir(&tmpfs).map_err(|e| format!("mkdir {}: {e}", tmpfs.display()))?;
        nix::mount::mount(
            Some("tmpfs"),
            &tmpfs,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=2g,mode=0755"),
        )
        .map_err(|e| format!("mount tmpfs on {}: {e}", tmpfs.display()))?;
        let lab = Lab {
            _dir: dir,
            store: Store::open(&tmpfs.join("store")).map_err(|e| e.to_string())?,
            tmpfs,
            next: std::cell::Cell::new(0),
        };
        Ok(lab)
    }

    /// A fresh path on the tmpfs (not created).
    pub fn fresh(&self, what: &str) -> PathBuf {
        let n = self.next.get();
        self.next.set(n + 1);
        self.tmpfs.join(format!("{what}-{n}"))
    }

    /// Removes a scratch path (best effort: the tmpfs goes with the lab anyway).
    pub fn discard(&self, p: &Path) {
        let _ = std::fs::remove_dir_all(p);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.tmpfs, nix::mount::MntFlags::MNT_DETACH) {
            eprintln!("unmount {}: {e}", self.tmpfs.display());
        }
    }
}

/// The layers imported into the lab's store, or the import's refusal.
pub fn import(lab: &Lab, tars: &[Vec<u8>]) -> Result<Vec<StoredLayer>, String> {
    tars.iter()
        .enumerate()
        .map(|(i, t)| {
            lab.store
                .import_reader(&t[..], Path::new(&format!("layer{i}.tar")))
                .map(|i| i.layer)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The change sets of imported layers.
pub fn change_sets(layers: &[StoredLayer]) -> Result<Vec<ChangeSet>, String> {
    layers
        .iter()
        .map(|l| l.changes().map_err(|e| e.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// umoci.

/// Why umoci cannot run here, if it cannot.
pub fn umoci_availability() -> Result<(), String> {
    match Command::new("umoci").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(format!(
            "umoci --version failed: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => Err(format!(
            "umoci is not installed ({e}); Debian package `umoci`"
        )),
    }
}

/// Writes an OCI image layout at `dir` holding exactly `tars` (uncompressed) as its layers,
/// tagged `t`.
pub fn write_layout(dir: &Path, tars: &[Vec<u8>]) -> Result<(), String> {
    let w = LayoutWriter::create(dir).map_err(|e| e.to_string())?;
    let mut written = Default::default();
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for t in tars {
        let d = w.put_bytes(t, &mut written).map_err(|e| e.to_string())?;
        layers.push(Descriptor::new(oci::OCI_LAYER, d, t.len() as u64));
        diff_ids.push(d);
    }
    let config = Config {
        created: None,
        architecture: oci::host_arch().to_string(),
        os: "linux".into(),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
        history: Vec::new(),
        config: None,
    };
    let cbytes = serde_json::to_vec(&config).map_err(|e| e.to_string())?;
    let cd = w
        .put_bytes(&cbytes, &mut written)
        .map_err(|e| e.to_string())?;
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(oci::OCI_MANIFEST.into()),
        config: Descriptor::new(oci::OCI_CONFIG, cd, cbytes.len() as u64),
        layers,
        annotations: Default::default(),
    };
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let md = w
        .put_bytes(&mbytes, &mut written)
        .map_err(|e| e.to_string())?;
    w.tag(
        &Descriptor::new(oci::OCI_MANIFEST, md, mbytes.len() as u64),
        "t",
    )
    .map_err(|e| e.to_string())
}

fn now() -> Timespec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timespec::new(d.as_secs() as i64, d.subsec_nanos())
}

/// What umoci made of a stack: its rootfs scanned, and the clock around the unpack (umoci
/// stamps the time of the unpack on what it makes without a header).
pub struct UmociView {
    pub tree: Tree,
    pub window: (Timespec, Timespec),
}

/// `umoci unpack` of a layout made of `tars`; `Err` carries umoci's stderr.
pub fn umoci_view(lab: &Lab, tars: &[Vec<u8>]) -> Result<Result<UmociView, String>, String> {
    let layout = lab.fresh("layout");
    let bundle = lab.fresh("bundle");
    write_layout(&layout, tars)?;
    let mut image = layout.clone().into_os_string();
    image.push(":t");
    let t0 = now();
    let out = Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(&image)
        .arg(&bundle)
        .output()
        .map_err(|e| format!("run umoci: {e}"))?;
    let t1 = now();
    let r = if out.status.success() {
        let tree = strata_runtime::scan::scan(&bundle.join("rootfs"))
            .map_err(|e| format!("scan umoci's rootfs: {e}"))?;
        Ok(UmociView {
            tree,
            window: (Timespec::new(t0.sec - 1, 0), Timespec::new(t1.sec + 1, 0)),
        })
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    };
    lab.discard(&layout);
    lab.discard(&bundle);
    Ok(r)
}

// ---------------------------------------------------------------------------------------
// overlay.

/// The overlay driver's view of `layers` scanned, or why it would not mount.
pub fn overlay_view(lab: &Lab, layers: &[StoredLayer]) -> Result<Result<Tree, String>, String> {
    let d = driver::by_name("overlay").map_err(|e| e.to_string())?;
    let target = lab.fresh("mnt");
    std::fs::create_dir(&target).map_err(|e| format!("mkdir {}: {e}", target.display()))?;
    // The Mount unmounts itself when dropped, also when the scan fails.
    let m = match mounts::mount(&lab.store, d, layers.to_vec(), &target) {
        Ok(m) => m,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let tree = strata_runtime::scan::scan(m.target()).map_err(|e| format!("scan overlay: {e}"))?;
    m.unmount().map_err(|e| format!("unmount overlay: {e}"))?;
    Ok(Ok(tree))
}

/// The semantics overlay declares.
pub fn overlay_semantics() -> model::Semantics {
    match driver::by_name("overlay") {
        Ok(d) => d.capabilities().semantics(),
        Err(e) => panic!("{e}"),
    }
}

// ---------------------------------------------------------------------------------------
// Comparison and umoci's documented deviations.

/// Every difference, as one line each.
pub fn render(diffs: &[Mismatch]) -> String {
    diffs
        .iter()
        .map(|d| format!("  {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The full comparison: kind, content, mode, owner, mtime of every inode (directories too),
/// xattrs, hard-link groups.
pub fn compare_all(expected: &Tree, actual: &Tree) -> Vec<Mismatch> {
    expected.compare(actual, &CompareOptions::default())
}

/// True when `m` is exactly what the model gives a directory it creates without an entry.
pub fn is_implied_meta(m: &Meta) -> bool {
    *m == Meta::implied_dir()
}

/// The named deviations of umoci from the model (see the README text of issue 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deviation {
    /// umoci creates directories an entry implies with mkdir(2) (mode 0777 & ~umask, group
    /// and setgid bit of a setgid parent, the time of the unpack), and never sets their
    /// metadata: umoci `oci/layer/tar_extract.go`, UnpackEntry, `MkdirAll(dir, 0777)` with
    /// its FIXME "if the tar archive doesn't have entries for some of these components we
    /// won't be able to verify that we have consistent results". The spec says nothing of
    /// implied directories; the model gives them 0755 0:0 mtime 0.
    ImpliedDirAttrs,
    /// umoci restores the mtime of an entry's immediate parent only: a directory that gets a
    /// new implied subdirectory, and a root with no `./` entry, keep the time of the unpack
    /// (same place in umoci).
    DirMtimeBumped,
    /// umoci applies a whiteout or opaque marker only when its path exists and creates none
    /// of the parent directories it names: umoci `oci/layer/tar_extract.go`, ociWhiteout, "If
    /// the root doesn't exist we've got nothing to do". containerd (`archive/tar.go`,
    /// mkparent before the whiteout is converted), moby (`pkg/archive/diff.go` UnpackLayer,
    /// MkdirAll of a missing parent) and overlayfs (the layer directory holds the parent)
    /// all show the parent, as the model does; where the parent is a lower non-directory umoci
    /// keeps it (with its hard links) and the model replaces it. Explained only for
    /// directories the model implies, empty of anything but implied directories, named
    /// literally on the path of a whiteout or marker (not reached through a symlink: issue 11
    /// item 2 is the model's).
    WhiteoutImpliesNoParent,
    /// Go's archive/tar drops a PAX record whose value is empty (`reader.go`, mergePAX:
    /// `if v == "" { continue // Keep the original USTAR value }`; POSIX pax: a zero-length
    /// value deletes the keyword), so an xattr with an empty value never reaches umoci (nor
    /// containerd, moby or buildah, all Go). strata's reader keeps it.
    GoTarDropsEmptyXattrs,
    /// umoci refuses (`mkdir parent: ... not a directory`) a layer with an entry under a
    /// path that a lower layer holds as a non-directory (`MkdirAll(dir)` in UnpackEntry);
    /// containerd's mkparent fails the same way (ENOTDIR). overlayfs shows the layer's
    /// directory over the lower non-directory, and the model replaces it with an implied
    /// directory (its rule 3). Explained only when umoci failed so and the model did replace
    /// a lower non-directory with an implied directory.
    RefusesEntryUnderLowerNonDir,
    /// umoci refuses a layer whose whiteout or opaque marker has a parent path that loops
    /// through symlinks (`SecureJoin ...: too many levels of symbolic links`), where the model
    /// deletes nothing, as for any deletion whose parent does not resolve (dangling, through a
    /// non-directory); umoci is also order-dependent here: the same marker after an entry of
    /// its layer that breaks the loop unpacks. Explained only when umoci failed so at a
    /// `.wh.` entry.
    RefusesDeletionUnderSymlinkLoop,
}

impl Deviation {
    pub fn name(self) -> &'static str {
        match self {
            Deviation::ImpliedDirAttrs => "umoci-implied-dir-attrs",
            Deviation::DirMtimeBumped => "umoci-dir-mtime-bumped",
            Deviation::WhiteoutImpliesNoParent => "umoci-whiteout-implies-no-parent",
            Deviation::GoTarDropsEmptyXattrs => "go-tar-drops-empty-xattrs",
            Deviation::RefusesEntryUnderLowerNonDir => "umoci-refuses-entry-under-lower-nondir",
            Deviation::RefusesDeletionUnderSymlinkLoop => {
                "umoci-refuses-deletion-under-symlink-loop"
            }
        }
    }
}

/// Paths of directories the model creates without an entry, in any layer, and their parents
/// (whose mtime umoci then bumps).
pub struct ImpliedDirs {
    pub created: BTreeSet<String>,
    pub parents: BTreeSet<String>,
    /// Paths where a layer replaced a lower non-directory with an implied directory.
    pub replaced_nondirs: BTreeSet<String>,
}

/// Replays the model layer by layer to find the directories each layer implied.
pub fn implied_dirs(sets: &[ChangeSet]) -> ImpliedDirs {
    let mut created = BTreeSet::new();
    let mut parents = BTreeSet::new();
    let mut replaced_nondirs = BTreeSet::new();
    let mut before = Tree::default();
    for set in sets {
        let mut after = before.clone();
        let Ok(made) = model::apply_layer_traced(&mut after, set, &model::Semantics::oci()) else {
            break;
        };
        // A directory made on the way to an entry bumps its parent's mtime, even where a
        // later entry of the layer replaced it (`b -> c` below, then `b/a` and `c -> a`).
        for p in &made {
            let (d, _) = parent_and_name(p).unwrap_or(("", ""));
            parents.insert(d.to_string());
            // Made over a lower non-directory, even where the layer's own entry for the path
            // then gave it attributes (`b` a lower file, then `a/a` through `a -> b`, and `b/`).
            if before.get(p).is_some_and(|b| !b.kind.is_dir()) {
                replaced_nondirs.insert(p.clone());
            }
        }
        for (p, inode) in after.iter() {
            if inode.kind.is_dir()
                && is_implied_meta(&inode.meta)
                && !p.is_empty()
                && !before
                    .get(p)
                    .is_some_and(|b| b.kind.is_dir() && is_implied_meta(&b.meta))
            {
                created.insert(p.clone());
                let (d, _) = parent_and_name(p).unwrap_or(("", ""));
                parents.insert(d.to_string());
                if before.get(p).is_some_and(|b| !b.kind.is_dir()) {
                    replaced_nondirs.insert(p.clone());
                }
            }
        }
        before = after;
    }
    ImpliedDirs {
        created,
        parents,
        replaced_nondirs,
    }
}

fn within(t: Timespec, w: (Timespec, Timespec)) -> bool {
    w.0 <= t && t <= w.1
}

/// Splits umoci's differences from the model into the documented deviations (each with the
/// paths it explains) and the rest, which are failures.
pub fn umoci_deviations(
    stack: &IStack,
    sets: &[ChangeSet],
    model_tree: &Tree,
    view: &UmociView,
    diffs: Vec<Mismatch>,
) -> (Vec<(Deviation, Mismatch)>, Vec<Mismatch>) {
    let implied = implied_dirs(sets);
    // Every directory named literally on the way to a whiteout or an opaque marker.
    let mut deletion_prefixes: BTreeSet<String> = BTreeSet::new();
    for item in stack.layers.iter().flatten() {
        match item {
            IItem::Whiteout { path } | IItem::WhDir { path, .. } => {
                deletion_prefixes.extend(ancestors(path));
            }
            IItem::Opaque { path } => {
                deletion_prefixes.insert(path.clone());
                deletion_prefixes.extend(ancestors(path));
            }
            _ => {}
        }
    }
    let setgid_gids: BTreeSet<u32> = stack
        .layers
        .iter()
        .flatten()
        .filter_map(|i| match i {
            IItem::Root { meta } | IItem::Dir { meta, .. } if meta.mode & 0o2000 != 0 => {
                Some(meta.gid)
            }
            _ => None,
        })
        .collect();
    let mut explained = Vec::new();
    let mut rest = Vec::new();
    // Hard-link groups are judged last: a name the whiteout deviation explains leaves them.
    let (links, diffs): (Vec<Mismatch>, Vec<Mismatch>) =
        diffs.into_iter().partition(|d| d.field == "hard links");
    for d in diffs {
        let m = model_tree.get(&d.path);
        let a = view.tree.get(&d.path);
        let dev = match (m, a) {
            (Some(m), Some(a)) if m.kind.is_dir() && a.kind.is_dir() => {
                let in_window = within(a.meta.mtime, view.window);
                let implied_here = is_implied_meta(&m.meta);
                match d.field {
                    "mtime" if implied_here && in_window => Some(Deviation::ImpliedDirAttrs),
                    "mtime"
                        if in_window
                            && (implied.parents.contains(&d.path)
                                || (d.path.is_empty() && !stack.has_root_entry())) =>
                    {
                        Some(Deviation::DirMtimeBumped)
                    }
                    "mode" | "owner" if implied_here => {
                        // mkdir(2) as root with umask 022: 0755, root's group; in a setgid
                        // directory, setgid too and that directory's group (which a later
                        // layer may have changed since: any setgid directory entry's group).
                        let plain = a.meta.mode == 0o755 && a.meta.gid == 0;
                        let setgid = a.meta.mode == 0o2755 && setgid_gids.contains(&a.meta.gid);
                        (a.meta.uid == 0 && (plain || setgid)).then_some(Deviation::ImpliedDirAttrs)
                    }
                    _ => None,
                }
            }
            _ => None,
        };
        let dev = dev.or_else(|| match (d.field, m, a) {
            ("xattrs", Some(m), Some(a)) => {
                let mut kept = m.meta.xattrs.clone();
                kept.retain(|_, v| !v.is_empty());
                (kept.len() < m.meta.xattrs.len() && kept == a.meta.xattrs)
                    .then_some(Deviation::GoTarDropsEmptyXattrs)
            }
            _ => None,
        });
        let dev = dev.or_else(|| {
            // The topmost path of the mismatch that is a directory only implied, holding only
            // implied directories, named on the path of a whiteout or marker.
            let mut p = d.path.as_str();
            loop {
                if implied_only(model_tree, p)
                    && !view.tree.get(p).is_some_and(|a| a.kind.is_dir())
                    && deletion_prefixes.contains(p)
                {
                    return Some(Deviation::WhiteoutImpliesNoParent);
                }
                match parent_and_name(p) {
                    Some((parent, _)) if !parent.is_empty() => p = parent,
                    _ => return None,
                }
            }
        });
        match dev {
            Some(dev) => explained.push((dev, d)),
            None => rest.push(d),
        }
    }
    let no_parent: Vec<String> = explained
        .iter()
        .filter(|(dev, _)| *dev == Deviation::WhiteoutImpliesNoParent)
        .map(|(_, m)| m.path.clone())
        .collect();
    // The hard-link groups of both, without the names under a whiteout's parent umoci did
    // not make: equal groups mean the links differ only there (a lower file umoci kept where
    // the model made the marker's directory).
    let outside = |groups: Vec<Vec<String>>| -> BTreeSet<Vec<String>> {
        groups
            .into_iter()
            .map(|g| {
                g.into_iter()
                    .filter(|p| !no_parent.iter().any(|np| model::is_within(p, np)))
                    .collect::<Vec<_>>()
            })
            .filter(|g| g.len() > 1)
            .collect()
    };
    let same_elsewhere = !no_parent.is_empty()
        && outside(model_tree.hardlink_groups()) == outside(view.tree.hardlink_groups());
    for d in links {
        let group = if d.expected == "not linked so" {
            &d.actual
        } else {
            &d.expected
        };
        let left = group
            .split(" = ")
            .filter(|p| !no_parent.iter().any(|np| model::is_within(p, np)))
            .count();
        if (left <= 1 || same_elsewhere) && !no_parent.is_empty() {
            explained.push((Deviation::WhiteoutImpliesNoParent, d));
        } else {
            rest.push(d);
        }
    }
    (explained, rest)
}

/// True when `p` is a directory the model implies and everything under it is too.
fn implied_only(t: &Tree, p: &str) -> bool {
    !p.is_empty()
        && t.subtree(p).all(|(_, ino)| {
            t.inode(*ino)
                .is_some_and(|i| i.kind.is_dir() && is_implied_meta(&i.meta))
        })
}

/// Whether umoci's refusal is a documented deviation ([`Deviation::RefusesEntryUnderLowerNonDir`],
/// [`Deviation::RefusesDeletionUnderSymlinkLoop`]).
pub fn umoci_refusal_explained(sets: &[ChangeSet], stderr: &str) -> Option<Deviation> {
    // `... unpack entry: DIR/.wh.NAME: sanitise symlinks in root: SecureJoin ...: too many
    // levels of symbolic links`
    if let Some((_, rest)) = stderr.split_once("unpack entry: ")
        && let Some((entry, why)) = rest.split_once(": ")
        && entry
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with(".wh."))
        && why.contains("too many levels of symbolic links")
    {
        return Some(Deviation::RefusesDeletionUnderSymlinkLoop);
    }
    // `... mkdir parent: mkdir BUNDLE/rootfs/PATH: not a directory`
    let path = stderr
        .split_once("mkdir parent: mkdir ")?
        .1
        .split_once(": not a directory")?
        .0
        .split_once("/rootfs/")?
        .1;
    implied_dirs(sets)
        .replaced_nondirs
        .contains(path)
        .then_some(Deviation::RefusesEntryUnderLowerNonDir)
}

/// The layer with its whiteouts and opaque markers moved after every entry (each group in
/// its own order).
pub fn whiteouts_last(set: &ChangeSet) -> ChangeSet {
    let is_entry = |c: &&model::Change| matches!(c, model::Change::Entry(_));
    let mut changes: Vec<model::Change> = set.changes.iter().filter(is_entry).cloned().collect();
    changes.extend(set.changes.iter().filter(|c| !is_entry(c)).cloned());
    ChangeSet { changes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_runtime::model::{Inode, Kind};

    fn dir_meta(mtime: i64) -> Meta {
        Meta {
            mtime: Timespec::new(mtime, 0),
            ..Meta::mode(0o755)
        }
    }

    fn tree(dirs: &[(&str, Meta)]) -> Tree {
        let mut t = Tree::default();
        for (p, m) in dirs {
            t.insert(
                p,
                Inode {
                    kind: Kind::Dir,
                    meta: m.clone(),
                },
            );
        }
        t
    }

    const NOW: i64 = 1_800_000_000;

    fn view(t: Tree) -> UmociView {
        UmociView {
            tree: t,
            window: (Timespec::new(NOW - 1, 0), Timespec::new(NOW + 1, 0)),
        }
    }

    fn stack(layers: Vec<Vec<IItem>>) -> IStack {
        IStack { layers }
    }

    fn explain(s: &IStack, m: &Tree, v: &UmociView) -> (Vec<Deviation>, Vec<Mismatch>) {
        let (e, rest) = umoci_deviations(s, &[], m, v, compare_all(m, &v.tree));
        (e.into_iter().map(|(d, _)| d).collect(), rest)
    }

    #[test]
    fn a_stamped_mtime_is_explained_only_on_implied_directories() {
        let s = stack(vec![vec![]]);
        let model = tree(&[("x", dir_meta(5)), ("y", Meta::implied_dir())]);
        let umoci = view(tree(&[("x", dir_meta(NOW)), ("y", dir_meta(NOW))]));
        let (explained, rest) = explain(&s, &model, &umoci);
        assert_eq!(explained, vec![Deviation::ImpliedDirAttrs]);
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].path, "x");
        // Outside the unpack's clock window nothing is explained.
        let umoci = view(tree(&[("x", dir_meta(5)), ("y", dir_meta(NOW + 100))]));
        assert_eq!(explained_paths(&s, &model, &umoci), Vec::<String>::new());
    }

    fn explained_paths(s: &IStack, m: &Tree, v: &UmociView) -> Vec<String> {
        let (e, _) = umoci_deviations(s, &[], m, v, compare_all(m, &v.tree));
        e.into_iter().map(|(_, m)| m.path).collect()
    }

    #[test]
    fn a_missing_parent_is_explained_only_when_a_whiteout_names_it() {
        let model = tree(&[("w", Meta::implied_dir()), ("w/v", Meta::implied_dir())]);
        let umoci = view(Tree::default());
        let named = stack(vec![vec![IItem::Whiteout {
            path: "w/v/x".into(),
        }]]);
        let (explained, rest) = explain(&named, &model, &umoci);
        assert!(rest.is_empty(), "{rest:?}");
        assert_eq!(explained, vec![Deviation::WhiteoutImpliesNoParent; 2]);
        // Reached through a symlink (issue 11 item 2): the whiteout names another path.
        let through_link = stack(vec![vec![IItem::Whiteout {
            path: "link/x".into(),
        }]]);
        let (_, rest) = explain(&through_link, &model, &umoci);
        assert_eq!(rest.len(), 2, "{rest:?}");
    }

    #[test]
    fn only_empty_xattrs_may_be_dropped() {
        let s = stack(vec![vec![]]);
        let mut with = dir_meta(5);
        with.xattrs.insert("user.a".into(), Vec::new());
        let model = tree(&[("x", with.clone())]);
        let (explained, rest) = explain(&s, &model, &view(tree(&[("x", dir_meta(5))])));
        assert_eq!(explained, vec![Deviation::GoTarDropsEmptyXattrs]);
        assert!(rest.is_empty());
        with.xattrs.insert("user.a".into(), b"1".to_vec());
        let model = tree(&[("x", with)]);
        let (explained, rest) = explain(&s, &model, &view(tree(&[("x", dir_meta(5))])));
        assert!(explained.is_empty());
        assert_eq!(rest.len(), 1);
    }

    #[test]
    fn producer_order_puts_parents_then_whiteouts_first() {
        let mut names = vec!["a/b", "a/.wh.c", "a", ".wh.z", "a/.wh..wh..opq", "b"];
        names.sort_by(|x, y| producer_order(x, y));
        assert_eq!(
            names,
            vec![".wh.z", "a", "a/.wh..wh..opq", "a/.wh.c", "a/b", "b"]
        );
    }
}
