//! The strip above every plot: the title, a subtitle with the run's context, and the legend
//! (never drawn over the data), plus the pieces of text several charts share.

use plotters::prelude::*;

use super::WIDTH;
use super::canvas::{Area, INK, LEGEND, MUTED, Res, STALL, bold, fitting, font, text_width};
use super::marks::{Dash, draw_marker, pixel_line, reconnect_marker, warn_sign};
use super::style::{style, tint};
use crate::model::results::CellResult;
use crate::model::technique::Technique;
use crate::report::figures::short_flags;
use crate::report::fmt::num;
use crate::report::plan::View;

/// What a legend entry shows before its label.
#[derive(Debug, Clone, Copy)]
pub(super) enum Swatch {
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

/// One legend entry: a swatch and its label.
pub(super) struct Legend {
    pub(super) swatch: Swatch,
    pub(super) label: String,
}

pub(super) fn legend(swatch: Swatch, label: impl Into<String>) -> Legend {
    Legend {
        swatch,
        label: label.into(),
    }
}

/// The header's left margin, the height of a legend row, and a swatch's width, in pixels.
const LEFT: i32 = 36;
const LEGEND_ROW: i32 = 40;
const SWATCH: i32 = 58;

/// Draws the title, subtitle and legend, and returns the area left for the plot.
pub(super) fn header<'a>(
    root: &Area<'a>,
    title: &str,
    subtitle: &str,
    items: &[Legend],
) -> Res<Area<'a>> {
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

pub(super) fn draw_swatch(root: &Area, swatch: Swatch, (x, y): (i32, i32)) -> Res {
    let mid = x + SWATCH / 2;
    match swatch {
        Swatch::Technique(t) => {
            let dash = if style(t).dashed {
                Dash::Dashed
            } else {
                Dash::Solid
            };
            pixel_line(
                root,
                (x, y),
                (x + SWATCH, y),
                style(t).colour,
                style(t).line_width,
                dash,
            )?;
            draw_marker(
                root,
                style(t).shape,
                (mid, y),
                style(t).marker_size - 1,
                style(t).colour,
            )?;
        }
        Swatch::Bar(t) => {
            root.draw(&Rectangle::new(
                [(x + 8, y - 11), (x + SWATCH - 8, y + 11)],
                style(t).colour.filled(),
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

pub(super) fn window_text(view: &View) -> String {
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

pub(super) fn context_line(view: &View, first: &str) -> String {
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

pub(super) fn technique_label(cell: &CellResult) -> String {
    let mut label = cell.technique.name().to_string();
    if cell.latency.count == 0 {
        label.push_str(" (nothing delivered)");
    }
    if let Some(flags) = short_flags(cell) {
        label.push_str(&format!(" ⚠ {flags}"));
    }
    label
}
