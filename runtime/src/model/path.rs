//! Relative paths inside a root: `""` is the root, components are joined by `/`.

/// A normalized path relative to the root: no leading or trailing `/`, no `.` or `..`,
/// no empty components. The root is `""`.
pub type RelPath = String;

/// Normalizes `p` (a tar entry name or similar) into a [`RelPath`].
/// Returns `None` when it is absolute or has a `..` component: such names never enter the model.
pub fn normalize(p: &str) -> Option<RelPath> {
    if p.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(out.join("/"))
}

/// Splits `p` into its parent and its last component. The root has no parent.
pub fn parent_and_name(p: &str) -> Option<(&str, &str)> {
    if p.is_empty() {
        return None;
    }
    Some(match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    })
}

/// Joins a parent path and a name.
pub fn join(parent: &str, name: &str) -> RelPath {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// The proper ancestors of `p` (not the root), shortest first: `a/b/c` -> `a`, `a/b`.
pub fn ancestors(p: &str) -> Vec<&str> {
    p.match_indices('/').map(|(i, _)| &p[..i]).collect()
}

/// True when `p` is `dir` or lies under it.
pub fn is_within(p: &str, dir: &str) -> bool {
    dir.is_empty() || p == dir || (p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_are_the_proper_parents_shortest_first() {
        assert_eq!(ancestors("a/b/c"), ["a", "a/b"]);
        assert!(ancestors("a").is_empty());
    }

    #[test]
    fn normalize_strips_dots_and_slashes_and_refuses_escapes() {
        assert_eq!(normalize("./a//b/./c/").as_deref(), Some("a/b/c"));
        assert_eq!(normalize("./").as_deref(), Some(""));
        assert_eq!(normalize("/etc/passwd"), None);
        assert_eq!(normalize("a/../../b"), None);
        assert_eq!(normalize("a/.."), None);
    }

    #[test]
    fn parent_and_name_splits_last_component() {
        assert_eq!(parent_and_name("a/b/c"), Some(("a/b", "c")));
        assert_eq!(parent_and_name("a"), Some(("", "a")));
        assert_eq!(parent_and_name(""), None);
    }

    #[test]
    fn within_respects_component_boundaries() {
        assert!(is_within("a/b", "a"));
        assert!(is_within("a", "a"));
        assert!(!is_within("ab", "a"));
        assert!(is_within("x", ""));
    }
}
