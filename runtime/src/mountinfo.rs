//! The mount table of the calling thread's mount namespace (`/proc/thread-self/mountinfo`),
//! to tell a mount strata made from one it did not before unmounting anything.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One mount, as mountinfo shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountLine {
    /// The mount's id (unique while it is mounted).
    pub id: u64,
    /// The directory of its filesystem it shows (a bind mount's source, in its filesystem).
    pub root: String,
    pub mount_point: PathBuf,
    pub fstype: String,
    pub source: String,
    /// The filesystem's own options (overlayfs lists its layer directories here).
    pub super_opts: String,
}

/// Every mount of the calling thread's namespace, in mount order.
pub fn read() -> Result<Vec<MountLine>> {
    let p = "/proc/thread-self/mountinfo";
    let text = std::fs::read_to_string(p).map_err(|e| Error::io("read", p, e))?;
    Ok(text.lines().filter_map(parse).collect())
}

/// The topmost mount on `target` (the one a lookup of it sees), if any.
pub fn top_at<'a>(lines: &'a [MountLine], target: &Path) -> Option<&'a MountLine> {
    lines.iter().rev().find(|l| l.mount_point == target)
}

fn parse(line: &str) -> Option<MountLine> {
    // id parent major:minor root mount-point options [optional...] - fstype source super
    let (head, tail) = line.split_once(" - ")?;
    let mut h = head.split(' ');
    let id = h.next()?.parse().ok()?;
    let root = unescape(h.nth(2)?);
    let mount_point = PathBuf::from(unescape(h.next()?));
    let mut t = tail.splitn(3, ' ');
    let fstype = unescape(t.next()?);
    let source = unescape(t.next()?);
    let super_opts = unescape(t.next().unwrap_or(""));
    Some(MountLine {
        id,
        root,
        mount_point,
        fstype,
        source,
        super_opts,
    })
}

/// mountinfo writes space, tab, newline and backslash as `\ooo` octal escapes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_parses_with_optional_fields_and_escapes() {
        let l = parse(
            "160 58 0:131 /mounts/ab/merged /tmp/a\\040b rw,relatime shared:5 master:1 - tmpfs my\\040src rw,mode=700",
        )
        .unwrap();
        assert_eq!(l.id, 160);
        assert_eq!(l.root, "/mounts/ab/merged");
        assert_eq!(l.mount_point, Path::new("/tmp/a b"));
        assert_eq!((l.fstype.as_str(), l.source.as_str()), ("tmpfs", "my src"));
        assert_eq!(l.super_opts, "rw,mode=700");
    }
}
