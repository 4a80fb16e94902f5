//! `strata drivers`: every driver, available or not (with why), and what it promises.

use std::process::ExitCode;

use serde::Serialize;
use strata_runtime::driver::{self, Capabilities};

use super::Ctx;
use crate::output::{CmdResult, emit};

#[derive(Serialize)]
struct DriverRow {
    name: &'static str,
    available: bool,
    reason: Option<String>,
    capabilities: Capabilities,
}

pub fn run(ctx: &Ctx) -> CmdResult<ExitCode> {
    let rows: Vec<DriverRow> = driver::all()
        .into_iter()
        .map(|d| {
            let a = d.availability();
            DriverRow {
                name: d.name(),
                available: a.is_ok(),
                reason: a.err(),
                capabilities: d.capabilities(),
            }
        })
        .collect();
    emit(ctx.json, &rows, |rows| {
        let mut s = String::new();
        for r in rows {
            let status = match &r.reason {
                None => "available".to_string(),
                Some(why) => format!("unavailable: {why}"),
            };
            let c = r.capabilities;
            s.push_str(&format!(
                "{:<10} {status}\n           dir_rename={} hardlinks_kept={} stable_ino={} native_diff={} follows_lower_symlinks={} implied_dirs_keep_lower_attrs={} max_layers={}\n",
                r.name,
                c.dir_rename,
                c.hardlinks_kept,
                c.stable_ino,
                c.native_diff,
                c.follows_lower_symlinks,
                c.implied_dirs_keep_lower_attrs,
                c.max_layers.map(|n| n.to_string()).unwrap_or_else(|| "none".into())
            ));
        }
        s
    })?;
    Ok(ExitCode::SUCCESS)
}
