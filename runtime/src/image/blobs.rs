//! Content-addressed blobs under the store root, and the staging area that makes an image
//! operation all-or-nothing.
//!
//! ```text
//! ROOT/blobs/sha256/<hex>    a compressed layer blob, an image config or a manifest, as
//!                            received or written (never changed; written via rename)
//! ROOT/tmp/image-<id>/       an operation's blobs until it succeeds
//! ```
//!
//! A [`Staging`] collects the blobs an import or commit writes and the layers it newly
//! extracts. Only [`Staging::commit`] moves the blobs into place (then writes the image record);
//! dropping it before, on any error, removes the staged blobs and the layers it created, so the
//! store is as it was.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::fsutil::remove_tree;
use crate::store::{Store, unique_id};

/// The blob directory of a store.
#[derive(Clone, Debug)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    /// `ROOT/blobs/sha256` (created if needed).
    pub fn of(store: &Store) -> Result<Blobs> {
        let dir = store.root().join("blobs/sha256");
        fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        Ok(Blobs { dir })
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    pub fn has(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    /// The size of a stored blob.
    pub fn size(&self, d: &Digest) -> Result<u64> {
        let p = self.path(d);
        fs::metadata(&p)
            .map(|m| m.len())
            .map_err(|e| Error::io("stat blob", &p, e))
    }

    pub fn open(&self, d: &Digest) -> Result<File> {
        let p = self.path(d);
        File::open(&p).map_err(|e| Error::io("open blob", &p, e))
    }

    /// Reads a small stored blob (a manifest or config) and checks its digest.
    pub fn read(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = self.path(d);
        let bytes = fs::read(&p).map_err(|e| Error::io("read blob", &p, e))?;
        let got = Digest::of(&bytes);
        if got != *d {
            return Err(Error::BadArchive {
                path: p,
                reason: format!("stored blob is corrupt: its content is {got}"),
            });
        }
        Ok(bytes)
    }

    /// Every stored blob.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for ent in fs::read_dir(&self.dir).map_err(|e| Error::io("read", &self.dir, e))? {
            let ent = ent.map_err(|e| Error::io("read", &self.dir, e))?;
            if let Some(d) = Digest::parse(&ent.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a blob (gone already is fine).
    pub fn remove(&self, d: &Digest) -> Result<()> {
        let p = self.path(d);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove blob", &p, e)),
        }
    }
}

/// The blobs and layers of one operation until it succeeds.
pub struct Staging {
    store: Store,
    blobs: Blobs,
    dir: PathBuf,
    staged: Vec<(Digest, PathBuf)>,
    new_layers: Vec<Digest>,
    done: bool,
    /// Held while the import runs: gc and `umount --all` leave the directory alone.
    _lock: crate::fsutil::Flock,
}

impl Staging {
    pub fn new(store: &Store) -> Result<Staging> {
        let blobs = Blobs::of(store)?;
        let (dir, lock) = store.staging_dir("image")?;
        Ok(Staging {
            _lock: lock,
            store: store.clone(),
            blobs,
            dir,
            staged: Vec::new(),
            new_layers: Vec::new(),
            done: false,
        })
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// A fresh file name in the staging directory.
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        self.dir.join(format!("{what}-{}", unique_id()))
    }

    /// True when the blob is stored or staged already.
    pub fn has(&self, d: &Digest) -> bool {
        self.blobs.has(d) || self.staged.iter().any(|(s, _)| s == d)
    }

    /// Stages `bytes` as a blob; returns its digest.
    pub fn add_bytes(&mut self, bytes: &[u8]) -> Result<Digest> {
        let d = Digest::of(bytes);
        if !self.has(&d) {
            let p = self.tmp_path("blob");
            fs::write(&p, bytes).map_err(|e| Error::io("write", &p, e))?;
            self.staged.push((d, p));
        }
        Ok(d)
    }

    /// Stages the file `path` (in the staging directory) as the blob `d` (already verified).
    pub fn add_file(&mut self, d: Digest, path: PathBuf) -> Result<()> {
        if self.has(&d) {
            return fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e));
        }
        self.staged.push((d, path));
        Ok(())
    }

    /// Writes what `fill` produces to a staged file; returns the file, its digest and size.
    pub fn write_with(
        &self,
        what: &str,
        fill: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<(PathBuf, Digest, u64)> {
        let p = self.tmp_path(what);
        let f = File::create(&p).map_err(|e| Error::io("create", &p, e))?;
        let f = crate::error::TagWrites::new(f, &p);
        let mut hw = HashingWriter::new(io::BufWriter::with_capacity(1 << 17, f));
        fill(&mut hw)?;
        let (d, n, mut w) = hw.finish();
        w.flush().map_err(|e| Error::io("write", &p, e))?;
        Ok((p, d, n))
    }

    /// Notes a layer this operation extracted into the store (removed again on failure).
    pub fn layer_created(&mut self, diff_id: Digest) {
        self.new_layers.push(diff_id);
    }

    /// Moves the staged blobs into the store, then runs `finish` (which writes the record
    /// that makes the operation visible). If either fails, everything this operation added
    /// is removed. Returns the blobs that are new in the store.
    pub fn commit(mut self, finish: impl FnOnce() -> Result<()>) -> Result<Vec<Digest>> {
        let mut placed = Vec::new();
        let mut result = Ok(());
        for (d, p) in std::mem::take(&mut self.staged) {
            let dest = self.blobs.path(&d);
            if dest.exists() {
                continue;
            }
            if let Err(e) = fs::rename(&p, &dest) {
                result = Err(Error::io("store blob", &dest, e));
                break;
            }
            placed.push(d);
        }
        if result.is_ok() {
            result = finish();
        }
        match result {
            Ok(()) => {
                self.done = true;
                Ok(placed)
            }
            Err(e) => {
                for d in &placed {
                    let _ = self.blobs.remove(d);
                }
                Err(e)
            }
        }
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            for d in &self.new_layers {
                if let Ok(l) = self.store.get(d) {
                    let _ = remove_tree(&l.dir);
                }
            }
        }
        let _ = remove_tree(&self.dir);
    }
}

/// A reader that copies what it reads into a writer (a staged blob file) and hashes it.
pub struct TeeReader<R, W> {
    inner: crate::digest::HashingReader<R>,
    out: W,
}

impl<R: Read, W: Write> TeeReader<R, W> {
    pub fn new(inner: R, out: W) -> Self {
        TeeReader {
            inner: crate::digest::HashingReader::new(inner),
            out,
        }
    }

    /// Reads the rest, then returns the digest and length of everything read, and the writer.
    pub fn finish(mut self) -> io::Result<(Digest, u64, W)> {
        io::copy(&mut self, &mut io::sink())?;
        self.out.flush()?;
        let (d, n) = self.inner.finish()?;
        Ok((d, n, self.out))
    }
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Copies a file to `dest` through a temporary beside it and a rename (whole or not at all).
pub fn copy_atomic(src: &Path, dest: &Path) -> Result<u64> {
    let tmp = dest.with_extension(format!("tmp-{}", unique_id()));
    let r = fs::copy(src, &tmp).and_then(|n| fs::rename(&tmp, dest).map(|()| n));
    r.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("copy blob", dest, e)
    })
}

/// Writes bytes to `dest` through a temporary beside it and a rename.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = dest.with_extension(format!("tmp-{}", unique_id()));
    let r = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, dest));
    r.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("write", dest, e)
    })
}
