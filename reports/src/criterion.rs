//! Reading criterion's output directory (`target/criterion`) into [`Benchmark`]s.
//!
//! Layout (criterion 0.5 to 0.8): `<group>/<function>/<param>/new/{benchmark,estimates,sample}.json`
//! (fewer levels without a function or a param), plus `base/` (the saved baseline), `change/`
//! and `report/`, which are ignored. Criterion calls these files private; the reader takes only
//! the few fields it needs and says which file and field is missing when they change.
//!
//! Mapping: `median` and `ci` are criterion's median estimate and its 95% bootstrap interval,
//! `mean` its mean estimate, `samples` each sample's time divided by its iteration count; all
//! in nanoseconds.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{ReportError, json_reason};
use crate::params;
use crate::record::{Benchmark, Throughput};

/// Reads every benchmark under a criterion directory (`new/` estimates), sorted by id.
///
/// Fails, naming the path, when the directory is missing or holds no benchmark, or when any
/// benchmark's JSON is unreadable, truncated or lacks a needed field.
pub fn read_criterion_dir(dir: &Path) -> Result<Vec<Benchmark>, ReportError> {
    let meta =
        std::fs::metadata(dir).map_err(|e| ReportError::io(dir, "criterion directory", &e))?;
    if !meta.is_dir() {
        return Err(ReportError::input(
            dir,
            "criterion output must be a directory (usually target/criterion)",
        ));
    }
    let mut found = Vec::new();
    find_new_dirs(dir, &mut found)?;
    if found.is_empty() {
        return Err(ReportError::input(
            dir,
            "no criterion benchmarks found (expected <group>/<function>/<param>/new/benchmark.json; run `cargo bench` first)",
        ));
    }
    let mut out = found
        .iter()
        .map(|d| read_benchmark(d))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Collects every `new/` directory that holds criterion estimates.
fn find_new_dirs(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), ReportError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| ReportError::io(dir, "cannot list directory", &e))?;
    let mut children = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| ReportError::io(dir, "cannot list directory", &e))?;
        let path = entry.path();
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            children.push(path);
        }
    }
    children.sort();
    for child in children {
        let name = child
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        match name {
            "new" => {
                if child.join("benchmark.json").exists() || child.join("estimates.json").exists() {
                    found.push(child);
                }
            }
            // Criterion's saved baseline, change estimates and its own HTML report.
            "base" | "change" | "report" => {}
            _ if name.starts_with('.') => {}
            _ => find_new_dirs(&child, found)?,
        }
    }
    Ok(())
}

#[derive(Deserialize)]
struct BenchmarkJson {
    group_id: String,
    function_id: Option<String>,
    value_str: Option<String>,
    #[serde(default)]
    throughput: Option<serde_json::Value>,
    full_id: String,
}

#[derive(Deserialize)]
struct EstimatesJson {
    mean: Estimate,
    median: Estimate,
}

#[derive(Deserialize)]
struct Estimate {
    confidence_interval: ConfidenceInterval,
    point_estimate: f64,
}

#[derive(Deserialize)]
struct ConfidenceInterval {
    lower_bound: f64,
    upper_bound: f64,
}

#[derive(Deserialize)]
struct SampleJson {
    iters: Vec<f64>,
    times: Vec<f64>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ReportError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ReportError::io(path, "cannot read criterion output", &e))?;
    if text.trim().is_empty() {
        return Err(ReportError::input(path, "empty file"));
    }
    serde_json::from_str(&text).map_err(|e| ReportError::input(path, json_reason(&e)))
}

/// Reads one criterion `new/` (or `base/`) directory.
pub fn read_benchmark(new_dir: &Path) -> Result<Benchmark, ReportError> {
    let bench: BenchmarkJson = read_json(&new_dir.join("benchmark.json"))?;
    let estimates_path = new_dir.join("estimates.json");
    let est: EstimatesJson = read_json(&estimates_path)?;
    let sample_path = new_dir.join("sample.json");
    let samples = if sample_path.exists() {
        let s: SampleJson = read_json(&sample_path)?;
        if s.iters.len() != s.times.len() {
            return Err(ReportError::input(
                &sample_path,
                "`iters` and `times` differ in length",
            ));
        }
        s.iters
            .iter()
            .zip(&s.times)
            .filter(|(i, _)| **i > 0.0)
            .map(|(i, t)| t / i)
            .collect()
    } else {
        Vec::new()
    };
    let throughput = bench.throughput.as_ref().and_then(throughput_of);
    let bytes = matches!(throughput, Some(Throughput::Bytes(_)));
    let params = bench
        .value_str
        .as_deref()
        .map(|v| params::parse_param(&bench.group_id, v, bytes))
        .unwrap_or_default();
    let median = est.median.point_estimate;
    if !median.is_finite() || median < 0.0 {
        return Err(ReportError::input(
            &estimates_path,
            format!("median estimate is {median}, not a time"),
        ));
    }
    Ok(Benchmark {
        id: bench.full_id,
        driver: bench.function_id.unwrap_or_else(|| bench.group_id.clone()),
        group: bench.group_id,
        params,
        unit: "ns".to_string(),
        samples,
        median,
        mean: Some(est.mean.point_estimate),
        ci: Some([
            est.median.confidence_interval.lower_bound,
            est.median.confidence_interval.upper_bound,
        ]),
        throughput,
    })
}

/// Criterion serializes `Throughput` as `{"Bytes": n}`, `{"BytesDecimal": n}`, `{"Elements": n}`
/// or `{"ElementsAndBytes": {"elements": n, "bytes": m}}`.
fn throughput_of(v: &serde_json::Value) -> Option<Throughput> {
    let obj = v.as_object()?;
    let (kind, n) = obj.iter().next()?;
    match kind.as_str() {
        "Bytes" | "BytesDecimal" => n.as_u64().map(Throughput::Bytes),
        "Elements" => n.as_u64().map(Throughput::Elements),
        "ElementsAndBytes" => n
            .get("bytes")
            .and_then(|b| b.as_u64())
            .map(Throughput::Bytes),
        _ => None,
    }
}
