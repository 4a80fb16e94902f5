//! Horizontal grouped bars with 95% CI whiskers: start latency per root switch or runtime
//! (one bar per runner), and disk usage per driver.

use plotters::coord::Shift;
use plotters::element::{PathElement, Rectangle};
use plotters::prelude::*;
use plotters::style::RGBColor;

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
        let max = self
            .series
            .iter()
            .flat_map(|s| s.bars.iter().flatten())
            .map(|b| b.ci.map_or(b.value, |(_, hi)| hi.max(b.value)))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let (scale, unit_desc, format) = match self.quantity {
            Quantity::Time => (
                1.0,
                format!("{}, whiskers = 95% CI", self.value_desc),
                Format::Time,
            ),
            Quantity::Bytes => (1.0, self.value_desc.clone(), Format::Bytes),
        };
        let label_w = style::max_text_width(self.categories.iter().map(String::as_str), 13);
        let cats = Categories::new(self.categories.clone());
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, style::font(22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size((label_w + 20).clamp(60, 420))
            .build_cartesian_2d(Axis::from_zero(max / scale, format), cats.clone())
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

        let k = self.series.len().max(1) as f64;
        let slot = 0.8 / k;
        for (si, s) in self.series.iter().enumerate() {
            let mut rects = Vec::new();
            let mut whiskers = Vec::new();
            for (ci, bar) in s.bars.iter().enumerate() {
                let Some(bar) = bar else { continue };
                let (_, top) = cats.span(ci);
                let y1 = top - 0.1 - slot * si as f64;
                let y0 = y1 - slot * 0.88;
                let v = bar.value / scale;
                rects.push(Rectangle::new([(0.0, y0), (v, y1)], s.color.filled()));
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
        self.series
            .iter()
            .map(|s| Entry {
                label: s.label.clone(),
                swatch: Swatch::Box(s.color),
            })
            .collect()
    }
}
