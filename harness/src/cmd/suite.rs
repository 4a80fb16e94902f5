//! `strata suite`: the main job. Conformance (`strata check`, every available driver), the
//! criterion benchmarks (`cargo bench`, quick profile with `--quick`), the phases of a
//! container start, each driver's disk use, one result record, and the report, with
//! progress bars and an ETA on a terminal; without one, one progress line per step on stderr.
//! criterion's output goes to `OUT/bench.log` and `strata check`'s table to `OUT/check.txt`
//! (`--verbose`: both on the terminal, as they come).
//!
//! The exit status is 1 when a conformance case failed, `strata check` exited with an error,
//! or a benchmark group failed (or the benchmarks could not be built); each is named on
//! stderr and recorded (`failed` in the record), so the regression gate fails on it too.
//!
//! ```text
//! OUT/result.json        the strata-result/1 record of this runner
//! OUT/check.json         the conformance record `strata check` wrote
//! OUT/check.txt          its table (unless --verbose)
//! OUT/bench.log          criterion's own output (unless --verbose)
//! OUT/criterion/         criterion's output of this run (CRITERION_HOME)
//! OUT/report/            index.html, REPORT.md and every chart (SVG and PNG)
//! ```

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use strata_reports::record::{
    Benchmark, Conformance, Disk, DriverInfo, Failed, Phase, ResultRecord, RunInfo, Status, Tool,
};
use strata_reports::{ReportOptions, build_report, read_criterion_dir};
use strata_runtime::container::{self, ContainerSpec, Namespace, Namespaces};
use strata_runtime::driver;
use strata_runtime::fixture::Layer;
use strata_runtime::loopfs::{self, FsType};
use strata_runtime::mounts;
use strata_runtime::store::Store;

use super::Ctx;
use crate::cli::SuiteArgs;
use crate::output::CmdResult;

/// The benchmark binaries, with how long each takes here (seconds, 2 vCPUs) on the quick
/// and on the full profile: weights for the ETA, nothing more.
const BENCHES: [(&str, u64, u64); 5] = [
    ("rootfs_switch", 20, 95),
    ("container_start", 20, 95),
    ("union_prepare", 135, 1310),
    ("copy_up", 22, 180),
    ("commit", 40, 780),
];

fn err(msg: impl Into<String>) -> strata_runtime::Error {
    strata_runtime::Error::Usage(msg.into())
}

/// How the suite talks: bars on a terminal, one line per step otherwise; tools' own output
/// in log files unless verbose.
#[derive(Clone, Copy)]
struct Ui {
    tty: bool,
    verbose: bool,
}

impl Ui {
    /// A progress line, when no bar shows it (stderr is no terminal).
    fn step(&self, msg: &str) {
        if !self.tty {
            eprintln!("strata suite: {msg}");
        }
    }
}

/// Now, UTC, as `YYYY-MM-DDTHH:MM:SSZ`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_prefix(what.to_string());
    pb
}

pub fn run(ctx: &Ctx, a: SuiteArgs) -> CmdResult<ExitCode> {
    let started = Instant::now();
    // Every mount the suite makes (phases, disk) stays in a namespace of its own.
    strata_runtime::sandbox::private_mount_namespace()?;
    let out = &a.out;
    std::fs::create_dir_all(out).map_err(|e| strata_runtime::Error::io("create", out, e))?;
    let out =
        std::fs::canonicalize(out).map_err(|e| strata_runtime::Error::io("resolve", out, e))?;
    let store = ctx.store()?;
    let ui = Ui {
        tty: std::io::stderr().is_terminal(),
        verbose: a.verbose,
    };
    let mut record = ResultRecord::new(crate::runner::runner(store.root()));
    if !a.kernel.is_empty() {
        // Beside the kernels' records, this one is the host's kernel, run without a VM.
        record.runner.kernel_source = Some("host".into());
        record.runner.virtualization = Some("none".into());
    }
    record.run = Some(RunInfo {
        profile: Some(if a.quick { "quick" } else { "full" }.to_string()),
        date: Some(utc_now()),
        sample_size: (!a.no_bench).then_some(if a.quick { 10 } else { 30 }),
    });
    record.drivers = driver::all()
        .iter()
        .map(|d| {
            let why = d.availability_in(store.root()).err();
            DriverInfo {
                name: d.name().to_string(),
                available: why.is_none(),
                reason: why.map(|e| e.to_string()),
            }
        })
        .collect();
    record.tool = Some(Tool {
        version: Some(env!("CARGO_PKG_VERSION").to_string()),
        commit: git_commit(),
    });
    eprintln!(
        "strata suite: runner {} ({} profile), results in {}",
        record.runner.id,
        if a.quick { "quick" } else { "full" },
        out.display()
    );

    // 1. Conformance: `strata check` in a process of its own.
    ui.step("conformance: strata check, every catalog case on every available driver");
    let (cells, check_failed) = conformance(ctx, &out, ui)?;
    record.conformance = cells;
    let failed = record
        .conformance
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    if let Some(why) = check_failed {
        // A failing case is in the cells already; anything else (a case file that does not
        // parse, say) is recorded as strata check failing.
        if failed == 0 {
            record.failed.push(Failed {
                what: "strata check".into(),
                reason: why,
            });
        }
    }

    // 2. The phases of a container start, and each driver's disk use.
    ui.step("phases of a container start (5 runs)");
    record.phases = phases(&store);
    ui.step("disk per driver");
    record.disk = disk();

    // 3. Benchmarks.
    let criterion_out = out.join("criterion");
    if a.no_bench {
        eprintln!("strata suite: benchmarks skipped (--no-bench)");
    } else {
        match benches(a.quick, &criterion_out, &out, ui) {
            Ok((b, failed_groups)) => {
                let (series, unknown) = strata_reports::series::declare(&b);
                if !unknown.is_empty() {
                    eprintln!(
                        "strata suite: note: no series kind known for {} (recorded as subjects of their own; add them to strata_reports::series::builtin)",
                        unknown.join(", ")
                    );
                }
                record.series = series;
                record.benchmarks = b;
                record.failed.extend(failed_groups);
            }
            Err(why) => {
                eprintln!("strata suite: benchmarks FAILED: {why}");
                record.failed.push(Failed {
                    what: "benchmarks".into(),
                    reason: why,
                });
            }
        }
    }

    // 4. The record and the report.
    let result = out.join("result.json");
    let json = record
        .to_json_pretty()
        .map_err(|e| err(format!("result record: {e}")))?;
    std::fs::write(&result, json + "\n")
        .map_err(|e| strata_runtime::Error::io("write", &result, e))?;
    let mut opts = ReportOptions::new(out.join("report"));
    opts.results = vec![result.clone()];
    let (kernels, kernels_failed) = crate::kernel::matrix::in_suite(&out, &a.kernel, a.quick);
    opts.results.extend(kernels);
    let summary = build_report(&opts).map_err(|e| err(e.to_string()))?;
    eprintln!(
        "strata suite: done in {:.0?}: {} conformance results ({failed} failing), {} benchmarks; record {}, report {}",
        started.elapsed(),
        record.conformance.len(),
        record.benchmarks.len(),
        result.display(),
        summary.index_html.display()
    );
    for a in summary.advice.iter().filter(|a| !a.answers.is_empty()) {
        eprintln!("strata suite: which driver: {}", a.verdict);
    }
    if summary.beaten_floors > 0 {
        eprintln!(
            "strata suite: warning: {} series beat a floor of their mechanism (a bug in the benchmark; flagged in the report)",
            summary.beaten_floors
        );
    }
    match (failures(&record, &out.join("check.json")), kernels_failed) {
        (Some(why), _) | (None, Some(why)) => Err(err(why)),
        (None, None) => Ok(ExitCode::SUCCESS),
    }
}

/// Why the suite fails (one line naming each failed case count and each failed part), or
/// `None` when nothing failed.
fn failures(record: &ResultRecord, check_json: &Path) -> Option<String> {
    let failed = record
        .conformance
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let mut wrong = Vec::new();
    if failed > 0 {
        wrong.push(format!(
            "{failed} conformance case(s) failed (see {})",
            check_json.display()
        ));
    }
    wrong.extend(
        record
            .failed
            .iter()
            .map(|f| format!("{} failed: {}", f.what, f.reason)),
    );
    (!wrong.is_empty()).then(|| wrong.join("; "))
}

fn git_commit() -> Option<String> {
    let dir = workspace()?;
    let o = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

/// The strata source tree this binary was built from, when it is still there.
fn workspace() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()?
        .to_path_buf();
    dir.join("benches/Cargo.toml").exists().then_some(dir)
}

/// Runs `strata check --json OUT/check.json` and returns its conformance entries, and why it
/// failed when it exited with an error.
fn conformance(ctx: &Ctx, out: &Path, ui: Ui) -> CmdResult<(Vec<Conformance>, Option<String>)> {
    let exe = std::env::current_exe().map_err(|e| err(format!("where is strata? {e}")))?;
    let file = out.join("check.json");
    let pb = ProgressBar::new_spinner();
    pb.set_prefix("conformance");
    pb.set_message("strata check: every catalog case on every available driver");
    pb.enable_steady_tick(Duration::from_millis(200));
    let o = Command::new(exe)
        .arg("--root")
        .arg(&ctx.root)
        .arg("check")
        .arg("--json")
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("strata check: {e}")))?;
    pb.finish_and_clear();
    let table = String::from_utf8_lossy(&o.stdout);
    if ui.verbose {
        eprint!("{table}");
    } else {
        let txt = out.join("check.txt");
        std::fs::write(&txt, table.as_bytes())
            .map_err(|e| strata_runtime::Error::io("write", &txt, e))?;
        let last = table.lines().rev().find(|l| !l.trim().is_empty());
        eprintln!(
            "strata suite: conformance: {} (the table: {})",
            last.unwrap_or("no summary").trim(),
            txt.display()
        );
    }
    if !file.exists() {
        return Err(err(format!(
            "strata check wrote no record: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    let rec = ResultRecord::read(&file).map_err(|e| err(e.to_string()))?;
    let why = (!o.status.success()).then(|| {
        let stderr = String::from_utf8_lossy(&o.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
        format!("{}: {}", o.status, last.unwrap_or("no message").trim())
    });
    Ok((rec.conformance, why))
}

/// Medians over a few starts of /bin/true (overlay, pivot_root, mount+uts+ipc+pid) of each
/// phase; one record per run.
fn phases(store: &Store) -> Vec<Phase> {
    let dir = match tempfile::Builder::new()
        .prefix("strata-suite-rootfs-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("strata suite: phases SKIPPED: {e}");
            return Vec::new();
        }
    };
    let tar = dir.path().join("rootfs.tar");
    let built = strata_runtime::rootfs::from_host_tar(
        &dir.path().join("rootfs"),
        &["/bin/true".to_string()],
        &tar,
    );
    let layer = match built.and_then(|_| store.import_path(&tar)) {
        Ok(i) => i.layer.info.diff_id.to_string(),
        Err(e) => {
            eprintln!("strata suite: phases SKIPPED: {e}");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    let runs = 5;
    let pb = bar(runs, "phases");
    for run in 0..runs {
        let mut spec = ContainerSpec::new(vec![layer.clone()], vec!["/bin/true".into()]);
        spec.namespaces = Namespaces::of(&[
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Pid,
        ]);
        match container::run(store, spec) {
            Ok(o) => {
                for s in &o.timings.spans {
                    out.push(Phase {
                        run: format!("overlay-pivot_root-{run}"),
                        phase: s.phase.clone(),
                        ns: s.ns,
                    });
                }
            }
            Err(e) => {
                pb.finish_and_clear();
                eprintln!("strata suite: phases SKIPPED: {e}");
                return Vec::new();
            }
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    out
}

/// Each available driver's disk use for three images of 32 MiB (1 MiB files): one layer; ten
/// layers whose tars name the parent directory (as Docker's builder writes them); ten layers
/// that only imply it (as umoci and others do). Each in a store of its own (a temp dir, with a
/// loop-mounted btrfs at its `btrfs/` for the btrfs driver, so the user's store is never
/// touched), measured as the growth of the filesystems holding the store (synced before and
/// after):
/// - `first_mount`: what the first mount of the image made that every later mount shares
///   (overlay's and fuse-overlayfs's chain directories, btrfs's subvolume chain), as a
///   snapshotter would at pull;
/// - `allocated`: what a second mount allocates; the rest of its `apparent` bytes (the view's
///   file sizes) is `shared` with the layers.
fn disk() -> Vec<Disk> {
    let mut rows = Vec::new();
    let Ok(tmp) = tempfile::Builder::new()
        .prefix("strata-suite-disk-")
        .tempdir()
    else {
        eprintln!("strata suite: disk SKIPPED: no temporary directory");
        return rows;
    };
    let store = match Store::open(&tmp.path().join("root")) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("strata suite: disk SKIPPED: {e}");
            return rows;
        }
    };
    // Kept while the drivers are measured: the btrfs driver's subvolumes live on it.
    let _btrfs = loopfs::LoopFs::create(
        FsType::Btrfs,
        &tmp.path().join("btrfs.img"),
        1 << 30,
        &driver::btrfs::state_dir(store.root()),
    )
    .map_err(|why| eprintln!("strata suite: disk of btrfs SKIPPED: {why}"));
    let holders = [
        store.root().to_path_buf(),
        driver::btrfs::state_dir(store.root()),
    ];
    for (image, n, named) in [
        ("1 layer", 1u8, true),
        ("10 layers", 10, true),
        ("10 layers, implied parents", 10, false),
    ] {
        // 32 files of 1 MiB spread over n layers (each file in one layer), distinct content.
        let per = 32 / usize::from(n);
        let layers: Vec<_> = (0..n)
            .map(|i| {
                let mut l = if named || i == 0 {
                    Layer::new().dir("data")
                } else {
                    Layer::new()
                };
                for f in 0..per + usize::from(i < 32 % n) {
                    let byte = i
                        .wrapping_mul(31)
                        .wrapping_add(f as u8)
                        .wrapping_add(n)
                        .wrapping_add(u8::from(named));
                    l = l.file(&format!("data/l{i}-f{f}"), vec![byte; 1 << 20]);
                }
                l
            })
            .filter_map(|l| l.to_tar().ok())
            .filter_map(|t| {
                store
                    .import_reader(&t[..], Path::new("suite-disk.tar"))
                    .ok()
            })
            .map(|i| i.layer)
            .collect();
        if layers.len() != usize::from(n) {
            eprintln!("strata suite: disk of {image} SKIPPED: the fixture did not import");
            continue;
        }
        for d in driver::all() {
            if d.availability_in(store.root()).is_err() {
                continue;
            }
            let skipped = |e: &dyn std::fmt::Display| {
                eprintln!(
                    "strata suite: disk of {} ({n} layers) SKIPPED: {e}",
                    d.name()
                );
            };
            let target = tmp.path().join(format!("target-{}-{n}-{named}", d.name()));
            if let Err(e) = std::fs::create_dir(&target) {
                skipped(&e);
                continue;
            }
            let before = used_bytes(&holders);
            if let Err(e) =
                mounts::mount(&store, d, layers.clone(), &target).and_then(|m| m.unmount())
            {
                skipped(&e);
                continue;
            }
            let first_mount = used_bytes(&holders).saturating_sub(before);
            let before = used_bytes(&holders);
            match mounts::mount(&store, d, layers.clone(), &target) {
                Ok(m) => {
                    let allocated = used_bytes(&holders).saturating_sub(before);
                    let apparent = tree_bytes(m.target());
                    rows.push(Disk {
                        driver: d.name().to_string(),
                        image: Some(image.to_string()),
                        first_mount: Some(first_mount),
                        apparent: Some(apparent),
                        allocated: Some(allocated),
                        shared: Some(apparent.saturating_sub(allocated)),
                    });
                    let _ = m.unmount();
                }
                Err(e) => skipped(&e),
            }
        }
    }
    rows
}

/// Bytes in use on the filesystems holding `paths` (each filesystem once), after syncing
/// them so delayed allocations are counted.
fn used_bytes(paths: &[PathBuf]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for p in paths {
        let Ok(m) = std::fs::metadata(p) else {
            continue;
        };
        if !seen.insert(m.dev()) {
            continue;
        }
        if let Ok(f) = std::fs::File::open(p) {
            let _ = nix::unistd::syncfs(&f);
        }
        if let Ok(st) = nix::sys::statvfs::statvfs(p) {
            total += (st.blocks() - st.blocks_free()) * st.fragment_size();
        }
    }
    total
}

/// Sum of the sizes of the regular files under `dir` (each inode once).
fn tree_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = std::collections::HashSet::new();
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.is_file() && seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

/// Builds and runs the criterion benchmarks of the source tree with their output in
/// `criterion_out` (emptied first, so only this run's benchmarks are in it), and returns them
/// as record benchmarks, with each group whose benchmark binary failed.
fn benches(
    quick: bool,
    criterion_out: &Path,
    out: &Path,
    ui: Ui,
) -> Result<(Vec<Benchmark>, Vec<Failed>), String> {
    let ws = workspace().ok_or("the benchmarks need strata's source tree (cargo bench), which is not where this binary was built")?;
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let profile = if quick { "quick" } else { "full" };
    ui.step("benchmarks: building (cargo bench --no-run; a few minutes the first time)");
    let build = ProgressBar::new_spinner();
    build.set_prefix("benchmarks");
    build.set_message("building (cargo bench --no-run; a few minutes the first time)");
    build.enable_steady_tick(Duration::from_millis(200));
    let st = Command::new(&cargo)
        .current_dir(&ws)
        .args(["bench", "-q", "-p", "strata-benches", "--no-run"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("cargo: {e}"))?;
    build.finish_and_clear();
    if !st.status.success() {
        return Err(format!(
            "cargo bench --no-run failed: {}",
            String::from_utf8_lossy(&st.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    // criterion writes where CRITERION_HOME says (else into the target dir, which
    // CARGO_TARGET_DIR may move): straight into the output, no stale runs mixed in.
    let _ = std::fs::remove_dir_all(criterion_out);
    std::fs::create_dir_all(criterion_out)
        .map_err(|e| format!("create {}: {e}", criterion_out.display()))?;
    let weight = |&(_, q, f): &(&str, u64, u64)| if quick { q } else { f };
    let pb = bar(BENCHES.iter().map(weight).sum(), "benchmarks");
    let log_path = out.join("bench.log");
    let log = if ui.verbose {
        None
    } else {
        Some(
            std::fs::File::create(&log_path)
                .map_err(|e| format!("create {}: {e}", log_path.display()))?,
        )
    };
    let where_output = if ui.verbose {
        "its output is above".to_string()
    } else {
        format!("its output is in {}", log_path.display())
    };
    let mut failed = Vec::new();
    for (i, bench) in BENCHES.iter().enumerate() {
        let name = bench.0;
        let started = Instant::now();
        pb.set_message(name.to_string());
        let stderr = match &log {
            Some(f) => Stdio::from(f.try_clone().map_err(|e| format!("bench.log: {e}"))?),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(&cargo)
            .current_dir(&ws)
            .args(["bench", "-q", "-p", "strata-benches", "--bench", name])
            .env("STRATA_BENCH", profile)
            .env("CRITERION_HOME", criterion_out)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cargo bench: {e}"))?;
        let mut measured = 0;
        if let Some(stdout) = child.stdout.take() {
            let mut log = log.as_ref();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if let Some(id) = line
                    .strip_prefix("Benchmarking ")
                    .and_then(|l| l.split(':').next())
                {
                    pb.set_message(id.to_string());
                }
                if line.contains("time:   [") {
                    measured += 1;
                }
            }
        }
        let status = child.wait().map_err(|e| format!("cargo bench: {e}"))?;
        if status.success() {
            ui.step(&format!(
                "benchmarks [{}/{}] {name}: {measured} measured in {:.0?}",
                i + 1,
                BENCHES.len(),
                started.elapsed()
            ));
        } else {
            pb.println(format!("strata suite: benchmark {name} failed ({status})"));
            if !ui.tty {
                eprintln!(
                    "strata suite: benchmarks [{}/{}] {name}: FAILED ({status}; {where_output})",
                    i + 1,
                    BENCHES.len()
                );
            }
            failed.push(Failed {
                what: format!("benchmark group {name}"),
                reason: format!("cargo bench --bench {name}: {status} ({where_output})"),
            });
        }
        pb.inc(weight(bench));
    }
    pb.finish_and_clear();
    let benchmarks = read_criterion_dir(criterion_out).map_err(|e| e.to_string())?;
    Ok((benchmarks, failed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_reports::record::Runner;

    fn record() -> ResultRecord {
        let mut r = ResultRecord::new(Runner {
            id: "r".into(),
            ..Runner::default()
        });
        r.conformance.push(Conformance {
            driver: "overlay".into(),
            case: "P-01".into(),
            status: Status::Pass,
            detail: None,
        });
        r
    }

    #[test]
    fn a_failed_case_a_failed_group_or_a_failed_check_fails_the_suite() {
        let check = Path::new("out/check.json");
        let mut r = record();
        assert_eq!(failures(&r, check), None);
        r.conformance[0].status = Status::Declared;
        assert_eq!(failures(&r, check), None);
        r.conformance[0].status = Status::Fail;
        assert_eq!(
            failures(&r, check).as_deref(),
            Some("1 conformance case(s) failed (see out/check.json)")
        );
        let mut r = record();
        r.failed.push(Failed {
            what: "benchmark group commit".into(),
            reason: "exit status: 101".into(),
        });
        r.failed.push(Failed {
            what: "strata check".into(),
            reason: "exit status: 1: strata: error: x.toml: line 3: bad".into(),
        });
        assert_eq!(
            failures(&r, check).as_deref(),
            Some(
                "benchmark group commit failed: exit status: 101; \
                 strata check failed: exit status: 1: strata: error: x.toml: line 3: bad"
            )
        );
    }
}
