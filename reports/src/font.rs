//! The embedded font. Charts render text with DejaVu Sans compiled into the crate, so no
//! system font package (fontconfig, freetype) is needed at build or run time.
//! Licence: assets/DejaVuSans-LICENSE.txt (Bitstream Vera / DejaVu, permissive).

use std::sync::OnceLock;

use plotters::style::FontStyle;

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the embedded font as `sans-serif` (once per process).
pub(crate) fn register() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        plotters::style::register_font(crate::chart::style::FONT, FontStyle::Normal, DEJAVU_SANS)
            .map_err(|_| {
                "the embedded font assets/DejaVuSans.ttf is not a valid TrueType font".to_string()
            })
    })
    .clone()
}
