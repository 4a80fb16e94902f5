//! The report's figures as tables, written the same way into REPORT.md, index.html and the
//! README fragment: the conformance matrix, the declared divergences, each sweep (parameters
//! sorted numerically, sizes and times in human units), the disk and the phases.

use std::collections::BTreeMap;

use crate::advice::{capability, with_ci};
use crate::chart::phases::PhaseStat;
use crate::chart::plan;
use crate::merge::{Dataset, RunnerData, human_bytes, human_ns};
use crate::params;
use crate::record::{Benchmark, Status};
use crate::series::Kind;

/// A table: a header and rows of cells (plain text).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns (by index) holding numbers, right-aligned.
    pub numeric: Vec<usize>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
            numeric: Vec::new(),
        }
    }

    /// A GitHub Markdown table.
    pub fn markdown(&self) -> String {
        let cell = |s: &str| s.replace('|', "\\|").replace(['\n', '\r'], " ");
        let mut m = format!(
            "| {} |\n|{}\n",
            self.header
                .iter()
                .map(|h| cell(h))
                .collect::<Vec<_>>()
                .join(" | "),
            (0..self.header.len())
                .map(|i| if self.numeric.contains(&i) {
                    "---:|"
                } else {
                    "---|"
                })
                .collect::<String>()
        );
        for r in &self.rows {
            m.push_str(&format!(
                "| {} |\n",
                r.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
            ));
        }
        m
    }

    /// An HTML table (cells escaped); status words get their class.
    pub fn html(&self) -> String {
        let esc = crate::html::escape;
        let mut h = String::from("<table><tr>");
        for c in &self.header {
            h.push_str(&format!("<th>{}</th>", esc(c)));
        }
        h.push_str("</tr>\n");
        for r in &self.rows {
            h.push_str("<tr>");
            for (i, c) in r.iter().enumerate() {
                let class = match c.as_str() {
                    "ok" => " class=\"pass\"",
                    "FAIL" => " class=\"fail\"",
                    "DECLARED" => " class=\"declared\"",
                    "skip" => " class=\"skip\"",
                    _ if self.numeric.contains(&i) => " class=\"num\"",
                    _ => "",
                };
                h.push_str(&format!("<td{class}>{}</td>", esc(c)));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
        h
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "ok",
        Status::Fail => "FAIL",
        Status::Declared => "DECLARED",
        Status::Skip => "skip",
    }
}

/// The conformance matrix: one row per case, one column per driver (and runner, when there
/// are several).
pub fn matrix(data: &Dataset) -> Option<Table> {
    let with: Vec<&RunnerData> = data
        .runners
        .iter()
        .filter(|r| !r.conformance.is_empty())
        .collect();
    if with.is_empty() {
        return None;
    }
    let multi = with.len() > 1;
    let mut cols: Vec<(usize, String)> = Vec::new();
    let mut cases: Vec<String> = Vec::new();
    for (ri, r) in with.iter().enumerate() {
        for c in &r.conformance {
            if !cols.iter().any(|(i, d)| *i == ri && *d == c.driver) {
                cols.push((ri, c.driver.clone()));
            }
            if !cases.contains(&c.case) {
                cases.push(c.case.clone());
            }
        }
    }
    let mut header = vec!["case".to_string()];
    header.extend(cols.iter().map(|(ri, d)| {
        if multi {
            format!("{d} @ {}", with[*ri].runner.id)
        } else {
            d.clone()
        }
    }));
    let rows = cases
        .iter()
        .map(|case| {
            let mut row = vec![case.clone()];
            row.extend(cols.iter().map(|(ri, d)| {
                with[*ri]
                    .conformance
                    .iter()
                    .find(|c| c.driver == *d && c.case == *case)
                    .map_or("-", |c| status_word(c.status))
                    .to_string()
            }));
            row
        })
        .collect();
    Some(Table {
        header,
        rows,
        numeric: Vec::new(),
    })
}

/// The matrix's totals: `107 cases x 5 drivers: 523 ok, 12 declared, 0 failed, 0 skipped`.
pub fn matrix_summary(data: &Dataset) -> Option<String> {
    let cells: Vec<_> = data.runners.iter().flat_map(|r| &r.conformance).collect();
    if cells.is_empty() {
        return None;
    }
    let n = |s: Status| cells.iter().filter(|c| c.status == s).count();
    let cases: std::collections::BTreeSet<&str> = cells.iter().map(|c| c.case.as_str()).collect();
    let drivers: std::collections::BTreeSet<&str> =
        cells.iter().map(|c| c.driver.as_str()).collect();
    Some(format!(
        "{} cases x {} drivers: {} ok, {} declared, {} failed, {} skipped",
        cases.len(),
        drivers.len(),
        n(Status::Pass),
        n(Status::Declared),
        n(Status::Fail),
        n(Status::Skip)
    ))
}

/// Every DECLARED cell with the capability that explains it, and every failure and skip with
/// its first line.
pub fn divergences(data: &Dataset) -> Table {
    let multi = data.runners.len() > 1;
    let mut t = Table::new(&["driver", "case", "status", "capability / reason"]);
    if multi {
        t.header.insert(0, "runner".into());
    }
    for r in &data.runners {
        let mut cells: Vec<_> = r
            .conformance
            .iter()
            .filter(|c| c.status != Status::Pass)
            .collect();
        cells.sort_by(|a, b| (&a.driver, &a.case).cmp(&(&b.driver, &b.case)));
        for c in cells {
            let why = match c.status {
                Status::Declared => capability(c.detail.as_deref().unwrap_or("")),
                _ => c
                    .detail
                    .as_deref()
                    .and_then(|d| d.lines().next())
                    .unwrap_or("")
                    .to_string(),
            };
            let mut row = vec![
                c.driver.clone(),
                c.case.clone(),
                status_word(c.status).to_string(),
                why,
            ];
            if multi {
                row.insert(0, r.runner.id.clone());
            }
            t.rows.push(row);
        }
    }
    t
}

/// One table per group and swept parameter: a row per series (subjects by driver, then peers,
/// then floors), a column per value (sorted numerically), cells the median [95% CI]; with
/// `compact`, medians only.
pub fn sweeps(r: &RunnerData, compact: bool) -> Vec<(String, Table)> {
    let mut groups: Vec<&str> = Vec::new();
    for b in &r.benchmarks {
        if !groups.contains(&b.group.as_str()) {
            groups.push(&b.group);
        }
    }
    let mut out = Vec::new();
    for g in groups {
        // sweep param (or "" for unswept) -> series -> (value, label, bench)
        let mut by: BTreeMap<String, Vec<&Benchmark>> = BTreeMap::new();
        for b in r.benchmarks.iter().filter(|b| b.group == g) {
            let key = params::sweep(&b.params).map_or(String::new(), |(p, _)| p);
            by.entry(key).or_default().push(b);
        }
        for (pname, bs) in by {
            let value = |b: &Benchmark| params::sweep(&b.params).map_or(0.0, |(_, v)| v);
            let col_label = |b: &Benchmark| {
                if pname.is_empty() {
                    params::display_label(&b.params)
                } else {
                    let v = value(b);
                    let main = if pname == "bytes" {
                        crate::chart::axis::bytes_label(v)
                    } else {
                        crate::chart::axis::count_label(v)
                    };
                    let rest = params::others_label(&b.params, Some(&pname));
                    if rest.is_empty() {
                        main
                    } else {
                        format!("{main} ({rest})")
                    }
                }
            };
            let mut cols: Vec<(f64, String)> = Vec::new();
            for b in &bs {
                let l = col_label(b);
                if !cols.iter().any(|(_, x)| *x == l) {
                    cols.push((value(b), l));
                }
            }
            cols.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut series: Vec<(u8, String, String)> = Vec::new();
            for b in &bs {
                let k = r.kind(b);
                let rank = match k.kind {
                    Kind::Subject => 0,
                    Kind::Peer => 1,
                    Kind::Floor => 2,
                };
                if !series.iter().any(|(_, _, f)| *f == b.driver) {
                    series.push((rank, k.driver.clone(), b.driver.clone()));
                }
            }
            series.sort();
            let first = if pname.is_empty() {
                "series".to_string()
            } else {
                format!("series \\ {}", pname.replace('_', " "))
            };
            let mut header = vec![first];
            header.extend(cols.iter().map(|(_, l)| l.clone()));
            let rows = series
                .iter()
                .map(|(_, _, f)| {
                    let k = r.kind(bs.iter().find(|b| b.driver == *f).copied().unwrap_or(bs[0]));
                    let mut name = f.clone();
                    match k.kind {
                        Kind::Floor => name.push_str(" (floor)"),
                        Kind::Peer => name.push_str(" (peer)"),
                        Kind::Subject => {}
                    }
                    if let Some(s) = k.storage.as_deref()
                        && s != "tmpfs"
                    {
                        name.push_str(&format!(", {s}"));
                    }
                    let mut row = vec![name];
                    row.extend(cols.iter().map(|(_, l)| {
                        bs.iter()
                            .find(|b| b.driver == *f && col_label(b) == *l)
                            .map_or("-".to_string(), |b| {
                                if compact {
                                    human_ns(b.median)
                                } else {
                                    with_ci(b)
                                }
                            })
                    }));
                    row
                })
                .collect();
            let title = if pname.is_empty() {
                g.to_string()
            } else {
                format!("{g} against {}", pname.replace('_', " "))
            };
            out.push((
                title,
                Table {
                    header,
                    rows,
                    numeric: (1..=cols.len()).collect(),
                },
            ));
        }
    }
    out
}

/// Every benchmark: series, parameters, median, 95% CI, samples, kind, storage.
pub fn every_benchmark(data: &Dataset) -> Table {
    let mut t = Table::new(&[
        "runner", "group", "series", "params", "median", "95% CI", "samples", "kind", "ran on",
    ]);
    t.numeric = vec![4, 5, 6];
    for r in &data.runners {
        let mut bs: Vec<&Benchmark> = r.benchmarks.iter().collect();
        bs.sort_by(|a, b| {
            let s = |x: &Benchmark| params::sweep(&x.params);
            (&a.group, &a.driver)
                .cmp(&(&b.group, &b.driver))
                .then_with(|| {
                    let (pa, pb) = (s(a), s(b));
                    pa.as_ref()
                        .map(|x| &x.0)
                        .cmp(&pb.as_ref().map(|x| &x.0))
                        .then(pa.map_or(0.0, |x| x.1).total_cmp(&pb.map_or(0.0, |x| x.1)))
                })
                .then_with(|| a.id.cmp(&b.id))
        });
        for b in bs {
            let k = r.kind(b);
            let (lo, hi) = b.ci_or_median();
            t.rows.push(vec![
                r.runner.id.clone(),
                b.group.clone(),
                b.driver.clone(),
                params::display_label(&b.params),
                human_ns(b.median),
                format!("{} – {}", human_ns(lo), human_ns(hi)),
                b.samples.len().to_string(),
                k.kind.as_str().to_string(),
                k.storage.unwrap_or_else(|| "not recorded".into()),
            ]);
        }
    }
    t
}

/// The disk figures: per runner, driver and image.
pub fn disk(data: &Dataset) -> Option<Table> {
    if data.runners.iter().all(|r| r.disk.is_empty()) {
        return None;
    }
    let multi = data.runners.len() > 1;
    let mut t = Table::new(&[
        "driver",
        "image",
        "allocated per mount",
        "first mount (shared by later ones)",
        "apparent (the view's files)",
        "shared with the layers",
    ]);
    t.numeric = vec![2, 3, 4, 5];
    if multi {
        t.header.insert(0, "runner".into());
        t.numeric = vec![3, 4, 5, 6];
    }
    let b = |v: Option<u64>| v.map_or("-".to_string(), human_bytes);
    for r in &data.runners {
        // Images in the order the record has them, drivers sorted within each.
        let mut images: Vec<Option<&String>> = Vec::new();
        for d in &r.disk {
            if !images.contains(&d.image.as_ref()) {
                images.push(d.image.as_ref());
            }
        }
        let mut ds: Vec<_> = r.disk.iter().collect();
        ds.sort_by_key(|d| {
            (
                images.iter().position(|i| *i == d.image.as_ref()),
                d.driver.clone(),
            )
        });
        for d in ds {
            let mut row = vec![
                d.driver.clone(),
                d.image.clone().unwrap_or_else(|| "-".to_string()),
                b(d.allocated),
                b(d.first_mount),
                b(d.apparent),
                b(d.shared),
            ];
            if multi {
                row.insert(0, r.runner.id.clone());
            }
            t.rows.push(row);
        }
    }
    Some(t)
}

/// The phases of a container start: per runner and phase, the median over the runs, the
/// spread, the first run and the outliers.
pub fn phases(data: &Dataset) -> Option<Table> {
    if data.runners.iter().all(|r| r.phases.is_empty()) {
        return None;
    }
    let multi = data.runners.len() > 1;
    let mut t = Table::new(&[
        "phase",
        "median",
        "lowest – highest",
        "first run",
        "outlier runs",
        "runs",
    ]);
    t.numeric = vec![1, 2, 3, 5];
    if multi {
        t.header.insert(0, "runner".into());
        t.numeric = vec![2, 3, 4, 6];
    }
    for r in &data.runners {
        let order = plan::phase_order_of(r);
        let runs = plan::runs_by_phase(r, &order);
        let mut total = Vec::new();
        for (pi, phase) in order.iter().enumerate() {
            let v: Vec<f64> = runs.iter().filter_map(|(_, v)| v[pi]).collect();
            let Some(s) = PhaseStat::of(&v) else { continue };
            t.rows
                .push(phase_row(phase, &s, multi.then_some(&r.runner.id)));
        }
        for (_, v) in &runs {
            total.push(v.iter().flatten().sum::<f64>());
        }
        if let Some(s) = PhaseStat::of(&total) {
            t.rows.push(phase_row(
                "whole start (sum of phases)",
                &s,
                multi.then_some(&r.runner.id),
            ));
        }
    }
    Some(t)
}

/// One row of the phases table: the phase, its median, range, first run, outlier runs and
/// run count, after the runner's id when the table has several runners.
fn phase_row(phase: &str, s: &PhaseStat, runner: Option<&String>) -> Vec<String> {
    let outliers = if s.outliers.is_empty() {
        "-".into()
    } else {
        s.outliers
            .iter()
            .map(|o| human_ns(*o))
            .collect::<Vec<_>>()
            .join(", ")
    };
    runner
        .cloned()
        .into_iter()
        .chain([
            phase.to_string(),
            human_ns(s.median),
            format!("{} – {}", human_ns(s.min), human_ns(s.max)),
            s.first.map_or("-".into(), human_ns),
            outliers,
            s.runs.to_string(),
        ])
        .collect()
}

/// Samples per benchmark: `10 (every benchmark)` or `10–30`.
pub fn sample_counts(r: &RunnerData) -> String {
    let mut n: Vec<usize> = r.benchmarks.iter().map(|b| b.samples.len()).collect();
    n.sort_unstable();
    n.dedup();
    match n.as_slice() {
        [] => "no benchmarks".to_string(),
        [one] => format!("{one} per benchmark"),
        [lo, .., hi] => format!("{lo} to {hi} per benchmark"),
    }
}

/// Samples per benchmark as a number or a range: `10`, `5 to 100`.
fn sample_range(r: &RunnerData) -> String {
    let mut n: Vec<usize> = r.benchmarks.iter().map(|b| b.samples.len()).collect();
    n.sort_unstable();
    n.dedup();
    match n.as_slice() {
        [] => "no".to_string(),
        [one] => one.to_string(),
        [lo, .., hi] => format!("{lo} to {hi}"),
    }
}

/// How the run of `r` is named: `commit abc, 2026-12-05T11:00:00Z, runner x (kernel, os),
/// quick profile, 10 samples per benchmark`.
pub fn run_name(r: &RunnerData) -> String {
    let mut parts = Vec::new();
    if let Some(c) = r.tool.as_ref().and_then(|t| t.commit.as_deref()) {
        parts.push(format!("commit {c}"));
    }
    if let Some(d) = r.run.as_ref().and_then(|x| x.date.as_deref()) {
        parts.push(d.to_string());
    }
    let mut host = format!("runner {}", r.runner.id);
    let env: Vec<String> = [
        r.runner.kernel.as_ref().map(|k| format!("Linux {k}")),
        r.runner.os.clone(),
        r.runner.cores.map(|c| format!("{c} cores")),
        r.runner.cgroup.as_ref().map(|c| format!("cgroup {c}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !env.is_empty() {
        host.push_str(&format!(" ({})", env.join(", ")));
    }
    parts.push(host);
    if let Some(p) = r.run.as_ref().and_then(|x| x.profile.as_deref()) {
        parts.push(format!("{p} profile"));
    }
    if !r.benchmarks.is_empty() {
        parts.push(format!("{} samples per benchmark", sample_range(r)));
    }
    parts.join(", ")
}
