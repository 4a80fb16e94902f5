//! REPORT.md: the whole report in text (the page's charts are linked, every figure is also a
//! table), and the README fragment: the measured tables of one run, named.

use std::fmt::Write;

use crate::advice::disagreements;
use crate::merge::human_ns;
use crate::regress::Verdict;
use crate::report::Report;
use crate::tables;

/// Escapes the characters that would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// The "which driver" answers as Markdown (`###` per runner when there are several).
pub(crate) fn which_driver(r: &Report<'_>, m: &mut String, links: bool) {
    let multi = r.advice.len() > 1;
    for a in &r.advice {
        if multi {
            let _ = writeln!(m, "### {}\n", a.runner);
        }
        if a.answers.is_empty() {
            let _ = writeln!(m, "{}\n", a.verdict);
        }
        for ans in &a.answers {
            let _ = writeln!(m, "- **{}**: {}", ans.workload, ans.text);
            let _ = writeln!(m, "  - divergences accepted with it: {}", ans.divergences);
            let _ = writeln!(m, "  - figures: {}", ans.figures.join("; "));
            if links && !ans.charts.is_empty() {
                let list: Vec<String> = ans
                    .charts
                    .iter()
                    .filter_map(|id| r.charts.iter().find(|c| c.id == *id))
                    .map(|c| format!("[{}]({})", c.id, c.svg.display()))
                    .collect();
                let _ = writeln!(m, "  - charts: {}", list.join(", "));
            }
        }
        if !a.lacks.is_empty() {
            let _ = writeln!(m, "- **What this host lacks**: {}", a.lacks.join("; "));
        } else if !a.answers.is_empty() {
            m.push_str(
                "- **What this host lacks**: nothing: every driver the harness knows ran.\n",
            );
        }
        m.push('\n');
    }
    let dis = disagreements(&r.advice);
    if !dis.is_empty() {
        m.push_str("**Where the runners disagree**:\n\n");
        for d in dis {
            let _ = writeln!(m, "- {d}");
        }
        m.push('\n');
    }
}

pub(crate) fn render(r: &Report<'_>) -> String {
    let mut m = String::new();
    let n_bench: usize = r.data.runners.iter().map(|x| x.benchmarks.len()).sum();
    let _ = writeln!(
        m,
        "# strata report\n\n{} runner(s): {} · {} benchmarks · {} charts ([index.html](index.html))\n",
        r.data.runners.len(),
        r.data.runner_ids().join(", "),
        n_bench,
        r.charts.len()
    );
    for x in &r.data.runners {
        let _ = writeln!(m, "- The run: {}", tables::run_name(x));
    }
    m.push('\n');

    if let Some(g) = &r.gate {
        let slower: Vec<_> = g
            .comparisons
            .iter()
            .filter(|c| c.verdict == Verdict::Slower)
            .collect();
        let _ = writeln!(
            m,
            "## Regressions against the baseline\n\n**{} of {} benchmarks** compared with `{}` are slower beyond {}% \
             (the 95% confidence intervals must be separated by more than the threshold).\n",
            slower.len(),
            g.comparisons.len(),
            g.baseline.display(),
            g.threshold_pct
        );
        if !g.losses.is_empty() {
            let _ = writeln!(
                m,
                "**{} lost** (each fails the gate: conformance cells newly failing or skipped, baseline benchmarks missing, failed parts of the run):\n",
                g.losses.len()
            );
            for l in &g.losses {
                let _ = writeln!(m, "- {}", cell(&l.to_string()));
            }
            m.push('\n');
        }
        if !g.comparisons.is_empty() {
            m.push_str("| benchmark | runner | baseline | current | median change | change the CIs guarantee | verdict |\n|---|---|---:|---:|---:|---:|---|\n");
            for c in &g.comparisons {
                let _ = writeln!(
                    m,
                    "| {} | {} | {} | {} | {:+.1}% | {:+.1}% | {} |",
                    cell(&c.id),
                    cell(&c.runner),
                    human_ns(c.baseline_median),
                    human_ns(c.current_median),
                    c.change_pct,
                    c.lower_change_pct,
                    if c.verdict == Verdict::Slower {
                        "**slower**"
                    } else {
                        c.verdict.as_str()
                    }
                );
            }
            m.push('\n');
        }
    }

    m.push_str("## Which driver, for what, on this host\n\n");
    which_driver(r, &mut m, true);

    m.push_str("## The runners\n\nWhere each benchmark ran is its own storage (every benchmark makes a tmpfs of its own, and loop-mounted btrfs or xfs images on it where a series needs them); the store filesystem is that of the `--root` store `strata check`, the disk figures and the phases used.\n\n");
    let differs: Vec<&str> = r
        .env
        .iter()
        .filter(|e| e.differs)
        .map(|e| e.field.as_str())
        .collect();
    if r.data.runners.len() > 1 {
        if differs.is_empty() {
            m.push_str("The runners report the same environment.\n\n");
        } else {
            let _ = writeln!(m, "The runners differ in: **{}**.\n", differs.join(", "));
        }
    }
    let ids = r.data.runner_ids();
    let _ = writeln!(
        m,
        "| | {} |\n|---|{}",
        ids.iter().map(|i| cell(i)).collect::<Vec<_>>().join(" | "),
        "---|".repeat(ids.len())
    );
    for row in &r.env {
        let name = if row.differs {
            format!("**{}** (differs)", row.field)
        } else {
            row.field.clone()
        };
        let _ = writeln!(
            m,
            "| {} | {} |",
            cell(&name),
            row.values
                .iter()
                .map(|v| cell(v))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    let _ = writeln!(
        m,
        "| samples | {} |",
        r.data
            .runners
            .iter()
            .map(tables::sample_counts)
            .collect::<Vec<_>>()
            .join(" | ")
    );
    m.push('\n');

    if let Some(t) = tables::matrix(r.data) {
        m.push_str("## Conformance matrix\n\n");
        if let Some(s) = tables::matrix_summary(r.data) {
            let _ = writeln!(m, "{s}.\n");
        }
        m.push_str(&t.markdown());
        m.push('\n');
        let d = tables::divergences(r.data);
        if !d.rows.is_empty() {
            m.push_str("### Declared divergences, failures and skips\n\nEach DECLARED cell is explained by one capability the driver declares (`strata drivers`).\n\n");
            m.push_str(&d.markdown());
            m.push('\n');
        }
    }

    if !r.ratios.is_empty() {
        m.push_str("## Ratios to the floors and peers of each series' own mechanism\n\nMedian divided by the reference's median, same runner, same parameters. A floor is what nothing doing that work can beat; a ratio below 1.00× against a floor beyond both confidence intervals is flagged as a bug in the benchmark.\n\n");
        let beaten: Vec<_> = r.ratios.iter().filter(|x| x.has_beaten_floor()).collect();
        if !beaten.is_empty() {
            let _ = writeln!(
                m,
                "**{} series beat a floor** (the floor or the benchmark is wrong): {}.\n",
                beaten.len(),
                beaten
                    .iter()
                    .map(|x| format!("{}/{} {}", x.group, x.driver, x.params))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        m.push_str(
            "| runner | group | series | params | median | ratios |\n|---|---|---|---|---:|---|\n",
        );
        for row in &r.ratios {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&row.runner),
                cell(&row.group),
                cell(&row.driver),
                cell(&row.params),
                human_ns(row.median_ns),
                cell(&row.text())
            );
        }
        m.push('\n');
    }

    let multi = r.data.runners.len() > 1;
    for x in &r.data.runners {
        let sweeps = tables::sweeps(x, false);
        if sweeps.is_empty() {
            continue;
        }
        let _ = writeln!(
            m,
            "## Benchmarks{}\n\nMedian [95% confidence interval] per point; parameters in numeric order.\n",
            if multi {
                format!(" on {}", x.runner.id)
            } else {
                String::new()
            }
        );
        for (title, t) in sweeps {
            let _ = writeln!(m, "### {title}\n\n{}", t.markdown());
        }
    }

    if let Some(t) = tables::phases(r.data) {
        m.push_str("## Phases of a container start\n\nPer phase, over the recorded runs: the median, the lowest and highest run, the first run and the outliers (beyond 1.5 interquartile ranges and 25% from the median).\n\n");
        m.push_str(&t.markdown());
        m.push('\n');
    }
    if let Some(t) = tables::disk(r.data) {
        m.push_str("## Disk\n\nWhat a mount of an image adds to the store (allocated blocks, synced), what its first mount made that later mounts share, the view's file sizes, and what is shared with the layers.\n\n");
        m.push_str(&t.markdown());
        m.push('\n');
    }

    m.push_str("## Charts\n\n");
    for c in r.charts {
        let _ = writeln!(
            m,
            "### {}\n\n[![{}]({})]({})\n\n{} Series: {}.\n",
            c.title,
            c.title,
            c.png.display(),
            c.svg.display(),
            c.caption,
            c.series.join(", ")
        );
    }

    m.push_str(&crate::kernels::markdown(r.data));
    let all = tables::every_benchmark(r.data);
    if !all.rows.is_empty() {
        m.push_str("## Every benchmark\n\n");
        m.push_str(&all.markdown());
    }
    if !r.data.notes.is_empty() {
        m.push_str("\n## Notes\n\n");
        for n in &r.data.notes {
            let _ = writeln!(m, "- {n}");
        }
    }
    m
}

/// The README's measured tables from one run, as a Markdown fragment (no top heading): the
/// run named, the answers, each sweep (medians), the disk and the conformance totals.
pub(crate) fn readme_fragment(r: &Report<'_>, source: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "<!-- written by `strata report --results {source} --readme-fragment FILE`; do not edit by hand -->\n"
    );
    for x in &r.data.runners {
        let _ = writeln!(
            m,
            "These figures are from one recorded run: {}. Medians (the report holds the 95% confidence intervals, the charts and the ratios); every benchmark on a tmpfs of its own, with loop-mounted btrfs or xfs where a series says so.\n",
            tables::run_name(x)
        );
    }
    if let Some(s) = tables::matrix_summary(r.data) {
        let _ = writeln!(m, "**Conformance**: {s}.\n");
    }
    m.push_str("**Which driver, for what** (from these figures and the conformance matrix):\n\n");
    which_driver(r, &mut m, false);
    for x in &r.data.runners {
        for (title, t) in tables::sweeps(x, true) {
            let _ = writeln!(m, "**{title}**\n\n{}", t.markdown());
        }
    }
    if let Some(t) = tables::disk(r.data) {
        let _ = writeln!(m, "**Disk**\n\n{}", t.markdown());
    }
    if let Some(t) = tables::phases(r.data) {
        let _ = writeln!(m, "**Phases of a container start**\n\n{}", t.markdown());
    }
    m
}
