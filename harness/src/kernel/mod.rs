//! The kernel matrix: `strata check --kernel K` (repeatable) runs the catalog under each
//! kernel K, in a microVM through virtme-ng ([`vm`]) for any kernel but the host's, and
//! brings each run back as a result record whose runner block names the kernel
//! (`kernel_source`) and how it ran (`virtualization`).
//!
//! K is `host` (this machine's kernel, no VM), `debian:SERIES` (the newest Debian cloud
//! kernel of that series the configured archives have, [`fetch`]), a Debian package name
//! (`linux-image-...`), or the path of a kernel image (`.../boot/vmlinuz-RELEASE`), whose
//! modules virtme-ng finds beside it (`.../lib/modules/RELEASE`).

pub mod fetch;
pub mod matrix;
pub mod vm;

use std::path::PathBuf;

use strata_reports::record::{Failed, ResultRecord, Runner};

/// A kernel as given to `--kernel`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelSpec {
    Host,
    /// `debian:6.1`: the newest package of the series.
    DebianSeries(String),
    /// `linux-image-...`.
    DebianPackage(String),
    /// A kernel image on disk.
    Image(PathBuf),
}

impl KernelSpec {
    /// Parses one `--kernel` value.
    pub fn parse(s: &str) -> Result<KernelSpec, String> {
        if s == "host" {
            Ok(KernelSpec::Host)
        } else if let Some(series) = s.strip_prefix("debian:") {
            if series.starts_with("linux-image-") {
                Ok(KernelSpec::DebianPackage(series.to_string()))
            } else {
                Ok(KernelSpec::DebianSeries(series.to_string()))
            }
        } else if s.starts_with("linux-image-") {
            Ok(KernelSpec::DebianPackage(s.to_string()))
        } else if s.contains('/') || std::path::Path::new(s).exists() {
            let p = PathBuf::from(s);
            if !p.is_file() {
                return Err(format!("{s}: no such kernel image file"));
            }
            Ok(KernelSpec::Image(
                std::fs::canonicalize(&p).map_err(|e| format!("{s}: {e}"))?,
            ))
        } else {
            Err(format!(
                "{s}: expected host, debian:SERIES (debian:6.1), a Debian package \
                 (linux-image-...) or the path of a kernel image"
            ))
        }
    }
}

/// A kernel ready to boot.
pub struct Ready {
    pub image: PathBuf,
    /// What the record's `kernel_source` says: how it was named and what it resolved to.
    pub source: String,
}

/// Resolves and fetches `spec` (not `host`).
pub fn prepare(
    given: &str,
    spec: &KernelSpec,
    progress: &mut dyn FnMut(&str),
) -> Result<Ready, String> {
    let package = match spec {
        KernelSpec::Host => return Err("the host kernel needs no VM".into()),
        KernelSpec::Image(p) => {
            return Ok(Ready {
                image: p.clone(),
                source: format!("image {}", p.display()),
            });
        }
        KernelSpec::DebianPackage(p) => p.clone(),
        KernelSpec::DebianSeries(s) => {
            let p = fetch::resolve_series(s)?;
            progress(&format!("debian:{s} is {p}"));
            p
        }
    };
    let u = fetch::fetch(&package, progress)?;
    Ok(Ready {
        image: u.image,
        source: format!(
            "{given}: Debian {} {} (deb sha256 {})",
            u.stamp.package, u.stamp.version, u.stamp.deb_sha256
        ),
    })
}

/// A record for a kernel that could not be fetched or booted: no cells, one failed part
/// naming it, so a report and the gate show it.
pub fn failed_record(given: &str, reason: &str) -> ResultRecord {
    let mut r = ResultRecord::new(Runner {
        id: format!("{}-kernel-{given}", host_name()),
        kernel_source: Some(given.to_string()),
        ..Runner::default()
    });
    r.failed.push(Failed {
        what: format!("kernel {given}"),
        reason: reason.to_string(),
    });
    r
}

/// This host's name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The runner id of a kernel's run on this host: `STRATA_RUNNER_ID` (or the hostname) and
/// the kernel release, and `-emulated` for a VM under QEMU's TCG, so that every table and
/// chart that names the runner says its timings are the emulator's (and the gate never
/// compares such a run with one under KVM).
pub fn runner_id(kernel: &str, accel: Option<vm::Accel>) -> String {
    let base = std::env::var("STRATA_RUNNER_ID")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(host_name);
    match accel {
        Some(vm::Accel::Emulated) => format!("{base}-{kernel}-emulated"),
        _ => format!("{base}-{kernel}"),
    }
}

/// Writes one record as an object, several as an array (`strata report` reads both).
pub fn records_json(records: &[ResultRecord]) -> Result<String, String> {
    match records {
        [one] => one.to_json_pretty(),
        many => serde_json::to_string_pretty(many),
    }
    .map_err(|e| format!("JSON output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names() {
        assert_eq!(KernelSpec::parse("host").unwrap(), KernelSpec::Host);
        assert_eq!(
            KernelSpec::parse("debian:6.12").unwrap(),
            KernelSpec::DebianSeries("6.12".into())
        );
        assert_eq!(
            KernelSpec::parse("linux-image-6.1.0-57-cloud-amd64").unwrap(),
            KernelSpec::DebianPackage("linux-image-6.1.0-57-cloud-amd64".into())
        );
        let e = KernelSpec::parse("/no/such/vmlinuz").unwrap_err();
        assert!(
            e.contains("/no/such/vmlinuz") && e.contains("no such"),
            "{e}"
        );
        let e = KernelSpec::parse("latest").unwrap_err();
        assert!(e.starts_with("latest: expected host"), "{e}");
    }
}
