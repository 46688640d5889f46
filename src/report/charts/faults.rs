//! Charts of a run with faults: the server's connections open through the window with each
//! drop, restart and close marked (one panel per technique), and the times the faults took:
//! recovery after a drop per kind of drop, and how long the server took to notice pages that
//! closed, per technique. Drawn only for cells that carry fault results.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{Area, Chart, MUTED, Res, anchored, font};
use super::header::{Swatch, context_line, header, legend};
use super::marks::Dash;
use super::plot::{Axis, PlotOptions, caption, plot, series_line};
use super::scale::{Scale, nice_ceil};
use super::style::style;
use super::timeline::grid;
use crate::model::faults::{FaultKind, FaultResults, TimeSummary, drop_label};
use crate::model::results::CellResult;
use crate::report::fmt::{int, num};
use crate::report::plan::{ChartPlan, Point, View};

/// The colour of each fault's mark, the same in every chart: dark and far from the four
/// techniques' Okabe–Ito colours, so a mark never reads as a technique's line.
pub(super) fn mark_colour(kind: FaultKind) -> RGBColor {
    match kind {
        FaultKind::Drop => RGBColor(40, 40, 40),
        FaultKind::Restart => RGBColor(170, 0, 0),
        FaultKind::ClosePage => RGBColor(90, 50, 0),
        FaultKind::Vanish => RGBColor(130, 130, 130),
    }
}

pub(super) fn kind_name(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Drop => "drop",
        FaultKind::Restart => "server restart",
        FaultKind::ClosePage => "pages closed",
        FaultKind::Vanish => "network vanished",
    }
}

/// Vertical marks at each fault of a cell, from the bottom of the plot to its top.
pub(super) fn draw_marks(chart: &mut Chart, faults: &FaultResults, bottom: f64, top: f64) -> Res {
    for event in &faults.events {
        let x = event.at_ms as f64 / 1000.0;
        series_line(
            chart,
            &[(x, bottom), (x, top)],
            mark_colour(event.kind),
            3,
            Dash::Dashed,
        )?;
    }
    Ok(())
}

/// The kinds of fault any cell at the point had, for the legend.
pub(super) fn kinds_at(cells: &[&CellResult]) -> Vec<FaultKind> {
    let mut kinds = Vec::new();
    for kind in [
        FaultKind::Drop,
        FaultKind::Restart,
        FaultKind::ClosePage,
        FaultKind::Vanish,
    ] {
        if cells
            .iter()
            .filter_map(|c| c.faults.as_ref())
            .any(|f| f.events.iter().any(|e| e.kind == kind))
        {
            kinds.push(kind);
        }
    }
    kinds
}

/// Connections open second by second, one panel per technique, faults marked.
pub(super) fn connections(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells: Vec<&CellResult> = view
        .cells_at(point)
        .into_iter()
        .filter(|c| c.faults.is_some())
        .collect();
    let mut items = vec![legend(
        Swatch::Line(MUTED, 3, Dash::Solid),
        "connections open (server's /stats, every 20 ms)",
    )];
    for kind in kinds_at(&cells) {
        items.push(legend(
            Swatch::Line(mark_colour(kind), 3, Dash::Dashed),
            kind_name(kind),
        ));
    }
    let subtitle = context_line(view, &point.describe());
    let body = header(root, &plan.title, &subtitle, &items)?;
    let seconds = cells
        .iter()
        .map(|c| c.window_seconds)
        .fold(1.0f64, f64::max)
        .ceil();
    let most = cells
        .iter()
        .flat_map(|c| c.faults.iter().flat_map(|f| &f.connections_open))
        .map(|s| s.open as f64)
        .fold(1.0f64, f64::max);
    let step = nice_ceil(seconds / 8.0).max(1.0);
    let count = (seconds / step).floor() as i64;
    let x = Axis {
        scale: Scale::fixed(0.0, seconds, (0..=count).map(|i| i as f64 * step).collect()),
        title: "seconds into the measured window".into(),
        label: Box::new(num),
    };
    let y = Axis::new(Scale::linear(most * 1.15), "connections open", "count", num);
    for (cell, panel) in cells.iter().zip(grid(&body, cells.len())) {
        let faults = cell.faults.as_ref().expect("filtered above");
        let r = &faults.recovery;
        let mut title = cell.technique.name().to_string();
        if faults.drops > 0 {
            title.push_str(&format!(
                " · {} drops, recovered p50 {} / max {}",
                int(faults.drops),
                ms(r.p50_us),
                ms(r.max_us)
            ));
        }
        let options = PlotOptions {
            x_title: panel.bottom,
            y_title: panel.left,
            ..caption(title)
        };
        let mut chart = plot(&panel.area, &x, &y, options)?;
        let (bottom, top) = (y.scale.t(y.scale.lo), y.scale.t(y.scale.hi));
        draw_marks(&mut chart, faults, bottom, top)?;
        let points: Vec<(f64, f64)> = faults
            .connections_open
            .iter()
            .map(|s| (s.at_ms as f64 / 1000.0, y.scale.t(s.open as f64)))
            .collect();
        series_line(
            &mut chart,
            &points,
            style(cell.technique).colour,
            3,
            Dash::Solid,
        )?;
    }
    Ok(())
}

/// A time for a label: "412 ms", or "20.5 s" from ten seconds up.
fn ms(us: u64) -> String {
    if us >= 10_000_000 {
        format!("{:.1} s", us as f64 / 1e6)
    } else {
        format!("{} ms", num(us as f64 / 1000.0))
    }
}

/// A liveness setting, short enough for a group label under the bars.
fn short_setting(settings: &crate::model::faults::LivenessSettings) -> String {
    let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let mut parts = Vec::new();
    if let Some(h) = settings.sse_heartbeat {
        parts.push(format!("hb {}", d(h)));
    }
    match (settings.ws_ping_interval, settings.ws_pong_timeout) {
        (Some(i), Some(t)) => parts.push(format!("ping {}+{}", d(i), d(t))),
        (Some(i), None) => parts.push(format!("ping {}", d(i))),
        (None, Some(t)) => parts.push(format!("pong {}", d(t))),
        (None, None) => {}
    }
    if let Some(u) = settings.user_timeout {
        parts.push(format!("UT {}", d(u)));
    }
    if parts.is_empty() {
        "defaults".into()
    } else {
        parts.join(", ")
    }
}

/// Picks one group's times from a cell, if it has them.
type Pick = Box<dyn Fn(&CellResult) -> Option<TimeSummary>>;

/// Recovery per kind of drop, and the server's notice of closed pages, per technique: bars
/// at p50, a line up to the max with a tick at p99.
pub(super) fn times(root: &Area, view: &View, plan: &ChartPlan, point: &Point) -> Res {
    let cells: Vec<&CellResult> = view
        .cells_at(point)
        .into_iter()
        .filter(|c| c.faults.is_some())
        .collect();
    let mut items: Vec<_> = cells
        .iter()
        .map(|c| legend(Swatch::Bar(c.technique), c.technique.name()))
        .collect();
    items.push(legend(
        Swatch::Line(MUTED, 3, Dash::Solid),
        "bar: p50 · tick: p99 · line: max · still open: not closed by the window's end",
    ));
    if cells
        .iter()
        .any(|c| c.faults.as_ref().is_some_and(|f| !f.vanish.is_empty()))
    {
        // A blank swatch: this entry only spells out the settings' abbreviations.
        items.push(legend(
            Swatch::Line(WHITE, 1, Dash::Solid),
            "hb: SSE heartbeat · ping: WebSocket ping + pong timeout · UT: TCP user timeout",
        ));
    }
    let subtitle = context_line(view, &point.describe());
    let body = header(root, &plan.title, &subtitle, &items)?;
    // Groups: one per drop entry, then the close-page detection.
    let mut labels: Vec<String> = Vec::new();
    let mut picks: Vec<Pick> = Vec::new();
    let entries = cells
        .iter()
        .filter_map(|c| c.faults.as_ref())
        .map(|f| f.recovery_by_drop.len())
        .max()
        .unwrap_or(0);
    for i in 0..entries {
        let label = cells
            .iter()
            .filter_map(|c| c.faults.as_ref()?.recovery_by_drop.get(i))
            .map(|d| format!("recovery after a {}", drop_label(d.side, d.how)))
            .next()
            .unwrap_or_default();
        labels.push(label);
        picks.push(Box::new(move |c: &CellResult| {
            let d = c.faults.as_ref()?.recovery_by_drop.get(i)?;
            (d.recovery.count > 0).then_some(d.recovery)
        }));
    }
    if cells.iter().any(|c| {
        c.faults
            .as_ref()
            .is_some_and(|f| f.close_detection.is_some())
    }) {
        labels.push("closed page noticed".into());
        picks.push(Box::new(|c: &CellResult| {
            c.faults.as_ref()?.close_detection.filter(|d| d.count > 0)
        }));
    }
    let runs = cells
        .iter()
        .filter_map(|c| c.faults.as_ref())
        .map(|f| f.vanish.len())
        .max()
        .unwrap_or(0);
    for i in 0..runs {
        let label = cells
            .iter()
            .filter_map(|c| c.faults.as_ref()?.vanish.get(i))
            .map(|v| format!("vanished: {}", short_setting(&v.settings)))
            .next()
            .unwrap_or_default();
        labels.push(label);
        picks.push(Box::new(move |c: &CellResult| {
            let v = c.faults.as_ref()?.vanish.get(i)?;
            (v.detection.count + v.detection.incomplete > 0).then_some(v.detection)
        }));
    }
    let values = cells
        .iter()
        .flat_map(|c| picks.iter().filter_map(|p| p(c)))
        .filter(|t| t.count > 0)
        .flat_map(|t| [t.p50_us, t.max_us])
        .map(|us| us as f64 / 1000.0);
    // Bars: linear from zero, whatever the spread.
    let y = Axis::latency(Scale::bars(values, 1.2), "time");
    let groups = labels.len().max(1);
    let label_list = labels.clone();
    let x = Axis {
        scale: Scale::fixed(
            0.0,
            groups as f64,
            (0..groups).map(|g| g as f64 + 0.5).collect(),
        ),
        title: String::new(),
        label: Box::new(move |v| {
            label_list
                .get(v.floor().max(0.0) as usize)
                .cloned()
                .unwrap_or_default()
        }),
    };
    let options = PlotOptions {
        x_grid: false,
        x_title: false,
        ..PlotOptions::new()
    };
    let mut chart = plot(&body, &x, &y, options)?;
    let slot = 0.84 / cells.len().max(1) as f64;
    let base = y.scale.t(y.scale.lo);
    let value_style = anchored(font(18), HPos::Center, VPos::Bottom);
    for (g, pick) in picks.iter().enumerate() {
        for (i, cell) in cells.iter().enumerate() {
            let x0 = g as f64 + 0.08 + i as f64 * slot;
            let x1 = x0 + slot * 0.8;
            let mid = (x0 + x1) / 2.0;
            let c = style(cell.technique).colour;
            let Some(t) = pick(cell) else {
                let (px, py) = chart.backend_coord(&(mid, base));
                root.draw_text("n/a", &value_style, (px, py - 4))?;
                continue;
            };
            if t.count == 0 {
                // None noticed before the window ended.
                let (px, py) = chart.backend_coord(&(mid, base));
                root.draw_text("still open", &value_style, (px, py - 4))?;
                continue;
            }
            let at = |us: u64| y.scale.t(us as f64 / 1000.0);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, base), (x1, at(t.p50_us))],
                c.filled(),
            )))?;
            series_line(
                &mut chart,
                &[(mid, at(t.p50_us)), (mid, at(t.max_us))],
                c,
                3,
                Dash::Solid,
            )?;
            series_line(
                &mut chart,
                &[(x0, at(t.p99_us)), (x1, at(t.p99_us))],
                c,
                3,
                Dash::Solid,
            )?;
            let (px, py) = chart.backend_coord(&(mid, at(t.max_us)));
            let mut text = ms(t.p50_us);
            if t.incomplete > 0 {
                text.push_str(&format!(" +{} still open", t.incomplete));
            }
            root.draw_text(&text, &value_style, (px, py - 6))?;
        }
    }
    Ok(())
}
