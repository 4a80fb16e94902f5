//! The strata result record (`"schema": "strata-result/1"`), as the README's "Reports" section describes it.
//!
//! One record is written per run; a report merges any number of them. The harness produces
//! records with these same types, so the format is defined once, here.
//!
//! Reading is strict about `schema` (a file of another schema is rejected, never half-read) and
//! tolerant about everything else: optional fields may be missing and unknown fields are
//! ignored, so an older report can read a newer record.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::ReportError;
pub use crate::series::{Kind, SeriesKind};

/// The only schema this crate reads and writes.
pub const SCHEMA: &str = "strata-result/1";

/// One run of the harness on one runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    /// Always [`SCHEMA`]; deserializing any other value fails.
    #[serde(deserialize_with = "schema_v1")]
    pub schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<Tool>,
    pub runner: Runner,
    #[serde(default)]
    pub conformance: Vec<Conformance>,
    #[serde(default)]
    pub benchmarks: Vec<Benchmark>,
    #[serde(default)]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub disk: Vec<Disk>,
    /// Parts of the run that failed as a whole (a benchmark group whose binary failed,
    /// `strata check` exiting with an error): each fails the regression gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failed>,
    /// What the run was: profile, date, sample count (absent in older records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunInfo>,
    /// What each benchmark series is (subject, floor, peer; driver; mechanism; storage), as
    /// the benchmarks declared it. Older records have none: see [`crate::series::builtin`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<SeriesKind>,
    /// Every driver the harness knows, and why one could not run on this host's store.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drivers: Vec<DriverInfo>,
}

/// How a run was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// `quick` or `full` (`strata suite --quick`, `STRATA_BENCH`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// When the run started, UTC, `YYYY-MM-DDTHH:MM:SSZ`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Criterion samples per benchmark the profile asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_size: Option<u32>,
}

/// A driver and whether it can run here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverInfo {
    pub name: String,
    pub available: bool,
    /// Why not, when it is not available (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A part of a run that failed as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    /// What failed: `benchmark group copy_up`, `benchmarks`, `strata check`.
    pub what: String,
    /// Why, in one line.
    pub reason: String,
}

impl ResultRecord {
    /// An empty record for `runner`, with the schema set.
    pub fn new(runner: Runner) -> Self {
        ResultRecord {
            schema: SCHEMA.to_string(),
            tool: None,
            runner,
            conformance: Vec::new(),
            benchmarks: Vec::new(),
            phases: Vec::new(),
            disk: Vec::new(),
            failed: Vec::new(),
            run: None,
            series: Vec::new(),
            drivers: Vec::new(),
        }
    }

    /// Reads and validates one record file. Errors name the file and say why in one line:
    /// unreadable, empty, truncated JSON, another schema, or a missing required field.
    pub fn read(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ReportError::io(path, "cannot read result record", &e))?;
        Self::from_json_str(&text).map_err(|reason| ReportError::input(path, reason))
    }

    /// Parses a record from JSON text; the error is a one-line reason (without the file name).
    pub fn from_json_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err(format!("empty file, expected a {SCHEMA} JSON record"));
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| crate::error::json_reason(&e))?;
        match value.get("schema") {
            None => {
                return Err(format!(
                    "not a strata result record: no \"schema\" field (expected \"{SCHEMA}\")"
                ));
            }
            Some(serde_json::Value::String(s)) if s == SCHEMA => {}
            Some(other) => {
                return Err(format!("schema is {other}, expected \"{SCHEMA}\""));
            }
        }
        // Parse the text again (not the Value) so errors carry line and column.
        serde_json::from_str(text)
            .map_err(|e| format!("invalid {SCHEMA} record: {}", crate::error::json_reason(&e)))
    }

    /// Pretty JSON, as the harness writes it.
    pub fn to_json_pretty(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }
}

fn schema_v1<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s == SCHEMA {
        Ok(s)
    } else {
        Err(serde::de::Error::custom(format!(
            "schema is \"{s}\", expected \"{SCHEMA}\""
        )))
    }
}

/// The harness that produced the record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The machine a record was measured on. Records with the same `id` are one runner.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Runner {
    pub id: String,
    /// `uname -r`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cores: Option<u32>,
    /// Bytes of RAM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// `v1`, `v2` or `hybrid`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// The filesystem the benchmarks ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<Fs>,
    /// Lines of /proc/self/mountinfo on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_mounts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// /sys/module/overlay/parameters and what the harness learned about overlay limits.
    /// The report reads `mount_page_layers` (a number) when present: how many layers fit in
    /// one page of legacy mount(2) options with this runner's layer paths.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub overlay_params: BTreeMap<String, serde_json::Value>,
    /// The kernel as `--kernel` named it and what that resolved to (`host`; `debian:6.1:
    /// Debian linux-image-6.1.0-57-cloud-amd64 6.1.158-1 (deb sha256 ...)`; `image PATH`);
    /// absent when no `--kernel` was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_source: Option<String>,
    /// How the kernel ran: `none` (the runner's own kernel), `kvm` (a microVM with KVM) or
    /// `emulated` (a microVM under QEMU's TCG: its timings are not the kernel's; the report
    /// shows them as such and keeps them out of ratios and the gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtualization: Option<String>,
}

/// Filesystem type and mount options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Fs {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub fs_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<String>,
}

/// One cell of the conformance matrix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conformance {
    pub driver: String,
    pub case: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Outcome of a conformance case. `Declared` is a divergence the driver declares as a capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    Declared,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Declared => "declared",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measured benchmark: a point of a sweep for one driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    /// `group/function/param`, as criterion names it.
    pub id: String,
    pub group: String,
    /// The function measured: a driver, a root switch, a runtime, or a floor.
    pub driver: String,
    /// Sweep values, e.g. `{"layers": 16}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Unit of `samples`, `median`, `mean` and `ci`: `ns` (default), `us`, `ms` or `s`.
    #[serde(default = "default_unit")]
    pub unit: String,
    /// Time per iteration of each sample.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<f64>,
    pub median: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// 95% confidence interval of the median: `[lo, hi]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<[f64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<Throughput>,
}

fn default_unit() -> String {
    "ns".to_string()
}

impl Benchmark {
    /// Nanoseconds per one of `unit`, or `None` for a unit this crate does not know.
    pub fn ns_per_unit(&self) -> Option<f64> {
        match self.unit.as_str() {
            "ns" => Some(1.0),
            "us" | "µs" | "μs" => Some(1e3),
            "ms" => Some(1e6),
            "s" => Some(1e9),
            _ => None,
        }
    }

    /// The confidence interval, or the median as a zero-width interval when none was recorded.
    pub fn ci_or_median(&self) -> (f64, f64) {
        match self.ci {
            Some([lo, hi]) => (lo.min(hi), lo.max(hi)),
            None => (self.median, self.median),
        }
    }

    /// Returns a copy with every time converted to nanoseconds.
    pub fn to_ns(&self) -> Option<Benchmark> {
        let k = self.ns_per_unit()?;
        let mut b = self.clone();
        b.unit = "ns".to_string();
        b.samples.iter_mut().for_each(|s| *s *= k);
        b.median *= k;
        b.mean = b.mean.map(|m| m * k);
        b.ci = b.ci.map(|[lo, hi]| [lo * k, hi * k]);
        Some(b)
    }
}

/// Work done per iteration, for throughput figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Throughput {
    Bytes(u64),
    Elements(u64),
}

/// Time spent in one phase of one container start (prepare, mount, switch, exec, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// Which start this phase belongs to; a string or a number in the JSON.
    #[serde(deserialize_with = "string_or_number")]
    pub run: String,
    pub phase: String,
    pub ns: u64,
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, found {other}"
        ))),
    }
}

/// Disk usage of one driver's store after the run, in bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    pub driver: String,
    /// The image measured (`1 layer`, `10 layers`, `10 layers, implied parents`); absent in
    /// records of one image per driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Bytes the first mount of the image made that later mounts share (chain directories,
    /// subvolumes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_mount: Option<u64>,
    /// Sum of file sizes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apparent: Option<u64>,
    /// Blocks really allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocated: Option<u64>,
    /// Bytes saved by sharing (layers stored once, reflinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<u64>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"schema":"strata-result/1","runner":{"id":"a"}}"#;

    #[test]
    fn minimal_record_reads_with_defaults() {
        let r = ResultRecord::from_json_str(MINIMAL).unwrap();
        assert_eq!(r.runner.id, "a");
        assert!(r.benchmarks.is_empty() && r.conformance.is_empty() && r.tool.is_none());
    }

    #[test]
    fn other_schema_is_rejected_by_name() {
        let e = ResultRecord::from_json_str(r#"{"schema":"hyperfine/2","runner":{"id":"a"}}"#)
            .unwrap_err();
        assert_eq!(e, "schema is \"hyperfine/2\", expected \"strata-result/1\"");
        let e = ResultRecord::from_json_str(r#"{"results":[]}"#).unwrap_err();
        assert!(e.contains("no \"schema\" field"), "{e}");
        // Plain serde use is strict too.
        assert!(
            serde_json::from_str::<ResultRecord>(r#"{"schema":"x","runner":{"id":"a"}}"#).is_err()
        );
    }

    #[test]
    fn truncated_json_says_truncated() {
        let e = ResultRecord::from_json_str(r#"{"schema":"strata-result/1","runner":{"id"#)
            .unwrap_err();
        assert!(e.starts_with("truncated JSON"), "{e}");
    }

    #[test]
    fn round_trip_and_units() {
        let mut r = ResultRecord::new(Runner {
            id: "x".into(),
            ..Runner::default()
        });
        r.benchmarks.push(Benchmark {
            id: "g/f/1".into(),
            group: "g".into(),
            driver: "f".into(),
            params: BTreeMap::new(),
            unit: "ms".into(),
            samples: vec![1.0, 2.0],
            median: 1.5,
            mean: Some(1.5),
            ci: Some([1.0, 2.0]),
            throughput: Some(Throughput::Bytes(4096)),
        });
        r.phases.push(Phase {
            run: "1".into(),
            phase: "mount".into(),
            ns: 5,
        });
        let back = ResultRecord::from_json_str(&r.to_json_pretty().unwrap()).unwrap();
        assert_eq!(back, r);
        let ns = back.benchmarks[0].to_ns().unwrap();
        assert_eq!(ns.median, 1.5e6);
        assert_eq!(ns.ci, Some([1e6, 2e6]));
        let phase: Phase = serde_json::from_str(r#"{"run":3,"phase":"exec","ns":9}"#).unwrap();
        assert_eq!(phase.run, "3");
    }
}
