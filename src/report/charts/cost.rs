//! Requests, bytes and server CPU per delivered comment, as bars for every cell, on linear
//! axes from zero (a bar's length means nothing on a log axis), with a zero bar labelled "0"
//! and a missing figure labelled "n/a" so no bar is silently absent.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{Area, Chart, Res, anchored, font, text_width};
use super::header::{Legend, Swatch, context_line, header, legend};
use super::marks::warn_sign;
use super::plot::{Axis, PlotOptions, plot, y_area_width};
use super::scale::Scale;
use super::style::{style, tint};
use crate::model::results::CellResult;
use crate::report::figures::has_warnings;
use crate::report::fmt::num;
use crate::report::plan::{self, ChartPlan, Point, View};

/// One panel of the chart: a cost per delivered comment.
struct Metric {
    /// The panel's caption, or its row label when the panels are stacked.
    name: &'static str,
    /// The quantity on the y axis.
    unit: &'static str,
    /// Whether the bar shows the comment payload as its light lower part.
    payload: bool,
    pick: fn(&CellResult) -> f64,
}

fn metrics() -> [Metric; 3] {
    [
        Metric {
            name: "requests",
            unit: "requests",
            payload: false,
            pick: |c| c.per_delivery.requests,
        },
        Metric {
            name: "bytes, both ways",
            unit: "bytes",
            payload: true,
            pick: |c| c.per_delivery.bytes,
        },
        Metric {
            name: "server CPU µs",
            unit: "server CPU µs",
            payload: false,
            // Not a bar at all where the server had no `/stats` (skipped as non-finite).
            pick: |c| {
                if c.server_unavailable {
                    f64::NAN
                } else {
                    c.per_delivery.server_cpu_us
                }
            },
        },
    ]
}

pub(super) fn draw(root: &Area, view: &View, plan: &ChartPlan) -> Res {
    let body = header(root, &plan.title, &subtitle(view), &legend_items(view))?;
    // Side by side while the bars stay wide enough to read; beyond that, one full-width row
    // per metric, named on its left, with the x axis titled once at the bottom.
    let rows = view.points.len() * view.techniques.len() > 16;
    let panels: Vec<Area> = if rows {
        let (_, height) = body.dim_in_pixel();
        let row = (height - 40) / 3;
        let (first, rest) = body.split_vertically(row);
        let (second, third) = rest.split_vertically(row);
        vec![first, second, third]
    } else {
        body.split_evenly((1, 3))
    };
    let metrics = metrics();
    let axes: Vec<(Axis, Vec<String>)> = metrics.iter().map(|m| y_axis(view, m, rows)).collect();
    let common_y_area = axes
        .iter()
        .map(|(y, side)| y_area_width(&body, y, side, !rows))
        .max()
        .unwrap_or(0);
    let x = x_axis(view);
    let last_panel = panels.len() - 1;
    for (index, ((metric, area), (y, side))) in metrics.iter().zip(&panels).zip(axes).enumerate() {
        let options = if rows {
            PlotOptions {
                x_grid: false,
                x_title: index == last_panel && !x.title.is_empty(),
                y_title: false,
                side_label: side,
                y_area: Some(common_y_area),
                ..PlotOptions::new()
            }
        } else {
            PlotOptions {
                x_grid: false,
                x_title: !x.title.is_empty(),
                ..PlotOptions::new().caption(metric.name)
            }
        };
        let mut chart = plot(area, &x, &y, options)?;
        // Values above bars only side by side: stacked rows are too short for them.
        bars(root, &mut chart, view, metric, &y, !rows)?;
    }
    Ok(())
}

fn legend_items(view: &View) -> Vec<Legend> {
    let mut items: Vec<Legend> = view
        .techniques
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
    items
}

fn subtitle(view: &View) -> String {
    let first = if view.swept.is_empty() {
        view.points.first().map(Point::describe).unwrap_or_default()
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
    context_line(view, &first)
}

/// The y axis of a metric, and the label left of it when the panels are stacked in rows.
fn y_axis(view: &View, metric: &Metric, rows: bool) -> (Axis, Vec<String>) {
    // Headroom above the tallest bar for its value and warning sign.
    let scale = Scale::bars(view.cells.iter().map(|c| (metric.pick)(c)), 1.25);
    let side = if rows {
        vec![metric.name.to_string(), "per delivery".into()]
    } else {
        Vec::new()
    };
    (Axis::new(scale, metric.unit, "per delivery", num), side)
}

/// One group of bars per point, labelled by its swept values.
fn x_axis(view: &View) -> Axis {
    // Two swept keys get their short phrases: both full labels overran a third of the width.
    let title = match view.swept.as_slice() {
        [] => String::new(),
        [one] => one.axis_label().to_string(),
        several => several
            .iter()
            .map(|d| d.phrase())
            .collect::<Vec<_>>()
            .join(" / "),
    };
    group_axis(view, title)
}

/// A group of bars per point, each labelled by its swept values (or its client count), under
/// `title`.
pub(super) fn group_axis(view: &View, title: String) -> Axis {
    let groups = view.points.len();
    let labels: Vec<String> = view.points.iter().map(|p| group_label(view, p)).collect();
    Axis {
        scale: Scale::fixed(
            0.0,
            groups as f64,
            (0..groups).map(|g| g as f64 + 0.5).collect(),
        ),
        title,
        label: Box::new(move |v| {
            labels
                .get(v.floor().max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        }),
    }
}

/// A bar per cell, grouped by point, with its value above it where it fits and a warning sign
/// over a cell with warnings.
fn bars(
    root: &Area,
    chart: &mut Chart,
    view: &View,
    metric: &Metric,
    y: &Axis,
    values: bool,
) -> Res {
    let pick = metric.pick;
    let slot = 0.84 / view.techniques.len().max(1) as f64;
    let bar_px = {
        let a = chart.backend_coord(&(0.0, 0.0)).0;
        let b = chart.backend_coord(&(slot, 0.0)).0;
        b - a
    };
    // The largest type at which every value fits over its bar; on a linear axis a short bar
    // is only readable by its value.
    let widest = |style: &TextStyle| {
        view.cells
            .iter()
            .filter(|c| pick(c).is_finite())
            .map(|c| text_width(root, &num(pick(c)), style))
            .max()
            .unwrap_or(0) as i32
    };
    let fitting = [22, 19, 16]
        .into_iter()
        .map(|size| anchored(font(size), HPos::Center, VPos::Bottom))
        .find(|style| widest(style) + 4 <= bar_px);
    let show_values = values && fitting.is_some();
    let value_style = fitting.unwrap_or_else(|| anchored(font(16), HPos::Center, VPos::Bottom));
    let base = y.scale.t(y.scale.lo);
    for (g, point) in view.points.iter().enumerate() {
        for (i, &technique) in view.techniques.iter().enumerate() {
            let Some(cell) = view.cell(point, technique) else {
                continue;
            };
            let x0 = g as f64 + 0.08 + i as f64 * slot;
            let x1 = x0 + slot * 0.88;
            let total = pick(cell);
            let mid = chart.backend_coord(&((x0 + x1) / 2.0, base));
            let zero_style = anchored(font(22), HPos::Center, VPos::Bottom);
            if !total.is_finite() {
                root.draw_text("n/a", &value_style, (mid.0, mid.1 - 4))?;
                continue;
            }
            if total == 0.0 {
                // A zero is a result, not a gap: say it where the bar would stand.
                root.draw_text("0", &zero_style, (mid.0, mid.1 - 4))?;
                if has_warnings(cell) {
                    warn_sign(root, (mid.0, mid.1 - 44))?;
                }
                continue;
            }
            let c = style(technique).colour;
            let top = y.scale.t(total);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, base), (x1, top)],
                c.filled(),
            )))?;
            if metric.payload {
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
