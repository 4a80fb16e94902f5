//! The tree every view is compared in: path -> inode, inode -> kind and metadata.
//!
//! Hard links are paths that share an inode. Two trees are compared path by path; hard-link
//! groups are compared as sets of paths, so inode numbers never need to agree.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::path::{RelPath, is_within};
use crate::digest::Digest;

/// Seconds and nanoseconds since the epoch.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: u32,
}

impl Timespec {
    /// A time the model cannot know (a daemon's "now"), where a declared divergence stamps
    /// one. Views never compare it: directory mtimes move with every change inside them.
    pub const UNKNOWN: Timespec = Timespec {
        sec: i64::MIN,
        nsec: 0,
    };

    pub fn new(sec: i64, nsec: u32) -> Self {
        Timespec { sec, nsec }
    }
}

impl fmt::Display for Timespec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

/// The metadata every kind of inode carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    /// Extended attributes, by full name (`user.x`, `security.capability`).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "xattr_hex"
    )]
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Meta {
    /// Metadata with the given mode, owned by root, mtime 0, no xattrs.
    pub fn mode(mode: u32) -> Self {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            mtime: Timespec::default(),
            xattrs: BTreeMap::new(),
        }
    }

    /// The metadata of a directory the model creates because an entry needs it as a parent.
    pub fn implied_dir() -> Self {
        Meta::mode(0o755)
    }
}

/// A regular file's content, by size and digest. The bytes may be kept for the model's own
/// operations; equality looks at size and digest only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileData {
    pub size: u64,
    pub digest: Digest,
    #[serde(skip)]
    pub bytes: Option<Arc<Vec<u8>>>,
}

impl FileData {
    /// File data from its bytes, kept for later operations.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        FileData {
            size: bytes.len() as u64,
            digest: Digest::of(&bytes),
            bytes: Some(Arc::new(bytes)),
        }
    }
}

impl PartialEq for FileData {
    fn eq(&self, other: &Self) -> bool {
        self.size == other.size && self.digest == other.digest
    }
}
impl Eq for FileData {}

/// What an inode is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Kind {
    File(FileData),
    Dir,
    Symlink { target: String },
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
    Fifo,
}

impl Kind {
    pub fn is_dir(&self) -> bool {
        matches!(self, Kind::Dir)
    }

    /// A short name for messages: file, dir, symlink, chardev, blockdev, fifo.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::File(_) => "file",
            Kind::Dir => "dir",
            Kind::Symlink { .. } => "symlink",
            Kind::CharDev { .. } => "chardev",
            Kind::BlockDev { .. } => "blockdev",
            Kind::Fifo => "fifo",
        }
    }
}

/// An inode: its kind and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inode {
    pub kind: Kind,
    pub meta: Meta,
}

/// An inode number, local to one tree.
pub type Ino = u64;

/// A directory tree: paths to inodes. The root `""` is always a directory.
#[derive(Clone, Debug)]
pub struct Tree {
    paths: BTreeMap<RelPath, Ino>,
    inodes: BTreeMap<Ino, Inode>,
    /// How many paths name each inode.
    nlink: BTreeMap<Ino, u32>,
    next_ino: Ino,
}

impl Default for Tree {
    fn default() -> Self {
        Tree::new(Meta::implied_dir())
    }
}

impl Tree {
    /// A tree holding only its root directory, with the given metadata.
    pub fn new(root: Meta) -> Self {
        let mut t = Tree {
            paths: BTreeMap::new(),
            inodes: BTreeMap::new(),
            nlink: BTreeMap::new(),
            next_ino: 1,
        };
        t.insert(
            "",
            Inode {
                kind: Kind::Dir,
                meta: root,
            },
        );
        t
    }

    /// The inode at `path` (no symlink is followed).
    pub fn get(&self, path: &str) -> Option<&Inode> {
        self.paths.get(path).and_then(|i| self.inodes.get(i))
    }

    /// The inode at `path`, mutable (a change shows at every hard link of it).
    pub fn get_mut(&mut self, path: &str) -> Option<&mut Inode> {
        let ino = *self.paths.get(path)?;
        self.inodes.get_mut(&ino)
    }

    /// The inode number at `path`.
    pub fn ino(&self, path: &str) -> Option<Ino> {
        self.paths.get(path).copied()
    }

    /// The inode with number `ino`.
    pub fn inode(&self, ino: Ino) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    /// Puts a new inode at `path`, replacing whatever path pointed at (not its subtree).
    pub fn insert(&mut self, path: &str, inode: Inode) -> Ino {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, inode);
        self.link(path, ino);
        ino
    }

    /// Makes `path` another name of inode `ino` (a hard link).
    pub fn link(&mut self, path: &str, ino: Ino) {
        *self.nlink.entry(ino).or_insert(0) += 1;
        if let Some(old) = self.paths.insert(path.to_string(), ino) {
            self.unref(old);
        }
    }

    /// How many paths name the inode at `path`.
    pub fn nlink(&self, path: &str) -> u32 {
        self.ino(path)
            .and_then(|i| self.nlink.get(&i).copied())
            .unwrap_or(0)
    }

    /// Removes `path` and everything under it. Removing the root empties it instead.
    pub fn remove_subtree(&mut self, path: &str) {
        let doomed: Vec<RelPath> = self.subtree(path).map(|(p, _)| p.clone()).collect();
        for p in doomed {
            if p.is_empty() {
                continue;
            }
            if let Some(ino) = self.paths.remove(&p) {
                self.unref(ino);
            }
        }
    }

    /// Mutant (c): removes `path` alone, leaving the entries under it orphaned.
    #[cfg(feature = "mutants")]
    pub fn remove_subtree_root_only(&mut self, path: &str) {
        if let Some(ino) = self.paths.remove(path) {
            self.unref(ino);
        }
    }

    /// Removes everything under directory `path`, keeping `path` itself.
    pub fn clear_dir(&mut self, path: &str) {
        let doomed: Vec<RelPath> = self
            .subtree(path)
            .filter(|(p, _)| p.as_str() != path)
            .map(|(p, _)| p.clone())
            .collect();
        for p in doomed {
            if let Some(ino) = self.paths.remove(&p) {
                self.unref(ino);
            }
        }
    }

    /// Moves `from` and its subtree to `to` (which must not exist).
    pub fn rename_subtree(&mut self, from: &str, to: &str) {
        let moved: Vec<(RelPath, Ino)> = self.subtree(from).map(|(p, i)| (p.clone(), *i)).collect();
        for (p, _) in &moved {
            self.paths.remove(p);
        }
        for (p, ino) in moved {
            let rest = &p[from.len()..];
            self.paths.insert(format!("{to}{rest}"), ino);
        }
    }

    /// `path` and every path under it (`path` first, then its subtree in key order).
    pub fn subtree<'a>(&'a self, path: &str) -> impl Iterator<Item = (&'a RelPath, &'a Ino)> + 'a {
        let own = self.paths.get_key_value(path);
        // Keys under `p/` sort between `p/` and `p0` ('0' follows '/').
        let under = if path.is_empty() {
            self.paths
                .range::<str, _>((Bound::Unbounded, Bound::Unbounded))
        } else {
            let lo = format!("{path}/");
            let hi = format!("{path}0");
            self.paths
                .range::<str, _>((Bound::Included(lo.as_str()), Bound::Excluded(hi.as_str())))
        };
        own.into_iter()
            .chain(under.filter(move |(p, _)| !p.is_empty()))
    }

    /// The names of the direct children of directory `path`, sorted.
    pub fn children(&self, path: &str) -> Vec<String> {
        self.subtree(path)
            .filter_map(|(p, _)| {
                if p.as_str() == path {
                    return None;
                }
                let rest = if path.is_empty() {
                    p.as_str()
                } else {
                    &p[path.len() + 1..]
                };
                (!rest.contains('/')).then(|| rest.to_string())
            })
            .collect()
    }

    /// Every path with its inode, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&RelPath, &Inode)> {
        self.paths.iter().map(|(p, i)| (p, &self.inodes[i]))
    }

    /// The number of paths, the root included.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// True when only the root is left.
    pub fn is_empty(&self) -> bool {
        self.paths.len() <= 1
    }

    /// For every non-directory inode with more than one name, the sorted names.
    pub fn hardlink_groups(&self) -> Vec<Vec<RelPath>> {
        let mut by_ino: BTreeMap<Ino, Vec<RelPath>> = BTreeMap::new();
        for (p, ino) in &self.paths {
            if !self.inodes[ino].kind.is_dir() {
                by_ino.entry(*ino).or_default().push(p.clone());
            }
        }
        let mut groups: Vec<Vec<RelPath>> = by_ino.into_values().filter(|g| g.len() > 1).collect();
        groups.sort();
        groups
    }

    /// The other names of the inode at `path` (empty when it has one name or is a directory).
    pub fn links_of(&self, path: &str) -> Vec<RelPath> {
        let Some(ino) = self.ino(path) else {
            return Vec::new();
        };
        if self.inodes[&ino].kind.is_dir() {
            return Vec::new();
        }
        self.paths
            .iter()
            .filter(|(p, i)| **i == ino && p.as_str() != path)
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn unref(&mut self, ino: Ino) {
        let n = self.nlink.entry(ino).or_insert(1);
        *n -= 1;
        if *n == 0 {
            self.nlink.remove(&ino);
            self.inodes.remove(&ino);
        }
    }

    /// Compares `actual` against this (expected) tree; returns every difference.
    pub fn compare(&self, actual: &Tree, opts: &CompareOptions) -> Vec<Mismatch> {
        let mut out = Vec::new();
        let skip = |p: &str| opts.ignore.iter().any(|i| is_within(p, i));
        let paths: BTreeSet<&RelPath> = self.paths.keys().chain(actual.paths.keys()).collect();
        for p in paths {
            if skip(p) {
                continue;
            }
            match (self.get(p), actual.get(p)) {
                (Some(e), Some(a)) => compare_inode(p, e, a, opts, &mut out),
                (Some(e), None) => out.push(Mismatch::new(p, "presence", e.kind.name(), "missing")),
                (None, Some(a)) => out.push(Mismatch::new(p, "presence", "absent", a.kind.name())),
                (None, None) => {}
            }
        }
        if opts.hardlinks {
            let strip = |gs: Vec<Vec<RelPath>>| -> BTreeSet<Vec<RelPath>> {
                gs.into_iter()
                    .map(|g| g.into_iter().filter(|p| !skip(p)).collect::<Vec<_>>())
                    .filter(|g| g.len() > 1)
                    .collect()
            };
            let want = strip(self.hardlink_groups());
            let got = strip(actual.hardlink_groups());
            for g in want.difference(&got) {
                out.push(Mismatch::new(
                    &g[0],
                    "hard links",
                    &g.join(" = "),
                    "not linked so",
                ));
            }
            for g in got.difference(&want) {
                out.push(Mismatch::new(
                    &g[0],
                    "hard links",
                    "not linked so",
                    &g.join(" = "),
                ));
            }
        }
        out
    }

    /// A readable listing, one path a line: `path kind mode uid:gid [detail]`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (p, i) in self.iter() {
            let shown = if p.is_empty() { "/" } else { p.as_str() };
            s.push_str(&format!(
                "{shown} {} {:04o} {}:{}{}\n",
                i.kind.name(),
                i.meta.mode,
                i.meta.uid,
                i.meta.gid,
                kind_detail(&i.kind)
            ));
        }
        s
    }
}

fn kind_detail(k: &Kind) -> String {
    match k {
        Kind::File(d) => format!(" {}B {:?}", d.size, d.digest),
        Kind::Symlink { target } => format!(" -> {target}"),
        Kind::CharDev { major, minor } | Kind::BlockDev { major, minor } => {
            format!(" {major}:{minor}")
        }
        Kind::Dir | Kind::Fifo => String::new(),
    }
}

fn compare_inode(p: &str, e: &Inode, a: &Inode, opts: &CompareOptions, out: &mut Vec<Mismatch>) {
    if e.kind != a.kind {
        let (ek, ak) = (
            format!("{}{}", e.kind.name(), kind_detail(&e.kind)),
            format!("{}{}", a.kind.name(), kind_detail(&a.kind)),
        );
        out.push(Mismatch::new(p, "kind/content", &ek, &ak));
        if e.kind.name() != a.kind.name() {
            return;
        }
    }
    let is_link = matches!(e.kind, Kind::Symlink { .. });
    if !is_link && e.meta.mode != a.meta.mode {
        out.push(Mismatch::new(
            p,
            "mode",
            &format!("{:04o}", e.meta.mode),
            &format!("{:04o}", a.meta.mode),
        ));
    }
    if (e.meta.uid, e.meta.gid) != (a.meta.uid, a.meta.gid) {
        out.push(Mismatch::new(
            p,
            "owner",
            &format!("{}:{}", e.meta.uid, e.meta.gid),
            &format!("{}:{}", a.meta.uid, a.meta.gid),
        ));
    }
    let check_mtime = match opts.mtime {
        MtimeCompare::All => true,
        MtimeCompare::NonDirs => !e.kind.is_dir(),
        MtimeCompare::Ignore => false,
    };
    if check_mtime && e.meta.mtime != a.meta.mtime {
        out.push(Mismatch::new(
            p,
            "mtime",
            &e.meta.mtime.to_string(),
            &a.meta.mtime.to_string(),
        ));
    }
    if opts.xattrs && e.meta.xattrs != a.meta.xattrs {
        let show = |x: &BTreeMap<String, Vec<u8>>| {
            x.iter()
                .map(|(k, v)| format!("{k}={}", hex::encode(v)))
                .collect::<Vec<_>>()
                .join(",")
        };
        out.push(Mismatch::new(
            p,
            "xattrs",
            &show(&e.meta.xattrs),
            &show(&a.meta.xattrs),
        ));
    }
}

/// How modification times are compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtimeCompare {
    /// Every inode's mtime must match.
    All,
    /// Directories are skipped (their mtime moves with every change inside them).
    NonDirs,
    /// No mtime is compared.
    Ignore,
}

/// What [`Tree::compare`] looks at.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub mtime: MtimeCompare,
    pub xattrs: bool,
    pub hardlinks: bool,
    /// Paths skipped with everything under them.
    pub ignore: Vec<RelPath>,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            mtime: MtimeCompare::All,
            xattrs: true,
            hardlinks: true,
            ignore: Vec::new(),
        }
    }
}

/// One difference between an expected and an actual tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub path: RelPath,
    pub field: &'static str,
    pub expected: String,
    pub actual: String,
}

impl Mismatch {
    fn new(path: &str, field: &'static str, expected: &str, actual: &str) -> Self {
        Mismatch {
            path: path.to_string(),
            field,
            expected: expected.to_string(),
            actual: actual.to_string(),
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(
            f,
            "{p}: {} expected {} got {}",
            self.field, self.expected, self.actual
        )
    }
}

mod xattr_hex {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serializer, ser::SerializeMap};

    pub fn serialize<S: Serializer>(
        x: &BTreeMap<String, Vec<u8>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(x.len()))?;
        for (k, v) in x {
            m.serialize_entry(k, &hex::encode(v))?;
        }
        m.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Vec<u8>>, D::Error> {
        let m = BTreeMap::<String, String>::deserialize(d)?;
        m.into_iter()
            .map(|(k, v)| {
                hex::decode(&v)
                    .map(|b| (k, b))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str) -> Inode {
        Inode {
            kind: Kind::File(FileData::from_bytes(s.as_bytes().to_vec())),
            meta: Meta::mode(0o644),
        }
    }

    fn dir() -> Inode {
        Inode {
            kind: Kind::Dir,
            meta: Meta::mode(0o755),
        }
    }

    #[test]
    fn subtree_and_children_respect_component_boundaries() {
        let mut t = Tree::default();
        t.insert("a", dir());
        t.insert("a/x", file("1"));
        t.insert("a-b", file("2"));
        t.insert("a/y", dir());
        t.insert("a/y/z", file("3"));
        assert_eq!(t.children("a"), vec!["x", "y"]);
        assert_eq!(t.children(""), vec!["a", "a-b"]);
        t.remove_subtree("a");
        assert!(t.get("a/y/z").is_none());
        assert!(t.get("a-b").is_some());
    }

    #[test]
    fn hard_link_groups_compare_as_path_sets() {
        let mut a = Tree::default();
        let ino = a.insert("f", file("x"));
        a.link("g", ino);
        let mut b = Tree::default();
        b.insert("f", file("x"));
        b.insert("g", file("x"));
        let diffs = a.compare(&b, &CompareOptions::default());
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(diffs[0].field, "hard links");
        assert!(a.compare(&a.clone(), &CompareOptions::default()).is_empty());
    }

    #[test]
    fn removing_one_name_keeps_the_inode_for_the_other() {
        let mut t = Tree::default();
        let ino = t.insert("f", file("x"));
        t.link("g", ino);
        t.remove_subtree("f");
        assert_eq!(t.ino("g"), Some(ino));
        assert!(t.inode(ino).is_some());
        t.remove_subtree("g");
        assert!(t.inode(ino).is_none());
    }

    #[test]
    fn rename_moves_the_whole_subtree() {
        let mut t = Tree::default();
        t.insert("d", dir());
        t.insert("d/f", file("x"));
        t.rename_subtree("d", "e");
        assert!(t.get("d").is_none());
        assert!(t.get("e/f").is_some());
    }
}
