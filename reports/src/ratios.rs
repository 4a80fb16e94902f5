//! Ratios of every benchmark to its group's floors and peers, measured on the same runner with
//! the same parameters (e.g. `copy` at 16 layers against `cp_a_floor` at 16 layers, or a strata
//! start against crun and runc).

use crate::merge::{Dataset, is_floor, is_peer};
use crate::params;

/// One benchmark and how many times slower it is than each reference.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioRow {
    pub runner: String,
    pub group: String,
    pub driver: String,
    /// `name=value, ...` of the parameters, or empty.
    pub params: String,
    pub median_ns: f64,
    /// `(reference driver, median / reference median)`; floors first, then peers.
    pub ratios: Vec<(String, f64)>,
}

/// Every non-floor benchmark that has at least one floor or peer to compare with.
pub fn ratios(data: &Dataset) -> Vec<RatioRow> {
    let mut rows = Vec::new();
    // Times measured under emulation are the emulator's: no ratios from them.
    for r in data
        .runners
        .iter()
        .filter(|r| !crate::kernels::emulated(&r.runner))
    {
        for b in r.benchmarks.iter().filter(|b| !is_floor(&b.driver)) {
            let same_point = |o: &&crate::record::Benchmark| {
                o.group == b.group && o.params == b.params && o.driver != b.driver
            };
            let mut refs: Vec<(String, f64)> = r
                .benchmarks
                .iter()
                .filter(same_point)
                .filter(|o| is_floor(&o.driver))
                .filter(|o| o.median > 0.0)
                .map(|o| (o.driver.clone(), b.median / o.median))
                .collect();
            if !is_peer(&b.driver) {
                refs.extend(
                    r.benchmarks
                        .iter()
                        .filter(same_point)
                        .filter(|o| is_peer(&o.driver) && o.median > 0.0)
                        .map(|o| (o.driver.clone(), b.median / o.median)),
                );
            }
            if refs.is_empty() {
                continue;
            }
            rows.push(RatioRow {
                runner: r.runner.id.clone(),
                group: b.group.clone(),
                driver: b.driver.clone(),
                params: params::display_label(&b.params),
                median_ns: b.median,
                ratios: refs,
            });
        }
    }
    rows.sort_by(|a, b| {
        (&a.runner, &a.group, &a.driver)
            .cmp(&(&b.runner, &b.group, &b.driver))
            .then_with(|| {
                let sweep = |p: &str| {
                    p.split('=')
                        .nth(1)
                        .and_then(|v| params::parse_number(v.split(',').next().unwrap_or("")))
                        .unwrap_or(0.0)
                };
                sweep(&a.params).total_cmp(&sweep(&b.params))
            })
    });
    rows
}

/// `3.4×` style.
pub fn times(r: f64) -> String {
    if r >= 100.0 {
        format!("{r:.0}×")
    } else if r >= 10.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}
