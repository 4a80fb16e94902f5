//! `strata report`: charts, index.html and REPORT.md from criterion output and result
//! records; with `--baseline`, a regression gate: exit 1 when a benchmark got slower beyond
//! the threshold (confidence intervals considered), a conformance cell newly fails or is newly
//! skipped, a benchmark of the baseline is missing, or a part of the run (a benchmark group,
//! `strata check`) failed; each is named.

use std::process::ExitCode;

use serde::Serialize;
use strata_reports::{ReportOptions, build_report};

use super::Ctx;
use crate::cli::ReportArgs;
use crate::output::{CmdResult, emit};

/// What `--json` prints.
#[derive(Serialize)]
struct Written {
    index_html: String,
    markdown: String,
    charts: Vec<String>,
    runners: Vec<String>,
    benchmarks: usize,
    regressions: Vec<Slower>,
    /// Each loss, one line: conformance cells, missing benchmarks, failed parts of the run.
    losses: Vec<String>,
    /// The README fragment, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    readme_fragment: Option<String>,
    /// Ratio rows where a series beat a floor of its mechanism (a bug in the benchmark).
    beaten_floors: usize,
}

#[derive(Serialize)]
struct Slower {
    id: String,
    runner: String,
    change_pct: f64,
    lower_change_pct: f64,
}

pub fn run(ctx: &Ctx, a: ReportArgs) -> CmdResult<ExitCode> {
    let mut opts = ReportOptions::new(&a.out);
    opts.criterion = a.criterion;
    opts.results = a.results;
    opts.baseline = a.baseline;
    opts.readme_fragment = a.readme_fragment;
    if let Some(t) = a.threshold {
        opts.threshold_pct = t;
    }
    if opts.criterion.is_some() {
        opts.criterion_runner = Some(crate::runner::runner(&ctx.root));
    }
    let summary = build_report(&opts).map_err(|e| strata_runtime::Error::Usage(e.to_string()))?;
    let regressions = summary.regressions().len();
    let losses = summary.losses().len();
    let json = Written {
        index_html: summary.index_html.display().to_string(),
        markdown: summary.markdown.display().to_string(),
        charts: summary.charts.iter().map(|c| c.id.clone()).collect(),
        runners: summary.runners.clone(),
        benchmarks: summary.benchmarks,
        regressions: summary
            .regressions()
            .iter()
            .map(|c| Slower {
                id: c.id.clone(),
                runner: c.runner.clone(),
                change_pct: c.change_pct,
                lower_change_pct: c.lower_change_pct,
            })
            .collect(),
        losses: summary.losses().iter().map(|l| l.to_string()).collect(),
        readme_fragment: summary
            .readme_fragment
            .as_ref()
            .map(|p| p.display().to_string()),
        beaten_floors: summary.beaten_floors,
    };
    emit(ctx.json, &json, |_| summary.to_string())?;
    if regressions > 0 || losses > 0 {
        return Err(strata_runtime::Error::Usage(format!(
            "the gate failed: {regressions} benchmark(s) slower than the baseline by more than {}%, \
             {losses} loss(es) (conformance cells, missing benchmarks, failed parts of the run); listed above",
            opts.threshold_pct
        )));
    }
    Ok(ExitCode::SUCCESS)
}
