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
}

impl Error {
    /// Wraps an `io::Error` from `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The errno behind this error, when it is a failed system call.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// `map_err` helper: `.map_err(io_at("open", path))`.
pub fn io_at<'a, E: Into<io::Error>>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(E) -> Error + 'a {
    move |e| Error::io(op, path, e.into())
}
