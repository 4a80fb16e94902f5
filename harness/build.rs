//! Embeds the conformance catalog: every `cases/*.toml` becomes a `(file name, text)` pair in
//! `$OUT_DIR/cases.rs`, so the `strata` binary carries its catalog (and `--cases DIR` can
//! replace it at run time).
//!
//! And links `strata` as a position-dependent executable on Linux (`-no-pie`): a PIE is
//! relocated by the dynamic loader at every start, about 9,700 relative relocations over 40
//! pages of `.data.rel.ro` and the GOT, each page copied on write before `main` (40 of the
//! 180 page faults of a `strata --version`). At a fixed address the linker resolves them
//! once. The libraries stay randomized; a test harness gives up the random address of its
//! own code.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bin=strata=-no-pie");
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cases");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect(),
        Err(e) => panic!("{}: cannot read the case catalog: {e}", dir.display()),
    };
    names.sort();
    let mut out =
        String::from("/// The embedded catalog: (file name, TOML text), sorted by name.\n");
    out.push_str("pub static EMBEDDED: &[(&str, &str)] = &[\n");
    for n in &names {
        let path = dir.join(n);
        println!("cargo:rerun-if-changed={}", path.display());
        let _ = writeln!(
            out,
            "    ({n:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    out.push_str("];\n");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"));
    let dest = Path::new(&out_dir).join("cases.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("{}: {e}", dest.display());
    }
}
