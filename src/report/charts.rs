//! PNG charts drawn with plotters, pure functions of a `RunSummary` (through `plan::View`).
//!
//! Made to be projected: 1600×900, large type, a title naming the scenario, axis titles with
//! units, the legend in a strip above the plot (never over the data), one colour and one
//! marker shape per technique in every chart, a log scale wherever values span decades (the
//! axis title then says so), and cells with warnings marked on the chart itself.
//!
//! The text is drawn with DejaVu Sans embedded in the binary (`fonts/`, license beside it),
//! because plotters' `ab_glyph` backend has no system font fallback and study-group machines
//! may have no fonts at all. Pixels are encoded to PNG here rather than by plotters, so the
//! bytes are ours to keep deterministic and errors can name the file.

use std::error::Error;
use std::ops::Range;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::fmt::{bytes, in_mib, int, num};
use super::plan::{self, ChartKind, ChartPlan, Point, Sweep, View, has_warnings, short_flags};
use crate::loadgen::results::{CellResult, TimelinePoint};
use crate::techniques::Technique;

/// Size of every chart, in pixels: 16:9, the shape of a projector.
pub const WIDTH: u32 = 1600;
pub const HEIGHT: u32 = 900;

/// The family the embedded fonts are registered under. Every text style names it: the
/// `ab_glyph` backend finds only registered fonts, so a style naming any other family would
/// fail to draw rather than quietly use a system font.
const FAMILY: &str = "pushlab-dejavu-sans";
static REGULAR: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("fonts/DejaVuSans-Bold.ttf");

const INK: RGBColor = RGBColor(20, 20, 20);
const MUTED: RGBColor = RGBColor(85, 85, 85);
const GRID: RGBColor = RGBColor(200, 200, 200);
const LIGHT_GRID: RGBColor = RGBColor(232, 232, 232);
const STALL: RGBColor = RGBColor(226, 226, 226);
const FLOOR: RGBColor = RGBColor(110, 110, 110);

/// The Okabe–Ito palette, which stays distinct under the common colour-vision deficiencies:
/// warm colours for the two polling techniques, cool ones for the two push techniques.
pub fn colour(technique: Technique) -> RGBColor {
    match technique {
        Technique::ShortPolling => RGBColor(213, 94, 0),
        Technique::LongPolling => RGBColor(230, 159, 0),
        Technique::WebSocket => RGBColor(0, 114, 178),
        Technique::Sse => RGBColor(0, 158, 115),
    }
}

/// A second cue besides colour, for grey-scale printouts and washed-out projectors.
#[derive(Debug, Clone, Copy)]
enum Shape {
    Triangle,
    Square,
    Circle,
    Diamond,
}

fn shape(technique: Technique) -> Shape {
    match technique {
        Technique::ShortPolling => Shape::Triangle,
        Technique::LongPolling => Shape::Square,
        Technique::WebSocket => Shape::Circle,
        Technique::Sse => Shape::Diamond,
    }
}

/// Lines drawn first are wider and markers larger, so a technique whose values coincide
/// with a later one still shows as an outline around it.
fn line_width(technique: Technique) -> u32 {
    7 - technique as u32
}

fn marker_size(technique: Technique) -> i32 {
    [13, 11, 9, 8][technique as usize]
}

/// The payload part of a stacked bar: the technique's colour, much lighter.
fn tint(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (f64::from(v) + (255.0 - f64::from(v)) * 0.62).round() as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Coord, Coord>>;
type Res<T = ()> = Result<T, Box<dyn Error>>;

/// Draws one chart of the plan and returns the PNG file's bytes.
pub fn render(view: &View, plan: &ChartPlan) -> Result<Vec<u8>, String> {
    register_fonts()?;
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root, view, plan).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    encode_png(&rgb).map_err(|e| format!("cannot encode PNG: {e}"))
}

fn register_fonts() -> Result<(), String> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        register_font(FAMILY, FontStyle::Normal, REGULAR).is_ok()
            && register_font(FAMILY, FontStyle::Bold, BOLD).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the embedded DejaVu Sans font could not be loaded".into())
    }
}

fn encode_png(rgb: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, WIDTH, HEIGHT);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Default compression: a quarter of the size of `Fast` (about 80 kB a chart), for a
    // few milliseconds more per chart.
    encoder.set_compression(png::Compression::Default);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

fn draw(root: &Area, view: &View, plan: &ChartPlan) -> Res {
    match &plan.kind {
        ChartKind::Percentiles(point) => percentiles(root, view, plan, point),
        ChartKind::SweepLatency(sweep) => sweep_latency(root, view, plan, sweep),
        ChartKind::SweepWire(sweep) => sweep_wire(root, view, plan, sweep),
        ChartKind::SweepServer(sweep) => sweep_server(root, view, plan, sweep),
        ChartKind::Cost => cost(root, view, plan),
        ChartKind::Timeline(point) => timeline(root, view, plan, point),
    }
}

// ---------------------------------------------------------------------------------------
// Text, legend and frame

fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, f64::from(size)).into_font()).color(&INK)
}

fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, f64::from(size), FontStyle::Bold).into_font()).color(&INK)
}

fn text_width(area: &Area, text: &str, style: &TextStyle) -> u32 {
    area.estimate_text_size(text, style).map_or(0, |(w, _)| w)
}

/// The largest size from `sizes` at which `text` fits `width`.
fn fitting(
    area: &Area,
    text: &str,
    width: u32,
    sizes: &[u32],
    make: fn(u32) -> TextStyle<'static>,
) -> TextStyle<'static> {
    for &size in sizes {
        let style = make(size);
        if text_width(area, text, &style) <= width {
            return style;
        }
    }
    make(sizes[sizes.len() - 1])
}

/// What a legend entry shows before its label.
#[derive(Debug, Clone, Copy)]
enum Swatch {
    /// The technique's line and marker.
    Technique(Technique),
    /// A filled box of the technique's colour (bar charts).
    Bar(Technique),
    /// A line in a colour and dash (p50 vs p99, the payload floor).
    Line(RGBColor, u32, Dash),
    /// Two boxes: payload (light) under overhead (full), in grey.
    Stack,
    /// The ring around a cell with warnings.
    Ring,
    /// The warning sign above a bar.
    Warn,
    /// The reconnect marker of the timeline.
    Reconnect,
    /// The grey band of a second without deliveries.
    Band,
}

struct Legend {
    swatch: Swatch,
    label: String,
}

fn legend(swatch: Swatch, label: impl Into<String>) -> Legend {
    Legend {
        swatch,
        label: label.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Dash {
    Solid,
    Dashed,
    Dotted,
}

/// Type sizes in pixels, chosen to stay legible when 1600×900 is projected on a wall.
const TICK: u32 = 24;
const AXIS_TITLE: u32 = 26;
const LEGEND: u32 = 24;
const PANEL_TITLE: u32 = 28;

const LEFT: i32 = 36;
const LEGEND_ROW: i32 = 40;
const SWATCH: i32 = 58;

/// Draws the title, subtitle and legend, and returns the area left for the plot.
fn header<'a>(root: &Area<'a>, title: &str, subtitle: &str, items: &[Legend]) -> Res<Area<'a>> {
    let usable = WIDTH - 2 * LEFT as u32;
    let title_style = fitting(root, title, usable, &[38, 34, 30, 26], bold);
    root.draw_text(title, &title_style, (LEFT, 14))?;
    let mut y = 64;
    if !subtitle.is_empty() {
        let style = fitting(root, subtitle, usable, &[24, 22, 20, 18], font).color(&MUTED);
        root.draw_text(subtitle, &style, (LEFT, y))?;
        y += 38;
    }
    let label_style = font(LEGEND);
    let mut x = LEFT;
    let mut rows = 0;
    for (i, item) in items.iter().enumerate() {
        let width = SWATCH + 10 + text_width(root, &item.label, &label_style) as i32;
        if i == 0 || x + width > WIDTH as i32 - LEFT {
            if i > 0 {
                y += LEGEND_ROW;
            }
            x = LEFT;
            rows += 1;
        }
        draw_swatch(root, item.swatch, (x, y + 13))?;
        root.draw_text(&item.label, &label_style, (x + SWATCH + 10, y))?;
        x += width + 40;
    }
    let height = if rows > 0 { y + LEGEND_ROW } else { y } + 4;
    Ok(root.split_vertically(height).1)
}

fn draw_swatch(root: &Area, swatch: Swatch, (x, y): (i32, i32)) -> Res {
    let mid = x + SWATCH / 2;
    match swatch {
        Swatch::Technique(t) => {
            root.draw(&PathElement::new(
                vec![(x, y), (x + SWATCH, y)],
                colour(t).stroke_width(line_width(t)),
            ))?;
            draw_marker(root, shape(t), (mid, y), marker_size(t) - 1, colour(t))?;
        }
        Swatch::Bar(t) => {
            root.draw(&Rectangle::new(
                [(x + 8, y - 11), (x + SWATCH - 8, y + 11)],
                colour(t).filled(),
            ))?;
        }
        Swatch::Line(c, width, dash) => {
            pixel_line(root, (x, y), (x + SWATCH, y), c, width, dash)?;
        }
        Swatch::Stack => {
            let grey = RGBColor(120, 120, 120);
            root.draw(&Rectangle::new(
                [(x + 12, y - 13), (x + SWATCH - 12, y)],
                grey.filled(),
            ))?;
            root.draw(&Rectangle::new(
                [(x + 12, y), (x + SWATCH - 12, y + 13)],
                tint(grey).filled(),
            ))?;
        }
        Swatch::Ring => {
            root.draw(&Circle::new((mid, y), 14, INK.stroke_width(3)))?;
        }
        Swatch::Warn => {
            warn_sign(root, (mid, y))?;
        }
        Swatch::Reconnect => {
            reconnect_marker(root, (mid, y))?;
        }
        Swatch::Band => {
            root.draw(&Rectangle::new(
                [(x + 14, y - 14), (x + SWATCH - 14, y + 14)],
                STALL.filled(),
            ))?;
        }
    }
    Ok(())
}

/// A dashed or dotted line between two pixels, for legends.
fn pixel_line(
    root: &Area,
    from: (i32, i32),
    to: (i32, i32),
    c: RGBColor,
    width: u32,
    dash: Dash,
) -> Res {
    let style = c.stroke_width(width);
    match dash {
        Dash::Solid => root.draw(&PathElement::new(vec![from, to], style))?,
        Dash::Dashed => root.draw(&DashedPathElement::new(vec![from, to], 12, 8, style))?,
        Dash::Dotted => root.draw(&DashedPathElement::new(vec![from, to], 3, 6, style))?,
    }
    Ok(())
}

fn draw_marker(root: &Area, shape: Shape, (x, y): (i32, i32), r: i32, c: RGBColor) -> Res {
    // A white halo first, so overlapping markers of different techniques stay apart.
    for (grow, fill) in [(2, WHITE), (0, c)] {
        let r = r + grow;
        let style = fill.filled();
        match shape {
            Shape::Circle => root.draw(&Circle::new((x, y), r, style))?,
            Shape::Square => root.draw(&Rectangle::new(
                [(x - r + 1, y - r + 1), (x + r - 1, y + r - 1)],
                style,
            ))?,
            Shape::Triangle => root.draw(&Polygon::new(
                vec![
                    (x, y - r - 2),
                    (x - r - 1, y + r - 1),
                    (x + r + 1, y + r - 1),
                ],
                style,
            ))?,
            Shape::Diamond => root.draw(&Polygon::new(
                vec![
                    (x, y - r - 2),
                    (x + r + 2, y),
                    (x, y + r + 2),
                    (x - r - 2, y),
                ],
                style,
            ))?,
        }
    }
    Ok(())
}

/// A black warning triangle with "!", centred on a pixel.
fn warn_sign(root: &Area, (x, y): (i32, i32)) -> Res {
    root.draw(&Polygon::new(
        vec![(x, y - 14), (x - 15, y + 12), (x + 15, y + 12)],
        INK.filled(),
    ))?;
    let style = anchored(bold(18).color(&WHITE), HPos::Center, VPos::Center);
    root.draw_text("!", &style, (x, y + 3))?;
    Ok(())
}

fn reconnect_marker(root: &Area, (x, y): (i32, i32)) -> Res {
    root.draw(&Polygon::new(
        vec![(x - 10, y - 9), (x + 10, y - 9), (x, y + 9)],
        INK.filled(),
    ))?;
    Ok(())
}

fn anchored(style: TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    style.pos(Pos::new(h, v))
}

// ---------------------------------------------------------------------------------------
// Scales and axes

/// An axis range in data units, linear or base-10 logarithmic, with the values that get a
/// labelled grid line (`ticks`) and an unlabelled light one (`minor`).
#[derive(Debug, Clone)]
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    minor: Vec<f64>,
}

impl Scale {
    /// Data value to plot coordinate: plotters draws every axis as linear, and log axes are
    /// plotted in log10 units, so one coordinate type serves both and the tick positions are
    /// ours to choose.
    fn t(&self, value: f64) -> f64 {
        if self.log {
            value.max(self.lo).log10()
        } else {
            value
        }
    }

    fn inverse(&self, t: f64) -> f64 {
        if self.log { 10f64.powf(t) } else { t }
    }

    /// For values measured from zero (bars, counts): linear from 0 unless the positive
    /// values span more than `LOG_RATIO`, then log.
    fn for_values(values: impl IntoIterator<Item = f64>) -> Scale {
        Scale::with_headroom(values, 1.0)
    }

    /// As `for_values`, with the top raised by `headroom` (linear) or `headroom²` (log) for
    /// labels above the tallest bar; the choice of log or linear ignores the headroom.
    fn with_headroom(values: impl IntoIterator<Item = f64>, headroom: f64) -> Scale {
        let positive: Vec<f64> = values
            .into_iter()
            .filter(|v| v.is_finite() && *v > 0.0)
            .collect();
        let max = positive.iter().copied().fold(0.0, f64::max);
        let min = positive.iter().copied().fold(f64::INFINITY, f64::min);
        if positive.is_empty() {
            return Scale::linear(1.0);
        }
        if max / min > LOG_RATIO {
            Scale::logarithmic(min, max * headroom * headroom)
        } else {
            Scale::linear(max * headroom)
        }
    }

    fn linear(max: f64) -> Scale {
        let step = nice_ceil(max / 5.0);
        let hi = ((max * 1.04) / step).ceil().max(1.0) * step;
        let count = (hi / step).round() as i64;
        let ticks = (0..=count).map(|i| i as f64 * step).collect();
        Scale {
            log: false,
            lo: 0.0,
            hi,
            ticks,
            minor: Vec::new(),
        }
    }

    fn logarithmic(min: f64, max: f64) -> Scale {
        let lo = nice_floor(min / 1.5);
        let hi = nice_ceil(max * 1.05);
        let decades = (hi / lo).log10();
        let mut ticks = Vec::new();
        let mut minor = Vec::new();
        let first = (lo.log10() + 1e-9).floor() as i32;
        let last = (hi.log10() - 1e-9).ceil() as i32;
        for exponent in first..=last {
            for mantissa in [1.0, 2.0, 5.0] {
                let value = mantissa * 10f64.powi(exponent);
                if value < lo * (1.0 - 1e-9) || value > hi * (1.0 + 1e-9) {
                    continue;
                }
                // Over a few decades, 1-2-5 labels would crowd; label decades only.
                if decades <= 2.0 || mantissa == 1.0 {
                    ticks.push(value);
                } else {
                    minor.push(value);
                }
            }
        }
        Scale {
            log: true,
            lo,
            hi,
            ticks,
            minor,
        }
    }

    /// For the swept values on an x axis: every swept value gets its tick, with a margin so
    /// the markers at the ends stay inside the plot.
    fn for_sweep(values: &[f64]) -> Scale {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if min > 0.0 && max / min >= 10.0 {
            Scale {
                log: true,
                lo: min / 10f64.powf((max / min).log10() * 0.05),
                hi: max * 10f64.powf((max / min).log10() * 0.05),
                ticks: values.to_vec(),
                minor: Vec::new(),
            }
        } else {
            let pad = ((max - min) * 0.06).max(max.abs() * 0.05).max(0.5);
            Scale {
                log: false,
                lo: min - pad,
                hi: max + pad,
                ticks: values.to_vec(),
                minor: Vec::new(),
            }
        }
    }

    /// A fixed plot-coordinate range with given ticks (the percentile axis, bar groups).
    fn fixed(lo: f64, hi: f64, ticks: Vec<f64>) -> Scale {
        Scale {
            log: false,
            lo,
            hi,
            ticks,
            minor: Vec::new(),
        }
    }
}

/// Positive values further apart than this ratio get a log axis.
const LOG_RATIO: f64 = 20.0;

/// The 1-2-5 value at or below `v`.
fn nice_floor(v: f64) -> f64 {
    let base = 10f64.powf((v.log10() + 1e-9).floor());
    let m = v / base;
    let m = if m >= 5.0 - 1e-9 {
        5.0
    } else if m >= 2.0 - 1e-9 {
        2.0
    } else {
        1.0
    };
    m * base
}

/// The 1-2-5 value at or above `v`.
fn nice_ceil(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let base = 10f64.powf((v.log10() + 1e-9).floor());
    let m = v / base;
    let m = if m <= 1.0 + 1e-9 {
        1.0
    } else if m <= 2.0 + 1e-9 {
        2.0
    } else if m <= 5.0 + 1e-9 {
        5.0
    } else {
        10.0
    };
    m * base
}

/// A scale with its title and tick label format.
struct Axis {
    scale: Scale,
    title: String,
    label: Box<dyn Fn(f64) -> String>,
}

impl Axis {
    /// `quantity (unit)`, or `quantity (unit, log scale)` on a log scale.
    fn new(
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

    fn coord(&self, ticks: Vec<f64>) -> Coord {
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
struct Coord {
    lo: f64,
    hi: f64,
    /// Labelled grid lines.
    bold: Vec<f64>,
    /// Unlabelled light grid lines.
    light: Vec<f64>,
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
fn spaced_ticks(area: &Area, axis: &Axis, plot_width: f64) -> Vec<f64> {
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
fn spaced_y_ticks(scale: &Scale, plot_height: f64) -> Vec<f64> {
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

struct PlotOptions {
    caption: Option<String>,
    x_grid: bool,
    /// Axis titles; inner panels of a grid leave them to their neighbours.
    x_title: bool,
    y_title: bool,
    /// Lines of horizontal text left of the y axis, naming a row of stacked panels where a
    /// rotated title would not fit the row's height.
    side_label: Vec<String>,
    /// Width of the y label area, so stacked rows line their plots up.
    y_area: Option<u32>,
}

impl PlotOptions {
    fn new() -> PlotOptions {
        PlotOptions {
            caption: None,
            x_grid: true,
            x_title: true,
            y_title: true,
            side_label: Vec::new(),
            y_area: None,
        }
    }

    fn caption(mut self, text: impl Into<String>) -> PlotOptions {
        self.caption = Some(text.into());
        self
    }
}

/// A panel title's style: as large as fits the panel, with room for a warning sign.
fn caption_style(area: &Area, text: &str) -> TextStyle<'static> {
    let (width, _) = area.dim_in_pixel();
    fitting(
        area,
        text,
        width.saturating_sub(90),
        &[PANEL_TITLE, 26, 24, 22, 20],
        bold,
    )
}

const MARGIN_TOP: u32 = 12;
const MARGIN_BOTTOM: u32 = 8;
const MARGIN_LEFT: u32 = 20;
const MARGIN_RIGHT: u32 = 36;

/// Room left of a plot for its tick labels, side label and y title.
fn y_area_width(area: &Area, y: &Axis, side_label: &[String], y_title: bool) -> u32 {
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
fn plot<'a, 'b>(
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

fn caption(text: impl Into<String>) -> PlotOptions {
    PlotOptions::new().caption(text)
}

fn no_caption() -> PlotOptions {
    PlotOptions::new()
}

fn series_line(
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

// ---------------------------------------------------------------------------------------
// Shared pieces of text

fn window_text(view: &View) -> String {
    let windows: Vec<f64> = view.cells.iter().map(|c| c.window_seconds).collect();
    let min = windows.iter().copied().fold(f64::INFINITY, f64::min);
    let max = windows.iter().copied().fold(0.0, f64::max);
    if windows.is_empty() {
        String::new()
    } else if (max - min).abs() < 0.05 {
        format!("{} s measured per cell", num(max))
    } else {
        format!("{}–{} s measured per cell", num(min), num(max))
    }
}

fn context_line(view: &View, first: &str) -> String {
    let scenario = &view.summary.scenario;
    let mut parts = vec![
        first.to_string(),
        format!("{} audience", scenario.audience.name()),
    ];
    if view.techniques.contains(&Technique::ShortPolling) {
        parts.push(format!(
            "polls every {}",
            humantime::format_duration(scenario.poll_interval)
        ));
    }
    parts.push(window_text(view));
    parts.retain(|p| !p.is_empty());
    parts.join(" · ")
}

fn technique_label(cell: &CellResult) -> String {
    let mut label = cell.technique.name().to_string();
    if cell.latency.count == 0 {
        label.push_str(" (nothing delivered)");
    }
    if let Some(flags) = short_flags(cell) {
        label.push_str(&format!(" ⚠ {flags}"));
    }
    label
}

// ---------------------------------------------------------------------------------------
// 1. Latency percentile distribution

/// Plot x of a percentile: log10(1 / (1 − p)), so 90%, 99%, 99.9% are evenly spaced.
fn percentile_x(percentile: f64) -> f64 {
    (100.0 / (100.0 - percentile)).log10()
}

const PERCENTILE_TICKS: [f64; 5] = [50.0, 90.0, 99.0, 99.9, 99.99];

fn percentile_curve(cell: &CellResult) -> Vec<(f64, f64)> {
    let l = &cell.latency;
    if l.count == 0 {
        return Vec::new();
    }
    let curve: Vec<(f64, f64)> = l
        .percentiles
        .iter()
        .filter(|p| p.percentile >= 50.0 - 1e-9 && p.percentile <= 99.99 + 1e-9)
        .map(|p| (percentile_x(p.percentile), p.latency_us as f64 / 1000.0))
        .collect();
    if curve.len() >= 2 {
        return curve;
    }
    // No distribution stored: fall back to the five summary percentiles.
    let summary = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us];
    PERCENTILE_TICKS
        .iter()
        .zip(summary)
        .map(|(&p, us)| (percentile_x(p), us as f64 / 1000.0))
        .collect()
}

fn percentiles(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells = view.cells_at(point);
    let curves: Vec<(&CellResult, Vec<(f64, f64)>)> =
        cells.iter().map(|c| (*c, percentile_curve(c))).collect();
    let mut items: Vec<Legend> = cells
        .iter()
        .map(|c| legend(Swatch::Technique(c.technique), technique_label(c)))
        .collect();
    if cells.iter().any(|c| has_warnings(c)) {
        items.push(legend(Swatch::Ring, "cell with warnings"));
    }
    let y = Scale::for_values(
        curves
            .iter()
            .flat_map(|(_, curve)| curve.iter().map(|&(_, v)| v)),
    );
    let y = Axis::new(y, "delivery latency", "ms", num);
    // The x axis is linear in log10(1/(1 − p)) already, so its ticks are transformed here
    // and its labels transform back.
    let x = Axis {
        scale: Scale::fixed(
            percentile_x(50.0) - 0.08,
            percentile_x(99.99) + 0.08,
            PERCENTILE_TICKS.iter().map(|&p| percentile_x(p)).collect(),
        ),
        title: "percentile (log scale of 1/(1 − p), as HdrHistogram draws it)".into(),
        label: Box::new(|t| {
            let p = 100.0 - 100.0 / 10f64.powf(t);
            let text = format!("{:.2}", (p * 100.0).round() / 100.0);
            format!("{}%", text.trim_end_matches('0').trim_end_matches('.'))
        }),
    };
    let subtitle = context_line(view, &point.describe());
    let body = header(root, &plan.title, &subtitle, &items)?;
    let mut chart = plot(&body, &x, &y, no_caption())?;
    for (cell, curve) in &curves {
        let pts: Vec<(f64, f64)> = curve.iter().map(|&(px, v)| (px, y.scale.t(v))).collect();
        series_line(
            &mut chart,
            &pts,
            colour(cell.technique),
            line_width(cell.technique),
            Dash::Solid,
        )?;
    }
    for (cell, curve) in &curves {
        if curve.is_empty() {
            continue;
        }
        let l = &cell.latency;
        let marks = [l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us];
        for (&p, us) in PERCENTILE_TICKS.iter().zip(marks) {
            let at = chart.backend_coord(&(percentile_x(p), y.scale.t(us as f64 / 1000.0)));
            draw_marker(
                root,
                shape(cell.technique),
                at,
                marker_size(cell.technique) - 1,
                colour(cell.technique),
            )?;
        }
        if has_warnings(cell) {
            let &(px, v) = curve.last().expect("not empty");
            let at = chart.backend_coord(&(px, y.scale.t(v)));
            root.draw(&Circle::new(at, 17, INK.stroke_width(3)))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 2. Sweeps

fn sweep_axis(sweep: &Sweep) -> Axis {
    let dim = sweep.dim;
    let scale = Scale::for_sweep(&sweep.values());
    let title = if scale.log {
        format!("{} — log scale", dim.axis_label())
    } else {
        dim.axis_label().to_string()
    };
    Axis {
        scale,
        title,
        label: Box::new(move |v| dim.tick(v)),
    }
}

fn sweep_legend(view: &View, sweep: &Sweep) -> Vec<Legend> {
    let mut items: Vec<Legend> = view
        .techniques
        .iter()
        .filter(|t| sweep.points.iter().any(|p| view.cell(p, **t).is_some()))
        .map(|&t| legend(Swatch::Technique(t), t.name()))
        .collect();
    if sweep
        .points
        .iter()
        .flat_map(|p| view.cells_at(p))
        .any(has_warnings)
    {
        items.push(legend(Swatch::Ring, "cell with warnings (see report)"));
    }
    items
}

fn sweep_cells<'a>(view: &View<'a>, sweep: &Sweep) -> Vec<&'a CellResult> {
    sweep.points.iter().flat_map(|p| view.cells_at(p)).collect()
}

/// One line per technique along the sweep, with markers, and a ring on cells with warnings.
fn sweep_series(
    root: &Area,
    chart: &mut Chart,
    view: &View,
    sweep: &Sweep,
    x: &Axis,
    y: &Axis,
    value: &dyn Fn(&CellResult) -> Option<f64>,
) -> Res {
    let mut marks = Vec::new();
    for &technique in &view.techniques {
        let pts: Vec<(f64, f64, bool)> = sweep
            .points
            .iter()
            .filter_map(|p| {
                let cell = view.cell(p, technique)?;
                let v = value(cell)?;
                Some((x.scale.t(sweep.dim.of(p)), y.scale.t(v), has_warnings(cell)))
            })
            .collect();
        let line: Vec<(f64, f64)> = pts.iter().map(|&(a, b, _)| (a, b)).collect();
        series_line(
            chart,
            &line,
            colour(technique),
            line_width(technique),
            Dash::Solid,
        )?;
        marks.push((technique, pts));
    }
    for (technique, pts) in &marks {
        for &(px, py, warned) in pts {
            let at = chart.backend_coord(&(px, py));
            draw_marker(
                root,
                shape(*technique),
                at,
                marker_size(*technique),
                colour(*technique),
            )?;
            if warned {
                root.draw(&Circle::new(at, 19, INK.stroke_width(3)))?;
            }
        }
    }
    Ok(())
}

fn sweep_latency(root: &Area, view: &View, plan: &ChartPlan, sweep: &Sweep) -> Res {
    let cells = sweep_cells(view, sweep);
    let y = Scale::for_values(cells.iter().filter(|c| c.latency.count > 0).flat_map(|c| {
        [
            c.latency.p50_us as f64 / 1000.0,
            c.latency.p99_us as f64 / 1000.0,
        ]
    }));
    let x = sweep_axis(sweep);
    let y = Axis::new(y, "delivery latency", "ms", num);
    let subtitle = context_line(view, &view.sweep_fixed(sweep));
    let body = header(root, &plan.title, &subtitle, &sweep_legend(view, sweep))?;
    let (w, _) = body.dim_in_pixel();
    let (left, right) = body.split_horizontally(w / 2);
    type Pick = fn(&CellResult) -> Option<f64>;
    let panels: [(&Area, &str, Pick); 2] = [
        (&left, "median (p50)", |c| {
            (c.latency.count > 0).then_some(c.latency.p50_us as f64 / 1000.0)
        }),
        (&right, "99th percentile (p99)", |c| {
            (c.latency.count > 0).then_some(c.latency.p99_us as f64 / 1000.0)
        }),
    ];
    for (area, title, pick) in panels {
        let mut chart = plot(area, &x, &y, caption(title))?;
        sweep_series(root, &mut chart, view, sweep, &x, &y, &pick)?;
    }
    Ok(())
}

fn sweep_wire(root: &Area, view: &View, plan: &ChartPlan, sweep: &Sweep) -> Res {
    let cells = sweep_cells(view, sweep);
    // The floor every technique must carry: the comment payload that reached subscribers,
    // taken from the cell that delivered most at each point.
    let floor: Vec<(f64, f64)> = sweep
        .points
        .iter()
        .filter_map(|p| {
            view.cells_at(p)
                .into_iter()
                .max_by_key(|c| (c.deliveries.delivered, c.technique))
                .map(|c| (sweep.dim.of(p), plan::payload_bytes_per_second(c)))
        })
        .collect();
    let y = Scale::for_values(
        cells
            .iter()
            .map(|c| plan::wire_bytes_per_second(c))
            .chain(floor.iter().map(|f| f.1)),
    );
    let x = sweep_axis(sweep);
    let y = Axis::new(y, "bytes on the wire, both ways", "per second", |v| {
        format!("{}/s", bytes(v))
    });
    let mut items = sweep_legend(view, sweep);
    items.push(legend(
        Swatch::Line(FLOOR, 3, Dash::Dashed),
        "comment payload alone",
    ));
    let subtitle = context_line(view, &view.sweep_fixed(sweep));
    let body = header(root, &plan.title, &subtitle, &items)?;
    let mut chart = plot(&body, &x, &y, no_caption())?;
    let floor: Vec<(f64, f64)> = floor
        .iter()
        .map(|&(a, b)| (x.scale.t(a), y.scale.t(b)))
        .collect();
    series_line(&mut chart, &floor, FLOOR, 3, Dash::Dashed)?;
    sweep_series(root, &mut chart, view, sweep, &x, &y, &|c| {
        Some(plan::wire_bytes_per_second(c))
    })?;
    Ok(())
}

fn sweep_server(root: &Area, view: &View, plan: &ChartPlan, sweep: &Sweep) -> Res {
    let cells = sweep_cells(view, sweep);
    let x = sweep_axis(sweep);
    let cpu = Axis::new(
        Scale::for_values(cells.iter().map(|c| plan::server_cpu_percent(c))),
        "server CPU",
        "% of one core",
        |v| format!("{}%", num(v)),
    );
    let rss = Axis::new(
        Scale::for_values(cells.iter().map(|c| in_mib(c.server.peak_rss_bytes))),
        "server peak resident memory",
        "MiB",
        num,
    );
    let subtitle = context_line(view, &view.sweep_fixed(sweep));
    let body = header(root, &plan.title, &subtitle, &sweep_legend(view, sweep))?;
    let (w, _) = body.dim_in_pixel();
    let (left, right) = body.split_horizontally(w / 2);
    let mut chart = plot(&left, &x, &cpu, caption("server CPU"))?;
    sweep_series(root, &mut chart, view, sweep, &x, &cpu, &|c| {
        Some(plan::server_cpu_percent(c))
    })?;
    let mut chart = plot(&right, &x, &rss, caption("server peak resident memory"))?;
    sweep_series(root, &mut chart, view, sweep, &x, &rss, &|c| {
        Some(in_mib(c.server.peak_rss_bytes))
    })?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 3. Cost per delivered comment

fn cost(root: &Area, view: &View, plan: &ChartPlan) -> Res {
    let groups = &view.points;
    let techniques = &view.techniques;
    let mut items: Vec<Legend> = techniques
        .iter()
        .map(|&t| legend(Swatch::Bar(t), t.name()))
        .collect();
    items.push(legend(
        Swatch::Stack,
        "bytes: light = comment payload, full = protocol overhead",
    ));
    if view.cells.iter().any(|c| has_warnings(c)) {
        items.push(legend(Swatch::Warn, "cell with warnings (see report)"));
    }
    let first = if view.swept.is_empty() {
        groups.first().map(Point::describe).unwrap_or_default()
    } else {
        format!(
            "bars grouped by {}",
            view.swept
                .iter()
                .map(|d| d.phrase())
                .collect::<Vec<_>>()
                .join(" and ")
        )
    };
    let subtitle = context_line(view, &first);
    let body = header(root, &plan.title, &subtitle, &items)?;
    // Side by side while the bars stay wide enough to read; beyond that, one full-width row
    // per metric, named on its left, with the x axis titled once at the bottom.
    let rows = groups.len() * techniques.len() > 16;
    let panels: Vec<Area> = if rows {
        let (_, height) = body.dim_in_pixel();
        let row = (height - 40) / 3;
        let (first, rest) = body.split_vertically(row);
        let (second, third) = rest.split_vertically(row);
        vec![first, second, third]
    } else {
        body.split_evenly((1, 3))
    };
    type Pick = fn(&CellResult) -> f64;
    let metrics: [(&str, &str, Pick); 3] = [
        ("requests", "requests", |c| c.per_delivery.requests),
        ("bytes, both ways", "bytes", |c| c.per_delivery.bytes),
        ("server CPU µs", "server CPU µs", |c| {
            c.per_delivery.server_cpu_us
        }),
    ];
    let last_panel = panels.len() - 1;
    let labels: Vec<String> = groups.iter().map(|p| group_label(view, p)).collect();
    let x_title = if view.swept.is_empty() {
        String::new()
    } else {
        view.swept
            .iter()
            .map(|d| d.axis_label())
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let axes: Vec<(Axis, Vec<String>)> = metrics
        .iter()
        .map(|(name, unit, pick)| {
            // Headroom above the tallest bar for its value and warning sign.
            let scale = Scale::with_headroom(view.cells.iter().map(|c| pick(c)), 1.25);
            let side = if !rows {
                Vec::new()
            } else if scale.log {
                vec![
                    name.to_string(),
                    "per delivery".into(),
                    "(log scale)".into(),
                ]
            } else {
                vec![name.to_string(), "per delivery".into()]
            };
            (Axis::new(scale, unit, "per delivery", num), side)
        })
        .collect();
    let common_y_area = axes
        .iter()
        .map(|(y, side)| y_area_width(&body, y, side, !rows))
        .max()
        .unwrap_or(0);
    for (index, (((name, unit, pick), area), (y, side))) in
        metrics.into_iter().zip(&panels).zip(axes).enumerate()
    {
        let group_labels = labels.clone();
        let x = Axis {
            scale: Scale::fixed(
                0.0,
                groups.len() as f64,
                (0..groups.len()).map(|g| g as f64 + 0.5).collect(),
            ),
            title: x_title.clone(),
            label: Box::new(move |v| {
                group_labels
                    .get(v.floor().max(0.0) as usize)
                    .cloned()
                    .unwrap_or_default()
            }),
        };
        let mut chart = plot(
            area,
            &x,
            &y,
            if rows {
                PlotOptions {
                    x_grid: false,
                    x_title: index == last_panel && !x_title.is_empty(),
                    y_title: false,
                    side_label: side,
                    y_area: Some(common_y_area),
                    ..PlotOptions::new()
                }
            } else {
                PlotOptions {
                    x_grid: false,
                    x_title: !x_title.is_empty(),
                    ..PlotOptions::new().caption(name)
                }
            },
        )?;
        let slot = 0.84 / techniques.len().max(1) as f64;
        let bar_px = {
            let a = chart.backend_coord(&(0.0, 0.0)).0;
            let b = chart.backend_coord(&(slot, 0.0)).0;
            b - a
        };
        let value_style = anchored(font(22), HPos::Center, VPos::Bottom);
        let widest = view
            .cells
            .iter()
            .map(|c| text_width(root, &num(pick(c)), &value_style))
            .max()
            .unwrap_or(0) as i32;
        // Values above bars only side by side: stacked rows are too short for them.
        let show_values = !rows && widest + 6 <= bar_px;
        let base = y.scale.t(y.scale.lo);
        for (g, point) in groups.iter().enumerate() {
            for (i, &technique) in techniques.iter().enumerate() {
                let Some(cell) = view.cell(point, technique) else {
                    continue;
                };
                let x0 = g as f64 + 0.08 + i as f64 * slot;
                let x1 = x0 + slot * 0.88;
                let total = pick(cell);
                if !total.is_finite() {
                    continue;
                }
                let c = colour(technique);
                let top = y.scale.t(total);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, base), (x1, top)],
                    c.filled(),
                )))?;
                if unit == "bytes" {
                    let payload = cell.per_delivery.payload_bytes.min(total);
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, base), (x1, y.scale.t(payload))],
                        tint(c).filled(),
                    )))?;
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x0, base), (x1, top)],
                        c.stroke_width(2),
                    )))?;
                }
                let (cx, cy) = chart.backend_coord(&((x0 + x1) / 2.0, top));
                let mut above = cy - 4;
                if show_values {
                    root.draw_text(&num(total), &value_style, (cx, above))?;
                    above -= 24;
                }
                if has_warnings(cell) {
                    warn_sign(root, (cx, above - 14))?;
                }
            }
        }
    }
    Ok(())
}

/// The group label under a cluster of bars: the swept values only (the axis title names
/// them), or every parameter when nothing is swept.
fn group_label(view: &View, point: &Point) -> String {
    if view.swept.is_empty() {
        return plan::Dim::Clients.describe(f64::from(point.clients));
    }
    view.swept
        .iter()
        .map(|d| d.tick(d.of(point)))
        .collect::<Vec<_>>()
        .join(" / ")
}

// ---------------------------------------------------------------------------------------
// 4. Latency over time

/// One panel of a grid, and whether it carries the axis titles for its row or column.
struct Panel<'a> {
    area: Area<'a>,
    bottom: bool,
    left: bool,
}

/// Up to two columns of panels. Only the bottom row shows the x title and only the left
/// column the y title; rows above the bottom are shorter by the title's height, so every plot
/// gets the same height.
fn grid<'a>(body: &Area<'a>, n: usize) -> Vec<Panel<'a>> {
    let cols = if n <= 1 { 1 } else { 2 };
    let rows = n.div_ceil(cols).max(1);
    let title = 40;
    let (_, height) = body.dim_in_pixel();
    let inner = (height - title) / rows as u32;
    let mut panels = Vec::new();
    let mut rest = body.clone();
    for row in 0..rows {
        let bottom = row == rows - 1;
        let line = if bottom {
            rest.clone()
        } else {
            let (line, below) = rest.split_vertically(inner);
            rest = below;
            line
        };
        let (width, _) = line.dim_in_pixel();
        let cells = if cols == 1 {
            vec![line.clone()]
        } else {
            let (a, b) = line.split_horizontally(width / 2);
            vec![a, b]
        };
        for (col, area) in cells.into_iter().enumerate() {
            panels.push(Panel {
                area,
                bottom: bottom || (row + 1) * cols + col >= n,
                left: col == 0,
            });
        }
    }
    panels
}

fn timeline(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells = view.cells_at(point);
    let seconds = cells
        .iter()
        .flat_map(|c| c.timeline.iter().map(|t| t.second + 1))
        .max()
        .unwrap_or(1);
    let y = Scale::for_values(cells.iter().flat_map(|c| {
        c.timeline
            .iter()
            .filter(|t| t.deliveries > 0)
            .flat_map(|t| [t.p50_us, t.p99_us, t.max_us].map(|v| v as f64 / 1000.0))
    }));
    let y = Axis::new(y, "latency", "ms", num);
    let step = nice_ceil(f64::from(seconds) / 8.0).max(1.0);
    let count = (f64::from(seconds) / step).floor() as i64;
    let x = Axis {
        scale: Scale::fixed(
            0.0,
            f64::from(seconds),
            (0..=count).map(|i| i as f64 * step).collect(),
        ),
        title: "seconds into the measured window".into(),
        label: Box::new(num),
    };
    let mut items = vec![
        legend(Swatch::Line(MUTED, 4, Dash::Solid), "p99"),
        legend(Swatch::Line(MUTED, 3, Dash::Dashed), "p50"),
        legend(Swatch::Line(MUTED, 2, Dash::Dotted), "max"),
        legend(Swatch::Reconnect, "reconnects"),
        legend(Swatch::Band, "second with no delivery"),
    ];
    if cells.iter().any(|c| has_warnings(c)) {
        items.push(legend(Swatch::Warn, "cell with warnings"));
    }
    let subtitle = context_line(view, &point.describe());
    let body = header(root, &plan.title, &subtitle, &items)?;
    let panels = grid(&body, cells.len());
    for (cell, panel) in cells.iter().zip(&panels) {
        let area = &panel.area;
        let reconnects: u64 = cell.timeline.iter().map(|t| t.reconnects).sum();
        let mut title = cell.technique.name().to_string();
        if reconnects > 0 {
            title.push_str(&format!(" · {} reconnects", int(reconnects)));
        }
        if let Some(flags) = short_flags(cell) {
            title.push_str(&format!(" · {flags}"));
        }
        let options = PlotOptions {
            x_title: panel.bottom,
            y_title: panel.left,
            ..caption(title.clone())
        };
        let mut chart = plot(area, &x, &y, options)?;
        let (top, bottom) = (y.scale.t(y.scale.hi), y.scale.t(y.scale.lo));
        for t in cell.timeline.iter().filter(|t| t.deliveries == 0) {
            let s = f64::from(t.second);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(s, bottom), (s + 1.0, top)],
                STALL.filled(),
            )))?;
        }
        let c = colour(cell.technique);
        type Pick = fn(&TimelinePoint) -> u64;
        let lines: [(Pick, u32, Dash); 3] = [
            (|t| t.max_us, 2, Dash::Dotted),
            (|t| t.p50_us, 3, Dash::Dashed),
            (|t| t.p99_us, 4, Dash::Solid),
        ];
        for (pick, width, dash) in lines {
            // A second without deliveries has no latency: break the line there.
            for run in cell.timeline.split(|t| t.deliveries == 0) {
                let pts: Vec<(f64, f64)> = run
                    .iter()
                    .map(|t| {
                        (
                            f64::from(t.second) + 0.5,
                            y.scale.t(pick(t) as f64 / 1000.0),
                        )
                    })
                    .collect();
                if pts.len() == 1 {
                    let at = chart.backend_coord(&pts[0]);
                    root.draw(&Circle::new(at, 4, c.filled()))?;
                }
                series_line(&mut chart, &pts, c, width, dash)?;
            }
        }
        let count_style = anchored(bold(22), HPos::Left, VPos::Center);
        // Counts beside the markers only while seconds are far enough apart for them; the
        // report lists every reconnect anyway.
        let second_px = chart.backend_coord(&(1.0, top)).0 - chart.backend_coord(&(0.0, top)).0;
        for t in cell.timeline.iter().filter(|t| t.reconnects > 0) {
            let (px, py) = chart.backend_coord(&(f64::from(t.second) + 0.5, top));
            reconnect_marker(root, (px, py + 12))?;
            if t.reconnects > 1 && second_px >= 40 {
                root.draw_text(&int(t.reconnects), &count_style, (px + 12, py + 12))?;
            }
        }
        if has_warnings(cell) {
            let (w, _) = area.dim_in_pixel();
            let base = area.get_base_pixel();
            let width = text_width(root, &title, &caption_style(area, &title)) as i32;
            warn_sign(root, (base.0 + w as i32 / 2 - width / 2 - 30, base.1 + 24))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    #[test]
    fn one_two_five_steps() {
        assert_eq!(nice_floor(4.4), 2.0);
        assert_eq!(nice_floor(1000.0), 1000.0);
        assert_eq!(nice_ceil(1000.0), 1000.0);
        assert_eq!(nice_ceil(1001.0), 2000.0);
        assert_eq!(nice_ceil(0.03), 0.05);
    }

    #[test]
    fn values_spanning_decades_get_a_log_scale_with_decade_ticks() {
        let scale = Scale::for_values([0.8, 5.0, 1010.0]);
        assert!(scale.log);
        assert!(scale.lo < 0.8 && scale.hi >= 1010.0);
        assert_eq!(scale.ticks.len(), 4, "{:?}", scale.ticks);
        let scale = Scale::for_values([0.0, 40.0, 65.0]);
        assert!(!scale.log);
        assert_eq!(scale.lo, 0.0);
        assert!(scale.hi >= 65.0);
        let scale = Scale::for_values([]);
        assert!(!scale.log && scale.hi > scale.lo);
    }

    /// A cell that delivered nothing has no latency to draw; its chart must still come out
    /// and say so, rather than fail or pretend.
    #[test]
    fn a_cell_that_delivered_nothing_still_draws() {
        let mut summary = fixture::summary(fixture::ONE_POINT);
        let dead = summary
            .cells
            .iter_mut()
            .find(|c| c.technique == Technique::Sse)
            .unwrap();
        dead.latency = Default::default();
        dead.deliveries.missing = dead.deliveries.expected;
        dead.deliveries.delivered = 0;
        for t in &mut dead.timeline {
            *t = TimelinePoint {
                second: t.second,
                ..Default::default()
            };
        }
        let view = View::new(&summary);
        for plan in view.charts() {
            let png = render(&view, &plan).unwrap();
            assert!(png.starts_with(b"\x89PNG"), "{}", plan.file_name);
        }
    }
}
