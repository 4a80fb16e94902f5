//! The kernel matrix: the conformance cells of runs under several kernels side by side, one
//! column per kernel, the cells whose status differs between kernels marked. Runs made by
//! `strata check --kernel` carry `runner.kernel_source` and `runner.virtualization`; an
//! emulated run (a microVM under QEMU's TCG) is labelled so, and its timings are kept out of
//! the ratios and the regression gate ([`emulated`]).
//!
//! Also reads the files `strata check --kernel` writes: one record, or an array of records.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use crate::error::ReportError;
use crate::merge::{Dataset, RunnerData};
use crate::record::{ResultRecord, Runner, Status};

/// True for a run under emulation: its times are the emulator's, not the kernel's.
pub fn emulated(r: &Runner) -> bool {
    r.virtualization.as_deref() == Some("emulated")
}

/// The records in `path`: a `strata-result/1` object, or a JSON array of them (what
/// `strata check --kernel A --kernel B --json FILE` writes). Errors name the file and, for
/// an array, the element.
pub fn read_records(path: &Path) -> Result<Vec<ResultRecord>, ReportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ReportError::io(path, "cannot read result record", &e))?;
    if !text.trim_start().starts_with('[') {
        return ResultRecord::from_json_str(&text)
            .map(|r| vec![r])
            .map_err(|reason| ReportError::input(path, reason));
    }
    let items: Vec<serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| ReportError::input(path, crate::error::json_reason(&e)))?;
    if items.is_empty() {
        return Err(ReportError::input(path, "an empty array: no records"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            ResultRecord::from_json_str(&v.to_string())
                .map_err(|reason| ReportError::input(path, format!("record [{i}]: {reason}")))
        })
        .collect()
}

/// The runners that form the kernel matrix: those with conformance cells, when one of them
/// names its kernel source or their kernels differ. Empty: no kernel matrix.
fn columns(data: &Dataset) -> Vec<&RunnerData> {
    let with: Vec<&RunnerData> = data
        .runners
        .iter()
        .filter(|r| !r.conformance.is_empty() || r.runner.kernel_source.is_some())
        .collect();
    let kernels: BTreeSet<Option<&str>> = with.iter().map(|r| r.runner.kernel.as_deref()).collect();
    let named = with.iter().any(|r| r.runner.kernel_source.is_some());
    if with.len() < 2 || !(named || kernels.len() > 1) {
        return Vec::new();
    }
    with
}

/// `6.1.0-57-cloud-amd64 (emulated)`.
fn label(r: &Runner) -> String {
    let k = r.kernel.as_deref().unwrap_or("kernel ?");
    match r.virtualization.as_deref() {
        Some(v) if v != "none" => format!("{k} ({v})"),
        _ => k.to_string(),
    }
}

/// (case, driver) -> status per column.
type Cells = BTreeMap<(String, String), Vec<Option<Status>>>;

fn cells(cols: &[&RunnerData]) -> Cells {
    let mut cells: Cells = BTreeMap::new();
    for (i, r) in cols.iter().enumerate() {
        for c in &r.conformance {
            cells
                .entry((c.case.clone(), c.driver.clone()))
                .or_insert_with(|| vec![None; cols.len()])[i] = Some(c.status);
        }
    }
    cells
}

fn differs(v: &[Option<Status>]) -> bool {
    v.iter().any(|s| *s != v[0])
}

fn cell_text(s: Option<Status>) -> &'static str {
    match s {
        None => "absent",
        Some(Status::Pass) => "ok",
        Some(Status::Declared) => "DECLARED",
        Some(Status::Fail) => "FAIL",
        Some(Status::Skip) => "skip",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML section (`<section id="kernels">`), or nothing when the data has no kernel
/// matrix.
pub fn html(data: &Dataset) -> String {
    let cols = columns(data);
    if cols.is_empty() {
        return String::new();
    }
    let cells = cells(&cols);
    let n_diff = cells.values().filter(|v| differs(v)).count();
    let mut h = String::new();
    h.push_str("<section id=\"kernels\"><h2>Kernels</h2>\n");
    let _ = writeln!(
        h,
        "<p>The conformance matrix under {} kernels, one column each. {} of {} cells differ \
         between kernels (marked ≠, rows highlighted).</p>",
        cols.len(),
        n_diff,
        cells.len()
    );
    h.push_str("<table><tr><th>kernel</th><th>runner</th><th>how it ran</th><th>from</th><th>cells</th></tr>\n");
    for r in &cols {
        let n = |s: Status| r.conformance.iter().filter(|c| c.status == s).count();
        let how = match r.runner.virtualization.as_deref() {
            Some("emulated") => {
                "microVM, emulated (QEMU TCG): timings are not the kernel's and stay out of ratios and the gate"
            }
            Some("kvm") => "microVM with KVM",
            Some("none") => "the runner's own kernel",
            Some(_) | None => "?",
        };
        let failed: Vec<String> = r
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.what, f.reason))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ok, {} declared, {} failed, {} skipped{}</td></tr>",
            escape(r.runner.kernel.as_deref().unwrap_or("?")),
            escape(&r.runner.id),
            how,
            escape(r.runner.kernel_source.as_deref().unwrap_or("?")),
            n(Status::Pass),
            n(Status::Declared),
            n(Status::Fail),
            n(Status::Skip),
            if failed.is_empty() {
                String::new()
            } else {
                format!(
                    "; <span class=\"fail\">{}</span>",
                    escape(&failed.join("; "))
                )
            }
        );
    }
    h.push_str("</table>\n<table><tr><th>case</th><th>driver</th>");
    for r in &cols {
        let _ = write!(h, "<th>{}</th>", escape(&label(&r.runner)));
    }
    h.push_str("<th></th></tr>\n");
    for ((case, driver), v) in &cells {
        let d = differs(v);
        let _ = write!(
            h,
            "<tr{}><td>{}</td><td>{}</td>",
            if d { " class=\"differs\"" } else { "" },
            escape(case),
            escape(driver)
        );
        for s in v {
            let class = s.map_or("skip", |s| s.as_str());
            let _ = write!(h, "<td class=\"{class}\">{}</td>", cell_text(*s));
        }
        let _ = writeln!(h, "<td>{}</td></tr>", if d { "≠" } else { "" });
    }
    h.push_str("</table></section>\n");
    h
}

/// The Markdown section, or nothing when the data has no kernel matrix.
pub fn markdown(data: &Dataset) -> String {
    let cols = columns(data);
    if cols.is_empty() {
        return String::new();
    }
    let cells = cells(&cols);
    let n_diff = cells.values().filter(|v| differs(v)).count();
    let mut m = String::new();
    let _ = writeln!(m, "## Kernels\n");
    let _ = writeln!(
        m,
        "The conformance matrix under {} kernels, one column each; {} of {} cells differ between kernels (marked ≠).\n",
        cols.len(),
        n_diff,
        cells.len()
    );
    for r in &cols {
        let _ = writeln!(
            m,
            "- **{}**: runner `{}`, {}, from {}{}",
            label(&r.runner),
            r.runner.id,
            match r.runner.virtualization.as_deref() {
                Some("emulated") => "emulated microVM (timings kept out of ratios and the gate)",
                Some("kvm") => "microVM with KVM",
                _ => "the runner's own kernel",
            },
            r.runner.kernel_source.as_deref().unwrap_or("?"),
            if r.failed.is_empty() {
                String::new()
            } else {
                format!(
                    "; FAILED: {}",
                    r.failed
                        .iter()
                        .map(|f| format!("{}: {}", f.what, f.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        );
    }
    m.push('\n');
    m.push_str("| case | driver |");
    for r in &cols {
        let _ = write!(m, " {} |", label(&r.runner).replace('|', "\\|"));
    }
    m.push_str(" |\n|---|---|");
    for _ in &cols {
        m.push_str("---|");
    }
    m.push_str("---|\n");
    for ((case, driver), v) in &cells {
        let _ = write!(m, "| {case} | {driver} |");
        for s in v {
            let _ = write!(m, " {} |", cell_text(*s));
        }
        let _ = writeln!(m, " {} |", if differs(v) { "≠" } else { "" });
    }
    m.push('\n');
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::record::Conformance;

    fn rec(id: &str, kernel: &str, virt: &str, cells: &[(&str, Status)]) -> ResultRecord {
        let mut r = ResultRecord::new(Runner {
            id: id.into(),
            kernel: Some(kernel.into()),
            kernel_source: Some(format!("src-{kernel}")),
            virtualization: Some(virt.into()),
            ..Runner::default()
        });
        r.conformance = cells
            .iter()
            .map(|(c, s)| Conformance {
                driver: "overlay".into(),
                case: (*c).into(),
                status: *s,
                detail: None,
            })
            .collect();
        r
    }

    fn dataset(records: Vec<ResultRecord>) -> Dataset {
        let mut d = Dataset::default();
        for r in records {
            d.add_record(r, "x.json".into()).unwrap();
        }
        d
    }

    #[test]
    fn one_column_per_kernel_and_differing_cells_marked() {
        let d = dataset(vec![
            rec(
                "a",
                "6.1.0",
                "emulated",
                &[("P-01", Status::Pass), ("M-13", Status::Declared)],
            ),
            rec(
                "b",
                "6.12.0",
                "kvm",
                &[("P-01", Status::Pass), ("M-13", Status::Pass)],
            ),
            rec(
                "c",
                "6.18.0",
                "none",
                &[("P-01", Status::Pass), ("M-13", Status::Pass)],
            ),
        ]);
        let h = html(&d);
        assert!(
            h.contains("<th>6.1.0 (emulated)</th><th>6.12.0 (kvm)</th><th>6.18.0</th>"),
            "{h}"
        );
        assert!(h.contains("1 of 2 cells differ"), "{h}");
        assert!(h.contains("<tr class=\"differs\"><td>M-13</td>"), "{h}");
        assert!(!h.contains("<tr class=\"differs\"><td>P-01</td>"), "{h}");
        let m = markdown(&d);
        assert!(
            m.contains("| M-13 | overlay | DECLARED | ok | ok | ≠ |"),
            "{m}"
        );
        assert!(m.contains("| P-01 | overlay | ok | ok | ok |  |"), "{m}");
    }

    #[test]
    fn no_matrix_for_one_kernel_or_unnamed_equal_kernels() {
        let one = dataset(vec![rec("a", "6.1.0", "none", &[("P-01", Status::Pass)])]);
        assert!(html(&one).is_empty() && markdown(&one).is_empty());
        let mut a = rec("a", "6.18", "none", &[("P-01", Status::Pass)]);
        let mut b = rec("b", "6.18", "none", &[("P-01", Status::Pass)]);
        a.runner.kernel_source = None;
        b.runner.kernel_source = None;
        assert!(html(&dataset(vec![a, b])).is_empty());
    }

    /// Emulated times are in the report but out of ratios and the gate; the same record
    /// from a KVM run is in both.
    #[test]
    fn emulated_timings_stay_out_of_ratios_and_the_gate() {
        use crate::record::Benchmark;
        let bench = |driver: &str, median: f64| Benchmark {
            id: format!("copy_up/{driver}/4096"),
            group: "copy_up".into(),
            driver: driver.into(),
            params: BTreeMap::new(),
            unit: "ns".into(),
            samples: vec![],
            median,
            mean: None,
            ci: Some([median, median]),
            throughput: None,
        };
        let baseline = vec![bench("overlay", 100.0)];
        for (virt, counted) in [("emulated", false), ("kvm", true)] {
            let mut r = rec("a", "6.1", virt, &[]);
            r.benchmarks = vec![
                bench("overlay", 1000.0),
                bench("floor_copy_file_range", 10.0),
            ];
            let d = dataset(vec![r]);
            assert_eq!(d.runners[0].benchmarks.len(), 2);
            let gated = crate::regress::compare(&baseline, &d, 10.0);
            assert_eq!(!gated.is_empty(), counted, "{virt}: {gated:?}");
            assert_eq!(!crate::ratios::ratios(&d).is_empty(), counted, "{virt}");
        }
    }

    #[test]
    fn arrays_of_records_are_read_and_bad_elements_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let two = vec![
            rec("a", "6.1", "emulated", &[]),
            rec("b", "6.12", "emulated", &[]),
        ];
        std::fs::write(&p, serde_json::to_string(&two).unwrap()).unwrap();
        let got = read_records(&p).unwrap();
        assert_eq!(got, two);
        std::fs::write(&p, two[0].to_json_pretty().unwrap()).unwrap();
        assert_eq!(read_records(&p).unwrap(), vec![two[0].clone()]);
        std::fs::write(
            &p,
            r#"[{"schema":"strata-result/1","runner":{"id":"a"}},{"schema":"x"}]"#,
        )
        .unwrap();
        let e = read_records(&p).unwrap_err().to_string();
        assert!(e.contains("k.json") && e.contains("record [1]"), "{e}");
        std::fs::write(&p, "[]").unwrap();
        assert!(
            read_records(&p)
                .unwrap_err()
                .to_string()
                .contains("no records")
        );
        assert!(emulated(&two[0].runner));
    }
}
