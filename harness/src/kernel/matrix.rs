//! `strata check --kernel K...`: the catalog under each kernel in turn, one record each.
//!
//! Progress goes to stderr, one line per step and kernel (`strata: kernel debian:6.1: ...`);
//! each kernel's matrix to stdout under a heading, then the cells that differ between the
//! kernels. With `--json FILE` the records go to FILE (one object for one kernel, an array
//! for several), with `--json` alone to stdout. A kernel that cannot be fetched or booted is
//! one line naming it and the reason, and a record whose `failed` names it; the others still
//! run. The exit status is 1 when a kernel failed or a case failed under any kernel.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Instant;

use strata_reports::record::{ResultRecord, Status};
use strata_runtime::Error;

use super::{KernelSpec, vm};
use crate::cli::CheckArgs;
use crate::cmd::Ctx;
use crate::output::CmdResult;

/// One kernel's outcome.
struct Run {
    given: String,
    record: ResultRecord,
    /// The matrix printed for it (empty when it did not run).
    table: String,
    ok: bool,
}

pub fn check(ctx: &Ctx, a: &CheckArgs) -> CmdResult<ExitCode> {
    let mut runs = Vec::new();
    for given in &a.kernel {
        let started = Instant::now();
        let mut say = |line: &str| eprintln!("strata: kernel {given}: {line}");
        let run = match one(given, a, &mut say) {
            Ok(r) => r,
            Err(why) => {
                eprintln!("strata: error: kernel {given}: {why}");
                Run {
                    given: given.clone(),
                    record: super::failed_record(given, &why),
                    table: String::new(),
                    ok: false,
                }
            }
        };
        if run.table.is_empty() && run.record.failed.is_empty() && !run.ok {
            eprintln!("strata: kernel {given}: no cells");
        }
        let counts = count(&run.record);
        eprintln!(
            "strata: kernel {given}: {} in {:.0} s",
            if run.record.failed.is_empty() {
                counts
            } else {
                "failed".to_string()
            },
            started.elapsed().as_secs_f64()
        );
        runs.push(run);
    }
    let records: Vec<ResultRecord> = runs.iter().map(|r| r.record.clone()).collect();
    let json = super::records_json(&records).map_err(Error::Usage)?;
    let mut ok = runs.iter().all(|r| r.ok);
    match (&a.json_file, ctx.json) {
        (None, true) => println!("{json}"),
        (file, _) => {
            for r in &runs {
                println!("== kernel {}: {}", r.given, describe(&r.record));
                print!("{}", r.table);
                println!();
            }
            if runs.len() > 1 {
                print!("{}", differences(&runs));
            }
            ok &= crate::cmd::check::write_record_file(file.as_deref(), &json, "records");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `6.1.0-57-cloud-amd64, emulated (debian:6.1: ...)`.
fn describe(r: &ResultRecord) -> String {
    format!(
        "{}, {}",
        r.runner.kernel.as_deref().unwrap_or("?"),
        r.runner.virtualization.as_deref().unwrap_or("?")
    )
}

/// `216 cells: 210 ok, 6 declared, 0 failed, 0 skipped`.
fn count(r: &ResultRecord) -> String {
    let n = |s: Status| r.conformance.iter().filter(|c| c.status == s).count();
    format!(
        "{} cells: {} ok, {} declared, {} failed, {} skipped",
        r.conformance.len(),
        n(Status::Pass),
        n(Status::Declared),
        n(Status::Fail),
        n(Status::Skip)
    )
}

/// The (driver, case) cells whose status is not the same under every kernel.
fn differences(runs: &[Run]) -> String {
    let mut cells: BTreeMap<(String, String), Vec<Option<Status>>> = BTreeMap::new();
    for (i, r) in runs.iter().enumerate() {
        for c in &r.record.conformance {
            cells
                .entry((c.driver.clone(), c.case.clone()))
                .or_insert_with(|| vec![None; runs.len()])[i] = Some(c.status);
        }
    }
    let differ: Vec<_> = cells
        .iter()
        .filter(|(_, v)| v.iter().any(|s| *s != v[0]))
        .collect();
    let mut out = String::new();
    if differ.is_empty() {
        out.push_str(&format!(
            "Every cell is the same under the {} kernels.\n",
            runs.len()
        ));
        return out;
    }
    out.push_str(&format!(
        "Cells that differ between kernels ({}):\n",
        differ.len()
    ));
    for ((driver, case), v) in differ {
        let each: Vec<String> = runs
            .iter()
            .zip(v)
            .map(|(r, s)| format!("{}={}", r.given, s.map_or("absent", |s| s.as_str())))
            .collect();
        out.push_str(&format!("  {driver} {case}: {}\n", each.join(" ")));
    }
    out
}

/// One kernel: the host's in this process, any other in a VM.
fn one(given: &str, a: &CheckArgs, say: &mut dyn FnMut(&str)) -> Result<Run, String> {
    let spec = KernelSpec::parse(given)?;
    if spec == KernelSpec::Host {
        say("running the catalog on this host's kernel");
        let local = crate::cmd::check::local(a).map_err(|e| e.to_string())?;
        let mut record = local.record;
        let kernel = record.runner.kernel.clone().unwrap_or_default();
        record.runner.id = super::runner_id(&kernel, None);
        record.runner.kernel_source = Some("host".into());
        record.runner.virtualization = Some("none".into());
        return Ok(Run {
            given: given.to_string(),
            record,
            table: local.table,
            ok: local.ok,
        });
    }
    let mut args: Vec<String> = vec![
        "check".into(),
        "--json".into(),
        "{OUT}/record.json".into(),
        "--driver".into(),
        a.driver.join(","),
    ];
    if !a.only.is_empty() {
        args.extend(["--case".into(), a.only.join(",")]);
    }
    if let Some(j) = a.jobs {
        args.extend(["--jobs".into(), j.to_string()]);
    }
    if let Some(dir) = &a.cases {
        let abs = std::fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        args.extend(["--cases".into(), abs.display().to_string()]);
    }
    in_vm(given, &spec, &args, "record.json", say)
}

/// One kernel in a VM: the guest runs `strata ARGS` and leaves its record at `{OUT}/RECORD`,
/// which comes back with the runner block naming the kernel and how it ran.
fn in_vm(
    given: &str,
    spec: &KernelSpec,
    args: &[String],
    record: &str,
    say: &mut dyn FnMut(&str),
) -> Result<Run, String> {
    let tools = vm::tools()?;
    let ready = super::prepare(given, spec, say)?;
    let run = vm::run_strata(&tools, &ready.image, args, say)?;
    let path = run.out.path().join(record);
    let mut record = ResultRecord::read(&path).map_err(|e| {
        format!(
            "the guest's strata {} (exit status {}) left no record: {e}",
            vm::subcommand(args),
            run.status
        )
    })?;
    say(&format!(
        "the VM booted in {:.1} s and was gone after {:.1} s ({})",
        run.boot_secs,
        run.total_secs,
        run.accel.as_str()
    ));
    let kernel = record.runner.kernel.clone().unwrap_or_default();
    record.runner.id = super::runner_id(&kernel, Some(run.accel));
    record.runner.kernel_source = Some(ready.source);
    record.runner.virtualization = Some(run.accel.as_str().into());
    let failed = record.conformance.iter().any(|c| c.status == Status::Fail);
    Ok(Run {
        given: given.to_string(),
        ok: run.status == 0 && !failed,
        record,
        table: run.stdout,
    })
}

/// `strata suite --kernel K...`: the suite without its criterion benchmarks (`strata suite
/// --no-bench`: the catalog on every driver the guest has, the phases of a container start,
/// each driver's disk use) in each kernel's VM, the records in `OUT/kernels.json`. `host` is
/// the suite's own record already. Returns that file, when it was written, and why the
/// kernels failed (one line), if they did.
pub fn in_suite(
    out: &std::path::Path,
    kernels: &[String],
    quick: bool,
) -> (Option<std::path::PathBuf>, Option<String>) {
    let mut records = Vec::new();
    let mut failed = Vec::new();
    for given in kernels {
        let started = Instant::now();
        let mut say = |line: &str| eprintln!("strata suite: kernel {given}: {line}");
        let spec = match KernelSpec::parse(given) {
            Ok(KernelSpec::Host) => {
                say("this host's kernel is the suite's own record");
                continue;
            }
            Ok(spec) => spec,
            Err(why) => {
                eprintln!("strata: error: kernel {given}: {why}");
                failed.push(given.clone());
                records.push(super::failed_record(given, &why));
                continue;
            }
        };
        // The guest's store on its tmpfs: the shared directory is virtiofs, which overlay
        // takes for no upper layer.
        let root = format!("{}/store", vm::GUEST_TMP);
        let mut args: Vec<String> =
            vec!["--root".into(), root, "suite".into(), "--no-bench".into()];
        if quick {
            args.push("--quick".into());
        }
        args.extend(["--out".into(), "{OUT}/suite".into()]);
        match in_vm(given, &spec, &args, "suite/result.json", &mut say) {
            Ok(run) => {
                if !run.ok {
                    failed.push(given.clone());
                }
                say(&format!(
                    "{} in {:.0} s",
                    count(&run.record),
                    started.elapsed().as_secs_f64()
                ));
                records.push(run.record);
            }
            Err(why) => {
                eprintln!("strata: error: kernel {given}: {why}");
                failed.push(given.clone());
                records.push(super::failed_record(given, &why));
            }
        }
    }
    if records.is_empty() {
        return (None, None);
    }
    let file = out.join("kernels.json");
    let written = super::records_json(&records).and_then(|json| {
        std::fs::write(&file, json + "\n").map_err(|e| format!("write {}: {e}", file.display()))
    });
    if let Err(why) = written {
        return (None, Some(why));
    }
    let why = (!failed.is_empty()).then(|| {
        format!(
            "the suite under kernel {} failed (see {})",
            failed.join(", "),
            file.display()
        )
    });
    (Some(file), why)
}
