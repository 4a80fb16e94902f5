//! Which charts a data set gets, and their data. Chart ids are stable so the summary can link
//! to them: `lines-<group>-<param>`, `bars-<group>`, `phases`, `conformance`, `disk`.

use std::collections::BTreeMap;

use super::AnyChart;
use super::bars::{Bar, BarSeries, BarsChart, Quantity};
use super::lines::{Line, LinesChart, Point, Wall};
use super::matrix::MatrixChart;
use super::phases::PhasesChart;
use super::style;
use crate::merge::{Dataset, is_floor};
use crate::params;
use crate::record::Status;

/// The kernel's overlay lower-layer limit (`OVL_MAX_STACK`).
pub(crate) const OVL_MAX_STACK: f64 = 500.0;
/// Layers that fit in one 4096-byte page of legacy mount(2) options with 28-byte layer paths
/// (measured on the reference VM); used when no runner records `mount_page_layers`.
pub(crate) const DEFAULT_PAGE_LAYERS: f64 = 140.0;

/// Page order of the planned benchmark groups; other groups follow in order of appearance.
const GROUP_ORDER: &[&str] = &[
    "union_prepare",
    "copy_up",
    "commit",
    "rootfs_switch",
    "container_start",
];

/// Groups whose bars are start latencies.
const START_GROUPS: &[(&str, &str)] = &[
    ("rootfs_switch", "Start latency per root switch"),
    ("container_start", "Start latency per runtime"),
];

pub(crate) fn chart_id(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| {
            p.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-")
}

pub(crate) fn lines_id(group: &str, param: &str) -> String {
    chart_id(&["lines", group, param])
}

pub(crate) fn bars_id(group: &str) -> String {
    chart_id(&["bars", group])
}

pub(crate) const PHASES_ID: &str = "phases";
pub(crate) const CONFORMANCE_ID: &str = "conformance";
pub(crate) const DISK_ID: &str = "disk";

/// Every chart the data set supports, in page order.
pub(crate) fn plan(data: &Dataset) -> Vec<AnyChart> {
    let multi = data.runners.len() > 1;
    let mut charts = Vec::new();

    let mut groups = data.groups();
    // The storage story first (prepare, copy-up, commit), then start latency, then the rest.
    groups.sort_by_key(|g| {
        GROUP_ORDER
            .iter()
            .position(|o| o == g)
            .unwrap_or(GROUP_ORDER.len())
    });
    for group in groups {
        let lines = sweep_lines(data, &group);
        let has_lines = !lines.is_empty();
        charts.extend(lines.into_iter().map(AnyChart::Lines));
        let start = START_GROUPS.iter().find(|(g, _)| *g == group);
        if start.is_some() || !has_lines {
            let title =
                start.map_or_else(|| format!("{group}: median time"), |(_, t)| t.to_string());
            charts.push(AnyChart::Bars(group_bars(data, &group, title, multi)));
        }
    }
    if data.runners.iter().any(|r| !r.phases.is_empty()) {
        charts.push(AnyChart::Phases(phases(data)));
    }
    if data.runners.iter().any(|r| !r.conformance.is_empty()) {
        charts.push(AnyChart::Matrix(matrix(data)));
    }
    if data.runners.iter().any(|r| !r.disk.is_empty()) {
        charts.push(AnyChart::Bars(disk(data, multi)));
    }
    make_ids_unique(&mut charts);
    charts
}

/// Group names that differ only in punctuation map to the same file name; number the later ones.
fn make_ids_unique(charts: &mut [AnyChart]) {
    let mut seen = std::collections::BTreeSet::new();
    for c in charts.iter_mut() {
        let id = match c {
            AnyChart::Lines(x) => &mut x.id,
            AnyChart::Bars(x) => &mut x.id,
            AnyChart::Phases(x) => &mut x.id,
            AnyChart::Matrix(x) => &mut x.id,
        };
        let base = id.clone();
        let mut n = 2;
        while !seen.insert(id.clone()) {
            *id = format!("{base}-{n}");
            n += 1;
        }
    }
}

/// A series of a sweep chart: (runner index, driver, other parameters) and its points.
type SweepSeries = ((usize, String, String), Vec<Point>);

/// One chart per swept parameter of `group` that has at least one series with two x values.
fn sweep_lines(data: &Dataset, group: &str) -> Vec<LinesChart> {
    // param -> (runner, driver, others) -> points
    let mut by_param: BTreeMap<String, Vec<SweepSeries>> = BTreeMap::new();
    for (ri, r) in data.runners.iter().enumerate() {
        for b in r.benchmarks.iter().filter(|b| b.group == group) {
            let Some((pname, x)) = params::sweep(&b.params) else {
                continue;
            };
            let key = (
                ri,
                b.driver.clone(),
                params::others_label(&b.params, Some(&pname)),
            );
            let (lo, hi) = b.ci_or_median();
            let p = Point {
                x,
                median: b.median,
                lo,
                hi,
            };
            let series = by_param.entry(pname).or_default();
            match series.iter_mut().find(|(k, _)| *k == key) {
                Some((_, pts)) => pts.push(p),
                None => series.push((key, vec![p])),
            }
        }
    }
    let multi = data.runners.len() > 1;
    let mut out = Vec::new();
    for (pname, mut series) in by_param {
        let chartable = series.iter().any(|(_, pts)| {
            pts.iter()
                .map(|p| p.x.to_bits())
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                >= 2
        });
        if !chartable {
            continue;
        }
        // Drivers first, floors last, then runner order.
        series.sort_by(|((ra, da, oa), _), ((rb, db, ob), _)| {
            (is_floor(da), da, oa, ra).cmp(&(is_floor(db), db, ob, rb))
        });
        // Colour by driver within the chart, so every driver of a chart is distinct.
        let mut drivers: Vec<&str> = Vec::new();
        for ((_, d, _), _) in &series {
            if !drivers.contains(&d.as_str()) {
                drivers.push(d);
            }
        }
        let driver_color =
            |d: &str| style::color(drivers.iter().position(|x| *x == d).unwrap_or(0));
        let lines: Vec<Line> = series
            .iter()
            .cloned()
            .map(|((ri, driver, others), mut points)| {
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                let mut label = driver.clone();
                if !others.is_empty() {
                    label.push_str(&format!(" [{others}]"));
                }
                if is_floor(&driver) {
                    label.push_str(" (floor)");
                }
                if multi {
                    label.push_str(&format!(" @ {}", data.runners[ri].runner.id));
                }
                Line {
                    label,
                    color: driver_color(&driver),
                    runner: ri,
                    dashed: is_floor(&driver),
                    points,
                }
            })
            .collect();
        let walls = if pname == "layers" {
            layer_walls(data)
        } else {
            Vec::new()
        };
        let floors: Vec<&str> = lines
            .iter()
            .filter(|l| l.dashed)
            .map(|l| l.label.as_str())
            .collect();
        let caption = format!(
            "Median time per iteration in {group} against {}, one line per driver{}; shaded bands are 95% confidence intervals{}{}.",
            pname.replace('_', " "),
            if multi {
                " and runner (marker shape = runner)"
            } else {
                ""
            },
            if floors.is_empty() {
                String::new()
            } else {
                format!("; dashed: {}", floors.join(", "))
            },
            if walls.is_empty() {
                ""
            } else {
                "; red dashed verticals: the kernel's 500-layer wall and the one-page mount(2) option limit"
            },
        );
        out.push(LinesChart {
            id: lines_id(group, &pname),
            title: format!("{group}: time against {}", pname.replace('_', " ")),
            caption,
            param: pname,
            lines,
            walls,
        });
    }
    out
}

fn layer_walls(data: &Dataset) -> Vec<Wall> {
    let mut walls = Vec::new();
    let mut pages: Vec<(f64, String)> = data
        .runners
        .iter()
        .filter_map(|r| {
            r.runner
                .overlay_params
                .get("mount_page_layers")
                .and_then(|v| v.as_f64())
                .map(|n| (n, r.runner.id.clone()))
        })
        .collect();
    pages.sort_by(|a, b| a.0.total_cmp(&b.0));
    pages.dedup_by(|a, b| a.0 == b.0);
    if pages.is_empty() {
        walls.push(Wall {
            x: DEFAULT_PAGE_LAYERS,
            label: format!(
                "mount(2) one-page option limit: ~{DEFAULT_PAGE_LAYERS} layers (28-byte paths)"
            ),
            hard: false,
        });
    } else {
        let multi = pages.len() > 1;
        for (n, runner) in pages {
            let who = if multi {
                format!(" on {runner}")
            } else {
                String::new()
            };
            walls.push(Wall {
                x: n,
                label: format!("mount(2) one-page option limit: {n} layers{who}"),
                hard: false,
            });
        }
    }
    walls.push(Wall {
        x: OVL_MAX_STACK,
        label: "kernel wall: 500 lower layers (OVL_MAX_STACK)".to_string(),
        hard: true,
    });
    walls
}

/// Bars of every benchmark of a group: categories = driver and parameters, one series per runner.
fn group_bars(data: &Dataset, group: &str, title: String, multi: bool) -> BarsChart {
    let mut cats: Vec<(bool, String, f64, String)> = Vec::new(); // (floor, driver, sweep, label)
    for (_, b) in data.benchmarks().filter(|(_, b)| b.group == group) {
        let sweep = params::sweep(&b.params).map_or(0.0, |(_, v)| v);
        let label = category_label(&b.driver, &b.params);
        if !cats.iter().any(|c| c.3 == label) {
            cats.push((is_floor(&b.driver), b.driver.clone(), sweep, label));
        }
    }
    cats.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)).then(a.2.total_cmp(&b.2)));
    let categories: Vec<String> = cats.into_iter().map(|c| c.3).collect();
    let series = data
        .runners
        .iter()
        .enumerate()
        .filter(|(_, r)| r.benchmarks.iter().any(|b| b.group == group))
        .map(|(ri, r)| BarSeries {
            label: r.runner.id.clone(),
            color: style::color(ri),
            bars: categories
                .iter()
                .map(|c| {
                    r.benchmarks
                        .iter()
                        .find(|b| b.group == group && category_label(&b.driver, &b.params) == *c)
                        .map(|b| Bar {
                            value: b.median,
                            ci: b.ci.map(|[lo, hi]| (lo, hi)),
                        })
                })
                .collect(),
        })
        .collect();
    BarsChart {
        id: bars_id(group),
        caption: format!(
            "Median time of each benchmark in {group}{}; whiskers are 95% confidence intervals; floors are the trivial baseline of the group.",
            if multi { ", one bar per runner" } else { "" }
        ),
        title,
        value_desc: "median time".to_string(),
        quantity: Quantity::Time,
        categories,
        series,
    }
}

pub(crate) fn category_label(driver: &str, p: &BTreeMap<String, serde_json::Value>) -> String {
    let mut label = driver.to_string();
    if is_floor(driver) {
        label.push_str(" (floor)");
    }
    if !p.is_empty() {
        label.push_str(&format!(" · {}", params::display_label(p)));
    }
    label
}

/// Runs with more runs than this are shown as one bar of per-phase medians.
const MAX_RUN_BARS: usize = 8;

fn phases(data: &Dataset) -> PhasesChart {
    let mut order: Vec<String> = Vec::new();
    for r in &data.runners {
        for p in &r.phases {
            if !order.contains(&p.phase) {
                order.push(p.phase.clone());
            }
        }
    }
    let multi = data.runners.len() > 1;
    let mut bars = Vec::new();
    for r in data.runners.iter().filter(|r| !r.phases.is_empty()) {
        let mut runs: Vec<(String, Vec<f64>)> = Vec::new();
        for p in &r.phases {
            let idx = match runs.iter().position(|(run, _)| *run == p.run) {
                Some(i) => i,
                None => {
                    runs.push((p.run.clone(), vec![0.0; order.len()]));
                    runs.len() - 1
                }
            };
            let pi = order.iter().position(|o| *o == p.phase).unwrap_or(0);
            runs[idx].1[pi] += p.ns as f64;
        }
        let prefix = if multi {
            format!("{} · ", r.runner.id)
        } else {
            String::new()
        };
        if runs.len() > MAX_RUN_BARS {
            let medians = (0..order.len())
                .map(|pi| median(runs.iter().map(|(_, v)| v[pi]).collect()))
                .collect();
            bars.push((format!("{prefix}median of {} runs", runs.len()), medians));
        } else {
            bars.extend(
                runs.into_iter()
                    .map(|(run, v)| (format!("{prefix}run {run}"), v)),
            );
        }
    }
    PhasesChart {
        id: PHASES_ID.to_string(),
        title: "Phases of a container start".to_string(),
        caption: "Where the time of a container start goes: each bar is one start (or the per-phase median of many), its phases stacked in order.".to_string(),
        phases: order,
        bars,
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn matrix(data: &Dataset) -> MatrixChart {
    let mut rows: Vec<String> = Vec::new();
    let mut drivers: Vec<String> = Vec::new();
    for r in &data.runners {
        for c in &r.conformance {
            if !rows.contains(&c.case) {
                rows.push(c.case.clone());
            }
            if !drivers.contains(&c.driver) {
                drivers.push(c.driver.clone());
            }
        }
    }
    let status = |ri: usize, d: &str, case: &str| {
        data.runners[ri]
            .conformance
            .iter()
            .find(|c| c.driver == d && c.case == case)
            .map(|c| c.status)
    };
    let with_data: Vec<usize> = (0..data.runners.len())
        .filter(|&i| !data.runners[i].conformance.is_empty())
        .collect();
    // Runners agree when every cell they both ran has the same status.
    let agree = with_data.iter().all(|&a| {
        with_data.iter().all(|&b| {
            drivers.iter().all(|d| {
                rows.iter()
                    .all(|case| match (status(a, d, case), status(b, d, case)) {
                        (Some(x), Some(y)) => x == y,
                        _ => true,
                    })
            })
        })
    });
    let mut columns = Vec::new();
    let mut sources: Vec<(String, Vec<usize>)> = Vec::new();
    for d in &drivers {
        if agree || with_data.len() == 1 {
            columns.push(d.clone());
            sources.push((d.clone(), with_data.clone()));
        } else {
            for &ri in &with_data {
                if data.runners[ri].conformance.iter().any(|c| c.driver == *d) {
                    columns.push(format!("{d} @ {}", data.runners[ri].runner.id));
                    sources.push((d.clone(), vec![ri]));
                }
            }
        }
    }
    let cells = rows
        .iter()
        .map(|case| {
            sources
                .iter()
                .map(|(d, runners)| runners.iter().find_map(|&ri| status(ri, d, case)))
                .collect()
        })
        .collect();
    let counts = |s: Status| {
        data.runners
            .iter()
            .flat_map(|r| &r.conformance)
            .filter(|c| c.status == s)
            .count()
    };
    MatrixChart {
        id: CONFORMANCE_ID.to_string(),
        title: "Conformance: driver x case".to_string(),
        caption: format!(
            "Each case checks a driver's merged view against the model: {} pass, {} fail, {} declared divergences, {} skipped{}.",
            counts(Status::Pass),
            counts(Status::Fail),
            counts(Status::Declared),
            counts(Status::Skip),
            if agree || with_data.len() == 1 {
                ""
            } else {
                "; runners disagree, so each runner has its own column"
            }
        ),
        columns,
        rows,
        cells,
    }
}

fn disk(data: &Dataset, multi: bool) -> BarsChart {
    let mut categories: Vec<String> = Vec::new();
    for r in &data.runners {
        for d in &r.disk {
            if !categories.contains(&d.driver) {
                categories.push(d.driver.clone());
            }
        }
    }
    let mut series = Vec::new();
    for (ri, r) in data
        .runners
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.disk.is_empty())
    {
        for (mi, measure) in ["allocated", "apparent", "shared"].into_iter().enumerate() {
            let bars: Vec<Option<Bar>> = categories
                .iter()
                .map(|c| {
                    let d = r.disk.iter().find(|d| d.driver == *c)?;
                    let v = match measure {
                        "allocated" => d.allocated,
                        "apparent" => d.apparent,
                        _ => d.shared,
                    }?;
                    Some(Bar {
                        value: v as f64,
                        ci: None,
                    })
                })
                .collect();
            if bars.iter().all(Option::is_none) {
                continue;
            }
            let label = if multi {
                format!("{measure} @ {}", r.runner.id)
            } else {
                measure.to_string()
            };
            series.push(BarSeries {
                label,
                color: style::color(mi + 3 * ri),
                bars,
            });
        }
    }
    BarsChart {
        id: DISK_ID.to_string(),
        title: "Disk usage per driver".to_string(),
        caption: "Bytes each driver's store takes: allocated blocks, apparent file sizes, and bytes shared (stored once for many mounts).".to_string(),
        value_desc: "bytes".to_string(),
        quantity: Quantity::Bytes,
        categories,
        series,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::chart::Chart;
    use crate::record::ResultRecord;

    fn dataset(json: &str) -> Dataset {
        let mut ds = Dataset::default();
        ds.add_record(ResultRecord::from_json_str(json).unwrap(), "x.json".into())
            .unwrap();
        ds
    }

    #[test]
    fn ids_are_unique_and_single_points_get_bars() {
        let ds = dataset(
            r#"{"schema":"strata-result/1","runner":{"id":"r"},"benchmarks":[
            {"id":"a-b/f/1","group":"a-b","driver":"f","params":{"layers":1},"median":5},
            {"id":"a_b/f","group":"a_b","driver":"f","median":7}]}"#,
        );
        let ids: Vec<String> = plan(&ds).iter().map(Chart::id).collect();
        // One point is no curve: both groups get bars, and the second id is numbered.
        assert_eq!(ids, vec!["bars-a_b", "bars-a_b-2"]);
    }

    #[test]
    fn layer_sweeps_mark_both_limits() {
        let ds = dataset(
            r#"{"schema":"strata-result/1","runner":{"id":"r"},"benchmarks":[
            {"id":"union_prepare/copy/1","group":"union_prepare","driver":"copy","params":{"layers":1},"median":5},
            {"id":"union_prepare/copy/16","group":"union_prepare","driver":"copy","params":{"layers":16},"median":50}]}"#,
        );
        let charts = plan(&ds);
        let AnyChart::Lines(l) = &charts[0] else {
            panic!("expected a line chart")
        };
        let walls: Vec<(f64, bool)> = l.walls.iter().map(|w| (w.x, w.hard)).collect();
        assert_eq!(
            walls,
            vec![(DEFAULT_PAGE_LAYERS, false), (OVL_MAX_STACK, true)]
        );
    }
}
