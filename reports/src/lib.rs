//! Charts and HTML/Markdown reports built from criterion's output and strata result records.
//!
//! This is the library behind `strata report`; the command line lives in the harness.
//!
//! # Calling it
//!
//! ```no_run
//! use strata_reports::{ReportOptions, build_report};
//!
//! // strata report --criterion target/criterion --results a.json b.json \
//! //               --baseline base.json --threshold 10 --out report
//! let mut opts = ReportOptions::new("report");
//! opts.criterion = Some("target/criterion".into());
//! opts.results = vec!["a.json".into(), "b.json".into()];
//! opts.baseline = Some("base.json".into());
//! opts.threshold_pct = 10.0;
//! match build_report(&opts) {
//!     Ok(summary) => {
//!         print!("{summary}");
//!         if summary.has_regressions() {
//!             std::process::exit(1);
//!         }
//!     }
//!     Err(e) => {
//!         eprintln!("strata: error: {e}"); // one line: the path and the reason
//!         std::process::exit(2);
//!     }
//! }
//! ```
//!
//! # What it writes
//!
//! `OUT/index.html` (one self-contained page: inline CSS, no script, nothing fetched),
//! `OUT/REPORT.md`, and every chart as `OUT/<id>.svg` and `OUT/<id>.png`:
//!
//! - `lines-<group>-<param>`: time against a swept parameter (layers, files, bytes, host mounts),
//!   one line per driver and runner, 95% CI bands, log axes when the data spans a decade, floors
//!   dashed; layer charts mark the kernel's 500-layer wall and the one-page mount(2) option limit
//!   (at the runner's `overlay_params.mount_page_layers`, else ~140 layers).
//! - `bars-rootfs_switch`, `bars-container_start` (and `bars-<group>` for any group without a
//!   sweep): start latency per root switch and per runtime, one bar per runner, CI whiskers.
//! - `phases`: the phases of a container start, stacked.
//! - `conformance`: the driver x case matrix (pass, fail, declared divergence, skip).
//! - `disk`: allocated, apparent and shared bytes per driver.
//!
//! The page also has an environment block per runner (with the properties that differ between
//! runners highlighted), ratios against floors and peers, a "which driver for this host"
//! summary whose claims link to their charts, and, with a baseline, the regression table.
//!
//! # Inputs
//!
//! - A criterion directory: `<group>/<function>/<param>/new/{benchmark,estimates,sample}.json`,
//!   read by [`read_criterion_dir`] (also usable on its own, to put criterion benchmarks into a
//!   result record). A param `layers=16` or a bare `16` both work; see [`params`].
//! - Result records ([`record::ResultRecord`], schema `strata-result/1`), any number, from any
//!   runners: records with the same `runner.id` merge into one runner; each runner is a series.
//!
//! # Failure
//!
//! Every input is read and validated before anything is drawn. Errors are one line naming the
//! file and the reason (missing or empty criterion directory, another schema, truncated JSON,
//! ...). The report is written into a hidden staging directory beside `out` and renamed into
//! place at the end, so a failed run leaves `out` untouched; an existing `out` is only replaced
//! when it is empty or an earlier report.
//!
//! # The regression gate
//!
//! With a baseline, each benchmark is compared with the baseline benchmark of the same id; it
//! counts as slower only when `current.ci.lo / baseline.ci.hi - 1` exceeds the threshold, so
//! noise within the confidence intervals never fails ([`regress`]). The caller decides the exit
//! code from [`ReportSummary::has_regressions`].
//!
//! # Fonts
//!
//! Text is rendered with DejaVu Sans embedded in the crate (plotters with `ab_glyph`, default
//! features off): no fontconfig, freetype or system font package is needed.

pub mod advice;
mod chart;
pub mod criterion;
mod error;
mod font;
mod html;
pub mod kernels;
mod markdown;
pub mod merge;
mod output;
pub mod params;
pub mod ratios;
pub mod record;
pub mod regress;
mod report;

pub use chart::ChartFile;
pub use criterion::read_criterion_dir;
pub use error::ReportError;
pub use report::{DEFAULT_THRESHOLD_PCT, Gate, ReportOptions, ReportSummary, build_report, load};

/// Writes the short text summary (what `Display` of [`ReportSummary`] prints) to `w`.
pub fn write_text_summary(
    summary: &ReportSummary,
    w: &mut impl std::io::Write,
) -> std::io::Result<()> {
    write!(w, "{summary}")
}
