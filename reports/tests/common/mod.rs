//! Helpers shared by the integration tests: fixture paths, building the fixture report, and
//! checking that a file really is a PNG or an SVG.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use strata_reports::record::Runner;
use strata_reports::{ReportOptions, ReportSummary, build_report};

pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The committed fixture: criterion output measured on runner-a, plus the records of runner-a
/// and runner-b.
pub fn fixture_options(out: &Path) -> ReportOptions {
    let mut opts = ReportOptions::new(out);
    opts.criterion = Some(fixture("criterion"));
    opts.criterion_runner = Some(Runner {
        id: "runner-a".to_string(),
        ..Runner::default()
    });
    opts.results = vec![fixture("runner-a.json"), fixture("runner-b.json")];
    opts
}

pub fn build_fixture_report(out: &Path) -> ReportSummary {
    build_report(&fixture_options(out)).expect("the fixture report builds")
}

/// A decoded PNG: dimensions from the IHDR chunk, and pixel statistics.
pub struct PngInfo {
    pub width: u32,
    pub height: u32,
    pub distinct_colors: usize,
    /// Fraction of pixels that are not (near) white.
    pub ink: f64,
}

/// Checks the PNG signature and IHDR by hand, then decodes every pixel (which verifies the
/// chunk CRCs and the zlib stream).
pub fn check_png(path: &Path) -> PngInfo {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(bytes.len() > 33, "{}: too short for a PNG", path.display());
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{}: PNG signature",
        path.display()
    );
    assert_eq!(
        u32::from_be_bytes(bytes[8..12].try_into().unwrap()),
        13,
        "{}: IHDR length",
        path.display()
    );
    assert_eq!(
        &bytes[12..16],
        b"IHDR",
        "{}: first chunk is IHDR",
        path.display()
    );
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width > 0 && height > 0, "{}: zero size", path.display());
    assert!(
        bytes.ends_with(b"IEND\xaeB`\x82"),
        "{}: ends with IEND",
        path.display()
    );

    let decoder = png::Decoder::new(std::io::Cursor::new(&bytes));
    let mut reader = decoder
        .read_info()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let frame = reader
        .next_frame(&mut buf)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!((frame.width, frame.height), (width, height));
    let channels = frame.color_type.samples();
    let data = &buf[..frame.buffer_size()];
    let mut colors = std::collections::HashSet::new();
    let mut ink = 0usize;
    for px in data.chunks(channels) {
        let rgb = [
            px[0],
            px.get(1).copied().unwrap_or(px[0]),
            px.get(2).copied().unwrap_or(px[0]),
        ];
        if rgb.iter().any(|c| *c < 235) {
            ink += 1;
        }
        colors.insert(rgb);
    }
    PngInfo {
        width,
        height,
        distinct_colors: colors.len(),
        ink: ink as f64 / (width as f64 * height as f64),
    }
}

/// Checks the file is an SVG document of the given size and returns its text.
pub fn check_svg(path: &Path, width: u32, height: u32) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        text.trim_start().starts_with("<svg"),
        "{}: starts with <svg",
        path.display()
    );
    assert!(
        text.trim_end().ends_with("</svg>"),
        "{}: ends with </svg>",
        path.display()
    );
    assert!(
        text.contains(&format!("width=\"{width}\""))
            && text.contains(&format!("height=\"{height}\"")),
        "{}: size",
        path.display()
    );
    assert!(text.contains("<text"), "{}: has text", path.display());
    text
}

/// The text of every `<text>` element of an SVG, unescaped enough for label checks.
pub fn svg_texts(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find("<text") {
        let after = &rest[start..];
        let Some(gt) = after.find('>') else { break };
        let Some(end) = after.find("</text>") else {
            break;
        };
        out.push(
            after[gt + 1..end]
                .trim()
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&")
                .replace("&quot;", "\""),
        );
        rest = &after[end..];
    }
    out
}
