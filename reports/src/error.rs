//! The one error type of the crate: always a single line naming the file and the reason.

use std::path::{Path, PathBuf};

/// Why a report could not be built. `Display` is one line: `PATH: reason`.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// An input (criterion directory, result record, baseline) is missing or malformed.
    #[error("{}: {reason}", path.display())]
    Input { path: PathBuf, reason: String },
    /// The report could not be drawn or written; the output directory was left as it was.
    #[error("{}: {reason}", path.display())]
    Output { path: PathBuf, reason: String },
}

impl ReportError {
    pub(crate) fn input(path: &Path, reason: impl Into<String>) -> Self {
        ReportError::Input {
            path: path.to_path_buf(),
            reason: one_line(reason.into()),
        }
    }

    pub(crate) fn output(path: &Path, reason: impl Into<String>) -> Self {
        ReportError::Output {
            path: path.to_path_buf(),
            reason: one_line(reason.into()),
        }
    }

    pub(crate) fn io(path: &Path, what: &str, e: &std::io::Error) -> Self {
        Self::input(path, format!("{what}: {}", io_reason(e)))
    }

    pub(crate) fn write(path: &Path, e: &std::io::Error) -> Self {
        Self::output(path, format!("cannot write: {}", io_reason(e)))
    }

    /// The file or directory the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReportError::Input { path, .. } | ReportError::Output { path, .. } => path,
        }
    }

    /// The reason, without the path.
    pub fn reason(&self) -> &str {
        match self {
            ReportError::Input { reason, .. } | ReportError::Output { reason, .. } => reason,
        }
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    }
}

/// A serde_json error as a short reason; truncated input is called out as such.
pub(crate) fn json_reason(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Eof => format!(
            "truncated JSON (input ends at line {} column {})",
            e.line(),
            e.column()
        ),
        Category::Syntax => format!("invalid JSON: {e}"),
        Category::Data => e.to_string(),
        Category::Io => format!("read error: {e}"),
    }
}

fn one_line(s: String) -> String {
    if s.contains(['\n', '\r']) {
        s.split(['\n', '\r'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        s
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_with_path() {
        let e = ReportError::input(Path::new("/x/r.json"), "bad\nthing\n");
        assert_eq!(e.to_string(), "/x/r.json: bad thing");
        assert_eq!(e.path(), Path::new("/x/r.json"));
    }
}
