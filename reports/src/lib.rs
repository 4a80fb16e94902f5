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
//!   one line per series and runner, 95% CI bands, log axes (1-2-5 or 1-3 labels per decade)
//!   when the data spans a decade, floors dashed; layer charts mark the kernel's 500-layer wall
//!   and, where a runner measured it, the one-page mount(2) option limit (the runner's
//!   `overlay_params.mount_page_layers`, computed from the store's real layer paths; "not
//!   measured" otherwise).
//! - `bars-rootfs_switch`, `bars-container_start` (and `bars-<group>` for any group without a
//!   sweep): median per series and point, one bar per runner, CI whiskers, log axis.
//! - `phases`: per phase of a container start the median over the runs, the spread (lowest to
//!   highest), the first run and outliers marked.
//! - `conformance`: the driver x case matrix (pass, fail, declared divergence, skip).
//! - `disk`: bytes a mount allocates and what the first mount makes, per driver and image, log axis.
//!
//! Every driver, peer and the floors have one fixed colour in every chart
//! ([`driver_color_hex`]); a driver's variants are shades of it.
//!
//! What a series is (a subject, a floor of its mechanism, a peer) comes from the record's
//! `series` table, or the built-in one for older records ([`series`]): ratios compare a series
//! only with the floors and peers of its own mechanism, and a floor a series beats is flagged.
//!
//! The page and REPORT.md (the whole report in text: the "which driver" answers per workload,
//! the runners, the matrix and the declared divergences, every ratio, each sweep, the phases
//! and the disk as tables) are written from the same data; `ReportOptions::readme_fragment`
//! also writes the README's measured tables from one record, naming the run.

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
pub mod series;
pub mod tables;

pub use chart::ChartFile;
pub use criterion::read_criterion_dir;
pub use error::ReportError;
pub use report::{DEFAULT_THRESHOLD_PCT, Gate, ReportOptions, ReportSummary, build_report, load};

/// The colour a driver (or peer, root switch, `floor`) has in every chart, as `#RRGGBB`.
pub fn driver_color_hex(driver: &str) -> String {
    chart::style::hex(chart::style::driver_color(driver))
}

/// Writes the short text summary (what `Display` of [`ReportSummary`] prints) to `w`.
pub fn write_text_summary(
    summary: &ReportSummary,
    w: &mut impl std::io::Write,
) -> std::io::Result<()> {
    write!(w, "{summary}")
}
