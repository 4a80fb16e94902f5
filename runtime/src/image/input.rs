//! Where an image is read from: a directory (an OCI image layout) or a tar (a docker-save
//! archive, or an OCI layout in a tar). A tar is indexed once (name -> offset and size), so each
//! blob is read in place, never extracted to a temporary.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub enum TarItem {
    File { offset: u64, size: u64 },
    Link(String),
}

/// An opened image source.
#[derive(Debug)]
pub enum Input {
    Dir(PathBuf),
    Tar {
        path: PathBuf,
        items: HashMap<String, TarItem>,
    },
}

/// Normalizes a name inside a tar or layout: no leading `./` or `/`, no `.` components;
/// `None` when it climbs out with `..`.
fn clean(name: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for c in name.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

impl Input {
    /// Opens a layout directory or indexes a tar.
    pub fn from_path(path: &Path) -> Result<Input> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("open image", path, e))?;
        if meta.is_dir() {
            return Ok(Input::Dir(path.to_path_buf()));
        }
        let f = File::open(path).map_err(|e| Error::io("open image", path, e))?;
        let mut a = tar::Archive::new(io::BufReader::new(f));
        let mut items = HashMap::new();
        let bad = |reason: String| Error::BadArchive {
            path: path.to_path_buf(),
            reason,
        };
        let entries = a
            .entries()
            .map_err(|e| bad(format!("not a tar archive: {e}")))?;
        for ent in entries {
            let ent = ent.map_err(|e| bad(format!("not a tar archive, or truncated: {e}")))?;
            let raw = String::from_utf8_lossy(&ent.path_bytes()).into_owned();
            let Some(name) = clean(&raw) else { continue };
            let t = ent.header().entry_type();
            if t.is_file() {
                items.insert(
                    name,
                    TarItem::File {
                        offset: ent.raw_file_position(),
                        size: ent.size(),
                    },
                );
            } else if t.is_symlink() || t.is_hard_link() {
                let target = ent
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let resolved = if t.is_symlink() && !target.starts_with('/') {
                    let parent = name.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                    format!("{parent}/{target}")
                } else {
                    target
                };
                if let Some(r) = clean(&resolved) {
                    items.insert(name, TarItem::Link(r));
                }
            }
        }
        Ok(Input::Tar {
            path: path.to_path_buf(),
            items,
        })
    }

    /// The path of the image (directory or tar).
    pub fn path(&self) -> &Path {
        match self {
            Input::Dir(p) | Input::Tar { path: p, .. } => p,
        }
    }

    /// How messages name the file `rel` inside the image.
    pub fn label(&self, rel: &str) -> PathBuf {
        match self {
            Input::Dir(p) => p.join(rel),
            Input::Tar { path, .. } => PathBuf::from(format!("{}:{rel}", path.display())),
        }
    }

    /// True when the image holds a file `rel`.
    pub fn exists(&self, rel: &str) -> bool {
        self.open(rel).ok().flatten().is_some()
    }

    /// Opens the file `rel`: its reader and size, or `None` when it is not there.
    pub fn open(&self, rel: &str) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        let Some(rel) = clean(rel) else {
            return Ok(None);
        };
        match self {
            Input::Dir(root) => {
                let p = root.join(&rel);
                match File::open(&p) {
                    Ok(f) => {
                        let m = f.metadata().map_err(|e| Error::io("stat", &p, e))?;
                        if !m.is_file() {
                            return Ok(None);
                        }
                        Ok(Some((Box::new(f), m.len())))
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("open", &p, e)),
                }
            }
            Input::Tar { path, items } => {
                let mut name = rel;
                for _ in 0..16 {
                    match items.get(&name) {
                        None => return Ok(None),
                        Some(TarItem::Link(t)) => name = t.clone(),
                        Some(TarItem::File { offset, size }) => {
                            let mut f =
                                File::open(path).map_err(|e| Error::io("open image", path, e))?;
                            f.seek(SeekFrom::Start(*offset))
                                .map_err(|e| Error::io("seek", path, e))?;
                            return Ok(Some((Box::new(f.take(*size)), *size)));
                        }
                    }
                }
                Ok(None)
            }
        }
    }

    /// Reads a small file whole (at most `max` bytes), or `None` when it is not there.
    pub fn read(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>> {
        let Some((mut r, size)) = self.open(rel)? else {
            return Ok(None);
        };
        let label = self.label(rel);
        if size > max {
            return Err(Error::BadArchive {
                path: label,
                reason: format!("{size} bytes: too large for JSON metadata (limit {max})"),
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        r.read_to_end(&mut buf)
            .map_err(|e| Error::io("read", &label, e))?;
        Ok(Some(buf))
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean("./a/b").as_deref(), Some("a/b"));
        assert_eq!(clean("a/../b").as_deref(), Some("b"));
        assert_eq!(clean("../x"), None);
    }
}
