//! `strata gc`: what a crash left in the store, removed (or listed, or checked).

use std::process::ExitCode;

use serde::Serialize;
use strata_runtime::gc::{self, Finding};

use super::Ctx;
use crate::cli::GcArgs;
use crate::output::{CmdResult, emit};

#[derive(Serialize)]
struct GcOut {
    /// `gc`, `dry-run` or `check`.
    mode: &'static str,
    findings: Vec<Finding>,
    /// Problems of the store's consistency (`--check`).
    inconsistencies: Vec<Finding>,
    /// Mounts a live process holds, and idle mounts: both left alone.
    live: usize,
    idle: usize,
}

pub fn run(ctx: &Ctx, a: GcArgs) -> CmdResult<ExitCode> {
    let store = ctx.store()?;
    let report = gc::gc(&store, a.dry_run || a.check)?;
    let inconsistencies = if a.check {
        gc::check(&store)?
    } else {
        Vec::new()
    };
    let errors = report.errors();
    let out = GcOut {
        mode: if a.check {
            "check"
        } else if a.dry_run {
            "dry-run"
        } else {
            "gc"
        },
        findings: report.findings,
        inconsistencies,
        live: report.live,
        idle: report.idle,
    };
    emit(ctx.json, &out, |o| {
        let mut s = String::new();
        for f in o.findings.iter().chain(&o.inconsistencies) {
            let what = match (&f.error, f.removed, o.mode) {
                (Some(e), _, _) => format!("failed ({e})"),
                (None, true, _) => "removed".into(),
                (None, false, "check") => "found".into(),
                (None, false, _) => "would remove".into(),
            };
            s.push_str(&format!(
                "{what}: {} {}: {}\n",
                f.kind,
                f.path.display(),
                f.reason
            ));
        }
        s.push_str(&format!(
            "{} leftover(s), {} inconsistenc(ies); left alone: {} live, {} idle mount(s)",
            o.findings.len(),
            o.inconsistencies.len(),
            o.live,
            o.idle
        ));
        s
    })?;
    if a.check && !(out.findings.is_empty() && out.inconsistencies.is_empty()) {
        return Err(strata_runtime::Error::Usage(format!(
            "the store {} is not clean: {} leftover(s), {} inconsistenc(ies) (`strata gc` removes leftovers)",
            store.root().display(),
            out.findings.len(),
            out.inconsistencies.len()
        )));
    }
    if errors > 0 {
        return Err(strata_runtime::Error::Usage(format!(
            "{errors} leftover(s) could not be removed (see above)"
        )));
    }
    Ok(ExitCode::SUCCESS)
}
