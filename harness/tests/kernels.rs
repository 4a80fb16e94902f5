//! `strata check --kernel`: the catalog under another kernel in a microVM (virtme-ng), and
//! the host's, as two records; a kernel that cannot be had is one line and a failed record.
//!
//! The VM test needs root, virtme-ng (`vng`, as ci/provision.sh installs it), apt (to fetch
//! Debian's 6.1 cloud kernel into the kernel cache once) and takes about half a minute under
//! emulation. Without them it prints why it skips; `STRATA_REQUIRE=vng` makes that a failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use strata_reports::record::{ResultRecord, Status};

fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap()
}

fn vng_present() -> Option<String> {
    if std::env::var_os("STRATA_VNG").is_some()
        || Path::new("/opt/strata-vm/venv/bin/vng").exists()
        || strata_runtime::require::on_path("vng")
    {
        None
    } else {
        Some("virtme-ng is not installed (ci/provision.sh puts it in /opt/strata-vm)".into())
    }
}

/// Processes still naming a VM's shared directory (qemu, virtiofsd).
fn vm_leftovers() -> Vec<String> {
    let mut out = Vec::new();
    for p in std::fs::read_dir("/proc").unwrap().flatten() {
        if p.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(c) = std::fs::read(p.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains("/strata-vm-") && (c.contains("qemu") || c.contains("virtiofsd")) {
                out.push(c);
            }
        }
    }
    out
}

#[test]
fn a_case_under_debian_6_1_and_the_host_gives_two_records() {
    if !strata_runtime::require::root() {
        return;
    }
    if let Some(why) = vng_present() {
        strata_runtime::require::skip_or_fail("vng", &why);
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.json");
    let o = strata(&[
        "--json",
        "check",
        "--kernel",
        "debian:6.1",
        "--kernel",
        "host",
        "--driver",
        "copy",
        "--case",
        "M-07",
        rec.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let text = std::fs::read_to_string(&rec).unwrap();
    let records: Vec<ResultRecord> = serde_json::from_str(&text).unwrap();
    assert_eq!(records.len(), 2, "{text}");
    let (vm, host) = (&records[0], &records[1]);
    let release = vm.runner.kernel.as_deref().unwrap();
    assert!(release.starts_with("6.1."), "{release}");
    assert!(
        ["kvm", "emulated"].contains(&vm.runner.virtualization.as_deref().unwrap()),
        "{:?}",
        vm.runner
    );
    let source = vm.runner.kernel_source.as_deref().unwrap();
    assert!(
        source.starts_with("debian:6.1: Debian linux-image-6.1.") && source.contains("sha256"),
        "{source}"
    );
    assert_eq!(host.runner.virtualization.as_deref(), Some("none"));
    assert_eq!(host.runner.kernel_source.as_deref(), Some("host"));
    assert_ne!(vm.runner.id, host.runner.id);
    // M-07 puts user.* xattrs in its layers: on 6.1 the tmpfs refuses them, so the stores
    // must have moved to a filesystem that takes them.
    for r in &records {
        assert_eq!(r.conformance.len(), 1, "{:?}", r.conformance);
        assert_eq!(
            r.conformance[0].status,
            Status::Pass,
            "{:?}",
            r.conformance[0]
        );
    }
    assert_eq!(
        vm.runner.fs.as_ref().and_then(|f| f.fs_type.as_deref()),
        Some("ext4")
    );
    // Progress per step, and nothing of the VM left running.
    for step in ["kernel debian:6.1: booting", "booted in", "kernel host:"] {
        assert!(stderr.contains(step), "no {step:?} in: {stderr}");
    }
    assert!(vm_leftovers().is_empty(), "{:?}", vm_leftovers());
}

#[test]
fn a_kernel_that_cannot_be_had_is_one_line_and_a_failed_record() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.json");
    let o = strata(&[
        "--json",
        "check",
        "--kernel",
        "/no/such/vmlinuz",
        "--driver",
        "copy",
        rec.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("strata: error:"))
        .collect();
    assert_eq!(
        lines,
        ["strata: error: kernel /no/such/vmlinuz: /no/such/vmlinuz: no such kernel image file"],
        "{stderr}"
    );
    let r = ResultRecord::read(&rec).unwrap();
    assert!(r.conformance.is_empty());
    assert_eq!(r.failed.len(), 1);
    assert_eq!(r.failed[0].what, "kernel /no/such/vmlinuz");
}

/// `strata suite --kernel`: a kernel that cannot be had fails the suite with one line naming
/// it, and its failed record lands in OUT/kernels.json beside the suite's own; `host` is the
/// suite's own record, not run twice.
#[test]
fn the_suite_names_a_kernel_that_cannot_be_had_and_fails() {
    if !strata_runtime::require::root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = strata(&[
        "--root",
        dir.path().join("store").to_str().unwrap(),
        "suite",
        "--no-bench",
        "--quick",
        "--kernel",
        "host",
        "--kernel",
        "/no/such/vmlinuz",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("strata: error: kernel"))
        .collect();
    assert_eq!(
        errors,
        ["strata: error: kernel /no/such/vmlinuz: /no/such/vmlinuz: no such kernel image file"],
        "{stderr}"
    );
    assert!(
        stderr.contains("strata suite: kernel host: this host's kernel is the suite's own record"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(out.join("kernels.json")).unwrap();
    let r = ResultRecord::read(&out.join("kernels.json"))
        .map(|r| vec![r])
        .unwrap_or_else(|_| serde_json::from_str(&text).unwrap());
    assert_eq!(r.len(), 1, "{text}");
    assert_eq!(r[0].failed[0].what, "kernel /no/such/vmlinuz");
    // The suite's own record is whole, and the report has both runners.
    let own = ResultRecord::read(&out.join("result.json")).unwrap();
    assert!(!own.conformance.is_empty());
    let html = std::fs::read_to_string(out.join("report/index.html")).unwrap();
    assert!(
        html.contains(&r[0].runner.id),
        "no {} in the report",
        r[0].runner.id
    );
}
