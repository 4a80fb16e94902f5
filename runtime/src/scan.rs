//! Reads a real directory into the model's [`Tree`], so a driver's view can be compared with
//! the model field by field.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::FileType;

use crate::error::{Error, Result};
use crate::fsutil::{file_type, list_dir, lstat_at, open_dir, open_dir_beneath, read_inode};
use crate::model::{Ino, Inode, Kind, Tree, join};

/// The tree under `dir` (file contents hashed, hard links kept, overlayfs xattrs skipped).
pub fn scan(dir: &Path) -> Result<Tree> {
    let fd = open_dir(dir)?;
    let st = lstat_at(fd.as_fd(), ".").map_err(|e| Error::io("stat", dir, e))?;
    let (_, root_meta) = read_inode(fd.as_fd(), ".", &st).map_err(|e| Error::io("read", dir, e))?;
    let mut tree = Tree::new(root_meta);
    let mut links = HashMap::new();
    walk(fd.as_fd(), "", dir, &mut tree, &mut links)?;
    #[cfg(feature = "mutants")]
    crate::mutants::scanned(&mut tree);
    Ok(tree)
}

fn walk(
    dir: BorrowedFd<'_>,
    rel: &str,
    root: &Path,
    tree: &mut Tree,
    links: &mut HashMap<(u64, u64), Ino>,
) -> Result<()> {
    for name in list_dir(dir).map_err(|e| Error::io("read directory", root.join(rel), e))? {
        let path = join(rel, &name);
        let st = lstat_at(dir, &name).map_err(|e| Error::io("stat", root.join(&path), e))?;
        let key = (st.st_dev, st.st_ino);
        let ft = file_type(&st);
        if ft != FileType::Directory
            && st.st_nlink > 1
            && let Some(ino) = links.get(&key)
        {
            tree.link(&path, *ino);
            continue;
        }
        let (kind, meta) =
            read_inode(dir, &name, &st).map_err(|e| Error::io("read", root.join(&path), e))?;
        let is_dir = kind == Kind::Dir;
        let ino = tree.insert(&path, Inode { kind, meta });
        if !is_dir && st.st_nlink > 1 {
            links.insert(key, ino);
        }
        if is_dir {
            let sub =
                open_dir_beneath(dir, &name).map_err(|e| Error::io("open", root.join(&path), e))?;
            walk(sub.as_fd(), &path, root, tree, links)?;
        }
    }
    Ok(())
}
