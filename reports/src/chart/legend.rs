//! Legends drawn below the plot, in columns, so they never hide data.

use plotters::coord::Shift;
use plotters::element::{PathElement, Rectangle};
use plotters::prelude::*;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::de;
use super::style::{self, Marker, TEXT};

/// What a legend entry shows before its label.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Swatch {
    /// A line sample, dashed or not, with the runner's marker when given.
    Line {
        color: RGBColor,
        dashed: bool,
        marker: Option<usize>,
    },
    /// A filled box (bars, phases).
    Box(RGBColor),
}

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub label: String,
    pub swatch: Swatch,
}

const ROW_H: u32 = 20;
const SWATCH_W: i32 = 30;

fn columns(entries: &[Entry], width: u32) -> u32 {
    let longest = style::max_text_width(entries.iter().map(|e| e.label.as_str()), 12);
    let col_w = longest + SWATCH_W as u32 + 24;
    ((width.saturating_sub(28)) / col_w.max(1)).clamp(1, 4)
}

/// Height the legend needs at `width`.
pub(crate) fn height(entries: &[Entry], width: u32) -> u32 {
    if entries.is_empty() {
        return 0;
    }
    let cols = columns(entries, width);
    let rows = (entries.len() as u32).div_ceil(cols);
    16 + rows * ROW_H
}

pub(crate) fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[Entry],
) -> Result<(), String> {
    if entries.is_empty() {
        return Ok(());
    }
    let (w, _) = area.dim_in_pixel();
    let cols = columns(entries, w);
    let col_w = (w.saturating_sub(28) / cols) as i32;
    for (i, e) in entries.iter().enumerate() {
        let (col, row) = (i as u32 % cols, i as u32 / cols);
        let x = 14 + col as i32 * col_w;
        let y = 8 + (row * ROW_H + ROW_H / 2) as i32;
        match e.swatch {
            Swatch::Line {
                color,
                dashed,
                marker,
            } => {
                let stroke = color.stroke_width(2);
                if dashed {
                    for k in 0..3 {
                        let x0 = x + k * 11;
                        area.draw(&PathElement::new(vec![(x0, y), (x0 + 7, y)], stroke))
                            .map_err(de)?;
                    }
                } else {
                    area.draw(&PathElement::new(
                        vec![(x, y), (x + SWATCH_W - 2, y)],
                        stroke,
                    ))
                    .map_err(de)?;
                }
                if let Some(runner) = marker {
                    area.draw(&Marker::new((x + SWATCH_W / 2 - 1, y), runner, color))
                        .map_err(de)?;
                }
            }
            Swatch::Box(color) => {
                area.draw(&Rectangle::new(
                    [(x + 4, y - 6), (x + SWATCH_W - 6, y + 6)],
                    color.filled(),
                ))
                .map_err(de)?;
            }
        }
        area.draw(&Text::new(
            e.label.clone(),
            (x + SWATCH_W + 6, y),
            style::font(12)
                .color(&TEXT)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(de)?;
    }
    Ok(())
}
