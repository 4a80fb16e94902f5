//! A minimal root filesystem from host binaries: each binary, its ELF interpreter and every
//! shared library it loads (recursively), found the way ld.so finds them, copied with the
//! symlinks on their paths (`/bin -> usr/bin`, `libfoo.so.1 -> libfoo.so.1.2`), plus a
//! minimal /etc/passwd and /etc/group and empty /proc, /dev, /sys and /tmp. strata's built-in
//! image: no download.
//!
//! Library search, per DT_NEEDED name of an object (ld.so(8)): a name with a `/` is a path;
//! else DT_RPATH of the object and of the executable (when the object has no DT_RUNPATH),
//! DT_RUNPATH, the directories of /etc/ld.so.conf (what ld.so.cache is built from), then the
//! default directories. `$ORIGIN` expands to the object's directory. LD_LIBRARY_PATH is
//! ignored on purpose: the host's environment must not change the image. A candidate of the
//! wrong ELF class or machine is skipped, as ld.so does. Libraries loaded with dlopen (NSS
//! modules, plugins) are not visible in the ELF headers: name them as extra BINs.
//!
//! The ELF headers are parsed (goblin) rather than asking `ldd`, which runs the binary's
//! interpreter on it.
//!
//! Every path is mirrored component by component: a host symlink is recreated as the same
//! symlink, and the walk continues at its target, so writes land only in real directories
//! strata made under the output, never through a symlink (an absolute one would point at the
//! host). All mtimes are set to 0, so the same binaries give the same layer digest.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::fsutil::{self, create_file_at, open_dir, open_dir_beneath};
use crate::model::Timespec;

/// Symlinks followed while resolving one path (as the kernel's 40).
const MAX_SYMLINKS: usize = 40;

/// What a build made.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Built {
    pub out: PathBuf,
    /// The binaries asked for, as host paths.
    pub binaries: Vec<String>,
    /// ELF interpreters, as host paths.
    pub interpreters: Vec<String>,
    /// Shared libraries, as resolved host paths.
    pub libraries: Vec<String>,
    /// Regular files, symlinks and directories written.
    pub files: usize,
    pub symlinks: usize,
    pub dirs: usize,
    /// Bytes of regular files.
    pub bytes: u64,
    /// `--tar`: where the layer tar went, and its digest (the layer's diff-id).
    pub tar: Option<PathBuf>,
    pub digest: Option<Digest>,
}

/// Builds a root filesystem from host binaries in `out` (absent or empty).
pub fn from_host(out: &Path, bins: &[String]) -> Result<Built> {
    if bins.is_empty() {
        return Err(Error::Usage(
            "no binaries given: name at least one, e.g. /bin/sh".into(),
        ));
    }
    let create = match fs::read_dir(out) {
        Ok(mut d) => {
            if d.next().is_some() {
                return Err(Error::Usage(format!(
                    "{}: output directory is not empty",
                    out.display()
                )));
            }
            false
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(Error::io("read", out, e)),
    };
    // Resolve every name first, so a typo fails before anything is written.
    let mut paths = Vec::new();
    for bin in bins {
        paths.push(find_binary(bin)?);
    }
    if create {
        fs::create_dir_all(out).map_err(|e| Error::io("create", out, e))?;
    }
    let mut b = Builder {
        out: out.to_path_buf(),
        root: open_dir(out)?,
        host: PathBuf::from("/"),
        made: HashSet::new(),
        parsed: HashSet::new(),
        conf_dirs: None,
        built: Built {
            out: out.to_path_buf(),
            ..Built::default()
        },
    };
    let mut exe_rpaths = Vec::new();
    for p in paths {
        b.built.binaries.push(p.display().to_string());
        let real = b.add(&p)?;
        b.add_deps(&real, &mut exe_rpaths, true)?;
    }
    b.skeleton()?;
    b.zero_mtimes()?;
    b.built.libraries.sort();
    b.built.libraries.dedup();
    b.built.interpreters.sort();
    b.built.interpreters.dedup();
    Ok(b.built)
}

/// [`from_host`], then the tree as a deterministic layer tar at `tar` (whose sha256 is the
/// layer's diff-id, the digest `strata layer import` prints for it).
pub fn from_host_tar(out: &Path, bins: &[String], tar: &Path) -> Result<Built> {
    let mut built = from_host(out, bins)?;
    let digest = crate::commit::write_file("rootfs --tar", tar, |w| {
        crate::layer::source::tar_directory(out, w)
    })?;
    built.tar = Some(tar.to_path_buf());
    built.digest = Some(digest);
    Ok(built)
}

struct Builder {
    out: PathBuf,
    root: OwnedFd,
    host: PathBuf,
    /// Output paths (relative) already made.
    made: HashSet<PathBuf>,
    /// Host files already parsed for dependencies.
    parsed: HashSet<PathBuf>,
    conf_dirs: Option<Vec<String>>,
    built: Built,
}

/// What an ELF file needs.
struct Needs {
    interp: Option<String>,
    needed: Vec<String>,
    rpath: Vec<String>,
    runpath: Vec<String>,
    class64: bool,
    machine: u16,
}

impl Builder {
    fn rel(p: &Path) -> PathBuf {
        p.strip_prefix("/").unwrap_or(p).to_path_buf()
    }

    /// Mirrors host path `p` (absolute) into the output; returns the resolved host path of
    /// the file it names.
    fn add(&mut self, p: &Path) -> Result<PathBuf> {
        let mut todo: VecDeque<String> = components(p);
        let mut cur = self.host.clone();
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                if cur != self.host {
                    cur.pop();
                }
                continue;
            }
            let host = cur.join(&c);
            let st = fs::symlink_metadata(&host).map_err(|e| Error::io("stat", &host, e))?;
            let ft = st.file_type();
            if ft.is_symlink() {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Error::io(
                        "resolve",
                        p,
                        io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target = fs::read_link(&host).map_err(|e| Error::io("readlink", &host, e))?;
                self.mirror_symlink(&host, &target)?;
                if target.is_absolute() {
                    cur = self.host.clone();
                }
                for (i, t) in components(&target).into_iter().enumerate() {
                    todo.insert(i, t);
                }
            } else if ft.is_dir() {
                self.mirror_dir(&host, st.mode())?;
                cur = host;
            } else if ft.is_file() {
                if !todo.is_empty() {
                    return Err(Error::io(
                        "resolve",
                        p,
                        io::Error::from_raw_os_error(libc::ENOTDIR),
                    ));
                }
                self.mirror_file(&host, st.mode(), st.len())?;
                cur = host;
            } else {
                return Err(Error::Usage(format!(
                    "{}: not a regular file, directory or symlink",
                    host.display()
                )));
            }
        }
        Ok(cur)
    }

    /// The output directory that will hold `rel`'s entry (its parent, already made real).
    fn parent_fd(&self, rel: &Path) -> Result<(OwnedFd, String)> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        let name = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let fd = open_dir_beneath(self.root.as_fd(), &parent.to_string_lossy())
            .map_err(|e| Error::io("open", self.out.join(parent), e))?;
        Ok((fd, name))
    }

    fn mirror_dir(&mut self, host: &Path, mode: u32) -> Result<()> {
        let rel = Self::rel(host);
        if rel.as_os_str().is_empty() || !self.made.insert(rel.clone()) {
            return Ok(());
        }
        let (dir, name) = self.parent_fd(&rel)?;
        match rustix::fs::mkdirat(
            &dir,
            name.as_str(),
            rustix::fs::Mode::from_raw_mode(mode & 0o7777),
        ) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::io("create", self.out.join(&rel), fsutil::ioe(e))),
        }
        // mkdir honours the umask: set the host's bits exactly.
        rustix::fs::chmodat(
            &dir,
            name.as_str(),
            rustix::fs::Mode::from_raw_mode(mode & 0o7777),
            rustix::fs::AtFlags::empty(),
        )
        .map_err(|e| Error::io("chmod", self.out.join(&rel), fsutil::ioe(e)))?;
        self.built.dirs += 1;
        Ok(())
    }

    fn mirror_symlink(&mut self, host: &Path, target: &Path) -> Result<()> {
        let rel = Self::rel(host);
        if !self.made.insert(rel.clone()) {
            return Ok(());
        }
        let (dir, name) = self.parent_fd(&rel)?;
        match rustix::fs::symlinkat(target, &dir, name.as_str()) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(Error::io("symlink", self.out.join(&rel), fsutil::ioe(e))),
        }
        self.built.symlinks += 1;
        Ok(())
    }

    fn mirror_file(&mut self, host: &Path, mode: u32, len: u64) -> Result<()> {
        let rel = Self::rel(host);
        if !self.made.insert(rel.clone()) {
            return Ok(());
        }
        let (dir, name) = self.parent_fd(&rel)?;
        let dst = self.out.join(&rel);
        let mut src = fs::File::open(host).map_err(|e| Error::io("open", host, e))?;
        let mut f = create_file_at(dir.as_fd(), &name).map_err(|e| Error::io("create", &dst, e))?;
        io::copy(&mut src, &mut f).map_err(|e| Error::io("copy", &dst, e))?;
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7777))
            .map_err(|e| Error::io("chmod", &dst, e))?;
        self.built.files += 1;
        self.built.bytes += len;
        Ok(())
    }

    /// Adds the interpreter and libraries `file` needs, recursively.
    fn add_deps(&mut self, file: &Path, exe_rpaths: &mut Vec<String>, is_exe: bool) -> Result<()> {
        let mut queue = VecDeque::from([(file.to_path_buf(), is_exe)]);
        while let Some((f, exe)) = queue.pop_front() {
            if !self.parsed.insert(f.clone()) {
                continue;
            }
            let Some(needs) = parse(&f)? else {
                continue;
            };
            let origin = f.parent().unwrap_or(Path::new("/")).display().to_string();
            let expand = |v: &[String]| -> Vec<String> {
                v.iter()
                    .flat_map(|s| s.split(':'))
                    .filter(|s| !s.is_empty())
                    .map(|s| s.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
                    .collect()
            };
            let rpath = expand(&needs.rpath);
            let runpath = expand(&needs.runpath);
            if exe {
                *exe_rpaths = rpath.clone();
            }
            if let Some(interp) = &needs.interp {
                let real = self.add(Path::new(interp))?;
                self.built.interpreters.push(interp.clone());
                queue.push_back((real, false));
            }
            for name in &needs.needed {
                let found = self.find_library(name, &needs, &rpath, &runpath, exe_rpaths)?;
                let real = self.add(&found)?;
                self.built.libraries.push(found.display().to_string());
                queue.push_back((real, false));
            }
        }
        Ok(())
    }

    fn find_library(
        &mut self,
        name: &str,
        needs: &Needs,
        rpath: &[String],
        runpath: &[String],
        exe_rpaths: &[String],
    ) -> Result<PathBuf> {
        if name.contains('/') {
            return Ok(PathBuf::from(name));
        }
        let mut dirs: Vec<String> = Vec::new();
        if runpath.is_empty() {
            dirs.extend(rpath.iter().cloned());
            dirs.extend(exe_rpaths.iter().cloned());
        }
        dirs.extend(runpath.iter().cloned());
        dirs.extend(self.conf_dirs()?.iter().cloned());
        let defaults: &[&str] = if needs.class64 {
            &["/lib64", "/usr/lib64", "/lib", "/usr/lib"]
        } else {
            &["/lib", "/usr/lib", "/lib32", "/usr/lib32"]
        };
        dirs.extend(defaults.iter().map(|s| s.to_string()));
        for d in &dirs {
            let cand = Path::new(d).join(name);
            if cand.is_file() && same_abi(&cand, needs.class64, needs.machine) {
                return Ok(cand);
            }
        }
        Err(Error::Usage(format!(
            "library {name} not found (searched {})",
            dirs.join(":")
        )))
    }

    /// The directories named by /etc/ld.so.conf and its includes, in order.
    fn conf_dirs(&mut self) -> Result<&[String]> {
        if self.conf_dirs.is_none() {
            let mut dirs = Vec::new();
            read_ld_conf(&self.host.join("etc/ld.so.conf"), &mut dirs, 0);
            let mut seen = BTreeSet::new();
            dirs.retain(|d| seen.insert(d.clone()));
            self.conf_dirs = Some(dirs);
        }
        Ok(self.conf_dirs.as_deref().unwrap_or(&[]))
    }

    /// /etc/passwd, /etc/group, and empty /proc, /dev, /sys, /tmp, /root.
    fn skeleton(&mut self) -> Result<()> {
        for (d, mode) in [
            ("etc", 0o755),
            ("proc", 0o755),
            ("dev", 0o755),
            ("sys", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
        ] {
            let host_like = Path::new("/").join(d);
            let rel = Self::rel(&host_like);
            if self.made.contains(&rel) {
                continue;
            }
            self.mirror_dir(&host_like, mode)?;
        }
        // Merged /usr: /bin -> usr/bin and friends, as on the host, wherever their target made
        // it into the tree (a binary found as /usr/bin/sh still runs as /bin/sh).
        for d in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host = self.host.join(d);
            let Ok(target) = fs::read_link(&host) else {
                continue;
            };
            let inside = self.out.join(Self::rel(&self.host.join(&target)));
            if target.is_relative() && !target.starts_with("..") && inside.is_dir() {
                self.mirror_symlink(&host, &target)?;
            }
        }
        let etc = open_dir_beneath(self.root.as_fd(), "etc")
            .map_err(|e| Error::io("open", self.out.join("etc"), e))?;
        for (name, text) in [
            (
                "passwd",
                "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
            ),
            ("group", "root:x:0:\nnogroup:x:65534:\n"),
        ] {
            let p = self.out.join("etc").join(name);
            match create_file_at(etc.as_fd(), name) {
                Ok(mut f) => {
                    use std::io::Write;
                    f.write_all(text.as_bytes())
                        .map_err(|e| Error::io("write", &p, e))?;
                    f.set_permissions(fs::Permissions::from_mode(0o644))
                        .map_err(|e| Error::io("chmod", &p, e))?;
                    self.built.files += 1;
                    self.built.bytes += text.len() as u64;
                }
                // A binary under /etc (unlikely) brought its own.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("create", &p, e)),
            }
        }
        Ok(())
    }

    /// Sets every mtime to 0 (children before parents), so the tree and its tar depend only
    /// on the binaries.
    fn zero_mtimes(&self) -> Result<()> {
        fn walk(dir: std::os::fd::BorrowedFd<'_>, at: &Path) -> Result<()> {
            let names = fsutil::list_dir(dir).map_err(|e| Error::io("read directory", at, e))?;
            for n in names {
                let st =
                    fsutil::lstat_at(dir, &n).map_err(|e| Error::io("stat", at.join(&n), e))?;
                if fsutil::file_type(&st) == rustix::fs::FileType::Directory {
                    let sub =
                        open_dir_beneath(dir, &n).map_err(|e| Error::io("open", at.join(&n), e))?;
                    walk(sub.as_fd(), &at.join(&n))?;
                }
                fsutil::set_mtime_at(dir, &n, Timespec::new(0, 0))
                    .map_err(|e| Error::io("set mtime", at.join(&n), e))?;
            }
            Ok(())
        }
        walk(self.root.as_fd(), &self.out)?;
        fsutil::set_mtime_at(self.root.as_fd(), ".", Timespec::new(0, 0))
            .map_err(|e| Error::io("set mtime", &self.out, e))
    }
}

/// A binary name as the host's PATH would find it, or a path.
fn find_binary(bin: &str) -> Result<PathBuf> {
    let missing = |p: &Path| Error::io("find binary", p, io::Error::from(io::ErrorKind::NotFound));
    if bin.contains('/') {
        let p = std::path::absolute(bin).map_err(|e| Error::io("resolve", bin, e))?;
        return if p.exists() { Ok(p) } else { Err(missing(&p)) };
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| crate::container::DEFAULT_PATH.into());
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
        .ok_or_else(|| missing(Path::new(bin)))
}

/// The normal components of `p`, `..` kept.
fn components(p: &Path) -> VecDeque<String> {
    p.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Reads an ELF file's needs; None for a non-ELF file (a `#!` script yields its interpreter).
fn parse(path: &Path) -> Result<Option<Needs>> {
    let bytes = fs::read(path).map_err(|e| Error::io("read", path, e))?;
    if let Some(rest) = bytes.strip_prefix(b"#!") {
        let line = rest.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let interp = String::from_utf8_lossy(line)
            .split_whitespace()
            .next()
            .map(str::to_string);
        return Ok(Some(Needs {
            interp,
            needed: Vec::new(),
            rpath: Vec::new(),
            runpath: Vec::new(),
            class64: true,
            machine: 0,
        }));
    }
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf = goblin::elf::Elf::parse(&bytes).map_err(|e| Error::BadArchive {
        path: path.to_path_buf(),
        reason: format!("unreadable ELF file: {e}"),
    })?;
    Ok(Some(Needs {
        interp: elf.interpreter.map(str::to_string),
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        rpath: elf.rpaths.iter().map(|s| s.to_string()).collect(),
        runpath: elf.runpaths.iter().map(|s| s.to_string()).collect(),
        class64: elf.is_64,
        machine: elf.header.e_machine,
    }))
}

/// True when `p` is an ELF file of the given class and machine (ld.so skips others).
fn same_abi(p: &Path, class64: bool, machine: u16) -> bool {
    let mut head = [0u8; 20];
    let ok = fs::File::open(p).and_then(|mut f| f.read_exact(&mut head));
    if ok.is_err() || !head.starts_with(b"\x7fELF") {
        return false;
    }
    let is64 = head[4] == 2;
    let m = if head[5] == 1 {
        u16::from_le_bytes([head[18], head[19]])
    } else {
        u16::from_be_bytes([head[18], head[19]])
    };
    is64 == class64 && (machine == 0 || m == machine)
}

/// Collects the directories of an ld.so.conf file, following `include` lines (globs with
/// `*` in their last component).
fn read_ld_conf(path: &Path, dirs: &mut Vec<String>, depth: usize) {
    if depth > 8 {
        return;
    }
    let Ok(text) = fs::read_to_string(path) else {
        return;
    };
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(pat) = line.strip_prefix("include") {
            for pat in pat.split_whitespace() {
                let pat = if Path::new(pat).is_absolute() {
                    PathBuf::from(pat)
                } else {
                    path.parent().unwrap_or(Path::new("/")).join(pat)
                };
                for f in glob(&pat) {
                    read_ld_conf(&f, dirs, depth + 1);
                }
            }
        } else if !line.starts_with("hwcap") {
            // "DIR" or the old "DIR=TYPE" form.
            let d = line.split('=').next().unwrap_or(line).trim();
            dirs.push(d.to_string());
        }
    }
}

/// The files matching `pat`, whose last component may hold `*` wildcards, sorted.
fn glob(pat: &Path) -> Vec<PathBuf> {
    let (Some(dir), Some(name)) = (pat.parent(), pat.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    if !name.contains('*') {
        return if pat.exists() {
            vec![pat.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let parts: Vec<&str> = name.split('*').collect();
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| wildcard(&parts, &e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

/// Matches `s` against the pieces of a pattern split at `*`.
fn wildcard(parts: &[&str], s: &str) -> bool {
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return false;
    };
    if parts.len() == 1 {
        return s == *first;
    }
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_a_shell() {
        let p: Vec<&str> = "*.conf".split('*').collect();
        assert!(wildcard(&p, "libc.conf"));
        assert!(!wildcard(&p, "libc.conf.bak"));
        let p: Vec<&str> = "a*b*c".split('*').collect();
        assert!(wildcard(&p, "abc") && wildcard(&p, "axxbyyc"));
        assert!(!wildcard(&p, "acb"));
    }

    #[test]
    fn ld_conf_includes_are_followed() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("conf.d")).unwrap();
        fs::write(
            d.path().join("ld.so.conf"),
            "# comment\ninclude conf.d/*.conf\n/opt/lib\n",
        )
        .unwrap();
        fs::write(d.path().join("conf.d/b.conf"), "/b\n").unwrap();
        fs::write(d.path().join("conf.d/a.conf"), "/a # trailing\n/a2=libc6\n").unwrap();
        fs::write(d.path().join("conf.d/skip.txt"), "/no\n").unwrap();
        let mut dirs = Vec::new();
        read_ld_conf(&d.path().join("ld.so.conf"), &mut dirs, 0);
        assert_eq!(dirs, vec!["/a", "/a2", "/b", "/opt/lib"]);
    }
}
