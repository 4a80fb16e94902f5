//! `strata drivers`: every driver, available or not for the store given (`--root`) and why
//! (with what to do), what it promises, and a probe of the kernel and the store's filesystem.

use std::process::ExitCode;

use serde::Serialize;
use strata_runtime::driver::{self, Capabilities};
use strata_runtime::probe::{self, Probe};

use super::Ctx;
use crate::output::{CmdResult, emit};

#[derive(Serialize)]
struct DriverRow {
    name: &'static str,
    available: bool,
    reason: Option<String>,
    capabilities: Option<Capabilities>,
}

#[derive(Serialize)]
struct Report {
    drivers: Vec<DriverRow>,
    probe: Probe,
}

fn yes_no(b: Option<bool>) -> &'static str {
    match b {
        Some(true) => "yes",
        Some(false) => "no",
        None => "unknown (needs root)",
    }
}

pub fn run(ctx: &Ctx) -> CmdResult<ExitCode> {
    let store = ctx.store()?;
    // Availability for this store: btrfs, say, needs ROOT/btrfs on btrfs, and says so.
    let mut drivers: Vec<DriverRow> = driver::all()
        .into_iter()
        .map(|d| {
            let a = d.availability_in(store.root());
            DriverRow {
                name: d.name(),
                available: a.is_ok(),
                reason: a.err(),
                capabilities: Some(d.capabilities()),
            }
        })
        .collect();
    let probe = probe::probe(store.root());
    // aufs is detected only: mainline Linux never merged it, and strata has no aufs driver.
    drivers.push(DriverRow {
        name: "aufs",
        available: false,
        reason: Some(if probe.filesystems.iter().any(|f| f == "aufs") {
            "aufs is in this kernel, but strata has no aufs driver".into()
        } else {
            "not in this kernel (mainline Linux never merged aufs)".into()
        }),
        capabilities: None,
    });
    let report = Report { drivers, probe };
    emit(ctx.json, &report, |r| {
        let mut s = String::new();
        for d in &r.drivers {
            let status = match &d.reason {
                None => "available".to_string(),
                Some(why) => format!("unavailable: {why}"),
            };
            s.push_str(&format!("{:<16} {status}\n", d.name));
            if let Some(c) = d.capabilities {
                s.push_str(&capability_lines(&c));
            }
        }
        let p = &r.probe;
        s.push_str(&format!(
            "\nkernel           {} ({}; {} cores, {} MiB)\n",
            p.kernel,
            p.os,
            p.cores,
            p.memory >> 20
        ));
        s.push_str(&format!("cgroups          {}\n", p.cgroup));
        s.push_str(&format!(
            "store            {} on {} ({}), reflink {}\n",
            store.root().display(),
            p.store_fs.mount_point,
            p.store_fs.fs_type,
            yes_no(p.store_fs.reflink)
        ));
        s.push_str(&format!("host mounts      {}\n", p.host_mounts));
        let o = &p.overlay;
        let params: Vec<String> = o.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        s.push_str(&format!(
            "overlay          {}; lowerdir+ {}; userxattr {}; at most {} layers\n",
            if o.available {
                "in the kernel"
            } else {
                "not in the kernel"
            },
            yes_no(o.lowerdir_plus),
            yes_no(o.userxattr),
            o.max_layers
        ));
        if !params.is_empty() {
            s.push_str(&format!("overlay params   {}\n", params.join(" ")));
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Every capability as `name=value`, wrapped under the driver's name: all of them, so a new
/// one shows up here without a change.
fn capability_lines(c: &Capabilities) -> String {
    let pairs: Vec<String> = match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::Null => format!("{k}=none"),
                v => format!("{k}={v}"),
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut out = String::new();
    let mut line = String::new();
    for p in pairs {
        if !line.is_empty() && line.len() + 1 + p.len() > 80 {
            out.push_str(&format!("{:<16} {line}\n", ""));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&p);
    }
    if !line.is_empty() {
        out.push_str(&format!("{:<16} {line}\n", ""));
    }
    out
}
