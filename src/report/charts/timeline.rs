//! Latency second by second, one panel per technique at one point, with stalls and reconnects
//! marked.
//!
//! Only whole seconds are drawn. The recorder buckets deliveries of the window's comments by
//! arrival, so the first second lacks the comments published just before the window (a dip
//! as long as the latency) and arrivals after the window's end make an extra, thin bucket;
//! both would read as real changes. A per-second p99 is drawn only where that second had the
//! 100 deliveries a p99 needs, and the legend lists only the marks that occur.

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

/// A cell's mean latency from which its first second counts as partial: at 10 ms the first
/// second misses about 1% of its deliveries.
const PARTIAL_FIRST_SECOND_US: f64 = 10_000.0;

/// Deliveries a second needs before its p99 means something (one sample above it).
pub(crate) const P99_SAMPLES: u64 = 100;

/// The seconds of a cell's timeline that are whole: from 0, or from 1 when the latency is
/// long enough to leave the first second short, up to the last second that ends inside the
/// measured window (a window a few milliseconds short of a whole second still counts).
pub(crate) fn whole_seconds(cell: &CellResult) -> std::ops::Range<u32> {
    let first =
        u32::from(cell.latency.count > 0 && cell.latency.mean_us >= PARTIAL_FIRST_SECOND_US);
    let end = (cell.window_seconds + 0.05).floor().max(0.0) as u32;
    first..end.max(first)
}

/// The timeline's whole seconds (see [`whole_seconds`]).
pub(crate) fn kept(cell: &CellResult) -> Vec<TimelinePoint> {
    let range = whole_seconds(cell);
    cell.timeline
        .iter()
        .filter(|t| range.contains(&t.second))
        .copied()
        .collect()
}

/// What the legend lists: only the marks some panel draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    P99,
    P50,
    Max,
    Reconnects,
    Silent,
}

pub(crate) fn marks_drawn(cells: &[&CellResult]) -> Vec<Mark> {
    let seconds: Vec<TimelinePoint> = cells.iter().flat_map(|c| kept(c)).collect();
    let mut marks = Vec::new();
    if seconds.iter().any(|t| t.deliveries >= P99_SAMPLES) {
        marks.push(Mark::P99);
    }
    if seconds.iter().any(|t| t.deliveries > 0) {
        marks.push(Mark::P50);
        marks.push(Mark::Max);
    }
    if seconds.iter().any(|t| t.reconnects > 0) {
        marks.push(Mark::Reconnects);
    }
    if seconds.iter().any(|t| t.deliveries == 0) {
        marks.push(Mark::Silent);
    }
    marks
}

pub(super) fn draw(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells = view.cells_at(point);
    let (x, y) = axes(&cells);
    let mut items: Vec<_> = marks_drawn(&cells)
        .into_iter()
        .map(|mark| match mark {
            Mark::P99 => legend(
                Swatch::Line(MUTED, 4, Dash::Solid),
                "p99 (seconds with ≥ 100 deliveries)",
            ),
            Mark::P50 => legend(Swatch::Line(MUTED, 3, Dash::Dashed), "p50"),
            Mark::Max => legend(Swatch::Line(MUTED, 2, Dash::Dotted), "max"),
            Mark::Reconnects => legend(Swatch::Reconnect, "reconnects"),
            Mark::Silent => legend(Swatch::Band, "second with no delivery"),
        })
        .collect();
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
    let mut first = point.describe();
    if cells.iter().any(|c| whole_seconds(c).start > 0) {
        first.push_str(" · partial first second not drawn");
    }
    let subtitle = context_line(view, &first);
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
        .map(|c| whole_seconds(c).end)
        .max()
        .unwrap_or(1)
        .max(1);
    let y = Scale::for_values(cells.iter().flat_map(|c| {
        kept(c)
            .into_iter()
            .filter(|t| t.deliveries > 0)
            .flat_map(|t| [t.p50_us, t.max_us].map(|v| v as f64 / 1000.0))
    }));
    let y = Axis::latency(y, "latency");
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
    let timeline = kept(cell);
    let reconnects: u64 = timeline.iter().map(|t| t.reconnects).sum();
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
    for t in timeline.iter().filter(|t| t.deliveries == 0) {
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
    let lines: [(Pick, u32, Dash, u64); 3] = [
        (|t| t.max_us, 2, Dash::Dotted, 1),
        (|t| t.p50_us, 3, Dash::Dashed, 1),
        (|t| t.p99_us, 4, Dash::Solid, P99_SAMPLES),
    ];
    for (pick, width, dash, needs) in lines {
        // A second without enough deliveries has no such percentile: break the line there.
        for run in timeline.split(|t| t.deliveries < needs) {
            if run.is_empty() {
                continue;
            }
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
    for t in timeline.iter().filter(|t| t.reconnects > 0) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixture;

    fn second(second: u32, deliveries: u64, reconnects: u64) -> TimelinePoint {
        TimelinePoint {
            second,
            deliveries,
            p50_us: 1_000,
            p99_us: 2_000,
            max_us: 3_000,
            reconnects,
        }
    }

    /// A 20 s window keeps seconds 0-19: the bucket of late arrivals after it goes; a slow
    /// technique also loses its short first second, a fast one keeps it.
    #[test]
    fn edge_buckets_are_trimmed() {
        let mut cell = fixture::client_sweep().cells[0].clone();
        cell.window_seconds = 19.9996;
        cell.timeline = (0..=20).map(|s| second(s, 20, 0)).collect();
        cell.latency.mean_us = 500_000.0;
        assert_eq!(whole_seconds(&cell), 1..20);
        assert_eq!(kept(&cell).len(), 19);
        cell.latency.mean_us = 600.0;
        assert_eq!(whole_seconds(&cell), 0..20);
        cell.window_seconds = 14.5;
        assert_eq!(whole_seconds(&cell), 0..14);
    }

    /// The legend lists reconnects, silent seconds and p99 only where they occur.
    #[test]
    fn the_legend_lists_only_what_occurs() {
        let mut cell = fixture::client_sweep().cells[0].clone();
        cell.window_seconds = 3.0;
        cell.latency.mean_us = 600.0;
        cell.timeline = vec![second(0, 20, 0), second(1, 20, 0), second(2, 20, 0)];
        assert_eq!(marks_drawn(&[&cell]), [Mark::P50, Mark::Max]);
        // A reconnect and a silent second in the bucket past the window do not count.
        cell.timeline.push(second(3, 0, 4));
        assert_eq!(marks_drawn(&[&cell]), [Mark::P50, Mark::Max]);
        cell.timeline[1] = second(1, 0, 2);
        cell.timeline[2] = second(2, 100, 0);
        assert_eq!(
            marks_drawn(&[&cell]),
            [
                Mark::P99,
                Mark::P50,
                Mark::Max,
                Mark::Reconnects,
                Mark::Silent
            ]
        );
    }
}
