//! Renders the committed test fixture into a directory, to look at the charts:
//! `cargo run -p strata-reports --example fixture_report -- /tmp/strata-report`

use std::path::{Path, PathBuf};

use strata_reports::record::Runner;
use strata_reports::{ReportOptions, build_report};

fn main() {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("strata-report"));
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut opts = ReportOptions::new(out);
    opts.criterion = Some(fixtures.join("criterion"));
    opts.criterion_runner = Some(Runner {
        id: "runner-a".to_string(),
        ..Runner::default()
    });
    opts.results = vec![
        fixtures.join("runner-a.json"),
        fixtures.join("runner-b.json"),
    ];
    match build_report(&opts) {
        Ok(summary) => print!("{summary}"),
        Err(e) => {
            eprintln!("fixture_report: error: {e}");
            std::process::exit(2);
        }
    }
}
