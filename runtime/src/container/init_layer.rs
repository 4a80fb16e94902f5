//! The init layer: files made for this container (/etc/hosts, /etc/hostname,
//! /etc/resolv.conf) and plain /proc, /dev and /sys directories, in a tiny layer placed
//! between the image and the writable layer. Never committed.
//!
//! It is an ordinary layer tar imported into the store: content-addressed, so every
//! container with the same hostname and resolver gets the same layer, imported once and
//! then found by digest (a start pays for a sha256 of a few hundred bytes, not an import).
//! The explicit /proc, /dev and /sys directories replace whatever the image has there: an
//! image whose /proc is a symlink to / or whose /dev points at a host directory shows plain
//! empty directories instead (what Docker's init layer does for a malicious /dev).

use std::path::Path;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::model::{Entry, EntryKind, FileData, Meta, RelPath};
use crate::store::{Store, StoredLayer};
use crate::tarw::TarWriter;

/// The files of the init layer: left out of every commit.
pub const FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];
/// The directories it makes plain (mount points of the container's own filesystems).
pub const DIRS: [&str; 3] = ["dev", "proc", "sys"];

/// The content of an init layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitLayer {
    pub hostname: String,
    pub resolv_conf: Vec<u8>,
}

impl InitLayer {
    /// The init layer for a container called `hostname`. With its own network namespace it
    /// reaches no resolver (only `lo` exists); sharing the host's network it uses the host's
    /// /etc/resolv.conf.
    pub fn new(hostname: &str, own_network: bool) -> InitLayer {
        let resolv_conf = if own_network {
            b"# strata: the container has its own network namespace (loopback only)\n".to_vec()
        } else {
            std::fs::read("/etc/resolv.conf")
                .unwrap_or_else(|_| b"# strata: the host has no /etc/resolv.conf\n".to_vec())
        };
        InitLayer {
            hostname: hostname.to_string(),
            resolv_conf,
        }
    }

    /// /etc/hosts for the hostname.
    pub fn hosts(&self) -> String {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n",
            self.hostname
        )
    }

    /// The layer as a deterministic OCI layer tar.
    pub fn to_tar(&self) -> Result<Vec<u8>> {
        let mut w = TarWriter::new(Vec::with_capacity(8192));
        let io = |e| Error::io("write init layer", "<init layer>", e);
        for d in DIRS {
            let e = Entry {
                path: d.to_string(),
                kind: EntryKind::Dir,
                meta: Meta::mode(0o755),
            };
            w.entry(&e, None).map_err(io)?;
        }
        // etc/ itself is left implied, so the image's /etc keeps its attributes (copy) or
        // shows overlay's declared 0755 (overlay).
        let files: [(&str, Vec<u8>); 3] = [
            ("etc/hostname", format!("{}\n", self.hostname).into_bytes()),
            ("etc/hosts", self.hosts().into_bytes()),
            ("etc/resolv.conf", self.resolv_conf.clone()),
        ];
        for (path, data) in files {
            let e = Entry {
                path: path.to_string(),
                kind: EntryKind::File(FileData::from_bytes(data.clone())),
                meta: Meta::mode(0o644),
            };
            w.entry(&e, Some(&mut data.as_slice())).map_err(io)?;
        }
        w.finish().map_err(io)
    }

    /// The layer in `store`: found by digest, imported only the first time.
    pub fn stored(&self, store: &Store) -> Result<StoredLayer> {
        let tar = self.to_tar()?;
        let digest = Digest::of(&tar);
        match store.get(&digest) {
            Ok(l) => Ok(l),
            Err(Error::UnknownLayer { .. }) => {
                Ok(store.import_reader(&tar[..], Path::new(SOURCE))?.layer)
            }
            Err(e) => Err(e),
        }
    }

    /// True for the layer [`InitLayer::stored`] put in the store (by its recorded source).
    pub fn is_init(layer: &StoredLayer) -> bool {
        layer.info.source == SOURCE
    }

    /// What a commit leaves out.
    pub fn excluded() -> Vec<RelPath> {
        FILES.iter().map(|s| s.to_string()).collect()
    }
}

/// `LayerInfo.source` of an init layer.
pub const SOURCE: &str = "<init layer>";

/// Checks a hostname: 1 to 64 bytes of letters, digits, `-` and `.`.
pub fn check_hostname(h: &str) -> Result<()> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !h.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid hostname {h:?}: use 1 to 64 letters, digits, '-' and '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_content_same_tar() {
        let a = InitLayer {
            hostname: "box".into(),
            resolv_conf: b"nameserver 1.1.1.1\n".to_vec(),
        };
        assert_eq!(a.to_tar().unwrap(), a.clone().to_tar().unwrap());
        let mut b = a.clone();
        b.hostname = "other".into();
        assert_ne!(a.to_tar().unwrap(), b.to_tar().unwrap());
        assert!(a.hosts().contains("127.0.1.1\tbox\n"));
    }

    #[test]
    fn hostnames_are_checked() {
        assert!(check_hostname("strata-1.test").is_ok());
        for bad in ["", "-x", "a b", "x/y", &"h".repeat(65)] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
    }
}
