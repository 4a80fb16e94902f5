//! Support for the image tests (runtime and harness): images built with umoci, a local
//! docker-registry, a full listing of a store, and tool checks that print why a test skips.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// True when every tool is on PATH; else a printed skip, or a failure when `STRATA_REQUIRE`
/// names a missing one.
pub use strata_runtime::require::tools;

/// Runs a command that must succeed; returns its stdout.
pub fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An OCI image layout built with umoci.
pub struct Umoci {
    pub layout: PathBuf,
    work: PathBuf,
    n: std::cell::Cell<u32>,
}

impl Umoci {
    /// `umoci init --layout DIR` and an empty image tagged `empty`.
    pub fn init(layout: &Path, work: &Path) -> Umoci {
        run(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(layout));
        let u = Umoci {
            layout: layout.to_path_buf(),
            work: work.to_path_buf(),
            n: std::cell::Cell::new(0),
        };
        run(Command::new("umoci")
            .args(["new", "--image"])
            .arg(u.image("empty")));
        u
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.layout.display())
    }

    fn fresh(&self, what: &str) -> PathBuf {
        let n = self.n.get();
        self.n.set(n + 1);
        self.work.join(format!("{what}-{n}"))
    }

    /// `umoci unpack` of `tag` into a fresh bundle; returns its rootfs.
    pub fn unpack(&self, tag: &str) -> PathBuf {
        let bundle = self.fresh("bundle");
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(self.image(tag))
            .arg(&bundle));
        bundle.join("rootfs")
    }

    /// Unpacks `from`, lets `edit` change the rootfs, repacks it as `to` (one new layer).
    pub fn layer(&self, from: &str, to: &str, edit: impl FnOnce(&Path)) {
        let rootfs = self.unpack(from);
        edit(&rootfs);
        run(Command::new("umoci")
            .args(["repack", "--image"])
            .arg(self.image(to))
            .arg(rootfs.parent().unwrap()));
    }
}

pub fn write(p: &Path, content: &str, mode: u32) {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d).unwrap();
    }
    fs::write(p, content).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).unwrap();
}

pub fn mkdir(p: &Path, mode: u32) {
    fs::create_dir_all(p).unwrap();
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

/// The two-layer image of the tests, tagged `v1` (one layer) and `v2` (two): files with
/// modes and owners, setuid, symlinks (one a parent: `lib -> usr/lib`), hard links, a fifo;
/// then deletions of a file and a directory, chmod, chown, a rewritten file and symlink, new
/// files (one written through `lib`).
pub fn two_layer_image(dir: &Path) -> Umoci {
    let u = Umoci::init(&dir.join("layout"), dir);
    u.layer("empty", "v1", |r| {
        mkdir(&r.join("etc"), 0o755);
        write(&r.join("etc/hosts"), "127.0.0.1 localhost\n", 0o644);
        write(&r.join("etc/shadow"), "root:*:19000::::::\n", 0o640);
        chown(&r.join("etc/shadow"), 0, 42);
        write(&r.join("usr/bin/tool"), "#!/bin/sh\necho tool\n", 0o755);
        write(&r.join("usr/bin/suid"), "suid\n", 0o4755);
        write(&r.join("usr/lib/libx.so.1"), "ELF?\n", 0o644);
        std::os::unix::fs::symlink("libx.so.1", r.join("usr/lib/libx.so")).unwrap();
        std::os::unix::fs::symlink("usr/lib", r.join("lib")).unwrap();
        mkdir(&r.join("home/user"), 0o700);
        chown(&r.join("home/user"), 1000, 1000);
        write(&r.join("home/user/.profile"), "PS1='$ '\n", 0o600);
        chown(&r.join("home/user/.profile"), 1000, 1000);
        write(&r.join("data/a"), "shared inode\n", 0o644);
        fs::hard_link(r.join("data/a"), r.join("data/b")).unwrap();
        write(&r.join("opt/old/1"), "one\n", 0o644);
        write(&r.join("opt/old/2"), "two\n", 0o644);
        mkdir(&r.join("var"), 0o755);
        nix::unistd::mkfifo(
            &r.join("var/fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o620),
        )
        .unwrap();
    });
    u.layer("v1", "v2", |r| {
        fs::remove_file(r.join("etc/shadow")).unwrap();
        fs::remove_dir_all(r.join("opt/old")).unwrap();
        fs::set_permissions(r.join("usr/bin/tool"), fs::Permissions::from_mode(0o700)).unwrap();
        chown(&r.join("home/user/.profile"), 2000, 2000);
        write(&r.join("etc/hosts"), "127.0.0.1 localhost app\n", 0o644);
        fs::remove_file(r.join("usr/lib/libx.so")).unwrap();
        write(&r.join("usr/lib/libx.so.2"), "ELF2\n", 0o644);
        std::os::unix::fs::symlink("libx.so.2", r.join("usr/lib/libx.so")).unwrap();
        write(&r.join("lib/added"), "through the symlink\n", 0o644);
        write(&r.join("opt/new/file"), "new\n", 0o644);
    });
    u
}

/// Every path under `root` with kind, mode, size and content digest: to show a store is
/// unchanged.
pub fn listing(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let what = if m.is_file() {
            let mut h = Vec::new();
            fs::File::open(&p).unwrap().read_to_end(&mut h).unwrap();
            format!("file {:o} {}", m.mode(), strata_runtime::Digest::of(&h))
        } else if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            format!("dir {:o}", m.mode())
        } else {
            format!("other {:o} {}", m.mode(), m.rdev())
        };
        out.insert(rel, what);
    }
    out
}

/// Bytes allocated under `dir`, as `du -s -B1` counts them.
pub fn du(dir: &Path) -> u64 {
    let out = run(Command::new("du").arg("-s").arg("-B1").arg(dir));
    out.split_whitespace().next().unwrap().parse().unwrap()
}

/// A docker-registry on 127.0.0.1, storing in the test's temp dir; killed when dropped.
pub struct Registry {
    child: Child,
    ip: String,
    pub port: u16,
}

impl Registry {
    pub fn start(dir: &Path) -> Registry {
        Registry::start_with(dir, "")
    }

    /// [`Registry::start`] with more YAML for its configuration (e.g. an `auth:` section).
    pub fn start_with(dir: &Path, extra_config: &str) -> Registry {
        Registry::start_on(dir, "127.0.0.1", extra_config)
    }

    /// [`Registry::start_with`] listening on `ip` (an address of this machine).
    pub fn start_on(dir: &Path, ip: &str, extra_config: &str) -> Registry {
        let port = TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = dir.join("registry-data");
        fs::create_dir_all(&data).unwrap();
        let config = dir.join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {ip}:{port}\n{extra_config}",
                data.display()
            ),
        )
        .unwrap();
        let log = fs::File::create(dir.join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Registry {
            child,
            ip: ip.to_string(),
            port,
        };
        let start = Instant::now();
        while !r.answers() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "docker-registry did not answer GET /v2/ within 20 s: {}",
                fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        r
    }

    /// [`Registry::start`] serving HTTPS only, with the certificate and key (PEM files) given.
    pub fn start_tls(dir: &Path, cert: &Path, key: &Path) -> Registry {
        Registry::start_with(
            dir,
            &format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
        )
    }

    /// True once `GET /v2/` answers 200 (or 401: it wants a token; or 400: it speaks only
    /// HTTPS, to which this plain request is an error).
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect((self.ip.as_str(), self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        let head = String::from_utf8_lossy(&buf[..n]);
        [
            "HTTP/1.0 200",
            "HTTP/1.1 200",
            "HTTP/1.0 401",
            "HTTP/1.1 401",
            "HTTP/1.0 400",
            "HTTP/1.1 400",
        ]
        .iter()
        .any(|s| head.starts_with(s))
    }

    pub fn host(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
