//! Writing the report atomically: everything goes into a hidden staging directory beside the
//! output, which is renamed into place only when every file was written. On any error the
//! staging directory is removed and the output directory is left exactly as it was, so a
//! half-written report never looks whole.

use std::path::{Path, PathBuf};

use crate::error::ReportError;

/// A marker file in every report directory, so an existing report may be replaced but an
/// unrelated directory never is.
pub(crate) const MARKER: &str = ".strata-report";

pub(crate) struct Staging {
    dir: tempfile::TempDir,
    out: PathBuf,
}

impl Staging {
    /// Creates the staging directory beside `out` (same filesystem, so the final rename is
    /// atomic). Refuses early when `out` exists and is not a report or an empty directory.
    pub(crate) fn new(out: &Path) -> Result<Staging, ReportError> {
        check_replaceable(out)?;
        let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("report");
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| ReportError::output(&parent, format!("cannot create directory: {e}")))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(&parent)
            .map_err(|e| {
                ReportError::output(&parent, format!("cannot create a staging directory: {e}"))
            })?;
        Ok(Staging {
            dir,
            out: out.to_path_buf(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes one file into the staging directory.
    pub(crate) fn write(&self, name: &str, contents: &[u8]) -> Result<(), ReportError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).map_err(|e| ReportError::write(&path, &e))
    }

    /// Moves the finished report into place, replacing an earlier report at `out`.
    pub(crate) fn commit(self) -> Result<PathBuf, ReportError> {
        self.write(
            MARKER,
            concat!("strata-reports ", env!("CARGO_PKG_VERSION"), "\n").as_bytes(),
        )?;
        check_replaceable(&self.out)?;
        let out = self.out.clone();
        let mut old: Option<tempfile::TempDir> = None;
        if out.exists() {
            // Move the old report aside first; it is deleted (as a TempDir) when this returns.
            let parent = self.dir.path().parent().unwrap_or(Path::new("."));
            let name = out.file_name().and_then(|n| n.to_str()).unwrap_or("report");
            let aside = tempfile::Builder::new()
                .prefix(&format!(".{name}.old-"))
                .tempdir_in(parent)
                .map_err(|e| {
                    ReportError::output(
                        parent,
                        format!("cannot create a directory for the old report: {e}"),
                    )
                })?;
            let target = aside.path().join("report");
            std::fs::rename(&out, &target).map_err(|e| {
                ReportError::output(&out, format!("cannot move the old report aside: {e}"))
            })?;
            old = Some(aside);
        }
        if let Err(e) = std::fs::rename(self.dir.path(), &out) {
            // Put the old report back so the output is unchanged.
            if let Some(aside) = &old {
                let _ = std::fs::rename(aside.path().join("report"), &out);
            }
            return Err(ReportError::output(
                &out,
                format!("cannot move the finished report into place: {e}"),
            ));
        }
        // The staging path no longer exists; keep TempDir from trying to delete it.
        let _ = self.dir.keep();
        drop(old);
        Ok(out)
    }
}

/// `out` may be replaced when it does not exist, is an empty directory, or is an earlier report.
fn check_replaceable(out: &Path) -> Result<(), ReportError> {
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ReportError::output(
            out,
            format!("cannot inspect output directory: {e}"),
        )),
        Ok(m) if !m.is_dir() => Err(ReportError::output(
            out,
            "exists and is not a directory; refusing to replace it",
        )),
        Ok(_) => {
            if out.join(MARKER).exists() {
                return Ok(());
            }
            let mut entries = std::fs::read_dir(out).map_err(|e| {
                ReportError::output(out, format!("cannot list output directory: {e}"))
            })?;
            if entries.next().is_none() {
                Ok(())
            } else {
                Err(ReportError::output(
                    out,
                    format!(
                        "exists, is not empty and holds no earlier report ({MARKER}); refusing to replace it"
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn replaces_a_report_but_not_other_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("rep");
        let s = Staging::new(&out).unwrap();
        s.write("index.html", b"one").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read(out.join("index.html")).unwrap(), b"one");
        let s = Staging::new(&out).unwrap();
        s.write("index.html", b"two").unwrap();
        s.commit().unwrap();
        assert_eq!(std::fs::read(out.join("index.html")).unwrap(), b"two");
        // Nothing left behind beside the report.
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("rep")]);

        let other = tmp.path().join("src");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("main.rs"), "fn main() {}").unwrap();
        let e = Staging::new(&other).err().unwrap();
        assert!(e.to_string().contains("refusing to replace it"), "{e}");
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("rep");
        {
            let s = Staging::new(&out).unwrap();
            s.write("a.png", b"x").unwrap();
        }
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
