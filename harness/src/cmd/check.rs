//! `strata check`: the conformance catalog on every available driver.

use std::process::ExitCode;

use strata_reports::record::Status;
use strata_runtime::Error;

use super::Ctx;
use crate::check::{self, catalog, record, table};
use crate::cli::CheckArgs;
use crate::output::CmdResult;

pub fn run(ctx: &Ctx, a: CheckArgs) -> CmdResult<ExitCode> {
    if a.json_file.is_some() && !ctx.json {
        return Err(Error::Usage(format!(
            "{}: a record file is given as `--json FILE`",
            a.json_file
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        )));
    }
    if !a.kernel.is_empty() {
        return crate::kernel::matrix::check(ctx, &a);
    }
    let Local {
        record: rec,
        table,
        ok,
    } = local(&a)?;
    let mut ok = ok;
    let json = rec
        .to_json_pretty()
        .map_err(|e| Error::Usage(format!("JSON output: {e}")))?;
    match (&a.json_file, ctx.json) {
        (None, true) => crate::output::print_out(&format!("{json}\n")),
        (file, _) => {
            crate::output::print_out(&table);
            ok &= write_record_file(file.as_deref(), &json, "record");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A check on this host's kernel.
pub struct Local {
    pub record: strata_reports::record::ResultRecord,
    /// The matrix as `strata check` prints it.
    pub table: String,
    /// Every case file parsed, every driver name known and no cell failed.
    pub ok: bool,
}

/// Runs the catalog on this host's kernel; planning errors are printed on stderr.
pub fn local(a: &CheckArgs) -> CmdResult<Local> {
    let cat = match &a.cases {
        Some(dir) => catalog::from_dir(dir).map_err(Error::Usage)?,
        None => catalog::embedded(),
    };
    let plan = check::plan(cat, &a.driver, &a.only);
    for e in &plan.errors {
        eprintln!("strata: error: {e}");
    }
    // The runner: this host, with the filesystem the cases' stores are on.
    let mut runner = None;
    let cells = check::execute(
        &plan,
        a.jobs.unwrap_or_else(check::default_jobs),
        &mut |dir| runner = Some(crate::runner::runner(dir)),
    );
    let runner = runner.unwrap_or_else(|| crate::runner::runner(&std::env::temp_dir()));
    let record = record::record(&cells, runner);
    let failed = cells.iter().any(|c| c.status == Status::Fail);
    let table = if plan.columns.is_empty() {
        String::new()
    } else {
        table::render(&plan.cases, &plan.columns, &cells)
    };
    Ok(Local {
        record,
        table,
        ok: plan.errors.is_empty() && !failed,
    })
}

/// Writes `json` (a record, or the records of several kernels: `what`) to `file` when one is
/// given; false, with one line on stderr, when it cannot be written.
pub(crate) fn write_record_file(file: Option<&std::path::Path>, json: &str, what: &str) -> bool {
    let Some(f) = file else { return true };
    match std::fs::write(f, format!("{json}\n")) {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "strata: error: {}: cannot write the {what}: {e}",
                f.display()
            );
            false
        }
    }
}
