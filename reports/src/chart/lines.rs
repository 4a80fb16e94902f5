//! Time against a swept parameter (layers, files, bytes, host mounts): one line per driver and
//! runner, a shaded 95% confidence band, floors dashed, and the kernel's limits marked.

use plotters::coord::Shift;
use plotters::element::Polygon;
use plotters::prelude::*;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Format};
use super::legend::{self, Entry, Swatch};
use super::style::{self, LIMIT, Marker, WALL};
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
    /// A hard kernel limit (solid) rather than one that depends on the setup (dashed).
    pub hard: bool,
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
        (
            WIDTH,
            PLOT_H + legend::height(&self.legend_entries(), WIDTH),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, legend_area) = root.split_vertically(PLOT_H);
        let pts = || self.lines.iter().flat_map(|l| l.points.iter());
        let xs = pts().map(|p| p.x).chain(self.walls.iter().map(|w| w.x));
        let (xmin, xmax) = min_max(xs);
        let (ymin_ns, ymax_ns) = min_max(pts().flat_map(|p| [p.lo, p.hi, p.median]));
        let x_axis = Axis::auto(xmin, xmax, Format::for_param(&self.param));
        let y_axis = Axis::auto(ymin_ns, ymax_ns, Format::Time);
        let x_desc = format!(
            "{}{}",
            self.param.replace('_', " "),
            if x_axis.is_log() { " (log scale)" } else { "" }
        );
        let y_desc = format!(
            "median time per iteration{}, band = 95% CI",
            if y_axis.is_log() { " (log scale)" } else { "" }
        );
        let (ylo, yhi) = (y_axis.lo(), y_axis.hi());

        let mut chart = ChartBuilder::on(&plot)
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

        // Walls first, behind the data.
        for (i, wall) in self.walls.iter().enumerate() {
            let color = wall_color(wall);
            let stroke = color.stroke_width(2);
            let at = vec![(wall.x, ylo), (wall.x, yhi)];
            if wall.hard {
                chart.draw_series(LineSeries::new(at, stroke)).map_err(de)?;
            } else {
                chart
                    .draw_series(DashedLineSeries::new(at, 6, 5, stroke))
                    .map_err(de)?;
            }
            let tag = Text::new(
                super::axis::count_label(wall.x),
                (-5, 4 + 16 * i as i32),
                style::font(12)
                    .color(&color)
                    .pos(Pos::new(HPos::Right, VPos::Top)),
            );
            chart
                .draw_series(std::iter::once(EmptyElement::at((wall.x, yhi)) + tag))
                .map_err(de)?;
        }
        let scale = |v: f64| v;
        // Bands, then lines and markers on top.
        for line in self.lines.iter().filter(|l| l.points.len() >= 2) {
            let mut poly: Vec<(f64, f64)> =
                line.points.iter().map(|p| (p.x, scale(p.hi))).collect();
            poly.extend(line.points.iter().rev().map(|p| (p.x, scale(p.lo))));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    poly,
                    line.color.mix(0.18).filled(),
                )))
                .map_err(de)?;
        }
        for line in &self.lines {
            let xy: Vec<(f64, f64)> = line.points.iter().map(|p| (p.x, scale(p.median))).collect();
            let stroke = line.color.stroke_width(2);
            if line.dashed {
                chart
                    .draw_series(DashedLineSeries::new(xy.clone(), 9, 6, stroke))
                    .map_err(de)?;
            } else {
                chart
                    .draw_series(LineSeries::new(xy.clone(), stroke))
                    .map_err(de)?;
            }
            chart
                .draw_series(
                    xy.iter()
                        .map(|&at| Marker::new(at, line.runner, line.color)),
                )
                .map_err(de)?;
        }
        legend::draw(&legend_area, &self.legend_entries())
    }
}

const WIDTH: u32 = 960;
const PLOT_H: u32 = 560;

impl LinesChart {
    fn legend_entries(&self) -> Vec<Entry> {
        let lines = self.lines.iter().map(|l| Entry {
            label: l.label.clone(),
            swatch: Swatch::Line {
                color: l.color,
                dashed: l.dashed,
                marker: Some(l.runner),
            },
        });
        let walls = self.walls.iter().map(|w| Entry {
            label: w.label.clone(),
            swatch: Swatch::Line {
                color: wall_color(w),
                dashed: !w.hard,
                marker: None,
            },
        });
        lines.chain(walls).collect()
    }
}

/// The kernel's hard wall is red and solid; limits that depend on paths are dashed orange.
fn wall_color(w: &Wall) -> RGBColor {
    if w.hard { WALL } else { LIMIT }
}

fn min_max(it: impl Iterator<Item = f64>) -> (f64, f64) {
    it.filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        })
}
