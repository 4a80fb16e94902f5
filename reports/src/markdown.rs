//! REPORT.md: the same content as index.html for reading in a repository or a CI summary.

use std::fmt::Write;

use crate::merge::human_ns;
use crate::ratios::times;
use crate::regress::Verdict;
use crate::report::Report;

/// Escapes the characters that would break a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
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

    m.push_str("## Which driver for this host\n\n");
    for a in r.advice.iter().filter(|a| !a.claims.is_empty()) {
        let _ = writeln!(m, "### {}\n\n**{}**\n", a.runner, a.verdict);
        for c in &a.claims {
            let link = r
                .charts
                .iter()
                .find(|x| x.id == c.chart)
                .map(|x| format!(" ([chart]({}))", x.svg.display()))
                .unwrap_or_default();
            let _ = writeln!(m, "- **{}**: {}{}", c.topic, c.text, link);
        }
        m.push('\n');
    }

    m.push_str("## Environments\n\n");
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
    m.push('\n');

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

    if !r.ratios.is_empty() {
        m.push_str("## Ratios against the floors and peers\n\n| runner | group | driver | params | median | ratios |\n|---|---|---|---|---:|---|\n");
        for row in &r.ratios {
            let rs: Vec<String> = row
                .ratios
                .iter()
                .map(|(d, x)| format!("{} vs {d}", times(*x)))
                .collect();
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&row.runner),
                cell(&row.group),
                cell(&row.driver),
                cell(&row.params),
                human_ns(row.median_ns),
                cell(&rs.join(", "))
            );
        }
        m.push('\n');
    }

    m.push_str(&crate::kernels::markdown(r.data));
    m.push_str(
        "## Benchmarks\n\n| runner | id | median | 95% CI | samples |\n|---|---|---:|---:|---:|\n",
    );
    for (run, b) in r.data.benchmarks() {
        let (lo, hi) = b.ci_or_median();
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} – {} | {} |",
            cell(&run.runner.id),
            cell(&b.id),
            human_ns(b.median),
            human_ns(lo),
            human_ns(hi),
            b.samples.len()
        );
    }
    if !r.data.notes.is_empty() {
        m.push_str("\n## Notes\n\n");
        for n in &r.data.notes {
            let _ = writeln!(m, "- {n}");
        }
    }
    m
}
