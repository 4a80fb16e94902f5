//! One conformance case as data: its TOML form and the checked values it parses into.
//!
//! ```toml
//! id = "W-10"
//! title = "Deleting a subtree gives one whiteout per deleted directory"
//! source = ["W-10"]                       # the case id, then where it comes from (harness/cases/README.md)
//!
//! [[layer]]                               # lowest first; `repeat = N` copies it N times
//! entries = [                             # with {i} replaced by 0..N-1
//!   { dir = "d0" },
//!   { file = "d1/d2/f1", content = "x", mode = "0640", owner = "1:2" },
//! ]
//!
//! [run]
//! actions = [                             # model::ops::Op, done with real syscalls
//!   { unlink = "d1/d2/f1" },
//!   { rmdir = "d1/d2" },
//!   { rmdir = "d1/d2", errno = "ENOENT" },  # must fail so
//! ]
//!
//! [expect]
//! view = [{ absent = "d1/d2" }, { dir = "d1", children = [] }]
//!
//! [expect.commit]
//! entries = ["d1/", "d1/.wh.d2"]          # exactly, in tar order
//! ```
//!
//! Every table rejects unknown keys, so a typo is an error naming the file and line, never a
//! check silently left out.

use std::collections::BTreeMap;

use serde::Deserialize;
use strata_runtime::fixture::Layer;
use strata_runtime::model::ops::{Op, errno};
use strata_runtime::model::{RelPath, Timespec, normalize};

/// A parsed, checked case.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: String,
    pub title: String,
    /// The case id, then where the rule comes from (names in harness/cases/README.md).
    pub source: Vec<String>,
    /// The file it was read from (its name in the catalog).
    pub file: String,
    pub layers: Vec<Layer>,
    /// Put the container init layer (/etc/hosts, /etc/hostname, /etc/resolv.conf) between
    /// the layers and the writable layer, and leave its files out of the commit.
    pub init_layer: bool,
    pub steps: Vec<Step>,
    pub view: Vec<ViewCheck>,
    pub commit: Option<CommitCheck>,
    /// The import of the layers must fail with a message containing this.
    pub import_error: Option<String>,
}

/// One action of a case and what it must do.
#[derive(Clone, Debug)]
pub enum Step {
    /// An operation on the view: it must succeed (`Ok`) or fail with the errno.
    Op { op: Op, expect: Result<(), i32> },
    /// A read of a regular file, symlinks followed inside the view's root.
    Read {
        path: RelPath,
        expect: Result<Vec<u8>, i32>,
    },
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Op { op, .. } => write!(f, "{op}"),
            Step::Read { path, .. } => write!(f, "read {path}"),
        }
    }
}

/// What one path of the view must be; only the fields given are checked.
#[derive(Clone, Debug, Default)]
pub struct ViewCheck {
    pub path: RelPath,
    /// `None`: absent. `Some(None)`: present, any kind.
    pub kind: Option<Option<KindCheck>>,
    pub content: Option<Vec<u8>>,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub mtime: Option<Timespec>,
    /// The exact set of xattrs (overlayfs's own are never shown).
    pub xattrs: Option<BTreeMap<String, Vec<u8>>>,
    /// The exact set of names in a directory.
    pub children: Option<Vec<String>>,
    /// The other names of the same inode (empty: it has no other name).
    pub links: Option<Vec<RelPath>>,
}

/// The kind a view path or commit entry must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindCheck {
    File,
    Dir,
    Symlink(Option<String>),
    CharDev(Option<(u32, u32)>),
    BlockDev(Option<(u32, u32)>),
    Fifo,
    HardLink(Option<String>),
}

impl KindCheck {
    pub fn name(&self) -> &'static str {
        match self {
            KindCheck::File => "file",
            KindCheck::Dir => "dir",
            KindCheck::Symlink(_) => "symlink",
            KindCheck::CharDev(_) => "chardev",
            KindCheck::BlockDev(_) => "blockdev",
            KindCheck::Fifo => "fifo",
            KindCheck::HardLink(_) => "hardlink",
        }
    }
}

/// What the commit (the writable layer as an OCI layer tar) must hold.
#[derive(Clone, Debug, Default)]
pub struct CommitCheck {
    /// Every entry, in tar order, rendered like `tar -t` with kinds (see [`crate::check::tarlist`]).
    pub entries: Option<Vec<String>>,
    /// Entry names (as in the tar: directories end in `/`) that must be there.
    pub includes: Vec<String>,
    /// Entry names that must not be there.
    pub excludes: Vec<String>,
    /// Header details of single entries.
    pub details: Vec<DetailCheck>,
}

/// The header fields one commit entry must have.
#[derive(Clone, Debug, Default)]
pub struct DetailCheck {
    pub name: String,
    pub kind: Option<KindCheck>,
    pub mode: Option<u32>,
    pub owner: Option<(u32, u32)>,
    pub size: Option<u64>,
    pub mtime: Option<Timespec>,
    pub content: Option<Vec<u8>>,
    pub xattrs: Option<BTreeMap<String, Vec<u8>>>,
    /// Checked only when the entry is there (an encoding a driver may or may not choose).
    pub optional: bool,
}

// ---------------------------------------------------------------------------------------
// The TOML form.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    id: String,
    title: String,
    source: Vec<String>,
    #[serde(default)]
    notes: Option<String>,
    #[serde(default)]
    layer: Vec<LayerFile>,
    #[serde(default)]
    run: RunFile,
    #[serde(default)]
    expect: ExpectFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LayerFile {
    #[serde(default)]
    entries: Vec<EntrySpec>,
    /// Stack this layer N times, `{i}` in its strings replaced by 0..N-1.
    #[serde(default)]
    repeat: Option<u32>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunFile {
    #[serde(default)]
    actions: Vec<Step>,
    #[serde(default)]
    init_layer: bool,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    #[serde(default)]
    view: Vec<ViewCheck>,
    #[serde(default)]
    commit: Option<CommitFile>,
    #[serde(default)]
    import_error: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitFile {
    #[serde(default)]
    entries: Option<Vec<String>>,
    #[serde(default)]
    includes: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    details: Vec<DetailCheck>,
}

/// The keys every entry-like table may use; which of them fit is checked per table.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    // layer entries
    file: Option<String>,
    dir: Option<String>,
    symlink: Option<String>,
    hardlink: Option<String>,
    fifo: Option<String>,
    chardev: Option<String>,
    blockdev: Option<String>,
    whiteout: Option<String>,
    opaque: Option<String>,
    // view checks
    absent: Option<String>,
    any: Option<String>,
    // actions
    create: Option<String>,
    write: Option<String>,
    append: Option<String>,
    truncate: Option<String>,
    chmod: Option<String>,
    chown: Option<String>,
    touch: Option<String>,
    setxattr: Option<String>,
    unlink: Option<String>,
    rmdir: Option<String>,
    mkdir: Option<String>,
    rename: Option<String>,
    link: Option<String>,
    read: Option<String>,
    // commit details
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    optional: Option<bool>,
    // attributes
    content: Option<String>,
    content_hex: Option<String>,
    size: Option<u64>,
    fill: Option<String>,
    target: Option<String>,
    to: Option<String>,
    major: Option<u32>,
    minor: Option<u32>,
    mode: Option<String>,
    owner: Option<String>,
    mtime: Option<MtimeValue>,
    xattrs: Option<BTreeMap<String, String>>,
    key: Option<String>,
    value: Option<String>,
    offset: Option<u64>,
    len: Option<u64>,
    errno: Option<String>,
    children: Option<Vec<String>>,
    links: Option<Vec<String>>,
}

#[derive(Clone, Deserialize)]
#[serde(untagged)]
enum MtimeValue {
    Secs(i64),
    Text(String),
}

/// One layer entry as written, before it becomes part of a fixture layer.
#[derive(Clone, Deserialize)]
#[serde(try_from = "Raw")]
struct EntrySpec(Raw);

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        step_or_symlink(raw).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ViewCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        view_check(raw).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for DetailCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Raw::deserialize(d)?;
        detail_check(raw).map_err(serde::de::Error::custom)
    }
}

const ENTRY_KINDS: [&str; 9] = [
    "file", "dir", "symlink", "hardlink", "fifo", "chardev", "blockdev", "whiteout", "opaque",
];
const VIEW_KINDS: [&str; 8] = [
    "file", "dir", "symlink", "fifo", "chardev", "blockdev", "absent", "any",
];
const ACTIONS: [&str; 14] = [
    "create", "write", "append", "truncate", "chmod", "chown", "touch", "setxattr", "unlink",
    "rmdir", "mkdir", "rename", "link", "read",
];

impl Raw {
    /// The keys that are set, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! k {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        k!(
            file,
            dir,
            symlink,
            hardlink,
            fifo,
            chardev,
            blockdev,
            whiteout,
            opaque,
            absent,
            any,
            create,
            write,
            append,
            truncate,
            chmod,
            chown,
            touch,
            setxattr,
            unlink,
            rmdir,
            mkdir,
            rename,
            link,
            read,
            name,
            kind,
            optional,
            content,
            content_hex,
            size,
            fill,
            target,
            to,
            major,
            minor,
            mode,
            owner,
            mtime,
            xattrs,
            key,
            value,
            offset,
            len,
            errno,
            children,
            links
        );
        v.into_iter()
            .map(|k| if k == "kind" { "type" } else { k })
            .collect()
    }

    /// The one key of `kinds` that is set, with its value.
    fn the_kind(
        &self,
        kinds: &[&'static str],
        what: &str,
    ) -> Result<(&'static str, String), String> {
        let keys = self.set_keys();
        let found: Vec<&&str> = keys.iter().filter(|k| kinds.contains(k)).collect();
        match found.as_slice() {
            [k] => {
                let v = self.value_of(k).unwrap_or_default();
                Ok((kinds.iter().find(|x| *x == *k).copied().unwrap_or(""), v))
            }
            [] => Err(format!("{what} needs one of the keys {}", kinds.join(", "))),
            many => Err(format!(
                "{what} has several kinds ({}): give exactly one",
                many.iter().map(|k| **k).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    fn value_of(&self, key: &str) -> Option<String> {
        match key {
            "file" => self.file.clone(),
            "dir" => self.dir.clone(),
            "symlink" => self.symlink.clone(),
            "hardlink" => self.hardlink.clone(),
            "fifo" => self.fifo.clone(),
            "chardev" => self.chardev.clone(),
            "blockdev" => self.blockdev.clone(),
            "whiteout" => self.whiteout.clone(),
            "opaque" => self.opaque.clone(),
            "absent" => self.absent.clone(),
            "any" => self.any.clone(),
            "create" => self.create.clone(),
            "write" => self.write.clone(),
            "append" => self.append.clone(),
            "truncate" => self.truncate.clone(),
            "chmod" => self.chmod.clone(),
            "chown" => self.chown.clone(),
            "touch" => self.touch.clone(),
            "setxattr" => self.setxattr.clone(),
            "unlink" => self.unlink.clone(),
            "rmdir" => self.rmdir.clone(),
            "mkdir" => self.mkdir.clone(),
            "rename" => self.rename.clone(),
            "link" => self.link.clone(),
            "read" => self.read.clone(),
            _ => None,
        }
    }

    /// Fails when a key outside `allowed` (and the kind keys) is set.
    fn only(&self, kind: &str, allowed: &[&str]) -> Result<(), String> {
        for k in self.set_keys() {
            if k != kind && !allowed.contains(&k) {
                return Err(format!("`{k}` does not apply to `{kind}`"));
            }
        }
        Ok(())
    }

    /// File content from `content`, `content_hex` or `size` + `fill`.
    fn content(&self) -> Result<Option<Vec<u8>>, String> {
        match (&self.content, &self.content_hex, self.size, &self.fill) {
            (Some(c), None, None, None) => Ok(Some(c.as_bytes().to_vec())),
            (None, Some(h), None, None) => hex::decode(h.trim())
                .map(Some)
                .map_err(|e| format!("content_hex: {e}")),
            (None, None, Some(n), fill) => {
                let pat = fill.as_deref().unwrap_or("\0").as_bytes().to_vec();
                if pat.is_empty() {
                    return Err("fill: empty pattern".into());
                }
                Ok(Some(pat.iter().copied().cycle().take(n as usize).collect()))
            }
            (None, None, None, None) => Ok(None),
            _ => Err("give one of content, content_hex, or size (with fill)".into()),
        }
    }

    fn mode(&self) -> Result<Option<u32>, String> {
        self.mode.as_deref().map(parse_mode).transpose()
    }

    fn owner(&self) -> Result<Option<(u32, u32)>, String> {
        self.owner.as_deref().map(parse_owner).transpose()
    }

    fn mtime(&self) -> Result<Option<Timespec>, String> {
        self.mtime.as_ref().map(parse_mtime).transpose()
    }

    fn xattrs(&self) -> Result<Option<BTreeMap<String, Vec<u8>>>, String> {
        self.xattrs
            .as_ref()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| Ok((k.clone(), parse_bytes(v)?)))
                    .collect::<Result<BTreeMap<_, _>, String>>()
            })
            .transpose()
    }

    fn device(&self, what: &str) -> Result<Option<(u32, u32)>, String> {
        match (self.major, self.minor) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            (None, None) => Ok(None),
            _ => Err(format!("{what}: give both major and minor")),
        }
    }
}

/// `"0644"`: octal permission bits (setuid, setgid, sticky included).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("mode {s:?}: not octal digits (write e.g. \"0644\")"))?;
    if m > 0o7777 {
        return Err(format!("mode {s:?}: more than permission bits (max 7777)"));
    }
    Ok(m)
}

/// `"1:2"`: uid and gid.
pub fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s
        .split_once(':')
        .ok_or_else(|| format!("owner {s:?}: write UID:GID"))?;
    let n = |x: &str| {
        x.parse::<u32>()
            .map_err(|_| format!("owner {s:?}: {x:?} is not a number"))
    };
    Ok((n(u)?, n(g)?))
}

fn parse_mtime(v: &MtimeValue) -> Result<Timespec, String> {
    match v {
        MtimeValue::Secs(s) => Ok(Timespec::new(*s, 0)),
        MtimeValue::Text(t) => {
            let (s, ns) = t.split_once('.').unwrap_or((t, "0"));
            let sec = s
                .parse::<i64>()
                .map_err(|_| format!("mtime {t:?}: write SECONDS or \"SECONDS.NANOS\""))?;
            if ns.is_empty() || ns.len() > 9 || !ns.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("mtime {t:?}: up to 9 digits of nanoseconds"));
            }
            let nsec = format!("{ns:0<9}")
                .parse::<u32>()
                .map_err(|_| format!("mtime {t:?}: bad nanoseconds"))?;
            Ok(Timespec::new(sec, nsec))
        }
    }
}

/// An xattr value: text, or `hex:...` for bytes.
fn parse_bytes(v: &str) -> Result<Vec<u8>, String> {
    match v.strip_prefix("hex:") {
        Some(h) => hex::decode(h).map_err(|e| format!("{v:?}: {e}")),
        None => Ok(v.as_bytes().to_vec()),
    }
}

/// `"ENOENT"` -> 2.
pub fn parse_errno(s: &str) -> Result<i32, String> {
    Ok(match s {
        "EPERM" => errno::EPERM,
        "ENOENT" => errno::ENOENT,
        "ENXIO" => errno::ENXIO,
        "EXDEV" => errno::EXDEV,
        "ENOTDIR" => errno::ENOTDIR,
        "EISDIR" => errno::EISDIR,
        "EINVAL" => errno::EINVAL,
        "ELOOP" => errno::ELOOP,
        "ENOTEMPTY" => errno::ENOTEMPTY,
        "EEXIST" => errno::EEXIST,
        "EOPNOTSUPP" => errno::EOPNOTSUPP,
        "EACCES" => 13,
        "EBUSY" => 16,
        "ENAMETOOLONG" => 36,
        "ENODATA" => 61,
        "EROFS" => 30,
        _ => {
            return Err(format!(
                "errno {s:?}: not a known name (ENOENT, EEXIST, EXDEV, ...)"
            ));
        }
    })
}

/// The name of an errno the catalog uses, for messages.
pub fn errno_name(e: i32) -> String {
    const NAMES: [&str; 16] = [
        "EPERM",
        "ENOENT",
        "ENXIO",
        "EXDEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ELOOP",
        "ENOTEMPTY",
        "EEXIST",
        "EOPNOTSUPP",
        "EACCES",
        "EBUSY",
        "ENAMETOOLONG",
        "ENODATA",
        "EROFS",
    ];
    NAMES
        .iter()
        .find(|n| parse_errno(n).ok() == Some(e))
        .map(|n| n.to_string())
        .unwrap_or_else(|| format!("errno {e}"))
}

/// A path of the case, relative to the view's root (`/` and `""` are the root).
fn rel(p: &str) -> Result<RelPath, String> {
    let n = normalize(p.trim_start_matches('/'))
        .ok_or_else(|| format!("path {p:?}: leaves the root"))?;
    Ok(n)
}

impl TryFrom<Raw> for EntrySpec {
    type Error = String;
    fn try_from(raw: Raw) -> Result<Self, String> {
        let (kind, path) = raw.the_kind(&ENTRY_KINDS, "a layer entry")?;
        let meta: &[&'static str] = &["mode", "owner", "mtime", "xattrs"];
        let with = |extra: &[&'static str]| -> Vec<&'static str> { [meta, extra].concat() };
        match kind {
            "file" => raw.only(kind, &with(&["content", "content_hex", "size", "fill"]))?,
            "dir" | "fifo" => raw.only(kind, meta)?,
            "symlink" | "hardlink" => {
                raw.only(kind, &with(&["target"]))?;
                if raw.target.is_none() {
                    return Err(format!("{kind} {path:?} needs a target"));
                }
            }
            "chardev" | "blockdev" => {
                raw.only(kind, &with(&["major", "minor"]))?;
                if raw.device(kind)?.is_none() {
                    return Err(format!("{kind} {path:?} needs major and minor"));
                }
            }
            _ => raw.only(kind, &[])?,
        }
        // Parse everything once here, so a bad value is an error with the entry's position.
        raw.content()?;
        raw.mode()?;
        raw.owner()?;
        raw.mtime()?;
        raw.xattrs()?;
        Ok(EntrySpec(raw))
    }
}

impl EntrySpec {
    /// This entry with `{i}` replaced in its strings.
    fn instance(&self, i: u32) -> EntrySpec {
        let mut r = self.0.clone();
        let s = |o: &mut Option<String>| {
            if let Some(v) = o {
                *v = v.replace("{i}", &i.to_string());
            }
        };
        for f in [
            &mut r.file,
            &mut r.dir,
            &mut r.symlink,
            &mut r.hardlink,
            &mut r.fifo,
            &mut r.chardev,
            &mut r.blockdev,
            &mut r.whiteout,
            &mut r.opaque,
            &mut r.content,
            &mut r.target,
        ] {
            s(f);
        }
        EntrySpec(r)
    }

    fn add_to(&self, l: Layer) -> Result<Layer, String> {
        let r = &self.0;
        let (kind, path) = r.the_kind(&ENTRY_KINDS, "a layer entry")?;
        let path = rel(&path)?;
        let target = r.target.clone().unwrap_or_default();
        let mut l = match kind {
            "file" => l.file(&path, r.content()?.unwrap_or_default()),
            "dir" => l.dir(&path),
            "symlink" => l.symlink(&path, &target),
            "hardlink" => l.hardlink(&path, &rel(&target)?),
            "fifo" => l.fifo(&path),
            "chardev" | "blockdev" => {
                let (a, b) = r.device(kind)?.unwrap_or((0, 0));
                if kind == "chardev" {
                    l.chardev(&path, a, b)
                } else {
                    l.blockdev(&path, a, b)
                }
            }
            "whiteout" => return Ok(l.whiteout(&path)),
            _ => return Ok(l.opaque(&path)),
        };
        if let Some(m) = r.mode()? {
            l = l.mode(m);
        }
        if let Some((u, g)) = r.owner()? {
            l = l.owner(u, g);
        }
        if let Some(t) = r.mtime()? {
            l = l.mtime(t.sec, t.nsec);
        }
        for (k, v) in r.xattrs()?.unwrap_or_default() {
            l = l.xattr(&k, v);
        }
        Ok(l)
    }
}

fn step(raw: Raw) -> Result<Step, String> {
    let (kind, path) = raw.the_kind(&ACTIONS, "an action")?;
    let p = rel(&path)?;
    let expect = raw.errno.as_deref().map(parse_errno).transpose()?;
    let need = |v: Option<String>, key: &str| v.ok_or_else(|| format!("{kind} needs `{key}`"));
    let data = || -> Result<Vec<u8>, String> {
        raw.content()?
            .ok_or_else(|| format!("{kind} needs content (or content_hex, or size)"))
    };
    let op = match kind {
        "create" => {
            raw.only(
                kind,
                &["content", "content_hex", "size", "fill", "mode", "errno"],
            )?;
            Op::Create {
                path: p,
                data: raw.content()?.unwrap_or_default(),
                mode: raw.mode()?.unwrap_or(0o644),
            }
        }
        "write" => {
            raw.only(
                kind,
                &["content", "content_hex", "size", "fill", "offset", "errno"],
            )?;
            Op::WriteAt {
                path: p,
                offset: raw.offset.unwrap_or(0),
                data: data()?,
            }
        }
        "append" => {
            raw.only(kind, &["content", "content_hex", "size", "fill", "errno"])?;
            Op::Append {
                path: p,
                data: data()?,
            }
        }
        "truncate" => {
            raw.only(kind, &["len", "errno"])?;
            Op::Truncate {
                path: p,
                len: raw.len.ok_or("truncate needs `len`")?,
            }
        }
        "chmod" => {
            raw.only(kind, &["mode", "errno"])?;
            Op::Chmod {
                path: p,
                mode: raw.mode()?.ok_or("chmod needs `mode`")?,
            }
        }
        "chown" => {
            raw.only(kind, &["owner", "errno"])?;
            let (uid, gid) = raw.owner()?.ok_or("chown needs `owner`")?;
            Op::Chown { path: p, uid, gid }
        }
        "touch" => {
            raw.only(kind, &["mtime", "errno"])?;
            Op::SetMtime {
                path: p,
                mtime: raw.mtime()?.ok_or("touch needs `mtime`")?,
            }
        }
        "setxattr" => {
            raw.only(kind, &["key", "value", "errno"])?;
            Op::SetXattr {
                path: p,
                key: need(raw.key.clone(), "key")?,
                value: parse_bytes(&need(raw.value.clone(), "value")?)?,
            }
        }
        "unlink" => {
            raw.only(kind, &["errno"])?;
            Op::Unlink { path: p }
        }
        "rmdir" => {
            raw.only(kind, &["errno"])?;
            Op::Rmdir { path: p }
        }
        "mkdir" => {
            raw.only(kind, &["mode", "errno"])?;
            Op::Mkdir {
                path: p,
                mode: raw.mode()?.unwrap_or(0o755),
            }
        }
        "rename" | "link" => {
            raw.only(kind, &["to", "errno"])?;
            let to = rel(&need(raw.to.clone(), "to")?)?;
            if kind == "rename" {
                Op::Rename { from: p, to }
            } else {
                Op::Link { from: p, to }
            }
        }
        _ => {
            // read
            raw.only(kind, &["content", "content_hex", "size", "fill", "errno"])?;
            let expect = match (expect, raw.content()?) {
                (Some(e), None) => Err(e),
                (None, Some(c)) => Ok(c),
                _ => return Err("read needs either content or errno".into()),
            };
            return Ok(Step::Read { path: p, expect });
        }
    };
    Ok(Step::Op {
        op,
        expect: expect.map_or(Ok(()), Err),
    })
}

/// An action. `{ symlink = PATH, target = T }` shares its key with the layer entry kind, so
/// it is looked for first.
fn step_or_symlink(raw: Raw) -> Result<Step, String> {
    if let Some(path) = raw.symlink.clone() {
        raw.only("symlink", &["target", "errno"])?;
        let expect = raw.errno.as_deref().map(parse_errno).transpose()?;
        let target = raw.target.clone().ok_or("symlink needs `target`")?;
        return Ok(Step::Op {
            op: Op::Symlink {
                target,
                path: rel(&path)?,
            },
            expect: expect.map_or(Ok(()), Err),
        });
    }
    step(raw)
}

fn kind_check(kind: &str, raw: &Raw) -> Result<Option<KindCheck>, String> {
    Ok(match kind {
        "file" => Some(KindCheck::File),
        "dir" => Some(KindCheck::Dir),
        "symlink" => Some(KindCheck::Symlink(raw.target.clone())),
        "fifo" => Some(KindCheck::Fifo),
        "chardev" => Some(KindCheck::CharDev(raw.device(kind)?)),
        "blockdev" => Some(KindCheck::BlockDev(raw.device(kind)?)),
        "hardlink" => Some(KindCheck::HardLink(raw.target.clone())),
        _ => None,
    })
}

fn view_check(raw: Raw) -> Result<ViewCheck, String> {
    let (kind, path) = raw.the_kind(&VIEW_KINDS, "a view check")?;
    let path = rel(&path)?;
    if kind == "absent" {
        raw.only(kind, &[])?;
        return Ok(ViewCheck {
            path,
            ..ViewCheck::default()
        });
    }
    let attrs = ["mode", "owner", "mtime", "xattrs", "links"];
    let extra: &[&str] = match kind {
        "file" => &["content", "content_hex", "size", "fill"],
        "dir" => &["children"],
        "symlink" => &["target"],
        "chardev" | "blockdev" => &["major", "minor"],
        "any" => &[
            "children",
            "content",
            "content_hex",
            "size",
            "fill",
            "target",
        ],
        _ => &[],
    };
    raw.only(kind, &[&attrs[..], extra].concat())?;
    let links = raw
        .links
        .as_ref()
        .map(|ls| ls.iter().map(|l| rel(l)).collect::<Result<Vec<_>, _>>())
        .transpose()?;
    Ok(ViewCheck {
        path,
        kind: Some(kind_check(kind, &raw)?),
        content: raw.content()?,
        mode: raw.mode()?,
        owner: raw.owner()?,
        mtime: raw.mtime()?,
        xattrs: raw.xattrs()?,
        children: raw.children.clone(),
        links,
    })
}

fn detail_check(raw: Raw) -> Result<DetailCheck, String> {
    let name = raw
        .name
        .clone()
        .ok_or("a commit detail needs `name` (the tar entry name)")?;
    raw.only(
        "name",
        &[
            "type",
            "mode",
            "owner",
            "size",
            "mtime",
            "content",
            "content_hex",
            "xattrs",
            "optional",
            "target",
            "major",
            "minor",
        ],
    )?;
    let kind = match raw.kind.as_deref() {
        None => None,
        Some(k) => Some(kind_check(k, &raw)?.ok_or_else(|| {
            format!("type {k:?}: one of file, dir, symlink, hardlink, chardev, blockdev, fifo")
        })?),
    };
    // `size` is the header's size here, not a content generator.
    let content = match (&raw.content, &raw.content_hex) {
        (Some(c), None) => Some(c.as_bytes().to_vec()),
        (None, Some(h)) => Some(hex::decode(h.trim()).map_err(|e| format!("content_hex: {e}"))?),
        (None, None) => None,
        _ => return Err("give content or content_hex, not both".into()),
    };
    Ok(DetailCheck {
        name,
        kind,
        mode: raw.mode()?,
        owner: raw.owner()?,
        size: raw.size,
        mtime: raw.mtime()?,
        content,
        xattrs: raw.xattrs()?,
        optional: raw.optional.unwrap_or(false),
    })
}

/// A TOML error as one line: `line N: reason`.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

/// Parses the case file `name` (its text `text`); the error is one line without the name.
pub fn parse(name: &str, text: &str) -> Result<Case, String> {
    let f: CaseFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
    let _ = f.notes;
    let stem = name.trim_end_matches(".toml");
    if !(stem == f.id || stem.starts_with(&format!("{}-", f.id))) {
        return Err(format!(
            "id {:?} does not match the file name (name it {}-<words>.toml)",
            f.id, f.id
        ));
    }
    if f.source.is_empty() {
        return Err("source is empty: give the case id and where the rule comes from".into());
    }
    let mut layers = Vec::new();
    for (n, lf) in f.layer.iter().enumerate() {
        let repeat = lf.repeat.unwrap_or(1);
        if repeat == 0 {
            return Err(format!("layer {n}: repeat = 0"));
        }
        for i in 0..repeat {
            let mut l = Layer::new();
            for e in &lf.entries {
                let e = if lf.repeat.is_some() {
                    e.instance(i)
                } else {
                    e.clone()
                };
                l = e.add_to(l).map_err(|r| format!("layer {n}: {r}"))?;
            }
            layers.push(l);
        }
    }
    if layers.is_empty() && !f.run.init_layer {
        return Err("no [[layer]]: a case needs at least one layer".into());
    }
    let commit = f.expect.commit.map(|c| CommitCheck {
        entries: c.entries,
        includes: c.includes,
        excludes: c.excludes,
        details: c.details,
    });
    Ok(Case {
        id: f.id,
        title: f.title,
        source: f.source,
        file: name.to_string(),
        layers,
        init_layer: f.run.init_layer,
        steps: f.run.actions,
        view: f.expect.view,
        commit,
        import_error: f.expect.import_error,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "W-10"
title = "t"
source = ["W-10"]

[[layer]]
entries = [
  { dir = "d0", mode = "0750", owner = "1:2" },
  { file = "d1/f", content = "x", xattrs = { "user.a" = "1" } },
  { symlink = "l", target = "d1" },
]

[[layer]]
repeat = 3
entries = [{ file = "f{i}", content = "{i}" }]

[run]
actions = [
  { unlink = "d1/f" },
  { rmdir = "d0", errno = "ENOENT" },
  { symlink = "s", target = "x" },
  { read = "l/f", errno = "ENOENT" },
]

[expect]
view = [{ absent = "d1/f" }, { dir = "d1", children = [] }]

[expect.commit]
entries = ["d1/", "d1/.wh.f"]
details = [{ name = "d1/.wh.f", type = "file", size = 0, mode = "0600" }]
"#;

    #[test]
    fn a_case_parses_into_layers_steps_and_checks() {
        let c = parse("W-10-x.toml", GOOD).unwrap();
        assert_eq!(c.layers.len(), 4);
        assert_eq!(c.steps.len(), 4);
        assert!(matches!(
            &c.steps[2],
            Step::Op {
                op: Op::Symlink { .. },
                ..
            }
        ));
        assert!(matches!(&c.steps[1], Step::Op { expect: Err(2), .. }));
        assert_eq!(c.view.len(), 2);
        let commit = c.commit.unwrap();
        assert_eq!(commit.details[0].size, Some(0));
        assert_eq!(commit.details[0].mode, Some(0o600));
    }

    #[test]
    fn mistakes_are_one_line_with_the_line_number() {
        let bad = GOOD.replace("mode = \"0750\"", "mod = \"0750\"");
        let e = parse("W-10-x.toml", &bad).unwrap_err();
        assert!(e.starts_with("line 8: "), "{e}");
        assert!(!e.contains('\n'), "{e}");
        let e = parse("W-10-x.toml", &GOOD.replace("\"0750\"", "\"0958\"")).unwrap_err();
        assert!(e.contains("not octal"), "{e}");
        let e = parse("X-1.toml", GOOD).unwrap_err();
        assert!(e.contains("does not match the file name"), "{e}");
        let e = parse(
            "W-10.toml",
            &GOOD.replace("{ dir = \"d0\",", "{ dir = \"d0\", file = \"y\","),
        )
        .unwrap_err();
        assert!(e.contains("several kinds"), "{e}");
        let e = parse("W-10.toml", &GOOD.replace("\"ENOENT\" }", "\"ENOPE\" }")).unwrap_err();
        assert!(e.contains("ENOPE"), "{e}");
    }
}
