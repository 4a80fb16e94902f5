//! Merging criterion benchmarks and any number of result records into one data set,
//! one entry per runner (records with the same `runner.id` are the same runner).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use crate::error::ReportError;
use crate::params;
use crate::record::{
    Benchmark, Conformance, Disk, DriverInfo, Failed, Phase, ResultRecord, RunInfo, Runner, Tool,
};
use crate::series::{self, Kind, SeriesKind};

/// Everything measured on one runner, times in nanoseconds.
#[derive(Debug, Clone)]
pub struct RunnerData {
    pub runner: Runner,
    pub tool: Option<Tool>,
    /// The files (or criterion directory) this runner's data came from.
    pub sources: Vec<PathBuf>,
    pub benchmarks: Vec<Benchmark>,
    pub conformance: Vec<Conformance>,
    pub phases: Vec<Phase>,
    pub disk: Vec<Disk>,
    /// Parts of a run that failed as a whole (see [`Failed`]).
    pub failed: Vec<Failed>,
    /// The profile, date and sample count of the runs, when the records say.
    pub run: Option<RunInfo>,
    /// The series kinds the records declare (see [`RunnerData::kind`]).
    pub series: Vec<SeriesKind>,
    /// The drivers and their availability on this runner's store.
    pub drivers: Vec<DriverInfo>,
}

impl RunnerData {
    /// What the series of `b` is: as declared in the record, else the built-in table.
    pub fn kind(&self, b: &Benchmark) -> SeriesKind {
        series::lookup(&self.series, &b.group, &b.driver)
    }

    /// True when `b` is a floor.
    pub fn is_floor(&self, b: &Benchmark) -> bool {
        self.kind(b).kind == Kind::Floor
    }
}

/// All runners of a report, in the order they were first seen.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    pub runners: Vec<RunnerData>,
    /// Things the reader should know (replaced duplicates and the like).
    pub notes: Vec<String>,
}

impl Dataset {
    /// Adds one record read from `source`; times are converted to nanoseconds.
    pub fn add_record(&mut self, record: ResultRecord, source: PathBuf) -> Result<(), ReportError> {
        let mut benchmarks = Vec::with_capacity(record.benchmarks.len());
        for b in &record.benchmarks {
            let ns = b.to_ns().ok_or_else(|| {
                ReportError::input(
                    &source,
                    format!(
                        "benchmark {}: unknown unit {:?} (use ns, us, ms or s)",
                        b.id, b.unit
                    ),
                )
            })?;
            if !ns.median.is_finite() || ns.median < 0.0 {
                return Err(ReportError::input(
                    &source,
                    format!("benchmark {}: median {} is not a time", b.id, b.median),
                ));
            }
            benchmarks.push(ns);
        }
        if record.runner.id.trim().is_empty() {
            return Err(ReportError::input(&source, "runner.id is empty"));
        }
        let idx = match self
            .runners
            .iter()
            .position(|r| r.runner.id == record.runner.id)
        {
            Some(i) => i,
            None => {
                self.runners.push(RunnerData {
                    runner: record.runner.clone(),
                    tool: None,
                    sources: Vec::new(),
                    benchmarks: Vec::new(),
                    conformance: Vec::new(),
                    phases: Vec::new(),
                    disk: Vec::new(),
                    failed: Vec::new(),
                    run: None,
                    series: Vec::new(),
                    drivers: Vec::new(),
                });
                self.runners.len() - 1
            }
        };
        let data = &mut self.runners[idx];
        fill_missing(&mut data.runner, &record.runner);
        if record.tool.is_some() {
            data.tool = record.tool.clone();
        }
        data.sources.push(source.clone());
        for b in benchmarks {
            if let Some(old) = data.benchmarks.iter_mut().find(|o| o.id == b.id) {
                self.notes.push(format!(
                    "runner {}: benchmark {} appears more than once; the one from {} is used",
                    data.runner.id,
                    b.id,
                    source.display()
                ));
                *old = b;
            } else {
                data.benchmarks.push(b);
            }
        }
        for c in record.conformance {
            if let Some(old) = data
                .conformance
                .iter_mut()
                .find(|o| o.driver == c.driver && o.case == c.case)
            {
                *old = c;
            } else {
                data.conformance.push(c);
            }
        }
        // Run ids restart in every record; keep runs of different records apart.
        let clash = record
            .phases
            .iter()
            .any(|p| data.phases.iter().any(|o| o.run == p.run));
        let n = data.sources.len();
        data.phases.extend(record.phases.into_iter().map(|mut p| {
            if clash {
                p.run = format!("{n}.{}", p.run);
            }
            p
        }));
        data.failed.extend(record.failed);
        if record.run.is_some() {
            data.run = record.run;
        }
        for s in record.series {
            data.series
                .retain(|o| !(o.group == s.group && o.function == s.function));
            data.series.push(s);
        }
        for d in record.drivers {
            data.drivers.retain(|o| o.name != d.name);
            data.drivers.push(d);
        }
        for d in record.disk {
            if let Some(old) = data
                .disk
                .iter_mut()
                .find(|o| o.driver == d.driver && o.image == d.image)
            {
                *old = d;
            } else {
                data.disk.push(d);
            }
        }
        Ok(())
    }

    /// Every runner id, in order.
    pub fn runner_ids(&self) -> Vec<String> {
        self.runners.iter().map(|r| r.runner.id.clone()).collect()
    }

    /// Every benchmark of every runner, with its runner.
    pub fn benchmarks(&self) -> impl Iterator<Item = (&RunnerData, &Benchmark)> {
        self.runners
            .iter()
            .flat_map(|r| r.benchmarks.iter().map(move |b| (r, b)))
    }

    /// Benchmark groups, in order of first appearance.
    pub fn groups(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for (_, b) in self.benchmarks() {
            if !seen.contains(&b.group) {
                seen.push(b.group.clone());
            }
        }
        seen
    }

    /// All drivers (benchmark functions, conformance and disk drivers), sorted; used to give each
    /// driver the same colour in every chart.
    pub fn drivers(&self) -> Vec<String> {
        let mut set = BTreeSet::new();
        for r in &self.runners {
            set.extend(r.benchmarks.iter().map(|b| b.driver.clone()));
            set.extend(r.conformance.iter().map(|c| c.driver.clone()));
            set.extend(r.disk.iter().map(|d| d.driver.clone()));
        }
        set.into_iter().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.runners.iter().all(|r| {
            r.benchmarks.is_empty()
                && r.conformance.is_empty()
                && r.phases.is_empty()
                && r.disk.is_empty()
        })
    }
}

/// A later record of the same runner may know more about its environment.
fn fill_missing(into: &mut Runner, from: &Runner) {
    macro_rules! fill {
        ($($f:ident),*) => {$( if into.$f.is_none() { into.$f = from.$f.clone(); } )*};
    }
    fill!(
        kernel,
        os,
        cpu,
        cores,
        memory,
        cgroup,
        fs,
        host_mounts,
        privileged
    );
    for (k, v) in &from.overlay_params {
        into.overlay_params
            .entry(k.clone())
            .or_insert_with(|| v.clone());
    }
}

/// One row of the environment block: a property and its value on each runner.
#[derive(Debug, Clone)]
pub struct EnvRow {
    pub field: String,
    pub values: Vec<String>,
    /// True when runners disagree on this property.
    pub differs: bool,
}

/// The environment of every runner, one row per property, differing rows flagged.
pub fn environment(data: &Dataset) -> Vec<EnvRow> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let mut push = |field: &str, f: &dyn Fn(&RunnerData) -> Option<String>| {
        let values: Vec<String> = data
            .runners
            .iter()
            .map(|r| f(r).unwrap_or_else(|| "?".to_string()))
            .collect();
        if values.iter().any(|v| v != "?") {
            rows.push((field.to_string(), values));
        }
    };
    push("kernel", &|r| r.runner.kernel.clone());
    push("os", &|r| r.runner.os.clone());
    push("cpu", &|r| r.runner.cpu.clone());
    push("cores", &|r| r.runner.cores.map(|c| c.to_string()));
    push("memory", &|r| r.runner.memory.map(human_bytes));
    push("cgroup", &|r| r.runner.cgroup.clone());
    push("profile", &|r| {
        r.run.as_ref().and_then(|x| x.profile.clone())
    });
    push("samples per benchmark", &|r| {
        r.run
            .as_ref()
            .and_then(|x| x.sample_size)
            .map(|n| n.to_string())
    });
    push("date", &|r| r.run.as_ref().and_then(|x| x.date.clone()));
    push("benchmarks ran on", &|r| {
        let s = storage_summary(r);
        (!s.is_empty()).then_some(s)
    });
    push("store fs (strata check, disk, phases)", &|r| {
        r.runner.fs.as_ref().and_then(|f| {
            let t = f.fs_type.clone()?;
            Some(match &f.options {
                Some(o) => format!("{t} ({o})"),
                None => t,
            })
        })
    });
    push("host mounts", &|r| {
        r.runner.host_mounts.map(|m| m.to_string())
    });
    push("privileged", &|r| {
        r.runner
            .privileged
            .map(|p| if p { "yes" } else { "no" }.to_string())
    });
    let keys: BTreeSet<String> = data
        .runners
        .iter()
        .flat_map(|r| r.runner.overlay_params.keys().cloned())
        .collect();
    for key in keys {
        push(&format!("overlay {key}"), &|r| {
            r.runner.overlay_params.get(&key).map(params::value_text)
        });
    }
    push("strata version", &|r| {
        r.tool.as_ref().and_then(|t| t.version.clone())
    });
    push("strata commit", &|r| {
        r.tool.as_ref().and_then(|t| t.commit.clone())
    });
    push("sources", &|r| {
        Some(
            r.sources
                .iter()
                .map(|s| s.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        )
    });
    rows.into_iter()
        .map(|(field, values)| {
            let distinct: BTreeSet<&String> = values.iter().collect();
            let differs = data.runners.len() > 1 && distinct.len() > 1 && field != "sources";
            EnvRow {
                field,
                values,
                differs,
            }
        })
        .collect()
}

/// Where the benchmarks of a runner ran: `tmpfs: 40 series; loop btrfs: btrfs (union_prepare,
/// ...)`, from the series kinds.
pub fn storage_summary(r: &RunnerData) -> String {
    let mut by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in &r.benchmarks {
        let k = r.kind(b);
        let storage = k.storage.unwrap_or_else(|| "not recorded".to_string());
        by.entry(storage)
            .or_default()
            .insert(format!("{}/{}", b.group, b.driver));
    }
    by.into_iter()
        .map(|(storage, series)| {
            if storage == "tmpfs" {
                format!("tmpfs: {} series", series.len())
            } else {
                format!(
                    "{storage}: {}",
                    series.into_iter().collect::<Vec<_>>().join(", ")
                )
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// `1.5 GiB` style.
pub fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < UNITS.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else if v >= 100.0 {
        format!("{v:.0} {}", UNITS[i])
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// `1.23 ms` style, from nanoseconds.
pub fn human_ns(ns: f64) -> String {
    let (v, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    if v >= 100.0 {
        format!("{v:.0} {unit}")
    } else if v >= 10.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.2} {unit}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn same_runner_merges_and_units_normalise() {
        let mut ds = Dataset::default();
        let rec = |unit: &str| {
            ResultRecord::from_json_str(&format!(
                r#"{{"schema":"strata-result/1","runner":{{"id":"a","kernel":"6.1"}},
                "benchmarks":[{{"id":"g/f/1","group":"g","driver":"f","unit":"{unit}","median":2}}]}}"#
            ))
            .unwrap()
        };
        ds.add_record(rec("ms"), "one.json".into()).unwrap();
        ds.add_record(rec("us"), "two.json".into()).unwrap();
        assert_eq!(ds.runners.len(), 1);
        assert_eq!(ds.runners[0].benchmarks.len(), 1);
        assert_eq!(ds.runners[0].benchmarks[0].median, 2000.0);
        assert_eq!(ds.notes.len(), 1);
        let e = ds
            .add_record(rec("furlongs"), "three.json".into())
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("three.json: benchmark g/f/1: unknown unit"),
            "{e}"
        );
    }

    #[test]
    fn runs_of_two_records_stay_apart() {
        let mut ds = Dataset::default();
        let rec = || {
            ResultRecord::from_json_str(
                r#"{"schema":"strata-result/1","runner":{"id":"a"},"phases":[{"run":1,"phase":"mount","ns":5}]}"#,
            )
            .unwrap()
        };
        ds.add_record(rec(), "one.json".into()).unwrap();
        ds.add_record(rec(), "two.json".into()).unwrap();
        let runs: Vec<&str> = ds.runners[0]
            .phases
            .iter()
            .map(|p| p.run.as_str())
            .collect();
        assert_eq!(runs, vec!["1", "2.1"]);
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(1_234_567.0), "1.23 ms");
        assert_eq!(human_ns(850.0), "850 ns");
        assert_eq!(human_bytes(4096), "4.0 KiB");
    }
}
