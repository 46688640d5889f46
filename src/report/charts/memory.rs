//! Server memory per idle connection (`idle_memory`: the RSS delta over the connections,
//! before the first publish), a bar per cell grouped by point, with the goals as reference
//! lines: 8 KiB for SSE and WebSocket, 12 KiB for long polling.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{Area, FLOOR, INK, Res, anchored, font, text_width};
use super::header::{Legend, Swatch, context_line, header, legend};
use super::marks::{Dash, warn_sign};
use super::plot::{Axis, PlotOptions, plot, series_line};
use super::scale::Scale;
use super::style::style;
use crate::model::results::CellResult;
use crate::report::figures::has_warnings;
use crate::report::fmt::num;
use crate::report::plan::{ChartPlan, View};

/// The goals of issue 13, in KiB per idle connection: the line, its dash and its label.
const GOALS: [(f64, Dash, &str); 2] = [
    (8.0, Dash::Dashed, "goal for SSE and WebSocket: 8 KiB"),
    (12.0, Dash::Dotted, "goal for long polling: 12 KiB"),
];

/// KiB of server memory per idle connection of `cell`, if it was measured.
fn kib(cell: &CellResult) -> Option<f64> {
    cell.idle_memory.map(|m| m.bytes_per_connection / 1024.0)
}

pub(super) fn draw(root: &Area, view: &View, plan: &ChartPlan) -> Res {
    let body = header(root, &plan.title, &subtitle(view), &legend_items(view))?;
    let highest = view.cells.iter().filter_map(|c| kib(c)).fold(0.0, f64::max);
    // Linear from zero, so bar heights compare; the goal lines always in view.
    let scale = Scale::linear(highest.max(GOALS[1].0) * 1.2);
    let y = Axis::new(scale, "server memory per idle connection", "KiB", num);
    let x = x_axis(view);
    let options = PlotOptions {
        x_grid: false,
        x_title: !x.title.is_empty(),
        ..PlotOptions::new()
    };
    let mut chart = plot(&body, &x, &y, options)?;
    let labels = bars(root, &mut chart, view, &y)?;
    // Over the bars, so a bar above its goal shows by how much.
    let groups = view.points.len() as f64;
    for (goal, dash, _) in GOALS {
        let level = y.scale.t(goal);
        series_line(&mut chart, &[(0.0, level), (groups, level)], FLOOR, 3, dash)?;
    }
    // Over the lines, each value on a white ground: a bar ending just under a goal put its
    // value on the line, crossed out.
    for label in labels {
        label.draw(root)?;
    }
    Ok(())
}

/// How a bar's value is written: centred over the point it is drawn at, above it.
fn value_style() -> TextStyle<'static> {
    anchored(font(22), HPos::Center, VPos::Bottom)
}

/// What is written above a bar: its value (where it fits) and the warning sign.
struct BarLabel {
    /// The bar's top centre, in pixels.
    at: (i32, i32),
    value: Option<String>,
    warned: bool,
}

impl BarLabel {
    fn draw(&self, root: &Area) -> Res {
        let (cx, top) = self.at;
        let mut above = top - 4;
        if let Some(value) = &self.value {
            let value_style = value_style();
            let half = text_width(root, value, &value_style) as i32 / 2 + 3;
            root.draw(&Rectangle::new(
                [(cx - half, above - 24), (cx + half, above + 1)],
                WHITE.filled(),
            ))?;
            root.draw_text(value, &value_style.color(&INK), (cx, above))?;
            above -= 24;
        }
        if self.warned {
            warn_sign(root, (cx, above - 14))?;
        }
        Ok(())
    }
}

fn legend_items(view: &View) -> Vec<Legend> {
    let mut items: Vec<Legend> = view
        .techniques
        .iter()
        .map(|&t| legend(Swatch::Bar(t), t.name()))
        .collect();
    for (_, dash, label) in GOALS {
        items.push(legend(Swatch::Line(FLOOR, 3, dash), label));
    }
    if view.cells.iter().any(|c| has_warnings(c)) {
        items.push(legend(Swatch::Warn, "cell with warnings (see report)"));
    }
    items
}

fn subtitle(view: &View) -> String {
    context_line(
        view,
        "RSS once every subscriber is connected minus RSS before, over the connections; \
         the kernel's socket memory is not in it",
    )
}

/// One group of bars per point, labelled by its swept values (or its client count).
fn x_axis(view: &View) -> Axis {
    let title = view
        .swept
        .iter()
        .map(|d| d.axis_label())
        .collect::<Vec<_>>()
        .join(" / ");
    super::cost::group_axis(view, title)
}

/// A bar per cell that measured its idle memory; returns what to write above each (its
/// value where it fits), drawn once the goal lines are.
fn bars(
    root: &Area,
    chart: &mut super::canvas::Chart,
    view: &View,
    y: &Axis,
) -> Res<Vec<BarLabel>> {
    let slot = 0.84 / view.techniques.len().max(1) as f64;
    let bar_px = {
        let a = chart.backend_coord(&(0.0, 0.0)).0;
        let b = chart.backend_coord(&(slot, 0.0)).0;
        b - a
    };
    let value_style = value_style();
    let label = |v: f64| format!("{} KiB", num(v));
    let widest = view
        .cells
        .iter()
        .filter_map(|c| kib(c))
        .map(|v| text_width(root, &label(v), &value_style))
        .max()
        .unwrap_or(0) as i32;
    let show_values = widest + 6 <= bar_px;
    let base = y.scale.t(y.scale.lo);
    let mut labels = Vec::new();
    for (g, point) in view.points.iter().enumerate() {
        for (i, &technique) in view.techniques.iter().enumerate() {
            let Some(cell) = view.cell(point, technique) else {
                continue;
            };
            let Some(value) = kib(cell) else {
                continue;
            };
            let x0 = g as f64 + 0.08 + i as f64 * slot;
            let x1 = x0 + slot * 0.88;
            let top = y.scale.t(value);
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x0, base), (x1, top)],
                style(technique).colour.filled(),
            )))?;
            labels.push(BarLabel {
                at: chart.backend_coord(&((x0 + x1) / 2.0, top)),
                value: show_values.then(|| label(value)),
                warned: has_warnings(cell),
            });
        }
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use crate::model::results::IdleMemory;
    use crate::report::fixture;
    use crate::report::plan::{ChartKind, View};

    /// Every run since `idle_memory` exists measured it, published ones included: only a
    /// scenario that asks for the chart gets it, so those redraw as they were.
    #[test]
    fn the_chart_is_drawn_only_when_the_scenario_asks_for_it() {
        let mut summary = fixture::one_point();
        for (i, cell) in summary.cells.iter_mut().enumerate() {
            cell.idle_memory = Some(IdleMemory {
                connections: 100,
                rss_before_bytes: 8 << 20,
                rss_connected_bytes: (8 << 20) + 100 * 1024 * (6 + 2 * i as u64),
                bytes_per_connection: 1024.0 * (6 + 2 * i) as f64,
            });
        }
        let memory = |summary: &crate::model::results::RunSummary| {
            let view = View::new(summary);
            let plans = view.charts();
            let plan = plans
                .iter()
                .find(|p| p.kind == ChartKind::IdleMemory)
                .cloned();
            plan.map(|plan| super::super::render(&view, &plan).unwrap())
        };
        assert!(memory(&summary).is_none());
        summary.scenario.memory_chart = true;
        let png = memory(&summary).expect("the chart is planned");
        assert!(png.starts_with(b"\x89PNG"));
    }
}
