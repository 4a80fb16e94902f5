//! `strata exec-ops` (hidden): the model's operations done for real in a directory, for a
//! caller that models them itself. Property 6 runs it as the command of a container (`strata
//! run ... -- strata exec-ops OPS`), so the operations are done by a process inside the
//! container's namespaces and root; stdout gets one JSON list, an outcome and the clock
//! window of each operation ([`strata_runtime::ops_exec::Done`]).

use std::os::fd::AsFd;
use std::process::ExitCode;

use strata_runtime::model::ops::Op;
use strata_runtime::{fsutil, ops_exec};

use crate::cli::ExecOpsArgs;
use crate::output::CmdResult;

pub fn run(a: ExecOpsArgs) -> CmdResult<ExitCode> {
    let ops: Vec<Op> = serde_json::from_str(&a.ops).map_err(|e| {
        strata_runtime::Error::Usage(format!(
            "exec-ops: the operations are not a JSON list of operations: {e}"
        ))
    })?;
    let root = fsutil::open_dir(&a.dir)?;
    let done = ops_exec::run_all(root.as_fd(), &ops);
    let out = serde_json::to_string(&done)
        .map_err(|e| strata_runtime::Error::Usage(format!("exec-ops: JSON output: {e}")))?;
    println!("{out}");
    Ok(ExitCode::SUCCESS)
}
