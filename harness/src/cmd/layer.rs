//! `strata layer import|ls`.

use std::process::ExitCode;

use serde::Serialize;

use super::Ctx;
use crate::cli::LayerCmd;
use crate::output::{CmdResult, emit};

#[derive(Serialize)]
struct Imported {
    path: String,
    digest: String,
    tar_size: u64,
    entries: usize,
    /// The store already held it: nothing new was written.
    reused: bool,
}

#[derive(Serialize)]
struct Listed {
    digest: String,
    tar_size: u64,
    entries: usize,
    source: String,
}

pub fn run(ctx: &Ctx, cmd: LayerCmd) -> CmdResult<ExitCode> {
    let store = ctx.store()?;
    match cmd {
        LayerCmd::Import { paths } => {
            let mut out = Vec::new();
            for p in paths {
                let imp = store.import_path(&p)?;
                out.push(Imported {
                    path: p.display().to_string(),
                    digest: imp.layer.info.diff_id.to_string(),
                    tar_size: imp.layer.info.tar_size,
                    entries: imp.layer.info.entries,
                    reused: imp.reused,
                });
            }
            emit(ctx.json, &out, |v| {
                v.iter().map(|i| format!("{}\n", i.digest)).collect()
            })?;
        }
        LayerCmd::Ls => {
            let rows: Vec<Listed> = store
                .layers()?
                .into_iter()
                .map(|l| Listed {
                    digest: l.info.diff_id.to_string(),
                    tar_size: l.info.tar_size,
                    entries: l.info.entries,
                    source: l.info.source,
                })
                .collect();
            emit(ctx.json, &rows, |v| {
                v.iter()
                    .map(|l| {
                        format!(
                            "{}  {:>10} B  {:>6} entries  {}\n",
                            l.digest, l.tar_size, l.entries, l.source
                        )
                    })
                    .collect()
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
