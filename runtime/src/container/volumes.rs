//! Volumes: host directories or files bound into the container (`-v HOST:CTR[:ro]`,
//! `--mount type=bind,...`) and tmpfs mounts (`--mount type=tmpfs,...`).
//!
//! The parent checks and canonicalizes the host path and creates the mount point in the
//! root filesystem when missing (those paths are then left out of every commit); the child
//! mounts each one in its own mount namespace, by fd like /proc and /dev: the mount point is
//! opened inside the root (`openat2(RESOLVE_IN_ROOT)`: a symlink in the image cannot point
//! it at a host path), the host tree is cloned with `open_tree` (made read-only with
//! `mount_setattr` for `ro`), a tmpfs made with `fsopen`/`fsmount`, and attached onto the fd.
//! What a container writes in a volume lands in the volume, never in its writable layer.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// What is mounted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeKind {
    /// A host directory or file (absolute, canonical once checked).
    Bind { source: PathBuf },
    /// A new tmpfs: its size (tmpfs `size=`, e.g. `64m`) and mode (octal).
    Tmpfs {
        size: Option<String>,
        mode: Option<u32>,
    },
}

/// One volume of a container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Volume {
    pub kind: VolumeKind,
    /// Where, in the container (absolute, no `..`).
    pub target: String,
    pub readonly: bool,
}

fn check_target(t: &str, what: &str) -> Result<String> {
    if !t.starts_with('/') || t.split('/').any(|c| c == "..") || t.trim_matches('/').is_empty() {
        return Err(Error::Usage(format!(
            "{what}: the container path {t:?} must be absolute, not / and without `..`"
        )));
    }
    Ok(t.to_string())
}

/// `-v HOST:CTR[:ro|rw]` (HOST absolute, or relative starting with `./` or `../`).
pub fn parse_volume(s: &str) -> Result<Volume> {
    let what = format!("--volume {s}");
    let parts: Vec<&str> = s.split(':').collect();
    let (host, ctr, ro) = match parts.as_slice() {
        [h, c] => (*h, *c, false),
        [h, c, "ro"] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, false),
        [_, _, o] => {
            return Err(Error::Usage(format!(
                "{what}: unknown option {o:?} (ro or rw)"
            )));
        }
        _ => {
            return Err(Error::Usage(format!(
                "{what}: not HOST:CONTAINER[:ro] (named volumes are not supported: HOST is a path)"
            )));
        }
    };
    if !(host.starts_with('/') || host.starts_with("./") || host.starts_with("../")) {
        return Err(Error::Usage(format!(
            "{what}: the host path {host:?} must be absolute or start with ./ (named volumes are not supported)"
        )));
    }
    Ok(Volume {
        kind: VolumeKind::Bind {
            source: PathBuf::from(host),
        },
        target: check_target(ctr, &what)?,
        readonly: ro,
    })
}

/// `--mount type=bind,source=HOST,target=CTR[,readonly]` or
/// `--mount type=tmpfs,target=CTR[,tmpfs-size=SIZE][,tmpfs-mode=OCTAL][,readonly]`
/// (docker's keys and their aliases `src`, `destination`/`dst`, `ro`).
pub fn parse_mount(s: &str) -> Result<Volume> {
    let what = format!("--mount {s}");
    let (mut kind, mut source, mut target, mut ro, mut size, mut mode) =
        (None, None, None, false, None, None);
    for kv in s.split(',').filter(|x| !x.is_empty()) {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (kv, None),
        };
        let need = |v: Option<&str>| {
            v.map(str::to_string)
                .ok_or_else(|| Error::Usage(format!("{what}: {k} needs a value ({k}=...)")))
        };
        match k {
            "type" => kind = Some(need(v)?),
            "source" | "src" => source = Some(need(v)?),
            "target" | "destination" | "dst" => target = Some(need(v)?),
            "readonly" | "ro" => {
                ro = match v {
                    None | Some("true") | Some("1") => true,
                    Some("false") | Some("0") => false,
                    Some(o) => {
                        return Err(Error::Usage(format!("{what}: {k}={o}: true or false")));
                    }
                }
            }
            "tmpfs-size" => size = Some(need(v)?),
            "tmpfs-mode" => {
                let m = need(v)?;
                mode = Some(u32::from_str_radix(&m, 8).map_err(|_| {
                    Error::Usage(format!("{what}: tmpfs-mode={m} is not an octal mode"))
                })?)
            }
            other => {
                return Err(Error::Usage(format!(
                    "{what}: unknown key {other:?} (type, source, target, readonly, tmpfs-size, tmpfs-mode)"
                )));
            }
        }
    }
    let target = target.ok_or_else(|| Error::Usage(format!("{what}: target=CTR is missing")))?;
    let target = check_target(&target, &what)?;
    let kind = match kind.as_deref() {
        Some("bind") => {
            if size.is_some() || mode.is_some() {
                return Err(Error::Usage(format!(
                    "{what}: tmpfs-size and tmpfs-mode are for type=tmpfs"
                )));
            }
            let src =
                source.ok_or_else(|| Error::Usage(format!("{what}: source=HOST is missing")))?;
            VolumeKind::Bind {
                source: PathBuf::from(src),
            }
        }
        Some("tmpfs") => {
            if source.is_some() {
                return Err(Error::Usage(format!("{what}: a tmpfs has no source")));
            }
            if let Some(s) = &size
                && (s.is_empty() || s.contains(','))
            {
                return Err(Error::Usage(format!("{what}: bad tmpfs-size {s:?}")));
            }
            VolumeKind::Tmpfs { size, mode }
        }
        Some(o) => {
            return Err(Error::Usage(format!(
                "{what}: type={o} is not supported (bind or tmpfs)"
            )));
        }
        None => return Err(Error::Usage(format!("{what}: type=bind|tmpfs is missing"))),
    };
    Ok(Volume {
        kind,
        target,
        readonly: ro,
    })
}

impl Volume {
    /// Canonicalizes a bind's host path (which must exist); returns whether the mount
    /// point is a directory.
    pub fn check(&mut self) -> Result<bool> {
        match &mut self.kind {
            VolumeKind::Bind { source } => {
                let abs = std::fs::canonicalize(&*source)
                    .map_err(|e| Error::io("volume source", &*source, e))?;
                let is_dir = abs.is_dir();
                *source = abs;
                Ok(is_dir)
            }
            VolumeKind::Tmpfs { .. } => Ok(true),
        }
    }

    /// The host path of a bind.
    pub fn source(&self) -> Option<&Path> {
        match &self.kind {
            VolumeKind::Bind { source } => Some(source),
            VolumeKind::Tmpfs { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_flags_parse_like_docker() {
        let v = parse_volume("/srv/x:/data:ro").unwrap();
        assert_eq!(v.target, "/data");
        assert!(v.readonly);
        assert_eq!(v.source(), Some(Path::new("/srv/x")));
        assert!(!parse_volume("./x:/data").unwrap().readonly);
        for bad in ["x:/data", "/x", "/x:data", "/x:/", "/x:/a/../b", "/x:/d:rx"] {
            assert!(parse_volume(bad).is_err(), "{bad}");
        }
        let m = parse_mount("type=bind,src=/h,dst=/c,readonly").unwrap();
        assert_eq!((m.target.as_str(), m.readonly), ("/c", true));
        let t = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap();
        assert_eq!(
            t.kind,
            VolumeKind::Tmpfs {
                size: Some("1m".into()),
                mode: Some(0o1777)
            }
        );
        for bad in [
            "type=bind,target=/c",
            "type=tmpfs,source=/h,target=/t",
            "type=volume,target=/t",
            "target=/t",
            "type=tmpfs",
            "type=tmpfs,target=/t,tmpfs-mode=9",
            "type=tmpfs,target=/t,color=red",
            "type=bind,source=/h,target=/c,tmpfs-size=1m",
        ] {
            let e = parse_mount(bad).unwrap_err().to_string();
            assert!(e.contains("--mount"), "{bad}: {e}");
        }
    }
}
