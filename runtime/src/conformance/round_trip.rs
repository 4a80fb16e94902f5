//! The commit round trip: the model of the lower layers plus the committed layer is the view.
//!
//! Every field is compared, directory mtimes included, with one exception the commit rule
//! makes: a directory whose only change is its mtime is no change to a commit
//! ([`crate::commit::meta_changed`], as moby's and containerd's diffs have it), so a
//! directory the commit does not hold keeps the lower layers' mtime in the model and is not
//! compared by mtime. A directory the commit holds must carry the view's mtime exactly.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::layer::tarread::{TarKind, TarReader};
use crate::model::{CompareOptions, Mismatch, MtimeCompare, RelPath, Tree};

/// The directories a layer tar holds (`""` for its root), as view paths.
pub fn tar_dirs(tar: &[u8]) -> Result<BTreeSet<RelPath>> {
    let mut r = TarReader::new(tar);
    let mut out = BTreeSet::new();
    let bad = |e: std::io::Error| Error::Usage(format!("commit tar: {e}"));
    while let Some(m) = r.next_member().map_err(bad)? {
        if m.kind == TarKind::Directory {
            let name = String::from_utf8_lossy(&m.name);
            let name = name.trim_start_matches("./").trim_end_matches('/');
            out.insert(if name == "." {
                String::new()
            } else {
                name.to_string()
            });
        }
    }
    Ok(out)
}

/// Every difference between `remodel` (the model of the lower layers plus the commit `tar`)
/// and `view`, every mtime compared but those of directories the commit does not hold.
pub fn round_trip_diffs(
    remodel: &Tree,
    view: &Tree,
    tar: &[u8],
    opts: &CompareOptions,
) -> Result<Vec<Mismatch>> {
    let held = tar_dirs(tar)?;
    let opts = CompareOptions {
        mtime: MtimeCompare::All,
        ..opts.clone()
    };
    let mut out = remodel.compare(view, &opts);
    out.retain(|m| {
        m.field != "mtime"
            || !remodel.get(&m.path).is_some_and(|i| i.kind.is_dir())
            || held.contains(&m.path)
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::Layer;
    use crate::model::{self, Timespec};

    #[test]
    fn directory_times_are_compared_where_the_commit_holds_the_directory() {
        let lower = Layer::new().dir("kept").dir("held").mtime(5, 0);
        let commit = Layer::new().dir("held").mtime(7, 0).file("held/f", "x");
        let tar = commit.to_tar().unwrap();
        assert_eq!(
            tar_dirs(&tar).unwrap(),
            ["held".to_string()].into_iter().collect()
        );
        let remodel = model::apply(&[lower.changeset(), commit.changeset()]).unwrap();
        let mut view = remodel.clone();
        view.get_mut("kept").unwrap().meta.mtime = Timespec::new(9, 0);
        let all = CompareOptions::default();
        assert!(
            round_trip_diffs(&remodel, &view, &tar, &all)
                .unwrap()
                .is_empty()
        );
        view.get_mut("held").unwrap().meta.mtime = Timespec::new(9, 0);
        let d = round_trip_diffs(&remodel, &view, &tar, &all).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!((d[0].path.as_str(), d[0].field), ("held", "mtime"));
    }
}
