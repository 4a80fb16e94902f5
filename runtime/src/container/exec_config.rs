//! The process a container runs, from the image config and the caller's overrides, as the
//! OCI image spec's conversion to a runtime config says (and docker does):
//!
//! - argv: `Entrypoint` + `Cmd`; a command given by the caller replaces `Cmd`; an entrypoint
//!   given by the caller replaces `Entrypoint` and drops the image's `Cmd`.
//! - env: strata's defaults, then the image's `Env`, then the caller's entries (a later
//!   entry of the same name wins); `HOME` from the user's /etc/passwd entry unless set.
//! - cwd: the caller's, else `WorkingDir`, else `/`; created (0755, root) when missing.
//! - user: `uid`, `uid:gid`, `name` or `name:group`, names looked up in the image's own
//!   /etc/passwd and /etc/group (read inside the root filesystem, symlinks kept inside it).
//!   Without an explicit group, the primary group is the passwd entry's (0 without one) and
//!   the supplementary groups are those /etc/group lists the user name in.
//!
//! Everything here but [`read_in_root`] and [`make_dir_in_root`] is pure.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

use crate::error::{Error, Result};
use crate::image::oci::ExecConfig;

/// The command line: the caller's `entrypoint` (an empty string: none) or the image's
/// Entrypoint, then the caller's `command` or (unless the entrypoint was overridden) the
/// image's Cmd.
pub fn argv(
    image: Option<&ExecConfig>,
    entrypoint: Option<&str>,
    command: &[String],
) -> Vec<String> {
    let (mut argv, image_cmd) = match entrypoint {
        Some("") => (Vec::new(), None),
        Some(e) => (vec![e.to_string()], None),
        None => (
            image.and_then(|c| c.entrypoint.clone()).unwrap_or_default(),
            image.and_then(|c| c.cmd.clone()),
        ),
    };
    if command.is_empty() {
        argv.extend(image_cmd.unwrap_or_default());
    } else {
        argv.extend(command.iter().cloned());
    }
    argv
}

/// `base` with each entry of `layers` (in order) replacing the entry of the same name or
/// added at the end.
pub fn merge_env<'a>(
    mut base: Vec<String>,
    layers: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    for e in layers {
        let name = e.split('=').next().unwrap_or(e);
        match base.iter_mut().find(|x| x.split('=').next() == Some(name)) {
            Some(x) => x.clone_from(e),
            None => base.push(e.clone()),
        }
    }
    base
}

/// True when `env` sets `name`.
pub fn has_var(env: &[String], name: &str) -> bool {
    env.iter().any(|e| e.split('=').next() == Some(name))
}

/// One line of /etc/passwd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of /etc/group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The entries of an /etc/passwd text (malformed lines and comments skipped, as libc does).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// The entries of an /etc/group text.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

/// Who the command runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Every group of the process (setgroups): the primary one first.
    pub groups: Vec<u32>,
    /// The passwd entry's home directory (`/` without an entry).
    pub home: String,
}

/// Resolves a `User` value against the image's /etc/passwd and /etc/group texts (None: the
/// file is missing). `""` is root.
pub fn resolve_user(spec: &str, passwd: Option<&str>, group: Option<&str>) -> Result<Ids> {
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = match u.parse::<u32>() {
        Ok(uid) => users.iter().find(|e| e.uid == uid),
        Err(_) => Some(users.iter().find(|e| e.name == u).ok_or_else(|| {
            Error::Usage(format!(
                "user {u:?} (of --user / the image's User {spec:?}): no such user in the image's /etc/passwd{}",
                if passwd.is_none() { " (the image has none)" } else { "" }
            ))
        })?),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => u.parse::<u32>().unwrap_or(0),
    };
    let (gid, mut all) = match g.filter(|g| !g.is_empty()) {
        Some(g) => {
            let gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => {
                    groups
                        .iter()
                        .find(|e| e.name == g)
                        .ok_or_else(|| {
                            Error::Usage(format!(
                                "group {g:?} (of --user / the image's User {spec:?}): no such group in the image's /etc/group{}",
                                if group.is_none() { " (the image has none)" } else { "" }
                            ))
                        })?
                        .gid
                }
            };
            (gid, vec![gid])
        }
        None => {
            let gid = entry.map_or(0, |e| e.gid);
            let mut all = vec![gid];
            if let Some(e) = entry {
                all.extend(
                    groups
                        .iter()
                        .filter(|g| g.members.iter().any(|m| m == &e.name))
                        .map(|g| g.gid),
                );
            }
            (gid, all)
        }
    };
    let mut seen = std::collections::BTreeSet::new();
    all.retain(|g| seen.insert(*g));
    Ok(Ids {
        uid,
        gid,
        groups: all,
        home: entry.map_or_else(|| "/".to_string(), |e| e.home.clone()),
    })
}

/// Reads file `rel` of the root filesystem at `root` (symlinks resolved inside it); None
/// when it does not exist.
pub fn read_in_root(root: BorrowedFd<'_>, rel: &str, label: &Path) -> Result<Option<String>> {
    let fd = match crate::fsutil::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("open", label.join(rel), e)),
    };
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(16 << 20)
        .read_to_string(&mut s)
        .map_err(|e| Error::io("read", label.join(rel), e))?;
    Ok(Some(s))
}

/// Creates directory `path` (absolute, in the container) and its missing parents in the
/// root filesystem at `root` (0755, owned by root), resolving symlinks inside the root only.
/// Returns the paths it created (relative to the root), parents first.
pub fn make_dir_in_root(root: BorrowedFd<'_>, path: &str, label: &Path) -> Result<Vec<String>> {
    make_in_root(root, path, false, label)
}

/// [`make_dir_in_root`] for a file: its missing parents are created as directories and the
/// file itself (empty, 0644) when missing, a mount point for a bind of a file.
pub fn make_file_in_root(root: BorrowedFd<'_>, path: &str, label: &Path) -> Result<Vec<String>> {
    make_in_root(root, path, true, label)
}

fn make_in_root(root: BorrowedFd<'_>, path: &str, file: bool, label: &Path) -> Result<Vec<String>> {
    let mut created = Vec::new();
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let open = |rel: &str| -> std::io::Result<OwnedFd> {
        crate::fsutil::openat2(
            root,
            rel,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )
    };
    let mut dir: OwnedFd = open(".").map_err(|e| Error::io("open", label, e))?;
    let mut rel = String::new();
    for (i, comp) in comps.iter().copied().enumerate() {
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(comp);
        if file && i + 1 == comps.len() {
            let exists = crate::fsutil::openat2(
                root,
                &rel,
                OFlags::PATH | OFlags::CLOEXEC,
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            );
            if let Err(e) = exists {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Error::io("open the mount point", label.join(&rel), e));
                }
                rustix::fs::openat(
                    dir.as_fd(),
                    comp,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                )
                .map_err(|e| {
                    Error::io(
                        "create the mount point",
                        label.join(&rel),
                        crate::fsutil::ioe(e),
                    )
                })?;
                created.push(rel.clone());
            }
            break;
        }
        match open(&rel) {
            Ok(fd) => dir = fd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && comp != ".." => {
                match rustix::fs::mkdirat(dir.as_fd(), comp, Mode::from_raw_mode(0o755)) {
                    Ok(()) => created.push(rel.clone()),
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => {
                        return Err(Error::io(
                            "create the directory",
                            label.join(&rel),
                            crate::fsutil::ioe(e),
                        ));
                    }
                }
                dir = open(&rel).map_err(|e| Error::io("open", label.join(&rel), e))?;
            }
            Err(e) => {
                return Err(Error::io("open the directory", label.join(&rel), e));
            }
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn argv_follows_docker() {
        let c = ExecConfig {
            entrypoint: Some(v(&["/ep", "-x"])),
            cmd: Some(v(&["a", "b"])),
            ..Default::default()
        };
        assert_eq!(argv(Some(&c), None, &[]), v(&["/ep", "-x", "a", "b"]));
        assert_eq!(argv(Some(&c), None, &v(&["z"])), v(&["/ep", "-x", "z"]));
        assert_eq!(argv(Some(&c), Some("/o"), &[]), v(&["/o"]));
        assert_eq!(argv(Some(&c), Some("/o"), &v(&["z"])), v(&["/o", "z"]));
        assert_eq!(argv(Some(&c), Some(""), &v(&["z"])), v(&["z"]));
        let only_cmd = ExecConfig {
            cmd: Some(v(&["/bin/sh"])),
            ..Default::default()
        };
        assert_eq!(argv(Some(&only_cmd), None, &[]), v(&["/bin/sh"]));
        assert!(argv(None, None, &[]).is_empty());
    }

    #[test]
    fn env_later_wins() {
        let e = merge_env(v(&["PATH=/bin", "A=1"]), &v(&["A=2", "B=3", "PATH=/x"]));
        assert_eq!(e, v(&["PATH=/x", "A=2", "B=3"]));
        assert!(has_var(&e, "B") && !has_var(&e, "C"));
    }

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n# c\nbroken\napp:x:1000:1000::/home/app:/bin/sh\nsvc:x:1001:50::/srv:/bin/false\n";
    const GROUP: &str =
        "root:x:0:\nwheel:x:10:app,svc\napp:x:1000:\nstaff:x:50:\naudio:x:29: app \n";

    #[test]
    fn users_resolve_through_passwd_and_group() {
        let r = |s| resolve_user(s, Some(PASSWD), Some(GROUP));
        let app = r("app").unwrap();
        assert_eq!(
            (app.uid, app.gid, app.home.as_str()),
            (1000, 1000, "/home/app")
        );
        assert_eq!(app.groups, vec![1000, 10, 29]);
        assert_eq!(r("1000").unwrap(), app);
        let explicit = r("app:staff").unwrap();
        assert_eq!((explicit.gid, explicit.groups.clone()), (50, vec![50]));
        assert_eq!(r("1000:1000").unwrap().groups, vec![1000]);
        let anon = r("4242").unwrap();
        assert_eq!((anon.uid, anon.gid, anon.home.as_str()), (4242, 0, "/"));
        assert_eq!(r("").unwrap().uid, 0);
        assert_eq!(r("root").unwrap().home, "/root");
        assert!(r("nobody").unwrap_err().to_string().contains("nobody"));
        assert!(
            r("app:nogroup")
                .unwrap_err()
                .to_string()
                .contains("nogroup")
        );
        assert!(
            resolve_user("app", None, None)
                .unwrap_err()
                .to_string()
                .contains("has none")
        );
    }
}
