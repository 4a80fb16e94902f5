//! Where a layer comes from: a tar (plain, gzip or zstd) or a directory in OCI layer form.
//! Every source becomes one uncompressed tar stream; its sha256 is the layer's diff-id.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::thread;

use rustix::fs::FileType;

use crate::error::{Error, Result};
use crate::fsutil::{
    self, file_type, list_dir, lstat_at, open_dir, open_dir_beneath, open_file_at,
};
use crate::model::{Entry, EntryKind, Meta, join};
use crate::tarw::TarWriter;

/// An opened layer source: an uncompressed tar stream.
pub struct LayerSource {
    /// The path the layer came from, for messages.
    pub path: PathBuf,
    /// The uncompressed tar.
    pub reader: Box<dyn Read + Send>,
    /// For a directory source, the thread writing its tar (joined to learn its errors).
    writer: Option<thread::JoinHandle<Result<()>>>,
}

impl LayerSource {
    /// Waits for a directory source's tar writer and returns its error, if any.
    pub fn finish(&mut self) -> Result<()> {
        match self.writer.take() {
            Some(h) => h.join().map_err(|_| Error::BadArchive {
                path: self.path.clone(),
                reason: "the directory reader panicked".into(),
            })?,
            None => Ok(()),
        }
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Opens `path` as a layer: a directory, or a tar that may be gzip- or zstd-compressed.
pub fn open_source(path: &Path) -> Result<LayerSource> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("open layer", path, e))?;
    if meta.is_dir() {
        return open_dir_source(path);
    }
    let f = File::open(path).map_err(|e| Error::io("open layer", path, e))?;
    let mut r = BufReader::with_capacity(1 << 17, f);
    let head = {
        use std::io::BufRead;
        r.fill_buf()
            .map_err(|e| Error::io("read layer", path, e))?
            .to_vec()
    };
    let reader: Box<dyn Read + Send> = if head.starts_with(&GZIP_MAGIC) {
        Box::new(BufReader::with_capacity(
            1 << 17,
            flate2::read::MultiGzDecoder::new(r),
        ))
    } else if head.starts_with(&ZSTD_MAGIC) {
        let d = zstd::stream::read::Decoder::with_buffer(r).map_err(|e| Error::BadArchive {
            path: path.to_path_buf(),
            reason: format!("bad zstd stream: {e}"),
        })?;
        Box::new(BufReader::with_capacity(1 << 17, d))
    } else {
        Box::new(r)
    };
    Ok(LayerSource {
        path: path.to_path_buf(),
        reader,
        writer: None,
    })
}

/// A directory in OCI layer form, streamed as a deterministic tar through a pipe.
fn open_dir_source(path: &Path) -> Result<LayerSource> {
    let (rd, wr) = rustix::pipe::pipe().map_err(|e| Error::io("pipe", path, fsutil::ioe(e)))?;
    let dir = open_dir(path)?;
    let label = path.to_path_buf();
    let writer = thread::spawn(move || -> Result<()> {
        let out = io::BufWriter::with_capacity(1 << 17, File::from(wr));
        let mut tw = TarWriter::new(out);
        let mut links = HashMap::new();
        write_dir(&mut tw, dir.as_fd(), "", &label, &mut links)?;
        let mut out = tw.finish().map_err(|e| Error::io("write tar", &label, e))?;
        out.flush().map_err(|e| Error::io("write tar", &label, e))
    });
    Ok(LayerSource {
        path: path.to_path_buf(),
        reader: Box::new(File::from(rd)),
        writer: Some(writer),
    })
}

fn write_dir<W: Write>(
    tw: &mut TarWriter<W>,
    dir: BorrowedFd<'_>,
    rel: &str,
    label: &Path,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<()> {
    let at = |p: &str| label.join(p);
    let names = list_dir(dir).map_err(|e| Error::io("read directory", at(rel), e))?;
    for name in names {
        let path = join(rel, &name);
        let st = lstat_at(dir, &name).map_err(|e| Error::io("stat", at(&path), e))?;
        if file_type(&st) == FileType::Socket {
            continue; // Sockets cannot be in a layer (containerd drops them too).
        }
        let ft = file_type(&st);
        let is_file = ft == FileType::RegularFile;
        if is_file && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some(target) = links.get(&key) {
                let e = Entry {
                    path: path.clone(),
                    kind: EntryKind::HardLink {
                        target: target.clone(),
                    },
                    meta: Meta::mode(st.st_mode & 0o7777),
                };
                tw.entry(&e, None)
                    .map_err(|e| Error::io("write tar", at(&path), e))?;
                continue;
            }
            links.insert(key, path.clone());
        }
        let meta = Meta {
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            mtime: fsutil::mtime_of(&st),
            xattrs: fsutil::read_xattrs(dir, &name)
                .map_err(|e| Error::io("read xattrs", at(&path), e))?,
        };
        let kind = match ft {
            FileType::RegularFile => EntryKind::File(crate::model::FileData {
                size: st.st_size as u64,
                digest: crate::Digest([0; 32]),
                bytes: None,
            }),
            FileType::Directory => EntryKind::Dir,
            FileType::Symlink => EntryKind::Symlink {
                target: fsutil::read_link(dir, &name)
                    .map_err(|e| Error::io("readlink", at(&path), e))?,
            },
            FileType::CharacterDevice => EntryKind::CharDev {
                major: rustix::fs::major(st.st_rdev),
                minor: rustix::fs::minor(st.st_rdev),
            },
            FileType::BlockDevice => EntryKind::BlockDev {
                major: rustix::fs::major(st.st_rdev),
                minor: rustix::fs::minor(st.st_rdev),
            },
            FileType::Fifo => EntryKind::Fifo,
            _ => continue,
        };
        let e = Entry {
            path: path.clone(),
            kind,
            meta,
        };
        if is_file {
            let mut f = open_file_at(dir, &name).map_err(|e| Error::io("open", at(&path), e))?;
            tw.entry(&e, Some(&mut f))
                .map_err(|e| Error::io("write tar", at(&path), e))?;
        } else {
            tw.entry(&e, None)
                .map_err(|e| Error::io("write tar", at(&path), e))?;
        }
        if ft == FileType::Directory {
            let sub = open_dir_beneath(dir, &name)
                .map_err(|e| Error::io("open directory", at(&path), e))?;
            write_dir(tw, sub.as_fd(), &path, label, links)?;
        }
    }
    Ok(())
}

/// Writes the tree under `dir` as a layer tar to `out` (the same stream a directory import
/// hashes).
pub fn tar_directory(dir: &Path, out: impl Write) -> Result<()> {
    let fd = open_dir(dir)?;
    let mut tw = TarWriter::new(out);
    let mut links = HashMap::new();
    write_dir(&mut tw, fd.as_fd(), "", dir, &mut links)?;
    tw.finish().map_err(|e| Error::io("write tar", dir, e))?;
    Ok(())
}
