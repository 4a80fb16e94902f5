//! "Which driver, for what, on this host": one answer per workload and runner, from the
//! measured figures (medians with their 95% confidence intervals) and the conformance matrix:
//!
//! - short-lived containers: a whole start and teardown (`container_start`, the `strata run`
//!   process beside crun and runc);
//! - long-running services writing much: the first write into a lower file across the sizes
//!   (`copy_up`) and the disk each container adds;
//! - image builds: commit across changed files and bytes (`commit`) and deep stacks
//!   (`union_prepare` at the most layers);
//! - many containers of one image: the disk each container adds and the first mount's share,
//!   and the prepare time per container.
//!
//! Each answer compares drivers (a driver's variants are one driver), names the figures it
//! rests on, the divergences from the OCI model the driver declares (its DECLARED cells and
//! their capabilities), and what this host lacks; a driver failing a conformance case or
//! unavailable on the runner's store is shown but never picked.

use std::collections::{BTreeMap, BTreeSet};

use crate::chart::plan;
use crate::merge::{Dataset, RunnerData, human_bytes, human_ns};
use crate::params;
use crate::ratios::times;
use crate::record::{Benchmark, Status};
use crate::series::{Kind, mechanism};

/// One workload's answer on one runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// `short-lived containers`, `long-running, write-heavy`, `image builds`,
    /// `many containers of one image`.
    pub workload: String,
    /// The driver picked, when the figures allow a pick.
    pub pick: Option<String>,
    /// The answer in one or two sentences.
    pub text: String,
    /// The figures it rests on, one line each (`overlay: 2.01 ms [1.95 – 2.10]`).
    pub figures: Vec<String>,
    /// The picked driver's declared divergences (capability and the cases showing it), or
    /// `none`.
    pub divergences: String,
    /// Ids of the charts that show the figures.
    pub charts: Vec<String>,
}

/// The answers for one runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub runner: String,
    pub answers: Vec<Answer>,
    /// Drivers this runner's store or kernel cannot run, or that fail conformance, each with
    /// the reason.
    pub lacks: Vec<String>,
    /// One line: the pick per workload.
    pub verdict: String,
}

/// The workloads, in the order the page answers them.
pub const WORKLOADS: [&str; 4] = [
    "short-lived containers (start + teardown)",
    "long-running services writing much (copy-up, disk)",
    "image builds (commit, layer count)",
    "many containers of one image (disk, sharing)",
];

/// Advice for every runner, in runner order.
pub fn advise(data: &Dataset, chart_ids: &[String]) -> Vec<Advice> {
    data.runners
        .iter()
        .map(|r| advise_runner(r, chart_ids))
        .collect()
}

/// Where runners' picks differ: one line per workload they disagree on.
pub fn disagreements(advice: &[Advice]) -> Vec<String> {
    if advice.len() < 2 {
        return Vec::new();
    }
    WORKLOADS
        .iter()
        .filter_map(|w| {
            let picks: Vec<(String, String)> = advice
                .iter()
                .filter_map(|a| {
                    let ans = a.answers.iter().find(|x| x.workload == *w)?;
                    Some((
                        a.runner.clone(),
                        ans.pick.clone().unwrap_or_else(|| "no pick".into()),
                    ))
                })
                .collect();
            let distinct: BTreeSet<&String> = picks.iter().map(|(_, p)| p).collect();
            (distinct.len() > 1).then(|| {
                format!(
                    "{w}: {}",
                    picks
                        .iter()
                        .map(|(r, p)| format!("{p} on {r}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
        })
        .collect()
}

/// A median with its interval: `2.01 ms [1.95 – 2.10]`.
pub fn with_ci(b: &Benchmark) -> String {
    let (lo, hi) = b.ci_or_median();
    if b.ci.is_some() {
        format!(
            "{} [{} – {}]",
            human_ns(b.median),
            human_ns(lo),
            human_ns(hi)
        )
    } else {
        human_ns(b.median)
    }
}

struct Ctx<'a> {
    r: &'a RunnerData,
    chart_ids: &'a [String],
}

impl Ctx<'_> {
    /// Why `driver` cannot be picked here, if it cannot.
    fn unusable(&self, driver: &str) -> Option<String> {
        if let Some(d) = self.r.drivers.iter().find(|d| d.name == driver)
            && !d.available
        {
            return Some(format!(
                "not available on this runner's store: {}",
                d.reason.as_deref().unwrap_or("no reason recorded")
            ));
        }
        let fails: Vec<&str> = self
            .r
            .conformance
            .iter()
            .filter(|c| c.driver == driver && c.status == Status::Fail)
            .map(|c| c.case.as_str())
            .collect();
        (!fails.is_empty()).then(|| format!("fails conformance: {}", fails.join(", ")))
    }

    fn chart(&self, id: String) -> Option<String> {
        self.chart_ids.contains(&id).then_some(id)
    }

    /// Subjects of `group` using `mech`, by driver: the driver's function (its default
    /// variant when it has several) -> benchmarks.
    fn subjects(&self, group: &str, mech: &[&str]) -> BTreeMap<String, Vec<&Benchmark>> {
        let mut out: BTreeMap<String, Vec<&Benchmark>> = BTreeMap::new();
        for b in self.r.benchmarks.iter().filter(|b| b.group == group) {
            let k = self.r.kind(b);
            if k.kind == Kind::Subject
                && (mech.is_empty() || k.mechanisms.iter().any(|m| mech.contains(&m.as_str())))
            {
                out.entry(k.driver).or_default().push(b);
            }
        }
        out
    }

    /// Declared divergences of `driver`: `capability (cases)`, `none`, or unknown.
    fn divergences(&self, driver: &str) -> String {
        let cells: Vec<_> = self
            .r
            .conformance
            .iter()
            .filter(|c| c.driver == driver)
            .collect();
        if cells.is_empty() {
            return "not checked on this runner (no conformance cells)".to_string();
        }
        let mut caps: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for c in cells.iter().filter(|c| c.status == Status::Declared) {
            caps.entry(capability(c.detail.as_deref().unwrap_or("")))
                .or_default()
                .push(&c.case);
        }
        let pass = cells.iter().filter(|c| c.status == Status::Pass).count();
        if caps.is_empty() {
            return format!("none ({pass} of {} cases pass)", cells.len());
        }
        let list: Vec<String> = caps
            .into_iter()
            .map(|(cap, cases)| format!("{cap} ({})", cases.join(", ")))
            .collect();
        format!(
            "{} ({pass} of {} cases pass, the rest declared)",
            list.join("; "),
            cells.len()
        )
    }
}

/// The capability a DECLARED cell's detail names: `declared: dir_rename=false (why): ...` ->
/// `dir_rename=false: why`.
pub fn capability(detail: &str) -> String {
    let first = detail.lines().next().unwrap_or("").trim();
    let rest = first.strip_prefix("declared:").unwrap_or(first).trim();
    let rest = rest.strip_suffix(':').unwrap_or(rest);
    if rest.is_empty() {
        "a declared divergence (no detail recorded)".to_string()
    } else {
        rest.to_string()
    }
}

fn advise_runner(r: &RunnerData, chart_ids: &[String]) -> Advice {
    let cx = Ctx { r, chart_ids };
    let answers: Vec<Answer> = [
        short_lived(&cx),
        write_heavy(&cx),
        image_builds(&cx),
        many_containers(&cx),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut lacks: Vec<String> = r
        .drivers
        .iter()
        .filter(|d| !d.available)
        .map(|d| {
            format!(
                "{}: {}",
                d.name,
                d.reason.as_deref().unwrap_or("not available")
            )
        })
        .collect();
    let conf_drivers: BTreeSet<&str> = r.conformance.iter().map(|c| c.driver.as_str()).collect();
    for d in conf_drivers {
        if let Some(why) = cx.unusable(d)
            && why.starts_with("fails")
        {
            lacks.push(format!("{d}: {why}"));
        }
        let skipped: Vec<&str> = r
            .conformance
            .iter()
            .filter(|c| c.driver == d && c.status == Status::Skip)
            .filter_map(|c| c.detail.as_deref())
            .collect();
        if let Some(first) = skipped.first() {
            lacks.push(format!(
                "{d}: {} case(s) skipped ({})",
                skipped.len(),
                first.lines().next().unwrap_or("")
            ));
        }
    }
    let verdict = if answers.is_empty() {
        format!(
            "{}: not enough measurements to answer (needs container_start, copy_up, commit, union_prepare or disk figures).",
            r.runner.id
        )
    } else {
        format!(
            "{}: {}.",
            r.runner.id,
            answers
                .iter()
                .map(|a| format!(
                    "{} -> {}",
                    a.workload.split(" (").next().unwrap_or(&a.workload),
                    a.pick.as_deref().unwrap_or("no pick")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    Advice {
        runner: r.runner.id.clone(),
        answers,
        lacks,
        verdict,
    }
}

/// Ranks `(driver, benchmark)` by median; the first usable one is the pick. Returns the pick
/// and how it compares with the next driver (`1.8× ahead of btrfs (...)`, or within noise).
fn rank<'a>(
    cx: &Ctx<'_>,
    mut at: Vec<(String, &'a Benchmark)>,
) -> (Vec<(String, &'a Benchmark)>, Option<String>, String) {
    at.sort_by(|a, b| a.1.median.total_cmp(&b.1.median));
    let usable: Vec<&(String, &Benchmark)> = at
        .iter()
        .filter(|(d, _)| cx.unusable(d).is_none())
        .collect();
    let Some((best, bb)) = usable.first().map(|(d, b)| (d.clone(), *b)) else {
        return (at, None, "no usable driver was measured".to_string());
    };
    // Against the next usable driver; a faster driver that cannot be picked is said beside.
    let mut margin = match usable.iter().find(|(d, _)| *d != best) {
        None => "the only usable driver measured".to_string(),
        Some((next, nb)) => {
            let (_, hi) = bb.ci_or_median();
            let (lo, _) = nb.ci_or_median();
            if hi >= lo {
                format!(
                    "within noise of {next}, {} (95% CIs overlap)",
                    human_ns(nb.median)
                )
            } else {
                format!(
                    "{} ahead of {next}, {}",
                    times(nb.median / bb.median.max(f64::MIN_POSITIVE)),
                    human_ns(nb.median)
                )
            }
        }
    };
    for (d, b) in at.iter().filter(|(_, b)| b.median < bb.median) {
        if let Some(why) = cx.unusable(d) {
            margin.push_str(&format!(
                "; {d} is faster ({}) but cannot be picked: {why}",
                human_ns(b.median)
            ));
        }
    }
    (at, Some(best), margin)
}

fn figure_line(d: &str, b: &Benchmark) -> String {
    let p = params::display_label(&b.params);
    if p.is_empty() {
        format!("{d} ({}): {}", b.driver, with_ci(b))
    } else {
        format!("{d} ({}, {p}): {}", b.driver, with_ci(b))
    }
}

fn short_lived(cx: &Ctx<'_>) -> Option<Answer> {
    let r = cx.r;
    let mut subjects = cx.subjects("container_start", &[mechanism::START_PROCESS]);
    let whole_process = !subjects.is_empty();
    if !whole_process {
        subjects = cx.subjects("container_start", &[mechanism::START_LIBRARY]);
    }
    if subjects.is_empty() {
        return None;
    }
    // The namespace set the peers run with, else the largest.
    let peer_param = r
        .benchmarks
        .iter()
        .find(|b| b.group == "container_start" && r.kind(b).kind == Kind::Peer)
        .map(|b| b.params.clone());
    let at: Vec<(String, &Benchmark)> = subjects
        .iter()
        .filter_map(|(d, bs)| {
            let b = bs
                .iter()
                .find(|b| Some(&b.params) == peer_param.as_ref())
                .or_else(|| bs.iter().max_by_key(|b| params::label(&b.params).len()))?;
            Some((d.clone(), *b))
        })
        .collect();
    let (ranked, pick, margin) = rank(cx, at);
    let mut figures: Vec<String> = ranked.iter().map(|(d, b)| figure_line(d, b)).collect();
    let peers: Vec<&Benchmark> = r
        .benchmarks
        .iter()
        .filter(|b| b.group == "container_start" && r.kind(b).kind != Kind::Subject)
        .collect();
    figures.extend(
        peers
            .iter()
            .map(|b| format!("{} ({}): {}", b.driver, r.kind(b).kind.as_str(), with_ci(b))),
    );
    let best = pick
        .as_ref()
        .and_then(|p| ranked.iter().find(|(d, _)| d == p));
    let mut text = match best {
        Some((d, b)) => format!(
            "{d}: a whole start and teardown of /bin/true takes {} ({margin})",
            with_ci(b)
        ),
        None => format!("no pick: {margin}"),
    };
    if let Some((_, b)) = best {
        let vs: Vec<String> = peers
            .iter()
            .filter(|p| r.kind(p).kind == Kind::Peer && whole_process)
            .map(|p| format!("{} {}", times(b.median / p.median), p.driver))
            .collect();
        if !vs.is_empty() {
            text.push_str(&format!(
                "; as a whole `strata run` process it is {}",
                vs.join(", ")
            ));
        } else if !whole_process {
            text.push_str("; measured as a library call only, so not compared with crun or runc");
        }
    }
    // The teardown, from the phases.
    let order = plan::phase_order_of(r);
    if let Some(ti) = order.iter().position(|p| p == "teardown") {
        let runs = plan::runs_by_phase(r, &order);
        let v: Vec<f64> = runs.iter().filter_map(|(_, v)| v[ti]).collect();
        if !v.is_empty() {
            let m = plan::median(v.clone());
            text.push_str(&format!(
                "; its teardown phase (overlay, {} runs) has a median of {}",
                v.len(),
                human_ns(m)
            ));
        }
    }
    text.push('.');
    Some(Answer {
        workload: WORKLOADS[0].to_string(),
        divergences: pick
            .as_deref()
            .map_or_else(|| "-".to_string(), |p| cx.divergences(p)),
        pick,
        text,
        figures,
        charts: [
            plan::bars_id("container_start"),
            plan::PHASES_ID.to_string(),
        ]
        .into_iter()
        .filter_map(|c| cx.chart(c))
        .collect(),
    })
}

/// The point of a sweep with the largest value of `param`, per driver.
fn at_largest<'a>(
    subjects: &BTreeMap<String, Vec<&'a Benchmark>>,
    param: &str,
    prefer: impl Fn(&str, &Benchmark) -> bool,
) -> Vec<(String, &'a Benchmark)> {
    subjects
        .iter()
        .filter_map(|(d, bs)| {
            let v = |b: &Benchmark| b.params.get(param).and_then(|v| v.as_f64());
            let max = bs.iter().filter_map(|b| v(b)).fold(f64::NAN, f64::max);
            let mut at: Vec<&&Benchmark> = bs.iter().filter(|b| v(b) == Some(max)).collect();
            // The driver's default series first, then the fastest variant.
            at.sort_by(|a, b| {
                prefer(d, b)
                    .cmp(&prefer(d, a))
                    .then(a.median.total_cmp(&b.median))
            });
            at.first().map(|b| (d.clone(), **b))
        })
        .collect()
}

/// `4 KiB: 32 µs … 32 MiB: 11 ms` for a driver's function across the sweep of `param`.
fn sweep_range(bs: &[&Benchmark], function: &str, param: &str) -> Option<String> {
    let mut pts: Vec<(f64, &Benchmark)> = bs
        .iter()
        .filter(|b| b.driver == function)
        .filter_map(|b| Some((b.params.get(param)?.as_f64()?, *b)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let fmt = |(v, b): &(f64, &Benchmark)| {
        let p = if param == "bytes" {
            crate::chart::axis::bytes_label(*v)
        } else {
            format!("{param}={v}")
        };
        format!("{p}: {}", with_ci(b))
    };
    match pts.as_slice() {
        [] => None,
        [one] => Some(fmt(one)),
        [first, .., last] => Some(format!("{} … {}", fmt(first), fmt(last))),
    }
}

fn disk_of<'a>(r: &'a RunnerData, driver: &str) -> Option<&'a crate::record::Disk> {
    // The 10-layer image (a typical one) where the record has it, else the last measured.
    let rows: Vec<&crate::record::Disk> = r.disk.iter().filter(|d| d.driver == driver).collect();
    rows.iter()
        .find(|d| d.image.as_deref() == Some("10 layers"))
        .or(rows.last())
        .copied()
}

fn write_heavy(cx: &Ctx<'_>) -> Option<Answer> {
    let r = cx.r;
    let all = cx.subjects("copy_up", &[]);
    if all.is_empty() {
        return None;
    }
    // Rank the drivers whose first write really copies or clones; the copy driver writes in
    // place because it paid at prepare, which is said beside.
    let copying = cx.subjects("copy_up", &[mechanism::FILE_COPY, mechanism::EXTENT_CLONE]);
    let at = at_largest(&copying, "bytes", |d, b| b.driver == d);
    let (ranked, pick, margin) = rank(cx, at);
    let mut figures = Vec::new();
    for (d, bs) in &all {
        let mut fns: Vec<&str> = bs.iter().map(|b| b.driver.as_str()).collect();
        fns.sort();
        fns.dedup();
        for f in fns {
            if let Some(range) = sweep_range(bs, f, "bytes") {
                figures.push(format!("{d} ({f}): {range}"));
            }
        }
        if let Some(disk) = disk_of(r, d)
            && let Some(a) = disk.allocated
        {
            figures.push(format!(
                "{d}: {} allocated per container (image: {})",
                human_bytes(a),
                disk.image.as_deref().unwrap_or("the measured")
            ));
        }
    }
    let largest = ranked
        .first()
        .and_then(|(_, b)| b.params.get("bytes"))
        .and_then(|v| v.as_f64())
        .map(crate::chart::axis::bytes_label)
        .unwrap_or_default();
    let mut text = match pick
        .as_ref()
        .and_then(|p| ranked.iter().find(|(d, _)| d == p))
    {
        Some((d, b)) => format!(
            "{d}: the first write into a {largest} lower file costs {} ({margin})",
            with_ci(b)
        ),
        None => format!("no pick: {margin}"),
    };
    if let Some(bs) = all.get("copy") {
        let prep = r
            .benchmarks
            .iter()
            .filter(|b| b.group == "union_prepare" && b.driver == "copy")
            .filter(|b| b.params.contains_key("bytes"))
            .max_by(|a, b| {
                let v = |x: &Benchmark| x.params.get("bytes").and_then(|v| v.as_f64());
                v(a).partial_cmp(&v(b)).unwrap_or(std::cmp::Ordering::Equal)
            });
        let w = bs.iter().map(|b| b.median).fold(0.0, f64::max);
        text.push_str(&format!(
            "; copy writes in place (at most {}) because it copied everything at prepare",
            human_ns(w)
        ));
        if let Some(p) = prep {
            text.push_str(&format!(
                " ({} for {})",
                human_ns(p.median),
                params::display_label(&p.params)
            ));
        }
        if let Some(a) = disk_of(r, "copy").and_then(|d| d.allocated) {
            text.push_str(&format!(" and {} of disk per container", human_bytes(a)));
        }
    }
    text.push('.');
    Some(Answer {
        workload: WORKLOADS[1].to_string(),
        divergences: pick
            .as_deref()
            .map_or_else(|| "-".to_string(), |p| cx.divergences(p)),
        pick,
        text,
        figures,
        charts: [
            plan::lines_id("copy_up", "bytes"),
            plan::bars_id("copy_up"),
            plan::DISK_ID.to_string(),
        ]
        .into_iter()
        .filter_map(|c| cx.chart(c))
        .collect(),
    })
}

fn image_builds(cx: &Ctx<'_>) -> Option<Answer> {
    let subjects = cx.subjects("commit", &[]);
    if subjects.is_empty() {
        return None;
    }
    let by_files = at_largest(&subjects, "files", |d, b| b.driver == d);
    let by_bytes = at_largest(&subjects, "bytes", |d, b| b.driver == d);
    let primary = if by_files.is_empty() {
        by_bytes.clone()
    } else {
        by_files.clone()
    };
    let (ranked, pick, margin) = rank(cx, primary);
    let mut figures = Vec::new();
    for (d, bs) in &subjects {
        for p in ["files", "bytes"] {
            if let Some(range) = sweep_range(bs, d, p) {
                figures.push(format!("{d} commit, {p}: {range}"));
            }
        }
    }
    // Deep stacks: prepare at the most layers measured.
    let prep = cx.subjects("union_prepare", &[]);
    let deep = at_largest(&prep, "layers", |d, b| {
        b.driver == d || b.driver == "overlay_lowerdir_plus"
    });
    for (d, b) in &deep {
        figures.push(format!(
            "{d} prepare at {} ({}): {}",
            params::display_label(&b.params),
            b.driver,
            with_ci(b)
        ));
    }
    let what = ranked
        .first()
        .map(|(_, b)| params::display_label(&b.params))
        .unwrap_or_default();
    let mut text = match pick
        .as_ref()
        .and_then(|p| ranked.iter().find(|(d, _)| d == p))
    {
        Some((d, b)) => format!(
            "{d}: a commit of {what} changed takes {} ({margin})",
            with_ci(b)
        ),
        None => format!("no pick: {margin}"),
    };
    if let Some(p) = &pick
        && let Some((_, b)) = by_bytes.iter().find(|(d, _)| d == p)
    {
        text.push_str(&format!(
            ", {} for {}",
            human_ns(b.median),
            params::display_label(&b.params)
        ));
    }
    if let Some(p) = &pick
        && let Some((_, b)) = deep.iter().find(|(d, _)| d == p)
    {
        text.push_str(&format!(
            "; a stack of {} prepares in {}",
            params::display_label(&b.params),
            human_ns(b.median)
        ));
    }
    text.push_str("; overlay and fuse-overlayfs stack at most 500 layers (the kernel's OVL_MAX_STACK), copy and btrfs have no limit but pay per layer at first mount.");
    Some(Answer {
        workload: WORKLOADS[2].to_string(),
        divergences: pick
            .as_deref()
            .map_or_else(|| "-".to_string(), |p| cx.divergences(p)),
        pick,
        text,
        figures,
        charts: [
            plan::lines_id("commit", "files"),
            plan::lines_id("commit", "bytes"),
            plan::lines_id("union_prepare", "layers"),
        ]
        .into_iter()
        .filter_map(|c| cx.chart(c))
        .collect(),
    })
}

fn many_containers(cx: &Ctx<'_>) -> Option<Answer> {
    let r = cx.r;
    let drivers: BTreeSet<&str> = r.disk.iter().map(|d| d.driver.as_str()).collect();
    if drivers.is_empty() {
        return None;
    }
    let mut rows: Vec<(String, u64, &crate::record::Disk)> = drivers
        .iter()
        .filter_map(|d| {
            let disk = disk_of(r, d)?;
            Some((d.to_string(), disk.allocated.or(disk.apparent)?, disk))
        })
        .collect();
    rows.sort_by_key(|(d, a, _)| (*a, d.clone()));
    // Prepare time per container, at the one-layer point of the layers sweep (or the least).
    let prep = cx.subjects("union_prepare", &[]);
    let first_layers = at_smallest(&prep, "layers");
    let mut figures = Vec::new();
    for (d, a, disk) in &rows {
        let mut line = format!(
            "{d}: {} allocated per container{}",
            human_bytes(*a),
            disk.image
                .as_deref()
                .map_or(String::new(), |i| format!(" (image: {i})"))
        );
        if let Some(f) = disk.first_mount {
            line.push_str(&format!(", {} once at the first mount", human_bytes(f)));
        }
        if let Some((_, b)) = first_layers.iter().find(|(x, _)| x == d) {
            line.push_str(&format!(
                "; prepare {} ({}, {})",
                with_ci(b),
                b.driver,
                params::display_label(&b.params)
            ));
        }
        figures.push(line);
    }
    let usable: Vec<&(String, u64, &crate::record::Disk)> = rows
        .iter()
        .filter(|(d, _, _)| cx.unusable(d).is_none())
        .collect();
    // The least disk; among drivers within 64 KiB of it, the fastest prepare.
    let least = usable.first().map(|(_, a, _)| *a);
    let pick = least.and_then(|least| {
        let near: Vec<&String> = usable
            .iter()
            .filter(|(_, a, _)| *a <= least + (64 << 10))
            .map(|(d, _, _)| d)
            .collect();
        near.iter()
            .min_by(|a, b| {
                let t = |d: &str| {
                    first_layers
                        .iter()
                        .find(|(x, _)| x == d)
                        .map_or(f64::INFINITY, |(_, b)| b.median)
                };
                t(a).total_cmp(&t(b))
            })
            .map(|d| d.to_string())
    });
    let text = match (&pick, rows.last()) {
        (Some(p), Some((worst, wa, _))) => {
            let (_, pa, pd) = rows.iter().find(|(d, _, _)| d == p)?;
            let mut t = format!("{p}: each container adds {} to the store", human_bytes(*pa));
            if let Some(f) = pd.first_mount {
                t.push_str(&format!(
                    " after {} made once for the image",
                    human_bytes(f)
                ));
            }
            if worst != p {
                t.push_str(&format!(", where {worst} adds {}", human_bytes(*wa)));
            }
            if let Some((_, b)) = first_layers.iter().find(|(x, _)| x == p) {
                t.push_str(&format!(
                    "; a container's rootfs prepares in {}",
                    human_ns(b.median)
                ));
            }
            t.push('.');
            t
        }
        _ => "no pick: no usable driver's disk use was measured.".to_string(),
    };
    Some(Answer {
        workload: WORKLOADS[3].to_string(),
        divergences: pick
            .as_deref()
            .map_or_else(|| "-".to_string(), |p| cx.divergences(p)),
        pick,
        text,
        figures,
        charts: [
            plan::DISK_ID.to_string(),
            plan::lines_id("union_prepare", "layers"),
        ]
        .into_iter()
        .filter_map(|c| cx.chart(c))
        .collect(),
    })
}

/// Per driver, its default series at the smallest value of `param`.
fn at_smallest<'a>(
    subjects: &BTreeMap<String, Vec<&'a Benchmark>>,
    param: &str,
) -> Vec<(String, &'a Benchmark)> {
    subjects
        .iter()
        .filter_map(|(d, bs)| {
            let v = |b: &Benchmark| b.params.get(param).and_then(|v| v.as_f64());
            let min = bs.iter().filter_map(|b| v(b)).fold(f64::NAN, f64::min);
            bs.iter()
                .filter(|b| v(b) == Some(min))
                .filter(|b| !b.driver.ends_with("_first_mount"))
                .min_by(|a, b| a.median.total_cmp(&b.median))
                .map(|b| (d.clone(), *b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_from_a_declared_detail() {
        assert_eq!(
            capability(
                "declared: dir_rename=false (rename of a lower directory fails with EXDEV):\n  action 0"
            ),
            "dir_rename=false (rename of a lower directory fails with EXDEV)"
        );
        assert_eq!(capability(""), "a declared divergence (no detail recorded)");
    }
}
