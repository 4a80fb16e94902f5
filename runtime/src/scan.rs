//! Reads a real directory into the model's [`Tree`], so a driver's view can be compared with
//! the model field by field.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::FileType;

use crate::error::{Error, Result};
use crate::fsutil::{self, Next, Step, file_type, lstat_at, open_dir, read_inode};
use crate::model::{Ino, Inode, Kind, Tree};

/// The tree under `dir` (file contents hashed, hard links kept, overlayfs xattrs skipped).
pub fn scan(dir: &Path) -> Result<Tree> {
    let fd = open_dir(dir)?;
    let st = lstat_at(fd.as_fd(), ".").map_err(|e| Error::io("stat", dir, e))?;
    let (_, root_meta) = read_inode(fd.as_fd(), ".", &st).map_err(|e| Error::io("read", dir, e))?;
    let mut tree = Tree::new(root_meta);
    let mut links = HashMap::new();
    // An explicit stack, not recursion: any depth the kernel allows works.
    fsutil::walk_tree(
        fd.as_fd(),
        |step| match step {
            Step::Entry {
                dir: d, path, name, ..
            } => {
                let is_dir = entry(d, name, path, dir, &mut tree, &mut links)?;
                Ok(if is_dir { Next::Descend } else { Next::Skip })
            }
            Step::Leave { .. } => Ok(Next::Skip),
        },
        |op, path, e| Error::io(op, dir.join(path), e),
    )?;
    #[cfg(feature = "mutants")]
    crate::mutants::scanned(&mut tree);
    Ok(tree)
}

/// Reads `name` in `dir` (at `path`) into `tree`; true when it is a directory.
fn entry(
    dir: BorrowedFd<'_>,
    name: &str,
    path: &str,
    root: &Path,
    tree: &mut Tree,
    links: &mut HashMap<(u64, u64), Ino>,
) -> Result<bool> {
    let st = lstat_at(dir, name).map_err(|e| Error::io("stat", root.join(path), e))?;
    let key = (st.st_dev, st.st_ino);
    let ft = file_type(&st);
    if ft != FileType::Directory
        && st.st_nlink > 1
        && let Some(ino) = links.get(&key)
    {
        tree.link(path, *ino);
        return Ok(false);
    }
    let (kind, meta) =
        read_inode(dir, name, &st).map_err(|e| Error::io("read", root.join(path), e))?;
    let is_dir = kind == Kind::Dir;
    let ino = tree.insert(path, Inode { kind, meta });
    if !is_dir && st.st_nlink > 1 {
        links.insert(key, ino);
    }
    Ok(is_dir)
}
