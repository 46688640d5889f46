//! The three charts along a sweep: p50 and p99 latency, bytes on the wire, and server CPU and
//! memory, one line per technique.

use plotters::prelude::*;

use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{Area, Chart, FLOOR, INK, Res, anchored, bold};
use super::header::{Legend, Swatch, context_line, header, legend};
use super::marks::{Dash, draw_marker};
use super::plot::{Axis, caption, no_caption, plot, series_line, technique_line};
use super::scale::Scale;
use super::style::style;
use crate::model::results::CellResult;
use crate::report::figures::{self, has_warnings};
use crate::report::fmt::{bytes, in_mib, num};
use crate::report::models::link_delays_ms;
use crate::report::plan::{ChartPlan, Sweep, View};

pub(super) fn sweep_axis(sweep: &Sweep) -> Axis {
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

pub(super) fn sweep_legend(view: &View, sweep: &Sweep) -> Vec<Legend> {
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

pub(super) fn sweep_cells<'a>(view: &View<'a>, sweep: &Sweep) -> Vec<&'a CellResult> {
    sweep.points.iter().flat_map(|p| view.cells_at(p)).collect()
}

/// One line per technique along the sweep, with markers, and a ring on cells with warnings.
pub(super) fn sweep_series(
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
        technique_line(chart, &line, technique)?;
        marks.push((technique, pts));
    }
    for (technique, pts) in &marks {
        for &(px, py, warned) in pts {
            let at = chart.backend_coord(&(px, py));
            draw_marker(
                root,
                style(*technique).shape,
                at,
                style(*technique).marker_size,
                style(*technique).colour,
            )?;
            if warned {
                root.draw(&Circle::new(at, 19, INK.stroke_width(3)))?;
            }
        }
    }
    Ok(())
}

/// Over an emulated link, the one-way delays at each point of the sweep (where not zero): the
/// floor no technique can beat.
fn link_floor(view: &View, sweep: &Sweep) -> Vec<(f64, f64)> {
    sweep
        .points
        .iter()
        .filter_map(|p| {
            let cell = *view.cells_at(p).first()?;
            let (publisher, one_way) = link_delays_ms(view, cell)?;
            let ms = publisher + one_way;
            (ms > 0.0).then_some((sweep.dim.of(p), ms))
        })
        .collect()
}

pub(super) fn latency(root: &Area, view: &View, plan: &ChartPlan, sweep: &Sweep) -> Res {
    let cells = sweep_cells(view, sweep);
    let floor = link_floor(view, sweep);
    let y = Scale::for_values(
        cells
            .iter()
            .filter(|c| c.latency.count > 0)
            .flat_map(|c| {
                [
                    c.latency.p50_us as f64 / 1000.0,
                    c.latency.p99_us as f64 / 1000.0,
                ]
            })
            .chain(floor.iter().map(|&(_, ms)| ms)),
    );
    let x = sweep_axis(sweep);
    let y = Axis::latency(y, "delivery latency");
    let subtitle = context_line(view, &view.sweep_fixed(sweep));
    let mut items = sweep_legend(view, sweep);
    if floor.len() >= 2 {
        items.push(legend(
            Swatch::Line(FLOOR, 3, Dash::Dashed),
            "the link's one-way delay",
        ));
    }
    let body = header(root, &plan.title, &subtitle, &items)?;
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
        if floor.len() >= 2 {
            let line: Vec<(f64, f64)> = floor
                .iter()
                .map(|&(v, ms)| (x.scale.t(v), y.scale.t(ms)))
                .collect();
            series_line(&mut chart, &line, FLOOR, 3, Dash::Dashed)?;
        }
        sweep_series(root, &mut chart, view, sweep, &x, &y, &pick)?;
    }
    Ok(())
}

pub(super) fn wire(root: &Area, view: &View, plan: &ChartPlan, sweep: &Sweep) -> Res {
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
                .map(|c| (sweep.dim.of(p), figures::payload_bytes_per_second(c)))
        })
        .collect();
    let y = Scale::for_values(
        cells
            .iter()
            .map(|c| figures::wire_bytes_per_second(c))
            .chain(floor.iter().map(|f| f.1)),
    );
    let x = sweep_axis(sweep);
    let y = Axis::new(y, "bytes on the wire, both ways", "per second", |v| {
        format!("{}/s", bytes(v))
    });
    let mut items = sweep_legend(view, sweep);
    items.push(legend(
        Swatch::Line(INK, 3, Dash::Dotted),
        "comment payload alone (drawn on top)",
    ));
    let subtitle = context_line(view, &view.sweep_fixed(sweep));
    let body = header(root, &plan.title, &subtitle, &items)?;
    let mut chart = plot(&body, &x, &y, no_caption())?;
    let floor: Vec<(f64, f64)> = floor
        .iter()
        .map(|&(a, b)| (x.scale.t(a), y.scale.t(b)))
        .collect();
    sweep_series(root, &mut chart, view, sweep, &x, &y, &|c| {
        Some(figures::wire_bytes_per_second(c))
    })?;
    // The payload line last, thin, black and dotted, with its name at its end: drawn first
    // it lay hidden under WebSocket's line, which carries little more than the payload.
    series_line(&mut chart, &floor, INK, 3, Dash::Dotted)?;
    // Named below its left end, clear of the markers at the right where lines converge.
    if let Some(&start) = floor.first() {
        let (px, py) = chart.backend_coord(&start);
        let style = anchored(bold(22), HPos::Left, VPos::Top);
        root.draw_text("payload", &style, (px + 22, py + 12))?;
    }
    Ok(())
}

/// HTTP/1.1 against HTTP/2: bytes per delivered comment, the subscribers' connections, and
/// server memory per idle subscriber, side by side.
pub(super) fn http_costs(root: &Area, view: &View, plan: &ChartPlan, sweep: &Sweep) -> Res {
    let cells = sweep_cells(view, sweep);
    let x = sweep_axis(sweep);
    type Pick = fn(&CellResult) -> Option<f64>;
    let per_comment: Pick =
        |c| (c.deliveries.delivered_in_window > 0).then_some(c.per_delivery.bytes);
    // The kernel's socket count over the whole cell: every TCP connection the subscribers
    // opened, reconnections included (the window's own count misses those opened before).
    let connections: Pick = |c| Some(c.kernel.sockets as f64);
    let memory: Pick = |c| c.idle_memory.map(|m| m.bytes_per_connection / 1024.0);
    let panels: [(&str, &str, &str, Pick); 3] = [
        (
            "bytes per delivered comment",
            "bytes per comment",
            "B",
            per_comment,
        ),
        (
            "TCP connections",
            "subscribers' TCP connections",
            "whole cell",
            connections,
        ),
        (
            "server memory per subscriber",
            "memory per idle subscriber",
            "KiB",
            memory,
        ),
    ];
    let subtitle = context_line(view, &view.sweep_fixed(sweep));
    let body = header(root, &plan.title, &subtitle, &sweep_legend(view, sweep))?;
    let areas = body.split_evenly((1, 3));
    for ((title, label, unit, pick), area) in panels.into_iter().zip(&areas) {
        let y = Axis::new(
            Scale::for_values(cells.iter().filter_map(|c| pick(c))),
            label,
            unit,
            num,
        );
        let mut chart = plot(area, &x, &y, caption(title))?;
        sweep_series(root, &mut chart, view, sweep, &x, &y, &pick)?;
    }
    Ok(())
}

pub(super) fn server(root: &Area, view: &View, plan: &ChartPlan, sweep: &Sweep) -> Res {
    let cells = sweep_cells(view, sweep);
    let x = sweep_axis(sweep);
    // CPU is always on a linear axis from zero, here and in the cost chart, so every
    // report reads CPU the same way.
    let cpu = Axis::new(
        Scale::bars(cells.iter().map(|c| figures::server_cpu_percent(c)), 1.0),
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
        (!c.server_unavailable).then(|| figures::server_cpu_percent(c))
    })?;
    let mut chart = plot(&right, &x, &rss, caption("server peak resident memory"))?;
    sweep_series(root, &mut chart, view, sweep, &x, &rss, &|c| {
        (!c.server_unavailable).then(|| in_mib(c.server.peak_rss_bytes))
    })?;
    Ok(())
}
