//! `strata image export REF OUT`: an OCI image layout directory, or a docker-save tar (when
//! OUT ends in `.tar`, or with the format given). The tar is written beside OUT and renamed
//! into place whole.

use std::path::Path;

use serde::Serialize;

use super::docker_save;
use super::push_layout::push_layout;
use super::records::Image;
use crate::error::{Error, Result};
use crate::store::Store;

/// The form of an export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// An OCI image layout directory.
    Oci,
    /// A docker-save archive (`docker load`, `skopeo ... docker-archive:`).
    DockerSave,
}

impl ExportFormat {
    /// `oci` or `docker-save`.
    pub fn parse(s: &str) -> Result<ExportFormat> {
        match s {
            "oci" => Ok(ExportFormat::Oci),
            "docker-save" | "docker-archive" => Ok(ExportFormat::DockerSave),
            other => Err(Error::Usage(format!(
                "export format {other:?}: known are oci, docker-save"
            ))),
        }
    }

    /// `oci` or `docker-save`, as [`ExportFormat::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Oci => "oci",
            ExportFormat::DockerSave => "docker-save",
        }
    }

    /// The format OUT's name implies: a `.tar` is a docker-save archive.
    pub fn for_path(out: &Path) -> ExportFormat {
        if out.extension().is_some_and(|e| e == "tar") {
            ExportFormat::DockerSave
        } else {
            ExportFormat::Oci
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Exported {
    pub reference: String,
    pub out: String,
    pub format: ExportFormat,
    pub bytes: u64,
}

/// Exports `img` to `out`.
pub fn export(store: &Store, img: &Image, out: &Path, format: ExportFormat) -> Result<Exported> {
    let bytes = match format {
        ExportFormat::Oci => {
            let p = push_layout(store, img, out, &img.record.tag)?;
            p.written.bytes_written
        }
        ExportFormat::DockerSave => {
            crate::commit::write_file("image export", out, |w| {
                docker_save::write(store, img, w, out)
            })?;
            std::fs::metadata(out)
                .map(|m| m.len())
                .map_err(|e| Error::io("stat", out, e))?
        }
    };
    Ok(Exported {
        reference: img.record.reference(),
        out: out.display().to_string(),
        format,
        bytes,
    })
}
