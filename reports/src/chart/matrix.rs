//! The conformance matrix: one row per case, one column per driver (and runner, when runners
//! disagree), each cell coloured pass, fail, declared divergence or skip.

use plotters::coord::Shift;
use plotters::element::Rectangle;
use plotters::prelude::*;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::style::{self, TEXT};
use super::{Chart, de};
use crate::record::Status;

#[derive(Debug, Clone)]
pub(crate) struct MatrixChart {
    pub id: String,
    pub title: String,
    pub caption: String,
    pub columns: Vec<String>,
    pub rows: Vec<String>,
    /// `cells[row][column]`; `None` where the case was not run for that column.
    pub cells: Vec<Vec<Option<Status>>>,
}

pub(crate) fn status_color(s: Status) -> RGBColor {
    match s {
        Status::Pass => RGBColor(102, 187, 106),
        Status::Fail => RGBColor(229, 57, 53),
        Status::Declared => RGBColor(255, 183, 77),
        Status::Skip => RGBColor(200, 200, 200),
    }
}

pub(crate) fn status_text(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Fail => "FAIL",
        Status::Declared => "declared",
        Status::Skip => "skip",
    }
}

const ROW_H: i32 = 24;
const HEADER_H: i32 = 44;
const TITLE_H: i32 = 44;
const LEGEND_H: i32 = 44;

impl MatrixChart {
    fn row_label_w(&self) -> i32 {
        (style::max_text_width(self.rows.iter().map(String::as_str), 13) as i32 + 20)
            .clamp(100, 560)
    }

    fn col_w(&self) -> i32 {
        (style::max_text_width(self.columns.iter().map(String::as_str), 13) as i32 + 20)
            .clamp(72, 280)
    }
}

impl Chart for MatrixChart {
    fn id(&self) -> String {
        self.id.clone()
    }
    fn title(&self) -> String {
        self.title.clone()
    }
    fn caption(&self) -> String {
        self.caption.clone()
    }
    fn series(&self) -> Vec<String> {
        self.columns.clone()
    }
    fn size(&self) -> (u32, u32) {
        let w = self.row_label_w() + self.col_w() * self.columns.len() as i32 + 28;
        let h = TITLE_H + HEADER_H + ROW_H * self.rows.len() as i32 + LEGEND_H + 16;
        (w.clamp(640, 4000) as u32, h.clamp(200, 6000) as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (w, _) = self.size();
        let (lw, cw) = (self.row_label_w(), self.col_w());
        let x0 = 14 + lw;
        let y0 = TITLE_H + HEADER_H;
        let center = Pos::new(HPos::Center, VPos::Center);
        root.draw(&Text::new(
            self.title.clone(),
            (w as i32 / 2, 14),
            style::font(22)
                .color(&TEXT)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(de)?;
        for (ci, col) in self.columns.iter().enumerate() {
            let x = x0 + ci as i32 * cw + cw / 2;
            root.draw(&Text::new(
                col.clone(),
                (x, TITLE_H + HEADER_H / 2),
                style::font(13).color(&TEXT).pos(center),
            ))
            .map_err(de)?;
        }
        for (ri, row) in self.rows.iter().enumerate() {
            let y = y0 + ri as i32 * ROW_H;
            if ri % 2 == 1 {
                root.draw(&Rectangle::new(
                    [(14, y), (x0 + cw * self.columns.len() as i32, y + ROW_H)],
                    RGBColor(246, 246, 246).filled(),
                ))
                .map_err(de)?;
            }
            root.draw(&Text::new(
                row.clone(),
                (x0 - 8, y + ROW_H / 2),
                style::font(13)
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(de)?;
            for (ci, cell) in self
                .cells
                .get(ri)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let x = x0 + ci as i32 * cw;
                let rect = [(x + 2, y + 2), (x + cw - 2, y + ROW_H - 2)];
                match cell {
                    Some(s) => {
                        root.draw(&Rectangle::new(rect, status_color(*s).filled()))
                            .map_err(de)?;
                        root.draw(&Text::new(
                            status_text(*s),
                            (x + cw / 2, y + ROW_H / 2),
                            style::font(12).color(&TEXT).pos(center),
                        ))
                        .map_err(de)?;
                    }
                    None => {
                        root.draw(&Rectangle::new(
                            rect,
                            RGBColor(220, 220, 220).stroke_width(1),
                        ))
                        .map_err(de)?;
                        root.draw(&Text::new(
                            "–",
                            (x + cw / 2, y + ROW_H / 2),
                            style::font(12).color(&TEXT).pos(center),
                        ))
                        .map_err(de)?;
                    }
                }
            }
        }
        let ly = y0 + ROW_H * self.rows.len() as i32 + LEGEND_H / 2;
        let mut lx = 14;
        for (s, text) in [
            (Status::Pass, "pass"),
            (Status::Fail, "fail"),
            (
                Status::Declared,
                "declared divergence (a capability the driver declares)",
            ),
            (Status::Skip, "skip"),
        ] {
            root.draw(&Rectangle::new(
                [(lx, ly - 7), (lx + 16, ly + 7)],
                status_color(s).filled(),
            ))
            .map_err(de)?;
            root.draw(&Text::new(
                text,
                (lx + 22, ly),
                style::font(12)
                    .color(&TEXT)
                    .pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(de)?;
            lx += 22 + style::text_width(text, 12) as i32 + 24;
        }
        Ok(())
    }
}
