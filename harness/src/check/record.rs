//! The strata-result/1 record of a check: the runner (the host probe, with the check's store
//! filesystem) and one conformance entry per (driver, case).

use strata_reports::record::{Conformance, ResultRecord, Runner, Tool};

use super::run::Cell;

/// The record for `cells`, measured on `runner`.
pub fn record(cells: &[Cell], runner: Runner) -> ResultRecord {
    let mut r = ResultRecord::new(runner);
    r.tool = Some(Tool {
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        commit: option_env!("STRATA_COMMIT").map(str::to_string),
    });
    r.conformance = cells
        .iter()
        .map(|c| Conformance {
            driver: c.driver.clone(),
            case: c.case.clone(),
            status: c.status,
            detail: c.detail.clone(),
        })
        .collect();
    r
}
