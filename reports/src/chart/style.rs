//! Colours, fonts and markers shared by every chart.

use plotters::element::{Drawable, PointCollection};
use plotters::prelude::*;
use plotters::style::{FontDesc, RGBColor};
use plotters_backend::{BackendCoord, DrawingErrorKind};

/// The family registered from the embedded font (see `font.rs`).
pub(crate) const FONT: &str = "sans-serif";

pub(crate) fn font(size: u32) -> FontDesc<'static> {
    FontDesc::new(FontFamily::Name(FONT), size as f64, FontStyle::Normal)
}

/// Width in pixels of `text` at `size` in the embedded font (an estimate if it is missing).
pub(crate) fn text_width(text: &str, size: u32) -> u32 {
    font(size)
        .box_size(text)
        .map(|(w, _)| w)
        .unwrap_or_else(|_| (text.chars().count() as u32 * size * 2).div_ceil(3))
}

/// The widest of `texts` at `size`.
pub(crate) fn max_text_width<'a>(texts: impl IntoIterator<Item = &'a str>, size: u32) -> u32 {
    texts
        .into_iter()
        .map(|t| text_width(t, size))
        .max()
        .unwrap_or(0)
}

/// Ten distinguishable colours (Tableau 10 with its red replaced by navy: red marks limits).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(57, 59, 121),
];

pub(crate) fn color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// The fixed colour of each driver, peer, root switch and of the floors, the same in every
/// chart of every report (the README and the Chromium test name them).
pub(crate) const DRIVER_COLORS: &[(&str, RGBColor)] = &[
    ("overlay", RGBColor(31, 119, 180)),
    ("overlay2", RGBColor(23, 190, 207)),
    ("copy", RGBColor(255, 127, 14)),
    ("btrfs", RGBColor(44, 160, 44)),
    ("fuse-overlayfs", RGBColor(148, 103, 189)),
    ("crun", RGBColor(140, 86, 75)),
    ("runc", RGBColor(227, 119, 194)),
    ("cp_a", RGBColor(188, 189, 34)),
    ("floor", RGBColor(110, 110, 110)),
    ("chroot", RGBColor(57, 59, 121)),
    ("pivot_root", RGBColor(99, 121, 57)),
    ("move_chroot", RGBColor(132, 60, 57)),
];

/// Colours for series no table names, picked by a hash of the name (stable across charts).
const EXTRA: [RGBColor; 4] = [
    RGBColor(82, 84, 163),
    RGBColor(140, 109, 49),
    RGBColor(123, 65, 115),
    RGBColor(206, 109, 189),
];

/// The colour of `driver` (a driver, peer, root switch or `floor`) in every chart.
pub(crate) fn driver_color(driver: &str) -> RGBColor {
    DRIVER_COLORS
        .iter()
        .find(|(d, _)| *d == driver)
        .map(|(_, c)| *c)
        .unwrap_or_else(|| {
            let h = driver.bytes().fold(2166136261u32, |h, b| {
                (h ^ u32::from(b)).wrapping_mul(16777619)
            });
            EXTRA[h as usize % EXTRA.len()]
        })
}

/// The `n`th variant of a driver's colour: the colour itself, then darker and lighter shades.
pub(crate) fn shade(c: RGBColor, n: usize) -> RGBColor {
    let f: f64 = match n {
        0 => return c,
        1 => 0.62,
        2 => 1.45,
        3 => 0.4,
        _ => 1.8,
    };
    let ch = |v: u8| -> u8 {
        let v = f64::from(v);
        let out = if f < 1.0 {
            v * f
        } else {
            v + (255.0 - v) * (f - 1.0)
        };
        out.round().clamp(0.0, 255.0) as u8
    };
    RGBColor(ch(c.0), ch(c.1), ch(c.2))
}

/// `#rrggbb`, as the SVG files write colours.
pub(crate) fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// The colour of the kernel's hard walls.
pub(crate) const WALL: RGBColor = RGBColor(200, 30, 30);
/// The colour of limits that depend on the setup (the mount(2) option page).
pub(crate) const LIMIT: RGBColor = RGBColor(230, 110, 0);
pub(crate) const GRID_LIGHT: RGBColor = RGBColor(238, 238, 238);
pub(crate) const GRID_BOLD: RGBColor = RGBColor(205, 205, 205);
pub(crate) const TEXT: RGBColor = RGBColor(34, 34, 34);

/// A point marker whose shape tells runners apart: circle, triangle, square, cross.
/// Works in chart coordinates and in pixels (legends) on any backend.
pub(crate) struct Marker<C> {
    pub at: C,
    pub runner: usize,
    pub color: RGBColor,
}

impl<C> Marker<C> {
    pub(crate) fn new(at: C, runner: usize, color: RGBColor) -> Self {
        Marker { at, runner, color }
    }
}

impl<'a, C: 'a> PointCollection<'a, C> for &'a Marker<C> {
    type Point = &'a C;
    type IntoIter = std::iter::Once<&'a C>;
    fn point_iter(self) -> Self::IntoIter {
        std::iter::once(&self.at)
    }
}

impl<C, DB: DrawingBackend> Drawable<DB> for Marker<C> {
    fn draw<I: Iterator<Item = BackendCoord>>(
        &self,
        mut pos: I,
        backend: &mut DB,
        _parent_dim: (u32, u32),
    ) -> Result<(), DrawingErrorKind<DB::ErrorType>> {
        let Some((x, y)) = pos.next() else {
            return Ok(());
        };
        let c = &self.color;
        match self.runner % 4 {
            0 => backend.draw_circle((x, y), 4, c, true),
            1 => backend.fill_polygon(vec![(x, y - 6), (x - 6, y + 4), (x + 6, y + 4)], c),
            2 => backend.draw_rect((x - 4, y - 4), (x + 4, y + 4), c, true),
            _ => {
                let s = c.stroke_width(2);
                backend.draw_line((x - 5, y - 5), (x + 5, y + 5), &s)?;
                backend.draw_line((x - 5, y + 5), (x + 5, y - 5), &s)
            }
        }
    }
}
