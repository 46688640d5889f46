//! Latency second by second, one panel per technique at one point, with stalls and reconnects
//! marked.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{Area, MUTED, Res, STALL, anchored, bold, text_width};
use super::header::{Swatch, context_line, header, legend};
use super::marks::{Dash, reconnect_marker, warn_sign};
use super::plot::{Axis, PlotOptions, caption, caption_style, plot, series_line};
use super::scale::{Scale, nice_ceil};
use super::style::style;
use crate::model::results::{CellResult, TimelinePoint};
use crate::report::figures::{has_warnings, short_flags};
use crate::report::fmt::{int, num};
use crate::report::plan::{ChartPlan, Point, View};

/// One panel of a grid, and whether it carries the axis titles for its row or column.
pub(super) struct Panel<'a> {
    pub(super) area: Area<'a>,
    pub(super) bottom: bool,
    pub(super) left: bool,
}

/// Up to two columns of panels. Only the bottom row shows the x title and only the left
/// column the y title; rows above the bottom are shorter by the title's height, so every plot
/// gets the same height.
pub(super) fn grid<'a>(body: &Area<'a>, n: usize) -> Vec<Panel<'a>> {
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

pub(super) fn draw(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells = view.cells_at(point);
    let (x, y) = axes(&cells);
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
    // Only runs with faults have these; others keep their legend as it was.
    for kind in super::faults::kinds_at(&cells) {
        items.push(legend(
            Swatch::Line(super::faults::mark_colour(kind), 3, Dash::Dashed),
            super::faults::kind_name(kind),
        ));
    }
    let subtitle = context_line(view, &point.describe());
    let body = header(root, &plan.title, &subtitle, &items)?;
    let panels = grid(&body, cells.len());
    for (cell, panel) in cells.iter().zip(&panels) {
        draw_panel(root, cell, panel, &x, &y)?;
    }
    Ok(())
}

/// Seconds across, latency up, the same for every panel so they compare at a glance.
fn axes(cells: &[&CellResult]) -> (Axis, Axis) {
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
    (x, y)
}

/// One technique's panel: grey bands for stalled seconds, p99, p50 and max lines, reconnect
/// markers along the top, and a warning sign beside the title.
fn draw_panel(root: &Area, cell: &CellResult, panel: &Panel, x: &Axis, y: &Axis) -> Res {
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
    let mut chart = plot(area, x, y, options)?;
    let (top, bottom) = (y.scale.t(y.scale.hi), y.scale.t(y.scale.lo));
    for t in cell.timeline.iter().filter(|t| t.deliveries == 0) {
        let s = f64::from(t.second);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(s, bottom), (s + 1.0, top)],
            STALL.filled(),
        )))?;
    }
    // Runs with faults mark each one (runs without draw exactly as before).
    if let Some(faults) = &cell.faults {
        super::faults::draw_marks(&mut chart, faults, bottom, top)?;
    }
    let c = style(cell.technique).colour;
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
    Ok(())
}
