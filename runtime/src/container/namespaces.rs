//! The namespaces a container gets: names on the command line, clone/unshare flags, and the
//! id maps of a user namespace.
//!
//! `pid` and `user` are created by clone(2) itself (the command must be PID 1 of the new pid
//! namespace, and every other namespace must belong to the new user namespace); the others
//! are unshared one by one in the child, so each gets its own timing span.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

/// One kind of namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Namespace {
    Mount,
    Uts,
    Ipc,
    Pid,
    Net,
    User,
}

impl Namespace {
    pub const ALL: [Namespace; 6] = [
        Namespace::Mount,
        Namespace::Uts,
        Namespace::Ipc,
        Namespace::Pid,
        Namespace::Net,
        Namespace::User,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Namespace::Mount => "mount",
            Namespace::Uts => "uts",
            Namespace::Ipc => "ipc",
            Namespace::Pid => "pid",
            Namespace::Net => "net",
            Namespace::User => "user",
        }
    }

    /// The CLONE_NEW* flag.
    pub fn flag(self) -> libc::c_int {
        match self {
            Namespace::Mount => libc::CLONE_NEWNS,
            Namespace::Uts => libc::CLONE_NEWUTS,
            Namespace::Ipc => libc::CLONE_NEWIPC,
            Namespace::Pid => libc::CLONE_NEWPID,
            Namespace::Net => libc::CLONE_NEWNET,
            Namespace::User => libc::CLONE_NEWUSER,
        }
    }

    /// The timing span of its creation.
    pub fn span(self) -> &'static str {
        match self {
            Namespace::Mount => "ns:mount",
            Namespace::Uts => "ns:uts",
            Namespace::Ipc => "ns:ipc",
            Namespace::Pid => "ns:pid",
            Namespace::Net => "ns:net",
            Namespace::User => "ns:user",
        }
    }

    /// True when clone(2) must create it (it cannot be unshared by the child afterwards).
    pub fn by_clone(self) -> bool {
        matches!(self, Namespace::Pid | Namespace::User)
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Namespace {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Namespace::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Namespace::ALL.iter().map(|n| n.name()).collect();
                Error::Usage(format!(
                    "unknown namespace {s:?} (known: {})",
                    known.join(", ")
                ))
            })
    }
}

/// A set of namespaces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Namespaces(u8);

impl Namespaces {
    /// mount, uts, ipc, pid, net: what `crun spec` gives a container.
    pub fn default_set() -> Namespaces {
        Namespaces::of(&[
            Namespace::Mount,
            Namespace::Uts,
            Namespace::Ipc,
            Namespace::Pid,
            Namespace::Net,
        ])
    }

    pub fn of(list: &[Namespace]) -> Namespaces {
        let mut s = Namespaces(0);
        for n in list {
            s.insert(*n);
        }
        s
    }

    fn bit(n: Namespace) -> u8 {
        1 << (Namespace::ALL.iter().position(|x| *x == n).unwrap_or(0) as u8)
    }

    pub fn insert(&mut self, n: Namespace) {
        self.0 |= Self::bit(n);
    }

    pub fn contains(&self, n: Namespace) -> bool {
        self.0 & Self::bit(n) != 0
    }

    /// The members, in the canonical order (mount, uts, ipc, pid, net, user).
    pub fn iter(&self) -> impl Iterator<Item = Namespace> + '_ {
        Namespace::ALL.into_iter().filter(|n| self.contains(*n))
    }

    /// The flags clone(2) itself must carry.
    pub fn clone_flags(&self) -> u64 {
        self.iter()
            .filter(|n| n.by_clone())
            .fold(0u64, |f, n| f | n.flag() as u64)
    }

    /// The namespaces the child unshares itself, in order (mount first: everything after it
    /// happens in the container's own mount table).
    pub fn unshared_in_child(&self) -> Vec<Namespace> {
        self.iter().filter(|n| !n.by_clone()).collect()
    }
}

impl fmt::Display for Namespaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(|n| n.name()).collect();
        f.write_str(&names.join(","))
    }
}

impl Serialize for Namespaces {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_seq(self.iter().map(|n| n.name()))
    }
}

impl FromStr for Namespaces {
    type Err = Error;

    /// A comma-separated list: `mount,uts,ipc,pid,net,user`.
    fn from_str(s: &str) -> Result<Self> {
        let mut set = Namespaces(0);
        for part in s.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(Error::Usage(format!(
                    "--ns {s:?}: empty namespace name in the list"
                )));
            }
            set.insert(part.parse()?);
        }
        Ok(set)
    }
}

/// The uid_map and gid_map lines of a user namespace created by a process with these
/// effective ids: as root the ids map 1:1 (the namespace then confines capabilities, not file
/// ownership); otherwise container root is the caller (one id, setgroups denied, as the
/// kernel requires for an unprivileged map).
pub fn id_maps(euid: u32, egid: u32) -> (String, String, bool) {
    if euid == 0 {
        ("0 0 4294967295\n".into(), "0 0 4294967295\n".into(), false)
    } else {
        (format!("0 {euid} 1\n"), format!("0 {egid} 1\n"), true)
    }
}

/// Writes the id maps of the user namespace of process `pid` (the parent does this while the
/// child waits: a process cannot map more than its own id into its own namespace).
pub fn write_id_maps(pid: i32, euid: u32, egid: u32) -> Result<()> {
    let (uid_map, gid_map, deny_setgroups) = id_maps(euid, egid);
    let proc = format!("/proc/{pid}");
    let write = |name: &str, data: &str| -> Result<()> {
        let p = format!("{proc}/{name}");
        std::fs::write(&p, data).map_err(|e| Error::io("write user namespace map", p, e))
    };
    if deny_setgroups {
        write("setgroups", "deny")?;
    }
    write("uid_map", &uid_map)?;
    write("gid_map", &gid_map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_rejects_unknown_names() {
        let s: Namespaces = "mount,pid,uts".parse().unwrap();
        assert!(s.contains(Namespace::Mount) && s.contains(Namespace::Pid));
        assert!(!s.contains(Namespace::Net));
        assert_eq!(s.to_string(), "mount,uts,pid");
        assert_eq!(s.clone_flags(), libc::CLONE_NEWPID as u64);
        assert_eq!(
            s.unshared_in_child(),
            vec![Namespace::Mount, Namespace::Uts]
        );
        let e = "mount,cgroupx"
            .parse::<Namespaces>()
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown namespace \"cgroupx\""), "{e}");
        assert!("mount,,pid".parse::<Namespaces>().is_err());
        assert_eq!(
            Namespaces::default_set().to_string(),
            "mount,uts,ipc,pid,net"
        );
    }

    #[test]
    fn id_maps_for_root_and_others() {
        assert_eq!(id_maps(0, 0).0, "0 0 4294967295\n");
        let (u, g, deny) = id_maps(1000, 100);
        assert_eq!(
            (u.as_str(), g.as_str(), deny),
            ("0 1000 1\n", "0 100 1\n", true)
        );
    }
}
