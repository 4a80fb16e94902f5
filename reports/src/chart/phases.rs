//! A stacked bar of the phases of a container start (prepare, mount, switch, exec, ...),
//! one bar per run (or per runner, as the median of its runs when there are many).

use plotters::coord::Shift;
use plotters::element::Rectangle;
use plotters::prelude::*;

use super::axis::{Axis, Categories, Format};
use super::legend::{self, Entry, Swatch};
use super::style;
use super::{Chart, de};

#[derive(Debug, Clone)]
pub(crate) struct PhasesChart {
    pub id: String,
    pub title: String,
    pub caption: String,
    /// Phase names in start order; colours follow this order.
    pub phases: Vec<String>,
    /// One bar per category: its label and nanoseconds per phase (same order as `phases`).
    pub bars: Vec<(String, Vec<f64>)>,
}

impl Chart for PhasesChart {
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
        self.phases.clone()
    }
    fn size(&self) -> (u32, u32) {
        (
            WIDTH,
            self.plot_h() + legend::height(&self.legend_entries(), WIDTH),
        )
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        let (plot, legend_area) = root.split_vertically(self.plot_h());
        let total = |v: &Vec<f64>| v.iter().filter(|x| x.is_finite()).sum::<f64>();
        let max = self.bars.iter().map(|(_, v)| total(v)).fold(0.0, f64::max);
        let names: Vec<String> = self.bars.iter().map(|(n, _)| n.clone()).collect();
        let label_w = style::max_text_width(names.iter().map(String::as_str), 13);
        let cats = Categories::new(names);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, style::font(22))
            .margin(14)
            .x_label_area_size(48)
            .y_label_area_size((label_w + 20).clamp(60, 420))
            .build_cartesian_2d(Axis::from_zero(max, Format::Time), cats.clone())
            .map_err(de)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("time, phases stacked in start order")
            .label_style(style::font(13))
            .axis_desc_style(style::font(15))
            .light_line_style(style::GRID_LIGHT)
            .bold_line_style(style::GRID_BOLD)
            .draw()
            .map_err(de)?;
        for pi in 0..self.phases.len() {
            let color = style::color(pi);
            let rects = self.bars.iter().enumerate().filter_map(|(bi, (_, v))| {
                let start: f64 = v[..pi].iter().filter(|x| x.is_finite()).sum::<f64>();
                let len = v.get(pi).copied().filter(|x| x.is_finite() && *x > 0.0)?;
                let (bottom, top) = cats.span(bi);
                Some(Rectangle::new(
                    [(start, bottom + 0.18), (start + len, top - 0.18)],
                    color.filled(),
                ))
            });
            chart.draw_series(rects).map_err(de)?;
        }
        legend::draw(&legend_area, &self.legend_entries())
    }
}

const WIDTH: u32 = 960;

impl PhasesChart {
    /// Height of the plot above the legend.
    fn plot_h(&self) -> u32 {
        (130 + self.bars.len() as u32 * 34).clamp(280, 2400)
    }

    fn legend_entries(&self) -> Vec<Entry> {
        self.phases
            .iter()
            .enumerate()
            .map(|(i, p)| Entry {
                label: p.clone(),
                swatch: Swatch::Box(style::color(i)),
            })
            .collect()
    }
}
