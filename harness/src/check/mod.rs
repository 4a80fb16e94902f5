//! The conformance catalog and its runner (`strata check`).
//!
//! - [`case`]: one case as data (TOML, one file per case under `harness/cases/`);
//! - [`catalog`]: the embedded catalog, or a directory's (`--cases DIR`);
//! - [`expect`]: a case's expectations checked against trees and step results; the model's
//!   run of a case under any semantics;
//! - [`run`]: cases on drivers, each case in its own thread, mount namespace and directory;
//! - [`tarlist`]: the committed tar as entries, and the commit checks;
//! - [`table`]: the terminal matrix; [`record`]: the strata-result/1 record.

pub mod case;
pub mod catalog;
pub mod expect;
pub mod record;
pub mod run;
pub mod table;
pub mod tarlist;

use strata_reports::record::Status;
use strata_runtime::driver::{self, Driver};

use self::case::Case;
use self::run::Cell;

/// Bytes for a message: quoted text when printable (cut after 64 characters), else hex.
pub fn show_bytes(b: &[u8]) -> String {
    const MAX: usize = 64;
    match std::str::from_utf8(b) {
        Ok(s) if s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t') => {
            if s.chars().count() > MAX {
                let cut: String = s.chars().take(MAX).collect();
                format!("{cut:?}... ({} bytes)", b.len())
            } else {
                format!("{s:?}")
            }
        }
        _ if b.len() > MAX / 2 => {
            format!("hex:{}... ({} bytes)", hex::encode(&b[..MAX / 2]), b.len())
        }
        _ => format!("hex:{}", hex::encode(b)),
    }
}

/// What to check.
pub struct Plan {
    pub cases: Vec<Case>,
    /// Known drivers, in the order asked.
    pub drivers: Vec<&'static dyn Driver>,
    /// Problems found while planning (broken case files, unknown drivers): each one line,
    /// each also a skip entry in the record.
    pub errors: Vec<String>,
    /// Skip cells for what could not be planned.
    pub skipped: Vec<Cell>,
    /// Column names in table order (unknown drivers are not columns).
    pub columns: Vec<String>,
}

/// Builds the plan from a catalog, driver names (`all` for every driver) and id prefixes.
pub fn plan(catalog: catalog::Catalog, driver_names: &[String], only: &[String]) -> Plan {
    let mut errors = Vec::new();
    let mut skipped = Vec::new();
    let mut drivers: Vec<&'static dyn Driver> = Vec::new();
    let mut unknown = Vec::new();
    for n in driver_names {
        if n == "all" {
            for d in driver::all() {
                if !drivers.iter().any(|x| x.name() == d.name()) {
                    drivers.push(d);
                }
            }
            continue;
        }
        match driver::by_name(n) {
            Ok(d) => {
                if !drivers.iter().any(|x| x.name() == d.name()) {
                    drivers.push(d);
                }
            }
            Err(e) => {
                errors.push(e.to_string());
                unknown.push(n.clone());
            }
        }
    }
    let wanted = |id: &str| only.is_empty() || only.iter().any(|p| id.starts_with(p.as_str()));
    let cases: Vec<Case> = catalog
        .cases
        .into_iter()
        .filter(|c| wanted(&c.id))
        .collect();
    if !only.is_empty() && cases.is_empty() {
        errors.push(format!("--case {}: no case id starts so", only.join(",")));
    }
    let all_names: Vec<String> = drivers
        .iter()
        .map(|d| d.name().to_string())
        .chain(unknown.iter().cloned())
        .collect();
    for b in &catalog.broken {
        errors.push(format!("{}: {}", b.file, b.reason));
        for d in &all_names {
            skipped.push(Cell {
                driver: d.clone(),
                case: b.stem.clone(),
                status: Status::Skip,
                detail: Some(format!("case file {} does not parse: {}", b.file, b.reason)),
            });
        }
    }
    for u in &unknown {
        for c in &cases {
            skipped.push(Cell {
                driver: u.clone(),
                case: c.id.clone(),
                status: Status::Skip,
                detail: Some(format!(
                    "unknown driver {u:?} (known: {})",
                    driver::names().join(", ")
                )),
            });
        }
    }
    let columns = drivers.iter().map(|d| d.name().to_string()).collect();
    Plan {
        cases,
        drivers,
        errors,
        skipped,
        columns,
    }
}

/// Runs a plan: every case on every known driver (`jobs` cases at once); the cells, the
/// planned skips last. `on_workspace` sees the stores' directory while it exists.
pub fn execute(
    plan: &Plan,
    jobs: usize,
    on_workspace: &mut dyn FnMut(&std::path::Path),
) -> Vec<Cell> {
    let lanes = run::lanes(&plan.drivers);
    let mut cells = if plan.drivers.is_empty() {
        Vec::new()
    } else {
        run::run_all(&plan.cases, &lanes, jobs, on_workspace)
    };
    cells.extend(plan.skipped.iter().cloned());
    cells
}

/// How many cases run at once by default: the cores, at most 4.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(4)
}
