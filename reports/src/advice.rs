//! "Which driver for this host": claims derived from the measurements of each runner (fastest
//! prepare, fastest copy-up, least disk, conformance), each pointing at the chart that shows it.

use std::collections::BTreeMap;

use crate::chart::plan;
use crate::merge::{Dataset, RunnerData, human_bytes, human_ns, is_floor, is_peer};
use crate::params;
use crate::ratios::times;
use crate::record::{Benchmark, Status};

/// One claim about one runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub runner: String,
    /// `fastest prepare`, `fastest copy-up`, `least disk`, `conformance`.
    pub topic: String,
    /// The driver the claim favours, when there is one.
    pub driver: Option<String>,
    /// The evidence, in one sentence.
    pub text: String,
    /// The id of the chart that shows it (file stem, HTML anchor `chart-<id>`).
    pub chart: String,
}

/// The claims and a one-line verdict per runner.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub runner: String,
    pub claims: Vec<Claim>,
    pub verdict: String,
}

/// Advice for every runner, in runner order.
pub fn advise(data: &Dataset, chart_ids: &[String]) -> Vec<Advice> {
    data.runners
        .iter()
        .map(|r| advise_runner(r, chart_ids))
        .collect()
}

fn advise_runner(r: &RunnerData, chart_ids: &[String]) -> Advice {
    let mut claims = Vec::new();
    for (group, topic) in [
        ("union_prepare", "fastest prepare"),
        ("copy_up", "fastest copy-up"),
    ] {
        if let Some(c) = fastest(r, group, topic, chart_ids) {
            claims.push(c);
        }
    }
    if let Some(c) = least_disk(r) {
        claims.push(c);
    }
    if let Some(c) = conformance(r) {
        claims.push(c);
    }
    let verdict = verdict(r, &claims);
    Advice {
        runner: r.runner.id.clone(),
        claims,
        verdict,
    }
}

/// The fastest non-floor driver of `group` at the largest parameter value at least two drivers
/// were measured at.
fn fastest(r: &RunnerData, group: &str, topic: &str, chart_ids: &[String]) -> Option<Claim> {
    let candidates: Vec<&Benchmark> = r
        .benchmarks
        .iter()
        .filter(|b| b.group == group && !is_floor(&b.driver) && !is_peer(&b.driver))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    // Sweep points (parameter sets) and the drivers measured at each.
    let mut points: BTreeMap<String, Vec<&Benchmark>> = BTreeMap::new();
    for b in &candidates {
        points.entry(params::label(&b.params)).or_default().push(b);
    }
    let sweep_of = |b: &Benchmark| params::sweep(&b.params);
    let (_, at) = points
        .iter()
        .filter(|(_, bs)| bs.len() >= 2)
        .max_by(|(_, a), (_, b)| {
            let x =
                |bs: &Vec<&Benchmark>| bs.first().and_then(|b| sweep_of(b)).map_or(0.0, |(_, v)| v);
            x(a).total_cmp(&x(b))
        })
        .or_else(|| points.iter().next())?;
    let mut at = at.clone();
    at.sort_by(|a, b| a.median.total_cmp(&b.median));
    let best = at[0];
    let chart = sweep_of(best)
        .map(|(p, _)| plan::lines_id(group, &p))
        .filter(|id| chart_ids.contains(id))
        .unwrap_or_else(|| plan::bars_id(group));
    let where_ = if best.params.is_empty() {
        String::new()
    } else {
        format!(" at {}", params::display_label(&best.params))
    };
    let text = match at.get(1) {
        None => format!(
            "{}{}: {} (the only driver measured)",
            best.driver,
            where_,
            human_ns(best.median)
        ),
        Some(second) => {
            let (_, best_hi) = best.ci_or_median();
            let (second_lo, _) = second.ci_or_median();
            let noise = if best_hi >= second_lo {
                "; within noise of it (95% CIs overlap)"
            } else {
                ""
            };
            format!(
                "{}{}: {}, {} faster than {} ({}){}",
                best.driver,
                where_,
                human_ns(best.median),
                times(second.median / best.median.max(f64::MIN_POSITIVE)),
                second.driver,
                human_ns(second.median),
                noise
            )
        }
    };
    Some(Claim {
        runner: r.runner.id.clone(),
        topic: topic.to_string(),
        driver: Some(best.driver.clone()),
        text,
        chart,
    })
}

fn least_disk(r: &RunnerData) -> Option<Claim> {
    let size = |d: &crate::record::Disk| d.allocated.or(d.apparent);
    let mut ds: Vec<(&str, u64)> = r
        .disk
        .iter()
        .filter_map(|d| size(d).map(|s| (d.driver.as_str(), s)))
        .collect();
    ds.sort_by_key(|(_, s)| *s);
    let (best, best_size) = *ds.first()?;
    let what = if r.disk.iter().any(|d| d.allocated.is_some()) {
        "allocated"
    } else {
        "apparent"
    };
    let text = match ds.last() {
        Some((worst, worst_size)) if ds.len() > 1 => format!(
            "{best}: {} {what}, against {} for {worst}",
            human_bytes(best_size),
            human_bytes(*worst_size)
        ),
        _ => format!(
            "{best}: {} {what} (the only driver measured)",
            human_bytes(best_size)
        ),
    };
    Some(Claim {
        runner: r.runner.id.clone(),
        topic: "least disk".to_string(),
        driver: Some(best.to_string()),
        text,
        chart: plan::DISK_ID.to_string(),
    })
}

fn conformance(r: &RunnerData) -> Option<Claim> {
    let mut per: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for c in &r.conformance {
        let e = per.entry(c.driver.as_str()).or_default();
        let i = match c.status {
            Status::Pass => 0,
            Status::Fail => 1,
            Status::Declared => 2,
            Status::Skip => 3,
        };
        e[i] += 1;
    }
    let best = per.iter().min_by(|a, b| {
        (a.1[1], std::cmp::Reverse(a.1[0])).cmp(&(b.1[1], std::cmp::Reverse(b.1[0])))
    })?;
    let parts: Vec<String> = per
        .iter()
        .map(|(d, [p, f, decl, s])| {
            let mut t = format!("{d} {p} pass, {f} fail");
            if *decl > 0 {
                t.push_str(&format!(", {decl} declared"));
            }
            if *s > 0 {
                t.push_str(&format!(", {s} skipped"));
            }
            t
        })
        .collect();
    Some(Claim {
        runner: r.runner.id.clone(),
        topic: "conformance".to_string(),
        driver: (best.1[1] == 0).then(|| best.0.to_string()),
        text: parts.join("; "),
        chart: plan::CONFORMANCE_ID.to_string(),
    })
}

/// The conformance driver a benchmark function belongs to (`overlay_mount2` -> `overlay`).
fn base_driver<'a>(bench_driver: &'a str, known: &[&'a str]) -> &'a str {
    known
        .iter()
        .filter(|k| bench_driver == **k || bench_driver.starts_with(&format!("{k}_")))
        .max_by_key(|k| k.len())
        .copied()
        .unwrap_or(bench_driver)
}

fn verdict(r: &RunnerData, claims: &[Claim]) -> String {
    let known: Vec<&str> = r
        .conformance
        .iter()
        .map(|c| c.driver.as_str())
        .chain(r.disk.iter().map(|d| d.driver.as_str()))
        .collect();
    let failing = |d: &str| {
        r.conformance
            .iter()
            .any(|c| c.driver == d && c.status == Status::Fail)
    };
    let mut wins: Vec<(String, Vec<&str>)> = Vec::new();
    for c in claims {
        let Some(d) = &c.driver else { continue };
        let base = base_driver(d, &known).to_string();
        match wins.iter_mut().find(|(b, _)| *b == base) {
            Some((_, topics)) => topics.push(&c.topic),
            None => wins.push((base, vec![&c.topic])),
        }
    }
    wins.retain(|(d, _)| !failing(d));
    wins.sort_by_key(|w| std::cmp::Reverse(w.1.len()));
    match wins.first() {
        None => format!(
            "{}: not enough measurements to recommend a driver.",
            r.runner.id
        ),
        Some((d, topics)) => {
            let mut v = format!("{}: {d} ({})", r.runner.id, topics.join(", "));
            let others: Vec<String> = wins[1..]
                .iter()
                .map(|(d, t)| format!("{d} for {}", t.join(", ")))
                .collect();
            if !others.is_empty() {
                v.push_str(&format!("; {}", others.join("; ")));
            }
            let failing_drivers: Vec<&str> = r
                .conformance
                .iter()
                .filter(|c| c.status == Status::Fail)
                .map(|c| c.driver.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !failing_drivers.is_empty() {
                v.push_str(&format!(
                    "; not recommended (conformance failures): {}",
                    failing_drivers.join(", ")
                ));
            }
            v.push('.');
            v
        }
    }
}
