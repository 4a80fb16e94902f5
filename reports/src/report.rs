//! Building a report: read every input first, then compute, draw and write into a staging
//! directory, then move it into place.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::advice::{Advice, advise};
use crate::chart::{self, Chart, ChartFile};
use crate::criterion::read_criterion_dir;
use crate::error::ReportError;
use crate::merge::{Dataset, EnvRow, RunnerData, environment};
use crate::output::Staging;
use crate::ratios::{RatioRow, ratios};
use crate::record::{ResultRecord, Runner};
use crate::regress::{Comparison, Loss, Verdict, compare, losses, read_baseline};

/// What to read and where to write. See the crate documentation for the CLI mapping.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Criterion's output directory (`target/criterion`).
    pub criterion: Option<PathBuf>,
    /// The runner the criterion benchmarks were measured on. Defaults to a runner with id
    /// `local` and an unknown environment; records of the same id are merged with it.
    pub criterion_runner: Option<Runner>,
    /// strata result records (`strata-result/1` JSON), any number, from any runners.
    pub results: Vec<PathBuf>,
    /// A result record or a criterion directory to compare against.
    pub baseline: Option<PathBuf>,
    /// A benchmark is a regression when it is slower than the baseline by more than this many
    /// percent, beyond its confidence intervals.
    pub threshold_pct: f64,
    /// The report directory: index.html, REPORT.md and every chart as SVG and PNG.
    pub out: PathBuf,
    /// Also write the README's measured tables (a Markdown fragment naming the run) here.
    pub readme_fragment: Option<PathBuf>,
}

/// The default regression threshold, in percent.
pub const DEFAULT_THRESHOLD_PCT: f64 = 10.0;

impl ReportOptions {
    /// Options writing to `out`, with no input yet and the default threshold.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        ReportOptions {
            criterion: None,
            criterion_runner: None,
            results: Vec::new(),
            baseline: None,
            threshold_pct: DEFAULT_THRESHOLD_PCT,
            out: out.into(),
            readme_fragment: None,
        }
    }
}

/// The regression gate's result.
#[derive(Debug, Clone)]
pub struct Gate {
    pub baseline: PathBuf,
    pub threshold_pct: f64,
    /// Every benchmark compared, slower ones first.
    pub comparisons: Vec<Comparison>,
    /// Conformance cells lost, baseline benchmarks missing, parts of the run that failed.
    pub losses: Vec<Loss>,
}

/// What was written. `Display` prints a short text summary, listing regressions.
#[derive(Debug, Clone)]
pub struct ReportSummary {
    /// The report directory.
    pub out: PathBuf,
    pub index_html: PathBuf,
    pub markdown: PathBuf,
    pub charts: Vec<ChartFile>,
    pub runners: Vec<String>,
    pub benchmarks: usize,
    pub advice: Vec<Advice>,
    /// Present when a baseline was given.
    pub gate: Option<Gate>,
    /// Ratio rows where a series beat a floor of its mechanism (a bench bug).
    pub beaten_floors: usize,
    /// The README fragment written, when asked for.
    pub readme_fragment: Option<PathBuf>,
}

impl ReportSummary {
    /// Benchmarks slower than the baseline beyond the threshold and their CIs.
    pub fn regressions(&self) -> Vec<&Comparison> {
        self.gate
            .iter()
            .flat_map(|g| g.comparisons.iter())
            .filter(|c| c.verdict == Verdict::Slower)
            .collect()
    }

    /// Conformance cells lost, baseline benchmarks missing and failed parts of the run.
    pub fn losses(&self) -> &[Loss] {
        self.gate.as_ref().map_or(&[], |g| g.losses.as_slice())
    }

    /// True when the gate should fail the build: a benchmark slower, or any loss.
    pub fn has_regressions(&self) -> bool {
        !self.regressions().is_empty() || !self.losses().is_empty()
    }
}

impl fmt::Display for ReportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "report: {} ({} charts, {} runner(s): {}, {} benchmarks)",
            self.index_html.display(),
            self.charts.len(),
            self.runners.len(),
            self.runners.join(", "),
            self.benchmarks
        )?;
        for a in self.advice.iter().filter(|a| !a.answers.is_empty()) {
            writeln!(f, "which driver: {}", a.verdict)?;
        }
        if self.beaten_floors > 0 {
            writeln!(
                f,
                "warning: {} series beat a floor of their mechanism (a bug in the benchmark; flagged in the report)",
                self.beaten_floors
            )?;
        }
        if let Some(p) = &self.readme_fragment {
            writeln!(f, "README fragment: {}", p.display())?;
        }
        if let Some(g) = &self.gate {
            let slower = self.regressions();
            let inconclusive = g
                .comparisons
                .iter()
                .filter(|c| c.verdict == Verdict::Inconclusive)
                .count();
            writeln!(
                f,
                "regressions: {} of {} benchmarks slower than {} by more than {}% ({} inconclusive within noise)",
                slower.len(),
                g.comparisons.len(),
                g.baseline.display(),
                g.threshold_pct,
                inconclusive
            )?;
            for c in slower {
                writeln!(f, "  slower: {c}")?;
            }
            writeln!(
                f,
                "losses: {} (conformance cells newly failing or skipped, baseline benchmarks missing, failed parts of the run)",
                g.losses.len()
            )?;
            for l in &g.losses {
                writeln!(f, "  lost: {l}")?;
            }
        }
        Ok(())
    }
}

/// Everything the page and the Markdown are written from.
pub(crate) struct Report<'a> {
    pub data: &'a Dataset,
    pub charts: &'a [ChartFile],
    pub env: Vec<EnvRow>,
    pub ratios: Vec<RatioRow>,
    pub advice: Vec<Advice>,
    pub gate: Option<Gate>,
}

/// Reads the inputs into one data set (criterion benchmarks first, then each record).
pub fn load(opts: &ReportOptions) -> Result<Dataset, ReportError> {
    let mut data = Dataset::default();
    if let Some(dir) = &opts.criterion {
        let benchmarks = read_criterion_dir(dir)?;
        let runner = opts.criterion_runner.clone().unwrap_or_else(|| Runner {
            id: "local".to_string(),
            ..Runner::default()
        });
        let mut record = ResultRecord::new(runner);
        record.benchmarks = benchmarks;
        data.add_record(record, dir.clone())?;
    }
    for path in &opts.results {
        for record in crate::kernels::read_records(path)? {
            data.add_record(record, path.clone())?;
        }
    }
    Ok(data)
}

/// Builds the report described by `opts`; see the crate documentation.
pub fn build_report(opts: &ReportOptions) -> Result<ReportSummary, ReportError> {
    if opts.criterion.is_none() && opts.results.is_empty() {
        return Err(ReportError::input(
            &opts.out,
            "nothing to report: give a criterion directory or result records",
        ));
    }
    if !opts.threshold_pct.is_finite() || opts.threshold_pct < 0.0 {
        return Err(ReportError::input(
            opts.baseline.as_deref().unwrap_or(Path::new("--threshold")),
            format!("threshold {} is not a percentage >= 0", opts.threshold_pct),
        ));
    }
    // Every input is read and checked before anything is written.
    let data = load(opts)?;
    if data.is_empty() {
        let path = opts
            .results
            .first()
            .or(opts.criterion.as_ref())
            .unwrap_or(&opts.out);
        return Err(ReportError::input(
            path,
            "the inputs hold no benchmarks, conformance, phases or disk usage",
        ));
    }
    let gate = match &opts.baseline {
        None => None,
        Some(path) => {
            let baseline = read_baseline(path)?;
            Some(Gate {
                baseline: path.clone(),
                threshold_pct: opts.threshold_pct,
                comparisons: compare(&baseline.benchmarks, &data, opts.threshold_pct),
                losses: losses(&baseline, &data),
            })
        }
    };

    let staging = Staging::new(&opts.out)?;
    let planned = chart::plan::plan(&data);
    let mut charts = Vec::with_capacity(planned.len());
    for c in &planned {
        charts.push(chart::render(c, staging.path())?);
    }
    let chart_ids: Vec<String> = planned.iter().map(Chart::id).collect();
    let report = Report {
        data: &data,
        charts: &charts,
        env: environment(&data),
        ratios: ratios(&data),
        advice: advise(&data, &chart_ids),
        gate,
    };
    staging.write("REPORT.md", crate::markdown::render(&report).as_bytes())?;
    let fragment = opts.readme_fragment.as_ref().map(|path| {
        let source = opts
            .results
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ");
        (path, crate::markdown::readme_fragment(&report, &source))
    });
    let beaten_floors = report
        .ratios
        .iter()
        .filter(|x| x.has_beaten_floor())
        .count();
    // index.html last: a directory with an index.html has every chart it links to.
    staging.write("index.html", crate::html::render(&report).as_bytes())?;
    let Report { advice, gate, .. } = report;
    let out = staging.commit()?;
    if let Some((path, text)) = fragment {
        std::fs::write(path, text).map_err(|e| ReportError::write(path, &e))?;
    }
    Ok(ReportSummary {
        index_html: out.join("index.html"),
        markdown: out.join("REPORT.md"),
        out,
        charts,
        runners: data.runner_ids(),
        benchmarks: data
            .runners
            .iter()
            .map(|r: &RunnerData| r.benchmarks.len())
            .sum(),
        advice,
        gate,
        beaten_floors,
        readme_fragment: opts.readme_fragment.clone(),
    })
}
