//! Horizontal grouped bars with 95% CI whiskers: start latency per root switch or runtime
//! (one bar per runner), and disk usage per driver.

use plotters::coord::Shift;
use plotters::element::{PathElement, Rectangle};
use plotters::prelude::*;
use plotters::style::RGBColor;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::axis::{Axis, Categories, Format};
use super::legend::{self, Entry, Swatch};
use super::style;
use super::{Chart, de};

/// What the bar lengths are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Quantity {
    /// Nanoseconds, shown in a readable unit.
    Time,
    Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bar {
    pub value: f64,
    /// The whisker, when an interval is known.
    pub ci: Option<(f64, f64)>,
    /// The bar's own colour (its driver's), instead of its series'.
    pub color: Option<RGBColor>,
}

#[derive(Debug, Clone)]
pub(crate) struct BarSeries {
    pub label: String,
    pub color: RGBColor,
    /// One entry per category; `None` where this series has no bar.
    pub bars: Vec<Option<Bar>>,
}

#[derive(Debug, Clone)]
pub(crate) struct BarsChart {
    pub id: String,
    pub title: String,
    pub caption: String,
    /// What the value axis measures, e.g. "median start latency".
    pub value_desc: String,
    pub quantity: Quantity,
    pub categories: Vec<String>,
    pub series: Vec<BarSeries>,
    /// A log value axis (when the values span a decade or more); bars start at its left end.
    pub log: bool,
    /// Legend entries (label, colour) to show instead of one per series: the drivers.
    pub legend: Vec<(String, RGBColor)>,
}

impl Chart for BarsChart {
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
        if !self.legend.is_empty() {
            return self.legend.iter().map(|(l, _)| l.clone()).collect();
        }
        self.series.iter().map(|s| s.label.clone()).collect()
    }
    fn size(&self) -> (u32, u32) {
        (
            WIDTH,
            self.plot_h() + legend::height(&self.legend_entries(), WIDTH),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, legend_area) = root.split_vertically(self.plot_h());
        let values = || {
            self.series
                .iter()
                .flat_map(|s| s.bars.iter().flatten())
                .flat_map(|b| [Some(b.value), b.ci.map(|c| c.0), b.ci.map(|c| c.1)])
                .flatten()
                .filter(|v| v.is_finite())
        };
        let max = values().fold(0.0, f64::max);
        let min_pos = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        let format = match self.quantity {
            Quantity::Time => Format::Time,
            Quantity::Bytes => Format::Bytes,
        };
        // Log when asked and the values span a decade or more; else linear from zero.
        let axis = Some(Axis::auto(min_pos, max, format))
            .filter(|a| self.log && min_pos.is_finite() && a.is_log())
            .unwrap_or_else(|| Axis::from_zero(max, format));
        let base = if axis.is_log() { axis.lo() } else { 0.0 };
        let unit_desc = format!(
            "{}{}{}",
            self.value_desc,
            if axis.is_log() { " (log scale)" } else { "" },
            if self.quantity == Quantity::Time {
                ", whiskers = 95% CI"
            } else {
                ""
            }
        );
        let label_w = style::max_text_width(self.categories.iter().map(String::as_str), 13);
        let cats = Categories::new(self.categories.clone());
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, style::font(22))
            .margin(14)
            .margin_right(70)
            .x_label_area_size(48)
            .y_label_area_size((label_w + 20).clamp(60, 420))
            .build_cartesian_2d(axis, cats.clone())
            .map_err(de)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(unit_desc)
            .label_style(style::font(13))
            .axis_desc_style(style::font(15))
            .light_line_style(style::GRID_LIGHT)
            .bold_line_style(style::GRID_BOLD)
            .draw()
            .map_err(de)?;
        let scale = 1.0;

        let k = self.series.len().max(1) as f64;
        let slot = 0.8 / k;
        for (si, s) in self.series.iter().enumerate() {
            let mut rects = Vec::new();
            let mut whiskers = Vec::new();
            let mut labels = Vec::new();
            for (ci, bar) in s.bars.iter().enumerate() {
                let Some(bar) = bar else { continue };
                let (_, top) = cats.span(ci);
                let y1 = top - 0.1 - slot * si as f64;
                let y0 = y1 - slot * 0.88;
                let v = bar.value / scale;
                let color = bar.color.unwrap_or(s.color);
                if v > base {
                    rects.push(Rectangle::new([(base, y0), (v, y1)], color.filled()));
                }
                let text = match self.quantity {
                    Quantity::Time => crate::merge::human_ns(bar.value),
                    Quantity::Bytes => crate::merge::human_bytes(bar.value as u64),
                };
                let right = bar.ci.map_or(v, |(_, hi)| hi.max(v)).max(base);
                labels.push(
                    EmptyElement::at((right, (y0 + y1) / 2.0))
                        + Text::new(
                            text,
                            (4, 0),
                            style::font(11)
                                .color(&style::TEXT)
                                .pos(Pos::new(HPos::Left, VPos::Center)),
                        ),
                );
                if let Some((lo, hi)) = bar.ci {
                    let (lo, hi, yc, cap) = (lo / scale, hi / scale, (y0 + y1) / 2.0, slot * 0.3);
                    let ink = BLACK.mix(0.75).stroke_width(2);
                    whiskers.push(PathElement::new(vec![(lo, yc), (hi, yc)], ink));
                    whiskers.push(PathElement::new(vec![(lo, yc - cap), (lo, yc + cap)], ink));
                    whiskers.push(PathElement::new(vec![(hi, yc - cap), (hi, yc + cap)], ink));
                }
            }
            chart.draw_series(rects).map_err(de)?;
            chart.draw_series(whiskers).map_err(de)?;
            chart.draw_series(labels).map_err(de)?;
        }
        legend::draw(&legend_area, &self.legend_entries())
    }
}

const WIDTH: u32 = 960;

impl BarsChart {
    /// Height of the plot above the legend.
    fn plot_h(&self) -> u32 {
        let rows = self.categories.len() as u32 * self.series.len().max(1) as u32;
        (110 + rows * 20 + self.categories.len() as u32 * 10).clamp(280, 2400)
    }

    fn legend_entries(&self) -> Vec<Entry> {
        if !self.legend.is_empty() {
            return self
                .legend
                .iter()
                .map(|(label, c)| Entry {
                    label: label.clone(),
                    swatch: Swatch::Box(*c),
                })
                .collect();
        }
        self.series
            .iter()
            .map(|s| Entry {
                label: s.label.clone(),
                swatch: Swatch::Box(s.color),
            })
            .collect()
    }
}
