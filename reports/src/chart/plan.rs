//! Which charts a data set gets, and their data. Chart ids are stable so the summary can link
//! to them: `lines-<group>-<param>`, `bars-<group>`, `phases`, `conformance`, `disk`.

use std::collections::BTreeMap;

use super::AnyChart;
use super::bars::{Bar, BarSeries, BarsChart, Quantity};
use super::lines::{Line, LinesChart, Point, Wall};
use super::matrix::MatrixChart;
use super::phases::{PhaseSeries, PhaseStat, PhasesChart};
use super::style;
use crate::merge::{Dataset, RunnerData};
use crate::params;
use crate::record::{Benchmark, Status};
use crate::series::Kind;

/// The kernel's overlay lower-layer limit (`OVL_MAX_STACK`).
pub(crate) const OVL_MAX_STACK: f64 = 500.0;

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

/// A series of a sweep chart: (runner index, function, other parameters) and its points.
type SweepSeries = ((usize, String, String), Vec<Point>);

/// Sort key of a series: subjects, then peers, then floors.
fn kind_rank(k: Kind) -> u8 {
    match k {
        Kind::Subject => 0,
        Kind::Peer => 1,
        Kind::Floor => 2,
    }
}

/// The kind of a function of `group` on runner `r` (or the first runner that has it).
fn kind_of(data: &Dataset, ri: usize, group: &str, function: &str) -> crate::series::SeriesKind {
    let r: &RunnerData = &data.runners[ri];
    crate::series::lookup(&r.series, group, function)
}

/// Colours of a chart's series: each driver's own colour for its first series (in the
/// chart's order), shades of it for the driver's other variants.
fn variant_colors(
    keys: &[(String, String)],
) -> impl Fn(&str, &str) -> plotters::style::RGBColor + '_ {
    move |driver: &str, function: &str| {
        let mut seen: Vec<&str> = Vec::new();
        for (d, f) in keys {
            if d == driver && !seen.contains(&f.as_str()) {
                seen.push(f);
            }
        }
        let n = seen.iter().position(|f| *f == function).unwrap_or(0);
        style::shade(style::driver_color(driver), n)
    }
}

/// One chart per swept parameter of `group` that has at least one series with two x values.
fn sweep_lines(data: &Dataset, group: &str) -> Vec<LinesChart> {
    // param -> (runner, function, others) -> points
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
        // Subjects by driver, then peers, then floors; then runner order.
        series.sort_by_cached_key(|((ri, f, o), _)| {
            let k = kind_of(data, *ri, group, f);
            (kind_rank(k.kind), k.driver, f.clone(), o.clone(), *ri)
        });
        let keys: Vec<(String, String)> = series
            .iter()
            .map(|((ri, f, _), _)| (kind_of(data, *ri, group, f).driver, f.clone()))
            .collect();
        let color_of = variant_colors(&keys);
        let lines: Vec<Line> = series
            .iter()
            .cloned()
            .map(|((ri, function, others), mut points)| {
                points.sort_by(|a, b| a.x.total_cmp(&b.x));
                let k = kind_of(data, ri, group, &function);
                let mut label = function.clone();
                if !others.is_empty() {
                    label.push_str(&format!(" [{others}]"));
                }
                match k.kind {
                    Kind::Floor => label.push_str(" (floor)"),
                    Kind::Peer => label.push_str(" (peer)"),
                    Kind::Subject => {}
                }
                if multi {
                    label.push_str(&format!(" @ {}", data.runners[ri].runner.id));
                }
                Line {
                    label,
                    color: color_of(&k.driver, &function),
                    runner: ri,
                    dashed: k.kind == Kind::Floor,
                    points,
                }
            })
            .collect();
        let (walls, page_note) = if pname == "layers" {
            layer_walls(data)
        } else {
            (Vec::new(), String::new())
        };
        let floors: Vec<&str> = lines
            .iter()
            .filter(|l| l.dashed)
            .map(|l| l.label.as_str())
            .collect();
        let caption = format!(
            "Median time per iteration in {group} against {}, one line per series{}, coloured by driver (its variants in shades); shaded bands are 95% confidence intervals{}{}.",
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
            if pname == "layers" {
                format!(
                    "; solid red vertical: the kernel's 500-layer wall (OVL_MAX_STACK); {page_note}"
                )
            } else {
                String::new()
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

/// The kernel's layer wall and, where a runner measured it, the one-page mount(2) limit;
/// with the caption's words for the latter.
fn layer_walls(data: &Dataset) -> (Vec<Wall>, String) {
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
    let note = if pages.is_empty() {
        "the one-page mount(2) option limit: not measured (no runner records mount_page_layers)"
            .to_string()
    } else {
        "dashed orange vertical: the one-page mount(2) option limit, computed from the store's real layer paths".to_string()
    };
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
    walls.push(Wall {
        x: OVL_MAX_STACK,
        label: "kernel wall: 500 lower layers (OVL_MAX_STACK)".to_string(),
        hard: true,
    });
    (walls, note)
}

/// Bars of every benchmark of a group: categories = series and parameters (subjects by driver,
/// then peers, then floors; parameters numerically), one bar per runner, each bar in its
/// driver's colour (a shade per runner).
fn group_bars(data: &Dataset, group: &str, title: String, multi: bool) -> BarsChart {
    // (kind rank, driver, function, param name, sweep value, label)
    let mut cats: Vec<(u8, String, String, String, f64, String)> = Vec::new();
    let mut legend: Vec<(String, plotters::style::RGBColor)> = Vec::new();
    for (r, b) in data.benchmarks().filter(|(_, b)| b.group == group) {
        let k = r.kind(b);
        let (pname, sweep) = params::sweep(&b.params).unwrap_or_default();
        let label = category_label(r, b);
        if !cats.iter().any(|c| c.5 == label) {
            cats.push((
                kind_rank(k.kind),
                k.driver.clone(),
                b.driver.clone(),
                pname,
                sweep,
                label,
            ));
        }
    }
    cats.sort_by(|a, b| {
        (a.0, &a.1, &a.2, &a.3)
            .cmp(&(b.0, &b.1, &b.2, &b.3))
            .then(a.4.total_cmp(&b.4))
            .then(a.5.cmp(&b.5))
    });
    for c in &cats {
        if !legend.iter().any(|(d, _)| *d == c.1) {
            legend.push((c.1.clone(), style::driver_color(&c.1)));
        }
    }
    let categories: Vec<String> = cats.into_iter().map(|c| c.5).collect();
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
                        .find(|b| b.group == group && category_label(r, b) == *c)
                        .map(|b| Bar {
                            value: b.median,
                            ci: b.ci.map(|[lo, hi]| (lo, hi)),
                            color: Some(style::shade(style::driver_color(&r.kind(b).driver), ri)),
                        })
                })
                .collect(),
        })
        .collect();
    BarsChart {
        id: bars_id(group),
        caption: format!(
            "Median time of each benchmark in {group}, coloured by driver{}; whiskers are 95% confidence intervals; floors bound what their mechanism can cost, peers are other tools doing the same work.",
            if multi {
                ", one bar per runner (in runner order, shades of the driver's colour)"
            } else {
                ""
            }
        ),
        title,
        value_desc: "median time".to_string(),
        quantity: Quantity::Time,
        categories,
        series,
        log: true,
        legend,
    }
}

pub(crate) fn category_label(r: &RunnerData, b: &Benchmark) -> String {
    let mut label = b.driver.clone();
    match r.kind(b).kind {
        Kind::Floor => label.push_str(" (floor)"),
        Kind::Peer => label.push_str(" (peer)"),
        Kind::Subject => {}
    }
    if !b.params.is_empty() {
        label.push_str(&format!(" · {}", params::display_label(&b.params)));
    }
    label
}

/// The driver of the phase runs (the suite records `overlay-pivot_root-N`).
fn phase_driver(run: &str) -> String {
    let d = run.split('-').next().unwrap_or("");
    if crate::chart::style::DRIVER_COLORS
        .iter()
        .any(|(name, _)| *name == d)
    {
        d.to_string()
    } else if run.starts_with("fuse-overlayfs") {
        "fuse-overlayfs".to_string()
    } else {
        "overlay".to_string()
    }
}

/// Per phase, the median over the runs with the spread, first run and outliers marked.
fn phases(data: &Dataset) -> PhasesChart {
    let order = phase_order(data);
    let multi = data.runners.len() > 1;
    let mut series = Vec::new();
    for (ri, r) in data.runners.iter().enumerate() {
        let runs = runs_by_phase(r, &order);
        if runs.is_empty() {
            continue;
        }
        let driver = phase_driver(&runs[0].0);
        let stats: Vec<Option<PhaseStat>> = (0..order.len())
            .map(|pi| {
                let v: Vec<f64> = runs.iter().filter_map(|(_, v)| v[pi]).collect();
                PhaseStat::of(&v)
            })
            .collect();
        let mut label = format!("{driver}: median of {} runs", runs.len());
        if multi {
            label.push_str(&format!(" @ {}", r.runner.id));
        }
        series.push(PhaseSeries {
            label,
            color: style::shade(style::driver_color(&driver), ri),
            stats,
        });
    }
    PhasesChart {
        id: PHASES_ID.to_string(),
        title: "Phases of a container start".to_string(),
        caption: "Where the time of a container start goes, phase by phase in start order: the bar is the median over the runs, the whisker spans the lowest to the highest run, a triangle marks the first run and a red cross each outlier (beyond 1.5 interquartile ranges and 25% from the median).".to_string(),
        phases: order,
        series,
    }
}

/// Every phase name, in the order the runs recorded them.
pub(crate) fn phase_order(data: &Dataset) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for r in &data.runners {
        for p in phase_order_of(r) {
            if !order.contains(&p) {
                order.push(p);
            }
        }
    }
    order
}

/// The phase names of one runner, in the order its runs recorded them.
pub(crate) fn phase_order_of(r: &RunnerData) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    for p in &r.phases {
        if !order.contains(&p.phase) {
            order.push(p.phase.clone());
        }
    }
    order
}

/// A runner's runs, in order: the run id and its nanoseconds per phase of `order` (`None`
/// where the run has no such phase; a phase recorded twice in a run adds up).
pub(crate) fn runs_by_phase(r: &RunnerData, order: &[String]) -> Vec<(String, Vec<Option<f64>>)> {
    let mut runs: Vec<(String, Vec<Option<f64>>)> = Vec::new();
    for p in &r.phases {
        let idx = match runs.iter().position(|(run, _)| *run == p.run) {
            Some(i) => i,
            None => {
                runs.push((p.run.clone(), vec![None; order.len()]));
                runs.len() - 1
            }
        };
        if let Some(pi) = order.iter().position(|o| *o == p.phase) {
            let cell = &mut runs[idx].1[pi];
            *cell = Some(cell.unwrap_or(0.0) + p.ns as f64);
        }
    }
    runs
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

/// The disk measures the chart shows, with their words.
pub(crate) const DISK_MEASURES: [(&str, &str); 2] = [
    ("allocated", "per mount"),
    ("first_mount", "first mount, shared by later ones"),
];

/// A disk row's label: `overlay · 10 layers`.
pub(crate) fn disk_label(d: &crate::record::Disk) -> String {
    match &d.image {
        Some(i) => format!("{} · {i}", d.driver),
        None => d.driver.clone(),
    }
}

/// Bytes allocated per mount and by the first mount, per driver and image, on a log axis (so
/// 20 KiB and 32 MiB both show), each bar in its driver's colour.
fn disk(data: &Dataset, multi: bool) -> BarsChart {
    let mut rows: Vec<(String, Option<String>)> = Vec::new();
    let mut images: Vec<Option<String>> = Vec::new();
    for r in &data.runners {
        for d in &r.disk {
            if !rows.iter().any(|(n, l)| *n == d.driver && *l == d.image) {
                rows.push((d.driver.clone(), d.image.clone()));
            }
            if !images.contains(&d.image) {
                images.push(d.image.clone());
            }
        }
    }
    rows.sort_by_key(|(d, i)| (images.iter().position(|x| x == i), d.clone()));
    let mut categories: Vec<String> = Vec::new();
    let mut keys: Vec<(&str, String, Option<String>)> = Vec::new();
    for (measure, words) in DISK_MEASURES {
        let present = data
            .runners
            .iter()
            .flat_map(|r| &r.disk)
            .any(|d| disk_value(d, measure).is_some());
        if !present {
            continue;
        }
        for (driver, layers) in &rows {
            let d = crate::record::Disk {
                driver: driver.clone(),
                image: layers.clone(),
                first_mount: None,
                apparent: None,
                allocated: None,
                shared: None,
            };
            categories.push(format!("{words}: {}", disk_label(&d)));
            keys.push((measure, driver.clone(), layers.clone()));
        }
    }
    let mut legend: Vec<(String, plotters::style::RGBColor)> = Vec::new();
    for (d, _) in &rows {
        if !legend.iter().any(|(x, _)| x == d) {
            legend.push((d.clone(), style::driver_color(d)));
        }
    }
    let series = data
        .runners
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.disk.is_empty())
        .map(|(ri, r)| BarSeries {
            label: r.runner.id.clone(),
            color: style::color(ri),
            bars: keys
                .iter()
                .map(|(measure, driver, layers)| {
                    let d = r
                        .disk
                        .iter()
                        .find(|d| d.driver == *driver && d.image == *layers)?;
                    Some(Bar {
                        value: disk_value(d, measure)? as f64,
                        ci: None,
                        color: Some(style::shade(style::driver_color(driver), ri)),
                    })
                })
                .collect(),
        })
        .collect();
    BarsChart {
        id: DISK_ID.to_string(),
        title: "Disk per driver".to_string(),
        caption: format!(
            "Bytes a mount adds to the store (allocated blocks, after sync), and what the first mount of an image made that later mounts share (chain directories, subvolumes), per driver and image size; log scale, so a bar of 0 bytes is absent (its label says 0 B){}.",
            if multi { "; one bar per runner" } else { "" }
        ),
        value_desc: "bytes".to_string(),
        quantity: Quantity::Bytes,
        categories,
        series,
        log: true,
        legend,
    }
}

fn disk_value(d: &crate::record::Disk, measure: &str) -> Option<u64> {
    match measure {
        "allocated" => d.allocated,
        "first_mount" => d.first_mount,
        "apparent" => d.apparent,
        _ => d.shared,
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
        // No runner measured the one-page limit: only the kernel's wall, and the caption says so.
        assert_eq!(walls, vec![(OVL_MAX_STACK, true)]);
        assert!(l.caption.contains("not measured"), "{}", l.caption);
    }
}
