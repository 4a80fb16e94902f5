//! A generated layer stack: items per layer, made valid for import (the way a real tar
//! writer would have made it) and printable as a readable case.

use std::collections::HashMap;
use std::fmt;

use strata_runtime::fixture::Layer;
use strata_runtime::model::{Timespec, join, parent_and_name};

/// Metadata of a generated entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenMeta {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timespec,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// File content as generated: kept small in memory, expanded when written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// `len` zero bytes with a few bytes set: a sparse file once imported.
    Sparse {
        len: u64,
        marks: Vec<(u64, u8)>,
    },
}

impl Content {
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Bytes(b) => b.clone(),
            Content::Sparse { len, marks } => {
                let mut v = vec![0u8; *len as usize];
                for (off, b) in marks {
                    if let Some(x) = v.get_mut(*off as usize) {
                        *x = *b;
                    }
                }
                v
            }
        }
    }
}

/// One generated thing in a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
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
    },
    /// A hard link to the `nth` earlier file of the same layer (modulo their number).
    HardLink {
        path: String,
        nth: usize,
    },
    Fifo {
        path: String,
        meta: GenMeta,
    },
    /// A char device 1:3 (the null device): harmless if anything opens it.
    NullDev {
        path: String,
    },
    Whiteout {
        path: String,
    },
    Opaque {
        path: String,
    },
}

impl Item {
    fn path(&self) -> &str {
        match self {
            Item::File { path, .. }
            | Item::Dir { path, .. }
            | Item::Symlink { path, .. }
            | Item::HardLink { path, .. }
            | Item::Fifo { path, .. }
            | Item::NullDev { path }
            | Item::Whiteout { path }
            | Item::Opaque { path } => path,
        }
    }
}

/// A stack of generated layers, lowest first. Valid by construction of [`Stack::new`].
#[derive(Clone, PartialEq, Eq)]
pub struct Stack {
    pub layers: Vec<Vec<Item>>,
}

/// What a layer holds at a path while it is made valid.
#[derive(Clone, Copy, PartialEq)]
enum Held {
    Dir,
    Implied,
    File,
    Other,
}

impl Stack {
    /// Drops the items a tar writer could never have produced (a path twice, an entry under
    /// a non-directory of the same layer, a hard link with no file before it), so every
    /// layer imports. What is left is applied exactly as generated.
    pub fn new(raw: Vec<Vec<Item>>) -> Stack {
        Stack {
            layers: raw.into_iter().map(valid_layer).collect(),
        }
    }

    /// The layers as fixtures (tar and change set).
    pub fn fixtures(&self) -> Vec<Layer> {
        self.layers.iter().map(|items| to_fixture(items)).collect()
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

fn valid_layer(items: Vec<Item>) -> Vec<Item> {
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut files: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for item in items {
        let p = item.path().to_string();
        let anc = ancestors(&p);
        if anc
            .iter()
            .any(|a| matches!(held.get(a), Some(Held::File | Held::Other)))
        {
            continue;
        }
        let here = held.get(&p).copied();
        let ok = match &item {
            Item::Dir { .. } => !matches!(here, Some(Held::File | Held::Other)),
            Item::Opaque { .. } => !matches!(here, Some(Held::File | Held::Other)),
            Item::Whiteout { .. } => true,
            Item::HardLink { .. } => here.is_none() && !files.is_empty(),
            _ => here.is_none(),
        };
        if !ok {
            continue;
        }
        for a in &anc {
            held.entry(a.clone()).or_insert(Held::Implied);
        }
        let item = match item {
            Item::HardLink { path, nth } => Item::HardLink {
                path,
                nth: nth % files.len(),
            },
            other => other,
        };
        match &item {
            Item::Dir { .. } => {
                held.insert(p, Held::Dir);
            }
            Item::Opaque { .. } => {
                held.entry(p).or_insert(Held::Implied);
            }
            Item::Whiteout { .. } => {}
            Item::File { .. } => {
                held.insert(p.clone(), Held::File);
                files.push(p);
            }
            Item::HardLink { .. } => {
                held.insert(p, Held::File);
            }
            _ => {
                held.insert(p, Held::Other);
            }
        }
        out.push(item);
    }
    out
}

fn to_fixture(items: &[Item]) -> Layer {
    let mut l = Layer::new();
    let mut files: Vec<String> = Vec::new();
    let apply_meta = |mut l: Layer, m: &GenMeta| {
        l = l
            .mode(m.mode)
            .owner(m.uid, m.gid)
            .mtime(m.mtime.sec, m.mtime.nsec);
        for (k, v) in &m.xattrs {
            l = l.xattr(k, v);
        }
        l
    };
    for item in items {
        l = match item {
            Item::File {
                path,
                content,
                meta,
            } => {
                files.push(path.clone());
                apply_meta(l.file(path, content.bytes()), meta)
            }
            Item::Dir { path, meta } => apply_meta(l.dir(path), meta),
            Item::Symlink { path, target } => l.symlink(path, target),
            Item::HardLink { path, nth } => l.hardlink(path, &files[*nth]),
            Item::Fifo { path, meta } => apply_meta(l.fifo(path), meta),
            Item::NullDev { path } => l.chardev(path, 1, 3),
            Item::Whiteout { path } => l.whiteout(path),
            Item::Opaque { path } => l.opaque(path),
        };
    }
    l
}

impl fmt::Debug for Stack {
    /// A shrunk failure prints as a readable stack, one entry a line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Stack (lowest layer first):")?;
        for (i, items) in self.layers.iter().enumerate() {
            writeln!(f, "  layer {i}:")?;
            let mut files = Vec::new();
            for item in items {
                let m = |m: &GenMeta| {
                    let x: Vec<String> = m.xattrs.iter().map(|(k, _)| k.clone()).collect();
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
                match item {
                    Item::File {
                        path,
                        content,
                        meta,
                    } => {
                        files.push(path.clone());
                        let c = match content {
                            Content::Bytes(b) if b.len() <= 16 => {
                                format!("{:?}", String::from_utf8_lossy(b))
                            }
                            Content::Bytes(b) => format!("{} bytes", b.len()),
                            Content::Sparse { len, marks } => {
                                format!("sparse {len} bytes, {} set", marks.len())
                            }
                        };
                        writeln!(f, "    file    {path} = {c}  {}", m(meta))?
                    }
                    Item::Dir { path, meta } => writeln!(f, "    dir     {path}/  {}", m(meta))?,
                    Item::Symlink { path, target } => {
                        writeln!(f, "    symlink {path} -> {target}")?
                    }
                    Item::HardLink { path, nth } => writeln!(
                        f,
                        "    link    {path} => {}",
                        files.get(*nth).map(String::as_str).unwrap_or("?")
                    )?,
                    Item::Fifo { path, meta } => writeln!(f, "    fifo    {path}  {}", m(meta))?,
                    Item::NullDev { path } => writeln!(f, "    chardev {path} 1:3")?,
                    Item::Whiteout { path } => {
                        let (d, n) = parent_and_name(path).unwrap_or(("", path));
                        writeln!(f, "    whiteout {}", join(d, &format!(".wh.{n}")))?
                    }
                    Item::Opaque { path } => {
                        writeln!(f, "    opaque  {}", join(path, ".wh..wh..opq"))?
                    }
                }
            }
        }
        Ok(())
    }
}
