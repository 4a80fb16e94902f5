//! Errors carry the path they concern and the reason, so the CLI can print one line.

use std::io;
use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call on a path failed.
    #[error("{path}: {op}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A layer archive or directory holds an entry strata refuses to import.
    #[error("{source_path}: entry {entry:?}: {reason}")]
    BadEntry {
        source_path: PathBuf,
        entry: String,
        reason: String,
    },
    /// A layer archive as a whole cannot be read (not a tar, truncated, bad compression).
    #[error("{path}: {reason}")]
    BadArchive { path: PathBuf, reason: String },
    /// A layer reference names nothing in the store.
    #[error(
        "layer {reference}: not in the store {store} (import it first, or give a tar or directory)"
    )]
    UnknownLayer { reference: String, store: PathBuf },
    /// A driver cannot do what was asked (unavailable, limit exceeded, bad target).
    #[error("{driver}: {reason}")]
    Driver { driver: String, reason: String },
    /// A model application found a layer it cannot apply.
    #[error("model: {path}: {reason}")]
    Model { path: String, reason: String },
    /// Bad input given by the user (unknown name, malformed value).
    #[error("{0}")]
    Usage(String),
    /// A state record under the root is unreadable.
    #[error("{path}: {reason}")]
    Record { path: PathBuf, reason: String },
    /// Writing into the store or an output ran out of room (ENOSPC, EDQUOT): names what was
    /// being done, the file being written, and the store or output directory that is full.
    #[error("{what}: writing {path}: {source} ({place})")]
    NoSpace {
        what: &'static str,
        path: PathBuf,
        /// `store ROOT` or `output directory DIR`.
        place: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// Wraps an `io::Error` from `op` on `path`. An error a [`TagWrites`] writer raised
    /// names the file that was being written instead (a copy that reads one file and writes
    /// another reports a failed write against the written one).
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        match into_write_failed(source) {
            Ok(w) => Error::Io {
                op: "write",
                path: w.path,
                source: w.source,
            },
            Err(source) => Error::Io {
                op,
                path: path.into(),
                source,
            },
        }
    }

    /// The errno behind this error, when it is a failed system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::NoSpace { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// This error as [`Error::NoSpace`] when it is a write that ran out of room (ENOSPC or
    /// EDQUOT) while doing `what` in `place` (`store ROOT`, `output directory DIR`); any other
    /// error, and one already saying where it ran out of room, is returned as it is.
    pub fn no_space(self, what: &'static str, place: impl FnOnce() -> String) -> Error {
        match self {
            Error::Io { path, source, .. } if is_no_space(&source) => Error::NoSpace {
                what,
                path,
                place: place(),
                source,
            },
            e => e,
        }
    }
}

/// True for "No space left on device" and "Disk quota exceeded".
pub fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
}

/// A write to `path` failed: carried inside an `io::Error` through readers and writers that
/// only pass `io::Error`s on (a tar builder, a compressor, a tee), so that [`Error::io`] can
/// name the written file rather than the one being read.
#[derive(Debug)]
pub struct WriteFailed {
    pub path: PathBuf,
    pub source: io::Error,
}

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "writing {}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for WriteFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// True when `e` is a failed write a [`TagWrites`] writer raised (so [`Error::io`] names the
/// written file).
pub fn is_write_failed(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<WriteFailed>())
}

/// The [`WriteFailed`] `e` carries, else `e` unchanged.
fn into_write_failed(e: io::Error) -> std::result::Result<WriteFailed, io::Error> {
    if !is_write_failed(&e) {
        return Err(e);
    }
    let kind = e.kind();
    match e.into_inner().map(|inner| inner.downcast::<WriteFailed>()) {
        Some(Ok(w)) => Ok(*w),
        Some(Err(other)) => Err(io::Error::new(kind, other)),
        None => Err(io::Error::from(kind)),
    }
}

/// A writer whose failed writes carry the file they were writing ([`WriteFailed`]).
pub struct TagWrites<W> {
    inner: W,
    path: PathBuf,
}

impl<W> TagWrites<W> {
    pub fn new(inner: W, path: impl Into<PathBuf>) -> Self {
        TagWrites {
            inner,
            path: path.into(),
        }
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }

    fn tag(&self, source: io::Error) -> io::Error {
        if is_write_failed(&source) {
            return source;
        }
        io::Error::new(
            source.kind(),
            WriteFailed {
                path: self.path.clone(),
                source,
            },
        )
    }
}

impl<W: io::Write> io::Write for TagWrites<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.tag(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.tag(e))
    }
}

/// `map_err` helper: `.map_err(io_at("open", path))`.
pub fn io_at<'a, E: Into<io::Error>>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(E) -> Error + 'a {
    move |e| Error::io(op, path, e.into())
}
