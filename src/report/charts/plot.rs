//! One plot frame: axes with our own ticks, grid, titles and tick labels, and the line series
//! drawn into it.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::prelude::*;

use super::canvas::{
    AXIS_TITLE, Area, Chart, GRID, INK, LIGHT_GRID, PANEL_TITLE, Res, TICK, bold, fitting, font,
    text_width,
};
use super::marks::Dash;
use super::scale::Scale;

/// A scale with its title and tick label format.
pub(super) struct Axis {
    pub(super) scale: Scale,
    pub(super) title: String,
    pub(super) label: Box<dyn Fn(f64) -> String>,
}

impl Axis {
    /// `quantity (unit)`, or `quantity (unit, log scale)` on a log scale.
    pub(super) fn new(
        scale: Scale,
        quantity: &str,
        unit: &str,
        label: impl Fn(f64) -> String + 'static,
    ) -> Axis {
        let title = if scale.log {
            format!("{quantity} ({unit}, log scale)")
        } else {
            format!("{quantity} ({unit})")
        };
        Axis {
            scale,
            title,
            label: Box::new(label),
        }
    }

    /// A latency axis in milliseconds whose labels carry their own unit (µs, ms or s), so
    /// the title names no unit.
    pub(super) fn latency(scale: Scale, quantity: &str) -> Axis {
        let title = if scale.log {
            format!("{quantity} (log scale)")
        } else {
            quantity.to_string()
        };
        Axis {
            scale,
            title,
            label: Box::new(crate::report::fmt::latency_tick),
        }
    }

    pub(super) fn coord(&self, ticks: Vec<f64>) -> Coord {
        let s = &self.scale;
        Coord {
            lo: s.t(s.lo),
            hi: s.t(s.hi),
            bold: ticks.iter().map(|&v| s.t(v)).collect(),
            light: s.minor.iter().map(|&v| s.t(v)).collect(),
        }
    }
}

/// A linear plot coordinate whose grid lines sit exactly where we say: plotters' own `f64`
/// axes choose their ticks, and its `WithKeyPoints` wrapper loses the tick formatter.
#[derive(Debug, Clone)]
pub(super) struct Coord {
    pub(super) lo: f64,
    pub(super) hi: f64,
    /// Labelled grid lines.
    pub(super) bold: Vec<f64>,
    /// Unlabelled light grid lines.
    pub(super) light: Vec<f64>,
}

impl Ranged for Coord {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let fraction = (value - self.lo) / (self.hi - self.lo);
        limit.0 + (f64::from(limit.1 - limit.0) * fraction).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

/// The ticks of an x axis whose labels would not overlap, keeping the first and last.
pub(super) fn spaced_ticks(area: &Area, axis: &Axis, plot_width: f64) -> Vec<f64> {
    let s = &axis.scale;
    let (t0, t1) = (s.t(s.lo), s.t(s.hi));
    let at = |v: f64| (s.t(v) - t0) / (t1 - t0) * plot_width;
    let width = |v: f64| f64::from(text_width(area, &(axis.label)(v), &font(TICK)));
    let mut kept: Vec<f64> = Vec::new();
    for (i, &v) in s.ticks.iter().enumerate() {
        let fits_after = |k: &f64| at(v) - at(*k) >= (width(*k) + width(v)) / 2.0 + 18.0;
        if kept.last().is_none_or(fits_after) {
            kept.push(v);
        } else if i == s.ticks.len() - 1 {
            // The last swept value matters more than the one before it.
            kept.pop();
            if kept.last().is_none_or(fits_after) {
                kept.push(v);
            }
        }
    }
    kept
}

/// The ticks of a y axis at least a line of text apart, from the bottom up.
pub(super) fn spaced_y_ticks(scale: &Scale, plot_height: f64) -> Vec<f64> {
    let (t0, t1) = (scale.t(scale.lo), scale.t(scale.hi));
    let at = |v: f64| (scale.t(v) - t0) / (t1 - t0) * plot_height;
    let mut kept: Vec<f64> = Vec::new();
    for &v in &scale.ticks {
        if kept
            .last()
            .is_none_or(|&k| at(v) - at(k) >= f64::from(TICK) + 10.0)
        {
            kept.push(v);
        }
    }
    kept
}

pub(super) struct PlotOptions {
    pub(super) caption: Option<String>,
    pub(super) x_grid: bool,
    /// Axis titles; inner panels of a grid leave them to their neighbours.
    pub(super) x_title: bool,
    pub(super) y_title: bool,
    /// Lines of horizontal text left of the y axis, naming a row of stacked panels where a
    /// rotated title would not fit the row's height.
    pub(super) side_label: Vec<String>,
    /// Width of the y label area, so stacked rows line their plots up.
    pub(super) y_area: Option<u32>,
}

impl PlotOptions {
    pub(super) fn new() -> PlotOptions {
        PlotOptions {
            caption: None,
            x_grid: true,
            x_title: true,
            y_title: true,
            side_label: Vec::new(),
            y_area: None,
        }
    }

    pub(super) fn caption(mut self, text: impl Into<String>) -> PlotOptions {
        self.caption = Some(text.into());
        self
    }
}

/// A panel title's style: as large as fits the panel, with room for a warning sign.
pub(super) fn caption_style(area: &Area, text: &str) -> TextStyle<'static> {
    let (width, _) = area.dim_in_pixel();
    fitting(
        area,
        text,
        width.saturating_sub(90),
        &[PANEL_TITLE, 26, 24, 22, 20],
        bold,
    )
}

pub(super) const MARGIN_TOP: u32 = 12;
pub(super) const MARGIN_BOTTOM: u32 = 8;
pub(super) const MARGIN_LEFT: u32 = 20;
pub(super) const MARGIN_RIGHT: u32 = 36;

/// Room left of a plot for its tick labels, side label and y title.
pub(super) fn y_area_width(area: &Area, y: &Axis, side_label: &[String], y_title: bool) -> u32 {
    let y_label_width = y
        .scale
        .ticks
        .iter()
        .map(|&v| text_width(area, &(y.label)(v), &font(TICK)))
        .max()
        .unwrap_or(0);
    let side_width = side_label
        .iter()
        .map(|line| text_width(area, line, &bold(AXIS_TITLE)))
        .max()
        .map_or(0, |w| w + 28);
    y_label_width + side_width + if y_title { 60 } else { 24 }
}

/// A plot with axes, grid, titles and labels in `area`.
pub(super) fn plot<'a, 'b>(
    area: &'a Area<'b>,
    x: &Axis,
    y: &Axis,
    options: PlotOptions,
) -> Res<Chart<'a, 'b>> {
    let tick = font(TICK);
    let side_style = bold(AXIS_TITLE);
    let y_area = options
        .y_area
        .unwrap_or_else(|| y_area_width(area, y, &options.side_label, options.y_title));
    let x_area = if options.x_title { 88 } else { 48 };
    let caption_height = if options.caption.is_some() {
        PANEL_TITLE * 3 / 2
    } else {
        0
    };
    let (width, height) = area.dim_in_pixel();
    let plot_width = f64::from(width.saturating_sub(y_area + MARGIN_LEFT + MARGIN_RIGHT));
    let plot_height = height.saturating_sub(x_area + MARGIN_TOP + MARGIN_BOTTOM + caption_height);
    // The y title runs along the axis: shrink it rather than let it run past the plot.
    let y_title_style = if options.y_title {
        fitting(
            area,
            &y.title,
            plot_height,
            &[AXIS_TITLE, 24, 22, 20, 18],
            font,
        )
    } else {
        font(AXIS_TITLE)
    };
    let x_ticks = spaced_ticks(area, x, plot_width);
    let y_ticks = spaced_y_ticks(&y.scale, f64::from(plot_height));
    let mut builder = ChartBuilder::on(area);
    builder
        .margin_left(MARGIN_LEFT)
        .margin_right(MARGIN_RIGHT)
        .margin_top(MARGIN_TOP)
        .margin_bottom(MARGIN_BOTTOM)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area);
    if let Some(caption) = &options.caption {
        builder.caption(caption, caption_style(area, caption));
    }
    let mut chart = builder.build_cartesian_2d(x.coord(x_ticks), y.coord(y_ticks))?;
    let x_label = |v: &f64| (x.label)(x.scale.inverse(*v));
    let y_label = |v: &f64| (y.label)(y.scale.inverse(*v));
    let mut mesh = chart.configure_mesh();
    if options.x_title {
        mesh.x_desc(x.title.as_str());
    }
    if options.y_title {
        mesh.y_desc(y.title.as_str());
    }
    mesh.axis_desc_style(y_title_style)
        .label_style(tick)
        .x_label_formatter(&x_label)
        .y_label_formatter(&y_label)
        .bold_line_style(GRID.stroke_width(1))
        .light_line_style(LIGHT_GRID.stroke_width(1))
        .axis_style(INK.stroke_width(2))
        .set_all_tick_mark_size(6);
    if !options.x_grid {
        mesh.disable_x_mesh();
    }
    mesh.draw()?;
    if !options.side_label.is_empty() {
        let line_height = AXIS_TITLE as i32 + 8;
        let top = MARGIN_TOP as i32 + caption_height as i32 + plot_height as i32 / 2
            - line_height * options.side_label.len() as i32 / 2;
        for (i, line) in options.side_label.iter().enumerate() {
            area.draw_text(line, &side_style, (10, top + i as i32 * line_height))?;
        }
    }
    Ok(chart)
}

pub(super) fn caption(text: impl Into<String>) -> PlotOptions {
    PlotOptions::new().caption(text)
}

pub(super) fn no_caption() -> PlotOptions {
    PlotOptions::new()
}

/// A technique's line: its colour, width and stroke.
pub(super) fn technique_line(
    chart: &mut Chart,
    points: &[(f64, f64)],
    technique: crate::model::technique::Technique,
) -> Res {
    let s = super::style::style(technique);
    let dash = if s.dashed { Dash::Dashed } else { Dash::Solid };
    series_line(chart, points, s.colour, s.line_width, dash)
}

pub(super) fn series_line(
    chart: &mut Chart,
    points: &[(f64, f64)],
    c: RGBColor,
    width: u32,
    dash: Dash,
) -> Res {
    let style = c.stroke_width(width);
    let points = points.iter().copied();
    match dash {
        Dash::Solid => {
            chart.draw_series(LineSeries::new(points, style))?;
        }
        Dash::Dashed => {
            chart.draw_series(DashedLineSeries::new(points, 14, 9, style))?;
        }
        Dash::Dotted => {
            chart.draw_series(DashedLineSeries::new(points, 3, 7, style))?;
        }
    }
    Ok(())
}
