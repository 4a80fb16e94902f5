//! The catalog: the case files embedded in the binary (`harness/cases/*.toml`, see build.rs),
//! or those of a directory given with `--cases DIR`. A file that does not parse is reported by
//! name and reason and left out; the others still run.

use std::collections::BTreeMap;
use std::path::Path;

use super::case::{self, Case};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/cases.rs"));
}

/// A case file that could not be used.
#[derive(Clone, Debug)]
pub struct Broken {
    /// The file as the user knows it (`harness/cases/X.toml`, or the path under `--cases`).
    pub file: String,
    /// Its stem, standing for the case in the record.
    pub stem: String,
    pub reason: String,
}

/// The cases that parsed, sorted by id, and the files that did not.
#[derive(Debug, Default)]
pub struct Catalog {
    pub cases: Vec<Case>,
    pub broken: Vec<Broken>,
}

/// The catalog built into the binary.
pub fn embedded() -> Catalog {
    build(
        embedded::EMBEDDED
            .iter()
            .map(|(n, t)| {
                (
                    format!("harness/cases/{n}"),
                    n.to_string(),
                    Ok(t.to_string()),
                )
            })
            .collect(),
    )
}

/// Every `*.toml` in `dir`; an unreadable directory is one error for the whole catalog.
pub fn from_dir(dir: &Path) -> Result<Catalog, String> {
    let rd =
        std::fs::read_dir(dir).map_err(|e| format!("{}: cannot read cases: {e}", dir.display()))?;
    let mut files = Vec::new();
    for e in rd {
        let e = e.map_err(|e| format!("{}: cannot read cases: {e}", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".toml") {
            continue;
        }
        let p = e.path();
        let text = std::fs::read_to_string(&p).map_err(|e| e.to_string());
        files.push((p.display().to_string(), name, text));
    }
    files.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(build(files))
}

fn build(files: Vec<(String, String, Result<String, String>)>) -> Catalog {
    let mut c = Catalog::default();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for (shown, name, text) in files {
        let stem = name.trim_end_matches(".toml").to_string();
        let parsed = text.and_then(|t| case::parse(&name, &t));
        match parsed {
            Ok(case) => {
                if let Some(other) = ids.get(&case.id) {
                    c.broken.push(Broken {
                        file: shown,
                        stem,
                        reason: format!("id {} is already used by {other}", case.id),
                    });
                    continue;
                }
                ids.insert(case.id.clone(), name.clone());
                c.cases.push(case);
            }
            Err(reason) => c.broken.push(Broken {
                file: shown,
                stem,
                reason,
            }),
        }
    }
    c.cases.sort_by_key(|a| id_key(&a.id));
    c
}

/// Sorts ids by the catalog's section order (P W O C M R D X I), then number, then suffix.
fn id_key(id: &str) -> (usize, u32, String) {
    const ORDER: &str = "PWOCMRDXI";
    let (cat, rest) = id.split_once('-').unwrap_or((id, ""));
    let pos = ORDER.find(cat).unwrap_or(ORDER.len());
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let suffix = rest[digits.len()..].to_string();
    (pos, digits.parse().unwrap_or(u32::MAX), suffix)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_catalog_parses_and_covers_every_category() {
        let c = embedded();
        let broken: Vec<String> = c
            .broken
            .iter()
            .map(|b| format!("{}: {}", b.file, b.reason))
            .collect();
        assert!(broken.is_empty(), "{broken:#?}");
        assert!(c.cases.len() >= 60, "{} cases", c.cases.len());
        for cat in ["P-", "W-", "O-", "C-", "M-", "R-", "D-", "X-", "I-"] {
            assert!(
                c.cases.iter().any(|k| k.id.starts_with(cat)),
                "no {cat} case"
            );
        }
    }

    #[test]
    fn ids_sort_by_section_then_number() {
        let mut ids = vec!["X-2", "P-10", "P-2", "W-1", "M-13b", "M-13", "I-1"];
        ids.sort_by_key(|i| id_key(i));
        assert_eq!(
            ids,
            vec!["P-2", "P-10", "W-1", "M-13", "M-13b", "X-2", "I-1"]
        );
    }
}
