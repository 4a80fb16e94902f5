//! Time against a swept parameter (layers, files, bytes, host mounts): one line per driver and
//! runner, a shaded 95% confidence band, floors dashed, and the kernel's limits marked.

use plotters::coord::Shift;
use plotters::element::{DashedPathElement, PathElement, Polygon};
use plotters::prelude::*;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Format, TimeUnit};
use super::style::{self, WALL};
use super::{Chart, de};

/// One point: the median and its interval, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Point {
    pub x: f64,
    pub median: f64,
    pub lo: f64,
    pub hi: f64,
}

#[derive(Debug, Clone)]
pub(crate) struct Line {
    pub label: String,
    pub color: RGBColor,
    /// Index of the runner: picks the marker shape.
    pub runner: usize,
    /// Floors are dashed.
    pub dashed: bool,
    /// Sorted by x.
    pub points: Vec<Point>,
}

/// A vertical marker: a kernel limit at a parameter value.
#[derive(Debug, Clone)]
pub(crate) struct Wall {
    pub x: f64,
    pub label: String,
}

#[derive(Debug, Clone)]
pub(crate) struct LinesChart {
    pub id: String,
    pub title: String,
    pub caption: String,
    /// The swept parameter, e.g. `layers`.
    pub param: String,
    pub lines: Vec<Line>,
    pub walls: Vec<Wall>,
}

impl Chart for LinesChart {
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
        self.lines
            .iter()
            .map(|l| l.label.clone())
            .chain(self.walls.iter().map(|w| w.label.clone()))
            .collect()
    }
    fn size(&self) -> (u32, u32) {
        (960, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let pts = || self.lines.iter().flat_map(|l| l.points.iter());
        let xs = pts().map(|p| p.x).chain(self.walls.iter().map(|w| w.x));
        let (xmin, xmax) = min_max(xs);
        let (ymin_ns, ymax_ns) = min_max(pts().flat_map(|p| [p.lo, p.hi, p.median]));
        let unit = TimeUnit::for_max_ns(ymax_ns);
        let x_axis = Axis::auto(xmin, xmax, Format::for_param(&self.param));
        let y_axis = Axis::auto(ymin_ns / unit.ns, ymax_ns / unit.ns, Format::Plain);
        let x_desc = format!(
            "{}{}",
            self.param.replace('_', " "),
            if x_axis.is_log() { " (log scale)" } else { "" }
        );
        let y_desc = format!(
            "median time per iteration ({}{}), band = 95% CI",
            unit.name,
            if y_axis.is_log() { ", log scale" } else { "" }
        );
        let (ylo, yhi) = (y_axis.lo(), y_axis.hi());

        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, style::font(22))
            .margin(14)
            .x_label_area_size(52)
            .y_label_area_size(78)
            .build_cartesian_2d(x_axis, y_axis)
            .map_err(de)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style(style::font(13))
            .axis_desc_style(style::font(15))
            .light_line_style(style::GRID_LIGHT)
            .bold_line_style(style::GRID_BOLD)
            .draw()
            .map_err(de)?;

        let scale = |p: &Point| (p.x, p.median / unit.ns, p.lo / unit.ns, p.hi / unit.ns);
        // Bands first, so lines and markers sit on top.
        for line in self.lines.iter().filter(|l| l.points.len() >= 2) {
            let mut poly: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x, scale(p).3)).collect();
            poly.extend(line.points.iter().rev().map(|p| (p.x, scale(p).2)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly,
                    line.color.mix(0.16).filled(),
                )))
                .map_err(de)?;
        }
        for line in &self.lines {
            let xy: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x, scale(p).1)).collect();
            let color = line.color;
            let runner = line.runner;
            let dashed = line.dashed;
            let stroke = color.stroke_width(2);
            let series = if dashed {
                chart
                    .draw_series(DashedLineSeries::new(xy.clone(), 9, 6, stroke))
                    .map_err(de)?
            } else {
                chart
                    .draw_series(LineSeries::new(xy.clone(), stroke))
                    .map_err(de)?
            };
            series.label(line.label.clone());
            if dashed {
                series.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + DashedPathElement::new(vec![(-4, 0), (22, 0)], 5, 3, stroke)
                        + style::Marker::new((9, 0), runner, color)
                });
            } else {
                series.legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(-4, 0), (22, 0)], stroke)
                        + style::Marker::new((9, 0), runner, color)
                });
            }
            chart
                .draw_series(xy.iter().map(|&at| style::Marker::new(at, runner, color)))
                .map_err(de)?;
        }
        for wall in &self.walls {
            let wall_style = WALL.stroke_width(2);
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(wall.x, ylo), (wall.x, yhi)],
                    4,
                    4,
                    wall_style,
                ))
                .map_err(de)?
                .label(wall.label.clone())
                .legend(move |(x, y)| {
                    DashedPathElement::new(vec![(x - 4, y), (x + 22, y)], 4, 3, wall_style)
                });
            let tag = Text::new(
                super::axis::count_label(wall.x),
                (-4, 4),
                style::font(12)
                    .color(&WALL)
                    .pos(Pos::new(HPos::Right, VPos::Top)),
            );
            chart
                .draw_series(std::iter::once(EmptyElement::at((wall.x, yhi)) + tag))
                .map_err(de)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.88))
            .border_style(BLACK.mix(0.35))
            .label_font(style::font(12))
            .draw()
            .map_err(de)?;
        Ok(())
    }
}

fn min_max(it: impl Iterator<Item = f64>) -> (f64, f64) {
    it.filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        })
}
