//! The container runtime on the real kernel, as root: what the command sees inside, what the
//! host sees outside (nothing), exit statuses, bad input, hostile images, limits, the root
//! switch fallback, commits, and the timing spans. Each test runs in its own temp dir and
//! private mount namespace; the union mount is made there and removed by the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod container_support;

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use container_support::{Capture, ROOT_LISTING, app_layer, cgroup_lock, image, leftovers, sh};
use strata_runtime::container::{self, ContainerSpec, Exit, Limits, Namespace, Namespaces, Switch};
use strata_runtime::fixture::Layer;
use strata_runtime::model::CompareOptions;
use strata_runtime::mounts;

fn names(s: &str) -> Vec<String> {
    s.lines().map(str::to_string).collect()
}

fn tar_names(path: &Path) -> Vec<String> {
    common::tar_names(&fs::read(path).unwrap())
}

#[test]
fn inside_the_command_is_pid_1_with_its_hostname_its_own_proc_and_the_image_as_root() {
    let e = need_root!();
    let (img, app) = (image(&e.store, e.dir.path()), e.import(&app_layer()));
    let out = Capture::new(e.dir.path(), "out");
    let mut spec = sh(
        &[&img, &app],
        "echo $$; read h < /proc/sys/kernel/hostname; echo $h; cat /etc/hostname; \
         echo ---; ls /proc | busybox grep -E '^[0-9]+$'; echo ---; ls /",
        &out,
    );
    spec.hostname = Some("box-1".into());
    let (o, text) = container_support::run(&e.store, spec, &out);
    assert_eq!(o.exit, Exit::Code(0), "{text}");
    let parts: Vec<&str> = text.split("---\n").collect();
    assert_eq!(names(parts[0]), vec!["1", "box-1", "box-1"], "{text}");
    // Only the container's processes: sh (1), and ls and grep of the pipeline.
    let pids = names(parts[1]);
    assert!(pids.contains(&"1".to_string()), "{text}");
    assert!(
        pids.iter().all(|p| p.parse::<u32>().unwrap() < 10),
        "host processes in /proc: {pids:?}"
    );
    assert_eq!(names(parts[2]), ROOT_LISTING, "ls / is not the image");
    assert_eq!(o.switch, Switch::PivotRoot);
    assert!(leftovers(&e.store).is_empty(), "{:?}", leftovers(&e.store));
}

#[test]
fn writes_land_only_in_the_writable_layer() {
    let e = need_root!();
    let layers = vec![image(&e.store, e.dir.path()), e.import(&app_layer())];
    let before = common::layer_trees(&layers);
    for driver in common::drivers() {
        let out = Capture::new(e.dir.path(), &format!("out-{}", driver.name()));
        let commit = e.dir.path().join(format!("c-{}.tar", driver.name()));
        let mut spec = sh(
            &[&layers[0], &layers[1]],
            "echo new > /new && echo changed > /etc/motd && busybox rm /image-marker && \
             busybox mkdir /d && echo x > /d/f && cat /etc/motd",
            &out,
        );
        spec.driver = driver.name().into();
        spec.commit = Some(commit.clone());
        let (o, text) = container_support::run(&e.store, spec, &out);
        assert_eq!(o.exit, Exit::Code(0), "{}: {text}", driver.name());
        assert_eq!(text, "changed\n");
        assert_eq!(
            tar_names(&commit),
            vec![".wh.image-marker", "d/", "d/f", "etc/", "etc/motd", "new"],
            "{}",
            driver.name()
        );
        for (i, (x, y)) in before.iter().zip(&common::layer_trees(&layers)).enumerate() {
            let diffs = x.compare(y, &CompareOptions::default());
            assert!(diffs.is_empty(), "layer {i} changed: {diffs:?}");
        }
    }
}

#[test]
fn commit_after_run_holds_the_writes_and_no_init_layer_file() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    for driver in common::drivers() {
        let out = Capture::new(e.dir.path(), &format!("out-{}", driver.name()));
        let commit = e.dir.path().join(format!("c-{}.tar", driver.name()));
        let mut spec = sh(
            &[&img],
            "echo '10.0.0.1 evil' >> /etc/hosts && echo other > /etc/hostname && \
             echo 'nameserver 10.9.9.9' > /etc/resolv.conf && echo data > /data && \
             echo p > /etc/passwd",
            &out,
        );
        spec.driver = driver.name().into();
        spec.commit = Some(commit.clone());
        let (o, text) = container_support::run(&e.store, spec, &out);
        assert_eq!(o.exit, Exit::Code(0), "{text}");
        assert!(o.committed.is_some());
        assert_eq!(
            tar_names(&commit),
            vec!["data", "etc/", "etc/passwd"],
            "{}: init layer files must never be committed",
            driver.name()
        );
    }
    // Only hosts edits: not even etc/ is left.
    let out = Capture::new(e.dir.path(), "out-hosts");
    let commit = e.dir.path().join("hosts-only.tar");
    let mut spec = sh(&[&img], "echo '10.0.0.1 evil' >> /etc/hosts", &out);
    spec.commit = Some(commit.clone());
    container_support::run(&e.store, spec, &out);
    assert!(tar_names(&commit).is_empty(), "{:?}", tar_names(&commit));
}

#[test]
fn the_host_mount_table_is_identical_after_every_run_and_every_failure() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let hostile = e.import(&Layer::new().symlink("proc", "/"));
    let before = common::mountinfo();
    for switch in Switch::ALL {
        for driver in common::drivers() {
            let out = Capture::new(e.dir.path(), "out");
            let mut spec = sh(&[&img], "ls / > /dev/null", &out);
            spec.switch = switch;
            spec.driver = driver.name().into();
            let (o, text) = container_support::run(&e.store, spec, &out);
            assert_eq!(o.exit, Exit::Code(0), "{switch} {}: {text}", driver.name());
            assert_eq!(common::mountinfo(), before, "{switch} {}", driver.name());
        }
    }
    // A command that cannot run, and a setup that fails.
    let out = Capture::new(e.dir.path(), "out");
    let (o, _) = container_support::run(
        &e.store,
        ContainerSpec::new(vec![img.digest().to_string()], vec!["/nope".into()]),
        &out,
    );
    assert_eq!(o.code, 127);
    assert_eq!(common::mountinfo(), before);
    let mut spec = sh(&[&img, &hostile], "true", &out);
    spec.init_layer = false;
    assert!(container::run(&e.store, spec).is_err());
    assert_eq!(common::mountinfo(), before, "a failed setup left a mount");
    assert!(leftovers(&e.store).is_empty(), "{:?}", leftovers(&e.store));
}

#[test]
fn a_tmpfs_mounted_inside_is_invisible_outside() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let out = Capture::new(e.dir.path(), "out");
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    let mut spec = sh(
        &[&img],
        "busybox mount -t tmpfs inside /tmp && echo x > /tmp/f && \
         busybox grep -c ' /tmp ' /proc/self/mountinfo && read line; exit 0",
        &out,
    );
    spec.stdio[0] = Some(rd);
    let before = common::mountinfo();
    let c = container::start(&e.store, spec).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.text().trim() != "1" {
        assert!(
            Instant::now() < deadline,
            "the container never mounted: {}",
            out.text()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let target = c.target().unwrap().to_path_buf();
    // While it runs, the caller's table shows the union mount and nothing else: no tmpfs.
    let during = common::mountinfo();
    let new: Vec<&str> = during.lines().filter(|l| !before.contains(l)).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert!(new[0].contains(&target.display().to_string()) && new[0].contains("overlay"));
    assert!(!target.join("tmp/f").exists(), "the inner tmpfs leaked");
    let host = fs::read_to_string("/proc/1/mountinfo").unwrap();
    assert!(!host.contains(" inside "), "the host sees the tmpfs");
    drop(wr);
    let o = c.wait().unwrap();
    assert_eq!(o.exit, Exit::Code(0));
    assert_eq!(common::mountinfo(), before);
}

#[test]
fn exit_codes_and_signals_propagate() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let out = Capture::new(e.dir.path(), "out");
    let (o, _) = container_support::run(&e.store, sh(&[&img], "exit 7", &out), &out);
    assert_eq!((o.exit, o.code), (Exit::Code(7), 7));
    // Without a pid namespace the shell is no namespace init and can die of SIGTERM.
    let mut spec = sh(&[&img], "kill -TERM $$", &out);
    spec.namespaces = Namespaces::of(&[Namespace::Mount, Namespace::Uts, Namespace::Ipc]);
    let (o, _) = container_support::run(&e.store, spec, &out);
    assert_eq!((o.exit, o.code), (Exit::Signal(15), 143));
    // As pid 1 it ignores SIGTERM from its own namespace, but not SIGKILL from outside.
    let (rd, wr) = rustix::pipe::pipe().unwrap();
    let mut spec = sh(&[&img], "kill -TERM $$; read x", &out);
    spec.stdio[0] = Some(rd);
    let c = container::start(&e.store, spec).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.kill(libc::SIGKILL).unwrap();
    let o = c.wait().unwrap();
    drop(wr);
    assert_eq!((o.exit, o.code), (Exit::Signal(9), 137));
}

#[test]
fn a_command_that_cannot_run_exits_127_or_126_with_a_clear_message() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let extra = e.import(
        &Layer::new()
            .file("script", "#!/no/such/interpreter\n")
            .mode(0o755)
            .file("data", "not a program\n")
            .mode(0o644),
    );
    let layers = vec![img.digest().to_string(), extra.digest().to_string()];
    let cases: [(&str, i32, &str); 4] = [
        ("/nope", 127, "command /nope not found in the container"),
        (
            "nope",
            127,
            "command \"nope\" not found in the container (searched PATH /usr/local/sbin:",
        ),
        (
            "/script",
            127,
            "its ELF interpreter or #! interpreter is missing",
        ),
        ("/data", 126, "cannot execute /data: Permission denied"),
    ];
    let before = common::mountinfo();
    for (cmd, code, msg) in cases {
        let o = container::run(
            &e.store,
            ContainerSpec::new(layers.clone(), vec![cmd.into()]),
        )
        .unwrap();
        match &o.exit {
            Exit::ExecFailed { code: c, message } => {
                assert_eq!(*c, code, "{cmd}");
                assert!(message.contains(msg), "{cmd}: {message}");
            }
            other => panic!("{cmd}: {other:?}"),
        }
        assert_eq!(o.code, code);
    }
    assert_eq!(common::mountinfo(), before);
}

#[test]
fn bad_input_is_refused_before_anything_is_made() {
    let e = need_root!();
    let _lock = cgroup_lock();
    let img = image(&e.store, e.dir.path()).digest().to_string();
    let junk = e.dir.path().join("junk.tar");
    fs::write(&junk, "not a tar at all\n".repeat(64)).unwrap();
    let before = common::mountinfo();
    let cgroups = container_support::strata_cgroups();
    let cmd = || vec!["/bin/true".to_string()];
    let limits = Limits {
        memory: Some(64 << 20),
        pids: Some(10),
    };
    type Tweak = Box<dyn Fn(&mut ContainerSpec)>;
    let cases: Vec<(Tweak, &str)> = vec![
        (Box::new(|s| s.layers.clear()), "no layers"),
        (Box::new(|s| s.command.clear()), "no command"),
        (
            Box::new(|s| s.namespaces = Namespaces::of(&[Namespace::Pid])),
            "the mount namespace is required",
        ),
        (
            Box::new(|s| {
                s.namespaces = Namespaces::of(&[Namespace::Mount]);
                s.hostname = Some("h".into());
            }),
            "--hostname needs the uts namespace",
        ),
        (
            Box::new(|s| s.hostname = Some("a b".into())),
            "invalid hostname",
        ),
        (
            Box::new(|s| s.driver = "zfs".into()),
            "unknown driver \"zfs\"",
        ),
        (
            Box::new(|s| s.layers = vec![format!("sha256:{}", "ab".repeat(32))]),
            "not in the store",
        ),
        (
            Box::new(move |s| s.layers = vec![junk.display().to_string()]),
            "junk.tar",
        ),
        (
            Box::new(|s| s.limits.memory = Some(4096)),
            "below 1m no process can start",
        ),
        (
            Box::new(|s| s.env = vec!["NOVALUE".into()]),
            "not NAME=value",
        ),
        (
            Box::new(|s| s.commit = Some("/no/such/dir/out.tar".into())),
            "/no/such/dir",
        ),
    ];
    for (tweak, what) in cases {
        let mut spec = ContainerSpec::new(vec![img.clone()], cmd());
        spec.limits = limits;
        tweak(&mut spec);
        let err = container::run(&e.store, spec).unwrap_err().to_string();
        assert!(err.contains(what), "{err:?} does not say {what:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(common::mountinfo(), before, "{what}: a mount was left");
        assert!(
            leftovers(&e.store).is_empty(),
            "{what}: {:?}",
            leftovers(&e.store)
        );
        assert_eq!(
            container_support::strata_cgroups(),
            cgroups,
            "{what}: a cgroup was left"
        );
    }
    // Unknown names, as the command line gives them.
    let err = "mount,bogus".parse::<Namespaces>().unwrap_err().to_string();
    assert!(err.contains("unknown namespace \"bogus\""), "{err}");
    let err = "pivot".parse::<Switch>().unwrap_err().to_string();
    assert!(err.contains("unknown root switch \"pivot\""), "{err}");
    let err = container::cgroup::parse_bytes("12x")
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid --memory \"12x\""), "{err}");
}

#[test]
fn a_root_or_target_that_is_not_writable_is_refused() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path()).digest().to_string();
    let ro = e.fresh_dir("ro");
    fs::create_dir(ro.join("empty")).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &ro,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    fs::create_dir(ro.join("empty")).unwrap();
    nix::mount::mount(
        None::<&str>,
        &ro,
        None::<&str>,
        nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .unwrap();
    let before = common::mountinfo();
    for target in [ro.join("missing"), ro.join("empty")] {
        let mut spec = ContainerSpec::new(vec![img.clone()], vec!["/bin/true".into()]);
        spec.target = Some(target.clone());
        let err = container::run(&e.store, spec).unwrap_err().to_string();
        assert!(
            err.contains(&target.display().to_string()) && err.contains("Read-only file system"),
            "{err}"
        );
    }
    // A store whose root is read-only.
    let ro_store = strata_runtime::store::Store::open(&ro.join("empty"));
    if let Ok(s) = ro_store {
        let err = container::run(
            &s,
            ContainerSpec::new(vec![img.clone()], vec!["/bin/true".into()]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("not writable"), "{err}");
    }
    assert_eq!(common::mountinfo(), before);
    nix::mount::umount(&ro).unwrap();
}

#[test]
fn a_rootfs_whose_proc_and_dev_are_symlinks_mounts_nothing_outside_it() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let host_dir = e.fresh_dir("host-tmp");
    fs::write(host_dir.join("marker"), "host\n").unwrap();
    let hostile = e.import(
        &Layer::new()
            .symlink("proc", "/")
            .symlink("dev", &host_dir.display().to_string())
            .symlink("sys", "../../../../../sys"),
    );
    let before = common::mountinfo();
    // With the init layer: plain directories replace the symlinks, as in Docker.
    for switch in Switch::ALL {
        let out = Capture::new(e.dir.path(), "out");
        let mut spec = sh(
            &[&img, &hostile],
            "cat /proc/1/comm; ls -l /dev/null; ls /dev | busybox wc -l; ls / | busybox wc -l",
            &out,
        );
        spec.switch = switch;
        let (o, text) = container_support::run(&e.store, spec, &out);
        assert_eq!(o.exit, Exit::Code(0), "{switch}: {text}");
        let lines = names(&text);
        assert_eq!(lines[0], "sh", "{switch}: {text}");
        assert!(lines[1].starts_with('c'), "{switch}: {text}");
        assert_eq!(common::mountinfo(), before, "{switch}");
        assert_eq!(
            fs::read_dir(&host_dir).unwrap().count(),
            1,
            "{switch}: something was made in the host directory"
        );
    }
    // Without it: refused, naming the symlink; nothing mounted anywhere.
    for (layer, what) in [
        (
            Layer::new().symlink("proc", "/"),
            "/proc in the image is a symlink",
        ),
        (
            Layer::new().symlink("dev", &host_dir.display().to_string()),
            "/dev in the image is a symlink",
        ),
        (
            Layer::new().file("sys", "x"),
            "/sys in the image is a symlink or not a plain directory",
        ),
    ] {
        let l = e.import(&layer);
        let out = Capture::new(e.dir.path(), "out");
        let mut spec = sh(&[&img, &l], "true", &out);
        spec.init_layer = false;
        let err = container::run(&e.store, spec).unwrap_err().to_string();
        assert!(err.contains(what), "{err}");
        assert_eq!(common::mountinfo(), before);
        assert_eq!(fs::read_dir(&host_dir).unwrap().count(), 1);
    }
    assert!(leftovers(&e.store).is_empty());
}

#[test]
fn no_fd_above_2_reaches_the_container_and_its_cwd_and_root_are_the_rootfs() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    // An fd without close-on-exec in the caller: it must still not reach the container.
    let leak: OwnedFd = fs::File::open("/etc/hostname").unwrap().into();
    // SAFETY: clearing FD_CLOEXEC on our own fd.
    unsafe { libc::fcntl(leak.as_raw_fd(), libc::F_SETFD, 0) };
    for switch in Switch::ALL {
        let out = Capture::new(e.dir.path(), "out");
        let mut spec = sh(
            &[&img],
            "ls /proc/$$/fd; busybox readlink /proc/$$/cwd; busybox readlink /proc/$$/root; true",
            &out,
        );
        spec.switch = switch;
        let (o, text) = container_support::run(&e.store, spec, &out);
        assert_eq!(o.exit, Exit::Code(0), "{text}");
        assert_eq!(names(&text), vec!["0", "1", "2", "/", "/"], "{switch}");
    }
    drop(leak);
}

#[test]
fn a_pids_limit_stops_a_fork_loop() {
    let e = need_root!();
    let _lock = cgroup_lock();
    let img = image(&e.store, e.dir.path());
    let before = container_support::strata_cgroups();
    let out = Capture::new(e.dir.path(), "out");
    let mut spec = sh(
        &[&img],
        "i=0; while [ $i -lt 64 ]; do busybox sleep 30 & i=$((i+1)); done; echo survived",
        &out,
    );
    spec.limits.pids = Some(8);
    let t = Instant::now();
    let (o, text) = container_support::run(&e.store, spec, &out);
    assert_ne!(o.code, 0, "{text}");
    assert!(!text.contains("survived"), "{text}");
    assert!(o.pids_limit_hits > 0, "{o:?}");
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "the sleepers outlived pid 1"
    );
    assert_eq!(
        container_support::strata_cgroups(),
        before,
        "the cgroup was left"
    );
}

#[test]
fn a_memory_limit_ends_a_memory_hog_with_an_oom_kill_reported_as_such() {
    let e = need_root!();
    let _lock = cgroup_lock();
    let img = image(&e.store, e.dir.path());
    let before = container_support::strata_cgroups();
    let mut spec = ContainerSpec::new(
        vec![img.digest().to_string()],
        [
            "/bin/busybox",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=256M",
            "count=1",
        ]
        .map(String::from)
        .to_vec(),
    );
    spec.limits.memory = Some(32 << 20);
    let o = container::run(&e.store, spec).unwrap();
    assert_eq!((o.exit.clone(), o.code), (Exit::Signal(9), 137), "{o:?}");
    assert!(o.oom_killed, "{o:?}");
    assert!(o.cgroup.is_some());
    // Under the limit, the same command passes.
    let mut spec = ContainerSpec::new(
        vec![img.digest().to_string()],
        [
            "/bin/busybox",
            "dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=1M",
            "count=1",
        ]
        .map(String::from)
        .to_vec(),
    );
    spec.limits.memory = Some(32 << 20);
    spec.stdio[2] = Some(
        fs::File::create(e.dir.path().join("dd.err"))
            .unwrap()
            .into(),
    );
    let o = container::run(&e.store, spec).unwrap();
    assert_eq!(o.exit, Exit::Code(0));
    assert!(!o.oom_killed);
    assert_eq!(
        container_support::strata_cgroups(),
        before,
        "the cgroup was left"
    );
}

#[test]
fn a_cgroup_on_v2_is_created_joined_and_removed_with_what_is_left_inside() {
    let e = need_root!();
    let _lock = cgroup_lock();
    let unified = Path::new("/sys/fs/cgroup/unified");
    let root = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Path::new("/sys/fs/cgroup")
    } else if unified.join("cgroup.controllers").exists() {
        unified
    } else {
        strata_runtime::require::skip_or_fail(
            strata_runtime::require::CGROUP2,
            "no cgroup2 hierarchy here (/sys/fs/cgroup or /sys/fs/cgroup/unified)",
        );
        return;
    };
    let _ = &e;
    let layout = container::cgroup::Layout::V2 {
        root: root.to_path_buf(),
    };
    let cg = container::Cgroup::create(&layout, "test-v2", &Limits::default()).unwrap();
    let dir = cg.dirs()[0].clone();
    assert!(dir.is_dir());
    let mut child = std::process::Command::new("/bin/sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let procs = cg.procs_files().unwrap();
    let mut f = fs::File::from(procs.into_iter().next().unwrap());
    f.write_all(child.id().to_string().as_bytes()).unwrap();
    assert!(
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap()
            .contains(&child.id().to_string())
    );
    // Removal kills what is still inside.
    cg.remove().unwrap();
    assert!(!dir.exists());
    let st = child.wait().unwrap();
    assert!(!st.success());
    if !root.join("cgroup.controllers").exists()
        || !fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap()
            .contains("memory")
    {
        let err = container::Cgroup::create(
            &layout,
            "test-v2-mem",
            &Limits {
                memory: Some(1 << 30),
                pids: None,
            },
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no memory controller"), "{err}");
        assert!(!root.join("strata-test-v2-mem").exists());
    }
}

#[test]
fn pivot_root_einval_falls_back_to_move_and_says_why() {
    let e = need_root!();
    // A chroot into a directory that is not a mount point makes pivot_root fail with EINVAL,
    // as an initramfs root does. The thread's fs_struct is its own (unshare(CLONE_NEWNS)).
    let jail = e.fresh_dir("jail");
    let store = strata_runtime::store::Store::open(&jail.join("root")).unwrap();
    let img = image(&store, &jail).digest().to_string();
    fs::create_dir(jail.join("proc")).unwrap();
    nix::mount::mount(
        Some("/proc"),
        &jail.join("proc"),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
        None::<&str>,
    )
    .unwrap();
    let out_path = jail.join("out");
    fs::write(&out_path, "").unwrap();
    let old_root: OwnedFd = fs::File::open("/").unwrap().into();
    let chrooted = |f: &dyn Fn() -> strata_runtime::Result<container::Outcome>| {
        nix::unistd::chroot(&jail).unwrap();
        std::env::set_current_dir("/").unwrap();
        let r = f();
        // Back to the real root before asserting anything.
        nix::unistd::fchdir(&old_root).unwrap();
        nix::unistd::chroot(".").unwrap();
        std::env::set_current_dir("/").unwrap();
        r
    };
    let run = || {
        let store = strata_runtime::store::Store::open(Path::new("/root"))?;
        let mut spec = ContainerSpec::new(
            vec![img.clone()],
            ["/bin/sh", "-c", "echo $$; ls /proc/1/ns > /dev/null; ls /"]
                .map(String::from)
                .to_vec(),
        );
        spec.stdio[1] = Some(
            fs::OpenOptions::new()
                .append(true)
                .open("/out")
                .map_err(|e| strata_runtime::Error::io("open", "/out", e))?
                .into(),
        );
        container::run(&store, spec)
    };
    // When the mount holding the chroot is shared, making / private is impossible from
    // inside the chroot and the container's mounts would propagate out: refused. (Shared
    // here means shared with this test's own private namespace only.)
    let before = common::mountinfo();
    let ms = |f| nix::mount::mount(None::<&str>, "/", None::<&str>, f, None::<&str>).unwrap();
    ms(nix::mount::MsFlags::MS_SHARED);
    let refused = chrooted(&run);
    ms(nix::mount::MsFlags::MS_PRIVATE);
    let err = refused.unwrap_err().to_string();
    assert!(
        err.contains("the current root is not a mount point"),
        "{err}"
    );
    assert_eq!(common::mountinfo(), before);
    let result = chrooted(&run);
    nix::mount::umount2(&jail.join("proc"), nix::mount::MntFlags::MNT_DETACH).unwrap();
    let o = result.unwrap();
    assert_eq!(o.exit, Exit::Code(0));
    assert_eq!(o.switch, Switch::Move);
    let why = o.fallback.unwrap();
    assert!(
        why.contains("Invalid argument") && why.contains("MS_MOVE"),
        "{why}"
    );
    let text = fs::read_to_string(&out_path).unwrap();
    assert!(text.starts_with("1\n") && text.contains("usr\n"), "{text}");
}

#[test]
fn a_user_namespace_maps_ids_and_still_gets_devices_and_sys() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    for with_net in [true, false] {
        let out = Capture::new(e.dir.path(), "out");
        let mut spec = sh(
            &[&img],
            "cat /proc/self/uid_map; ls -l /dev/null; ls /sys/kernel > /dev/null && echo sys; \
             echo x > /dev/null && echo devnull",
            &out,
        );
        let mut ns = vec![
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Pid,
            Namespace::User,
        ];
        if with_net {
            ns.push(Namespace::Net);
        }
        spec.namespaces = Namespaces::of(&ns);
        let (o, text) = container_support::run(&e.store, spec, &out);
        assert_eq!(o.exit, Exit::Code(0), "net {with_net}: {text}");
        let lines = names(&text);
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            vec!["0", "0", "4294967295"],
            "{text}"
        );
        assert!(lines[1].starts_with('c'), "{text}");
        assert_eq!(&lines[2..], ["sys", "devnull"], "{text}");
        assert!(o.timings.get("ns:user_maps").is_some());
    }
}

#[test]
fn a_network_namespace_has_only_loopback_and_it_is_up() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let out = Capture::new(e.dir.path(), "out");
    let (o, text) = container_support::run(
        &e.store,
        sh(
            &[&img],
            "ls /sys/class/net; cat /sys/class/net/lo/flags",
            &out,
        ),
        &out,
    );
    assert_eq!(o.exit, Exit::Code(0), "{text}");
    let lines = names(&text);
    assert_eq!(lines[0], "lo", "{text}");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "lo is down: {text}");
}

#[test]
fn timings_cover_every_phase_on_one_time_line() {
    let e = need_root!();
    let _lock = cgroup_lock();
    let img = image(&e.store, e.dir.path());
    let mut spec = ContainerSpec::new(vec![img.digest().to_string()], vec!["/bin/true".into()]);
    spec.limits.pids = Some(100);
    spec.commit = Some(e.dir.path().join("c.tar"));
    let o = container::run(&e.store, spec).unwrap();
    let t = &o.timings;
    for phase in [
        "layers",
        "init_layer",
        "union_mount",
        "cgroup",
        "clone",
        "ns:pid",
        "cgroup_attach",
        "ns:mount",
        "ns:uts",
        "ns:ipc",
        "ns:net",
        "propagation",
        "hostname",
        "loopback_up",
        "bind_root",
        "mount:proc",
        "mount:dev",
        "mount:sys",
        "mounts",
        "root_switch",
        "pre_exec",
        "exec",
        "wait",
        "commit",
        "teardown",
    ] {
        assert!(t.get(phase).is_some(), "no span {phase}: {t:?}");
    }
    let end = |p: &str| t.get(p).map(|s| s.start_ns + s.ns).unwrap();
    let start = |p: &str| t.get(p).map(|s| s.start_ns).unwrap();
    assert!(start("ns:mount") >= start("clone"));
    assert!(start("root_switch") >= end("mounts"));
    assert!(start("exec") >= end("pre_exec"));
    assert!(start("teardown") >= end("wait"));
    assert!(t.total_ns >= end("teardown"));
    let json = serde_json::to_value(t).unwrap();
    assert!(json["spans"][0]["ns"].is_u64());
}

#[test]
fn keep_leaves_the_mount_and_writable_layer_for_a_later_commit() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let out = Capture::new(e.dir.path(), "out");
    let before = common::mountinfo();
    let mut spec = sh(&[&img], "echo kept > /kept", &out);
    spec.keep = true;
    let (o, _) = container_support::run(&e.store, spec, &out);
    let rec = o.kept.unwrap();
    assert_eq!(
        fs::read_to_string(rec.target.join("kept")).unwrap(),
        "kept\n"
    );
    let m = mounts::open(&e.store, &rec.target).unwrap();
    let tar = common::commit(&m);
    assert_eq!(common::tar_names(&tar), vec!["kept"]);
    // An opened mount holds its lock: another unmount waits for it to be dropped.
    drop(m);
    mounts::unmount_target(&e.store, &rec.target).unwrap();
    fs::remove_dir(&rec.target).unwrap();
    assert_eq!(common::mountinfo(), before);
}

#[test]
fn dev_is_minimal_with_devpts_and_shm_and_sys_is_read_only() {
    let e = need_root!();
    let img = image(&e.store, e.dir.path());
    let out = Capture::new(e.dir.path(), "out");
    let (o, text) = container_support::run(
        &e.store,
        sh(
            &[&img],
            "ls /dev; echo ---; busybox stat -c '%A %t:%T' /dev/null /dev/zero /dev/full \
             /dev/random /dev/urandom /dev/tty /dev/pts/ptmx; busybox stat -c %A /dev/shm; \
             echo ok > /dev/shm/f && cat /dev/shm/f; echo x > /dev/null && echo null; \
             busybox head -c 4 /dev/zero | busybox wc -c; \
             busybox touch /sys/kernel/x 2>/dev/null || echo sys-ro; \
             busybox grep -E ' /(proc|dev|dev/pts|sys) ' /proc/self/mountinfo | busybox wc -l",
            &out,
        ),
        &out,
    );
    assert_eq!(o.exit, Exit::Code(0), "{text}");
    let (dev, rest) = text.split_once("---\n").unwrap();
    assert_eq!(
        names(dev),
        [
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ]
    );
    assert_eq!(
        names(rest),
        [
            "crw-rw-rw- 1:3",
            "crw-rw-rw- 1:5",
            "crw-rw-rw- 1:7",
            "crw-rw-rw- 1:8",
            "crw-rw-rw- 1:9",
            "crw-rw-rw- 5:0",
            "crw-rw-rw- 5:2",
            "drwxrwxrwt",
            "ok",
            "null",
            "4",
            "sys-ro",
            "4",
        ],
        "{text}"
    );
}
