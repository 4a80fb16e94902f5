//! The terminal view of a check: the matrix (cases as rows, drivers as columns: `ok`,
//! `DECLARED`, `FAIL`, `skip`), then the declared divergences, the failures with their
//! differences, what was skipped and why, and one summary line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use strata_reports::record::Status;

use super::case::Case;
use super::run::Cell;

/// The width of the case column's title part.
const TITLE: usize = 52;

fn cell_text(s: Status) -> &'static str {
    match s {
        Status::Pass => "ok",
        Status::Declared => "DECLARED",
        Status::Fail => "FAIL",
        Status::Skip => "skip",
    }
}

fn short(t: &str, n: usize) -> String {
    if t.chars().count() <= n {
        t.to_string()
    } else {
        let mut s: String = t.chars().take(n - 1).collect();
        s.push('…');
        s
    }
}

fn indent(text: &str, by: &str) -> String {
    text.lines()
        .map(|l| format!("{by}{l}\n"))
        .collect::<String>()
}

/// The whole report.
pub fn render(cases: &[Case], drivers: &[String], cells: &[Cell]) -> String {
    let by: BTreeMap<(&str, &str), &Cell> = cells
        .iter()
        .map(|c| ((c.case.as_str(), c.driver.as_str()), c))
        .collect();
    let idw = cases.iter().map(|c| c.id.len()).max().unwrap_or(4).max(4);
    let colw: Vec<usize> = drivers.iter().map(|d| d.len().max(8)).collect();
    let mut s = String::new();
    let _ = write!(s, "{:<w$}  ", "case", w = idw + 2 + TITLE);
    for (d, w) in drivers.iter().zip(&colw) {
        let _ = write!(s, "{d:<w$}  ");
    }
    s = s.trim_end().to_string();
    s.push('\n');
    for c in cases {
        let _ = write!(s, "{:<idw$}  {:<TITLE$}  ", c.id, short(&c.title, TITLE));
        for (d, w) in drivers.iter().zip(&colw) {
            let t = by
                .get(&(c.id.as_str(), d.as_str()))
                .map_or("-", |x| cell_text(x.status));
            let _ = write!(s, "{t:<w$}  ");
        }
        s = s.trim_end().to_string();
        s.push('\n');
    }
    let section = |s: &mut String, title: &str, status: Status| {
        let list: Vec<&Cell> = cells.iter().filter(|c| c.status == status).collect();
        if list.is_empty() {
            return;
        }
        let _ = writeln!(s, "\n{title} ({}):", list.len());
        for c in list {
            let detail = c.detail.as_deref().unwrap_or("");
            let mut lines = detail.lines();
            let first = lines.next().unwrap_or("");
            let _ = writeln!(s, "  {} {}: {first}", c.driver, c.case);
            let rest: Vec<&str> = lines.collect();
            if !rest.is_empty() {
                s.push_str(&indent(&rest.join("\n"), "    "));
            }
            if let Some(k) = cases.iter().find(|k| k.id == c.case) {
                let _ = writeln!(s, "      case {} (from {})", k.file, k.source.join("; "));
            }
        }
    };
    section(&mut s, "Declared divergences", Status::Declared);
    section(&mut s, "Failures", Status::Fail);
    // Skips: grouped by driver and reason, not one line per cell.
    let mut skips: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for c in cells.iter().filter(|c| c.status == Status::Skip) {
        skips
            .entry((c.driver.as_str(), c.detail.as_deref().unwrap_or("")))
            .or_default()
            .push(c.case.as_str());
    }
    if !skips.is_empty() {
        s.push_str("\nSkipped:\n");
        for ((d, why), list) in &skips {
            let which = if list.len() == cases.len() && !cases.is_empty() {
                "every case".to_string()
            } else {
                list.join(", ")
            };
            let _ = writeln!(s, "  {d} ({which}): {why}");
        }
    }
    let _ = writeln!(s, "\n{}", summary(cases.len(), drivers.len(), cells));
    s
}

/// `73 cases x 3 drivers: 200 ok, 9 declared, 0 failed, 10 skipped`.
pub fn summary(cases: usize, drivers: usize, cells: &[Cell]) -> String {
    let n = |st: Status| cells.iter().filter(|c| c.status == st).count();
    format!(
        "{cases} cases x {drivers} drivers: {} ok, {} declared, {} failed, {} skipped",
        n(Status::Pass),
        n(Status::Declared),
        n(Status::Fail),
        n(Status::Skip)
    )
}
