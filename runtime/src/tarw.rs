//! A deterministic OCI layer tar writer: the same entries always give the same bytes.
//!
//! GNU headers (long names through the `tar` crate), PAX records for xattrs
//! (`SCHILY.xattr.NAME`) and sub-second mtimes, numeric owners only, no atime or ctime.
//! Whiteouts are empty regular files `.wh.NAME`, mode 0600, mtime 0; an opaque marker
//! `DIR/.wh..wh..opq` takes its directory's permission bits and owner.

use std::io::{self, Read, Write};

use tar::{Builder, EntryType, Header};

use crate::model::{Entry, EntryKind, Meta, join, parent_and_name};

/// The prefix of a whiteout file name.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The name of the opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Writes layer entries as a tar stream.
pub struct TarWriter<W: Write> {
    builder: Builder<W>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(w: W) -> Self {
        let mut builder = Builder::new(w);
        builder.follow_symlinks(false);
        TarWriter { builder }
    }

    /// Writes one entry. A file's `data` must yield exactly its size in bytes.
    pub fn entry(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> io::Result<()> {
        let mut h = Header::new_gnu();
        set_meta(&mut h, &e.meta);
        self.pax(&e.meta)?;
        let name = if e.path.is_empty() {
            "./".to_string()
        } else if e.kind == EntryKind::Dir {
            format!("{}/", e.path)
        } else {
            e.path.clone()
        };
        match &e.kind {
            EntryKind::File(d) => {
                h.set_entry_type(EntryType::Regular);
                h.set_size(d.size);
                let empty: &mut dyn Read = &mut io::empty();
                let data = data.unwrap_or(empty);
                // Exactly the size in the header: a file that shrinks while it is read fails
                // the entry (a short entry would corrupt the tar); one that grows is cut at
                // the size it had.
                let exact = Exact {
                    inner: data.take(d.size),
                    want: d.size,
                    got: 0,
                };
                self.builder.append_data(&mut h, &name, exact)
            }
            EntryKind::Dir => {
                h.set_entry_type(EntryType::Directory);
                h.set_size(0);
                self.builder.append_data(&mut h, &name, io::empty())
            }
            EntryKind::Symlink { target } => {
                h.set_entry_type(EntryType::Symlink);
                h.set_size(0);
                self.builder.append_link(&mut h, &name, target)
            }
            EntryKind::HardLink { target } => {
                h.set_entry_type(EntryType::Link);
                h.set_size(0);
                self.builder.append_link(&mut h, &name, target)
            }
            EntryKind::CharDev { major, minor } | EntryKind::BlockDev { major, minor } => {
                let t = if matches!(e.kind, EntryKind::CharDev { .. }) {
                    EntryType::Char
                } else {
                    EntryType::Block
                };
                h.set_entry_type(t);
                h.set_size(0);
                h.set_device_major(*major)?;
                h.set_device_minor(*minor)?;
                self.builder.append_data(&mut h, &name, io::empty())
            }
            EntryKind::Fifo => {
                h.set_entry_type(EntryType::Fifo);
                h.set_size(0);
                self.builder.append_data(&mut h, &name, io::empty())
            }
        }
    }

    /// Writes the whiteout that deletes `path` from the layers below.
    pub fn whiteout(&mut self, path: &str) -> io::Result<()> {
        let (parent, name) =
            parent_and_name(path).ok_or_else(|| io::Error::other("whiteout of the root"))?;
        self.marker(
            &join(parent, &format!("{WHITEOUT_PREFIX}{name}")),
            &Meta::mode(0o600),
        )
    }

    /// Writes the marker that hides every lower child of directory `dir`.
    pub fn opaque(&mut self, dir: &str, dir_meta: &Meta) -> io::Result<()> {
        let mut m = Meta::mode(dir_meta.mode & 0o777);
        m.uid = dir_meta.uid;
        m.gid = dir_meta.gid;
        self.marker(&join(dir, OPAQUE_MARKER), &m)
    }

    fn marker(&mut self, name: &str, meta: &Meta) -> io::Result<()> {
        let mut h = Header::new_gnu();
        set_meta(&mut h, meta);
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        self.builder.append_data(&mut h, name, io::empty())
    }

    fn pax(&mut self, meta: &Meta) -> io::Result<()> {
        let mut recs: Vec<(String, Vec<u8>)> = Vec::new();
        if meta.mtime.nsec != 0 || meta.mtime.sec < 0 {
            recs.push((
                "mtime".into(),
                format!("{}.{:09}", meta.mtime.sec, meta.mtime.nsec).into_bytes(),
            ));
        }
        for (k, v) in &meta.xattrs {
            recs.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if recs.is_empty() {
            return Ok(());
        }
        self.builder
            .append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// Ends the archive (two zero blocks) and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.builder.into_inner()
    }
}

fn set_meta(h: &mut Header, meta: &Meta) {
    h.set_mode(meta.mode);
    h.set_uid(meta.uid as u64);
    h.set_gid(meta.gid as u64);
    h.set_mtime(meta.mtime.sec.max(0) as u64);
}

/// Reads exactly `want` bytes from `inner`: an end of file before that is an error.
struct Exact<R> {
    inner: R,
    want: u64,
    got: u64,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.got += n as u64;
        if n == 0 && !buf.is_empty() && self.got < self.want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the file shrank while it was read ({} of {} bytes): nothing was committed",
                    self.got, self.want
                ),
            ));
        }
        Ok(n)
    }
}
