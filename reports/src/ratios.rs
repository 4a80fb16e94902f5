//! Ratios of every measured series to the floors and peers of its own mechanism, on the same
//! runner at the same parameters (a floor or peer measured at one point only, unswept, applies
//! to every point of its group): `copy` at 16 layers against `cp_a` at 16 layers, a
//! `strata-cli/overlay` start against crun and runc, overlay's mount against the raw mount
//! syscalls. A series is never compared with a floor of another mechanism, and a library call
//! never with a process. A floor a series beats is no floor: the row says so (a bench bug).

use crate::merge::{Dataset, RunnerData};
use crate::params;
use crate::record::Benchmark;
use crate::series::Kind;

/// One reference of a ratio row.
#[derive(Debug, Clone, PartialEq)]
pub struct Ratio {
    /// The floor's or peer's function name.
    pub reference: String,
    pub kind: Kind,
    /// Median / reference median.
    pub ratio: f64,
    /// A floor this series is faster than beyond both 95% confidence intervals: the floor is
    /// not one, which is a bug in the benchmark.
    pub beaten_floor: bool,
}

/// One benchmark and how many times slower it is than each reference.
#[derive(Debug, Clone, PartialEq)]
pub struct RatioRow {
    pub runner: String,
    pub group: String,
    pub driver: String,
    /// `name=value, ...` of the parameters in human units, or empty.
    pub params: String,
    /// The sweep value, for sorting.
    pub sweep: f64,
    pub median_ns: f64,
    /// Floors first, then peers.
    pub ratios: Vec<Ratio>,
}

impl RatioRow {
    /// `1.30× vs floor_x, 0.70× vs cp_a (peer)`, with beaten floors flagged.
    pub fn text(&self) -> String {
        self.ratios
            .iter()
            .map(|r| {
                let mut t = format!("{} vs {}", times(r.ratio), r.reference);
                if r.kind == Kind::Peer {
                    t.push_str(" (peer)");
                }
                if r.beaten_floor {
                    t.push_str(" (FLOOR BEATEN: a bug in the benchmark)");
                }
                t
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn has_beaten_floor(&self) -> bool {
        self.ratios.iter().any(|r| r.beaten_floor)
    }
}

/// The floors and peers of `b`'s mechanism on runner `r`, at `b`'s point.
pub fn references<'a>(r: &'a RunnerData, b: &Benchmark) -> Vec<&'a Benchmark> {
    let kind = r.kind(b);
    if kind.kind != Kind::Subject {
        return Vec::new();
    }
    let mut refs: Vec<&Benchmark> = r
        .benchmarks
        .iter()
        .filter(|o| o.group == b.group && o.driver != b.driver)
        .filter(|o| r.kind(o).is_reference_for(&kind))
        .filter(|o| {
            o.params == b.params
                || r.benchmarks
                    .iter()
                    .filter(|x| x.group == o.group && x.driver == o.driver)
                    .count()
                    == 1
        })
        .filter(|o| o.median > 0.0)
        .collect();
    refs.sort_by_key(|o| (r.kind(o).kind != Kind::Floor, o.driver.clone()));
    refs
}

/// Every subject that has at least one floor or peer of its mechanism to compare with.
pub fn ratios(data: &Dataset) -> Vec<RatioRow> {
    let mut rows = Vec::new();
    // Times measured under emulation are the emulator's: no ratios from them.
    for r in data
        .runners
        .iter()
        .filter(|r| !crate::kernels::emulated(&r.runner))
    {
        for b in &r.benchmarks {
            let refs: Vec<Ratio> = references(r, b)
                .into_iter()
                .map(|o| {
                    let kind = r.kind(o).kind;
                    let (_, b_hi) = b.ci_or_median();
                    let (o_lo, _) = o.ci_or_median();
                    Ratio {
                        reference: o.driver.clone(),
                        kind,
                        ratio: b.median / o.median,
                        beaten_floor: kind == Kind::Floor && b_hi < o_lo,
                    }
                })
                .collect();
            if refs.is_empty() {
                continue;
            }
            rows.push(RatioRow {
                runner: r.runner.id.clone(),
                group: b.group.clone(),
                driver: b.driver.clone(),
                params: params::display_label(&b.params),
                sweep: params::sweep(&b.params).map_or(0.0, |(_, v)| v),
                median_ns: b.median,
                ratios: refs,
            });
        }
    }
    rows.sort_by(|a, b| {
        (&a.runner, &a.group, &a.driver)
            .cmp(&(&b.runner, &b.group, &b.driver))
            .then_with(|| sweep_name(&a.params).cmp(sweep_name(&b.params)))
            .then_with(|| a.sweep.total_cmp(&b.sweep))
            .then_with(|| a.params.cmp(&b.params))
    });
    rows
}

fn sweep_name(label: &str) -> &str {
    label.split('=').next().unwrap_or("")
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::ResultRecord;

    fn dataset(benches: &str) -> Dataset {
        let mut ds = Dataset::default();
        let json = format!(
            r#"{{"schema":"strata-result/1","runner":{{"id":"r"}},"benchmarks":[{benches}]}}"#
        );
        ds.add_record(ResultRecord::from_json_str(&json).unwrap(), "x.json".into())
            .unwrap();
        ds
    }

    fn b(group: &str, f: &str, p: &str, median: f64, ci: [f64; 2]) -> String {
        format!(
            r#"{{"id":"{group}/{f}/{p}","group":"{group}","driver":"{f}","params":{{"layers":{p}}},"median":{median},"ci":[{},{}]}}"#,
            ci[0], ci[1]
        )
    }

    #[test]
    fn only_the_own_mechanism_and_beaten_floors_flagged() {
        let ds = dataset(
            &[
                b("union_prepare", "copy", "1", 20.0, [19.0, 21.0]),
                b("union_prepare", "copy_reflink", "1", 50.0, [49.0, 51.0]),
                b("union_prepare", "cp_a", "1", 30.0, [29.0, 31.0]),
                b("union_prepare", "overlay_mount2", "1", 0.3, [0.29, 0.31]),
                b(
                    "union_prepare",
                    "floor_raw_overlay_mount",
                    "1",
                    0.5,
                    [0.45, 0.55],
                ),
            ]
            .join(","),
        );
        let rows = ratios(&ds);
        let find = |d: &str| rows.iter().find(|r| r.driver == d).unwrap();
        assert_eq!(find("copy").text(), "0.67× vs cp_a (peer)");
        assert_eq!(find("copy_reflink").ratios.len(), 1);
        let ovl = find("overlay_mount2");
        assert_eq!(ovl.ratios[0].reference, "floor_raw_overlay_mount");
        assert!(ovl.has_beaten_floor(), "{}", ovl.text());
        assert!(rows.iter().all(|r| r.driver != "cp_a"));
    }

    #[test]
    fn peers_of_a_start_are_for_the_whole_process_series_only() {
        let p = |f: &str, m: f64| {
            format!(
                r#"{{"id":"container_start/{f}/n","group":"container_start","driver":"{f}","params":{{"param":"n"}},"median":{m}}}"#
            )
        };
        let floor = r#"{"id":"container_start/floor_fork_exec/true","group":"container_start","driver":"floor_fork_exec","params":{"param":"true"},"median":1}"#;
        let ds = dataset(
            &[
                p("strata_overlay", 2.0),
                p("strata-cli/overlay", 4.0),
                p("crun", 8.0),
                floor.to_string(),
            ]
            .join(","),
        );
        let rows = ratios(&ds);
        let lib = rows.iter().find(|r| r.driver == "strata_overlay").unwrap();
        assert_eq!(lib.text(), "2.00× vs floor_fork_exec");
        let cli = rows
            .iter()
            .find(|r| r.driver == "strata-cli/overlay")
            .unwrap();
        assert_eq!(cli.text(), "4.00× vs floor_fork_exec, 0.50× vs crun (peer)");
    }
}
