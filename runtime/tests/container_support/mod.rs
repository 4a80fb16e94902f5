//! Support for the container tests: a root filesystem made from host binaries (the built-in
//! image), imported once per test into the test's store; the command's output captured in a
//! file; cgroup leftovers found; one lock for the tests that make cgroups.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use strata_runtime::container::{self, ContainerSpec, Outcome};
use strata_runtime::fixture::Layer;
use strata_runtime::rootfs;
use strata_runtime::store::{Store, StoredLayer};

/// Host binaries of the test image: a shell, ls, cat, true, and busybox for the rest.
pub const BINARIES: [&str; 5] = [
    "/bin/sh",
    "/bin/ls",
    "/bin/cat",
    "/bin/true",
    "/bin/busybox",
];

/// Builds the image from host binaries under `dir` and imports it.
pub fn image(store: &Store, dir: &Path) -> StoredLayer {
    let out = dir.join("image");
    let tar = dir.join("image.tar");
    let bins: Vec<String> = BINARIES.iter().map(|s| s.to_string()).collect();
    rootfs::from_host_tar(&out, &bins, &tar).unwrap();
    store.import_path(&tar).unwrap().layer
}

/// A small layer over the image: a marker at the root and /etc/motd.
pub fn app_layer() -> Layer {
    Layer::new()
        .file("image-marker", "from the image\n")
        .dir("etc")
        .file("etc/motd", "hello\n")
}

/// What `ls /` shows in a container of image + app layer (the init layer adds nothing new
/// at the top).
pub const ROOT_LISTING: [&str; 11] = [
    "bin",
    "dev",
    "etc",
    "image-marker",
    "lib",
    "lib64",
    "proc",
    "root",
    "sys",
    "tmp",
    "usr",
];

/// A file that captures a command's output.
pub struct Capture {
    pub path: PathBuf,
}

impl Capture {
    pub fn new(dir: &Path, name: &str) -> Capture {
        let path = dir.join(name);
        fs::write(&path, "").unwrap();
        Capture { path }
    }

    /// A write fd for the container (appending).
    pub fn fd(&self) -> OwnedFd {
        OwnedFd::from(
            fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .unwrap(),
        )
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        fs::File::open(&self.path)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        s
    }
}

/// A spec running `sh -c SCRIPT` over `layers`, stdout and stderr into `out`.
pub fn sh(layers: &[&StoredLayer], script: &str, out: &Capture) -> ContainerSpec {
    let mut spec = ContainerSpec::new(
        layers.iter().map(|l| l.digest().to_string()).collect(),
        vec!["/bin/sh".into(), "-c".into(), script.into()],
    );
    spec.stdio = [None, Some(out.fd()), Some(out.fd())];
    spec
}

/// Runs a spec and returns the outcome with the captured output.
pub fn run(store: &Store, spec: ContainerSpec, out: &Capture) -> (Outcome, String) {
    let o = container::run(store, spec).unwrap();
    (o, out.text())
}

/// Serializes the tests that create cgroups or check that none is left.
pub fn cgroup_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every cgroup named `strata-*` where strata makes them (v1: under this process's cgroup
/// of each controller; v2: at the root of the unified hierarchy).
pub fn strata_cgroups() -> Vec<PathBuf> {
    let mut dirs = vec![
        PathBuf::from("/sys/fs/cgroup"),
        PathBuf::from("/sys/fs/cgroup/unified"),
    ];
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for l in own.lines() {
        let mut p = l.splitn(3, ':');
        let (_, ctrls, path) = (p.next(), p.next().unwrap_or(""), p.next().unwrap_or(""));
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            dirs.push(
                Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join(path.trim_start_matches('/')),
            );
        }
    }
    let mut found = Vec::new();
    for d in dirs {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with("strata-") {
                found.push(e.path());
            }
        }
    }
    found
}

/// The mount records and container directories left in a store.
pub fn leftovers(store: &Store) -> Vec<PathBuf> {
    ["mounts", "containers"]
        .iter()
        .flat_map(|d| {
            fs::read_dir(store.root().join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .collect()
}
