//! Marks drawn at a pixel: technique markers, the warning sign, the reconnect marker, and
//! dashed lines, shared by the legend and the plots.

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::canvas::{Area, INK, Res, anchored, bold};
use super::style::Shape;

/// How a line is stroked: the timeline tells p99, p50 and max apart by dash as well as width.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Dash {
    Solid,
    Dashed,
    Dotted,
}

/// A dashed or dotted line between two pixels, for legends.
pub(super) fn pixel_line(
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

pub(super) fn draw_marker(
    root: &Area,
    shape: Shape,
    (x, y): (i32, i32),
    r: i32,
    c: RGBColor,
) -> Res {
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
pub(super) fn warn_sign(root: &Area, (x, y): (i32, i32)) -> Res {
    root.draw(&Polygon::new(
        vec![(x, y - 14), (x - 15, y + 12), (x + 15, y + 12)],
        INK.filled(),
    ))?;
    let style = anchored(bold(18).color(&WHITE), HPos::Center, VPos::Center);
    root.draw_text("!", &style, (x, y + 3))?;
    Ok(())
}

pub(super) fn reconnect_marker(root: &Area, (x, y): (i32, i32)) -> Res {
    root.draw(&Polygon::new(
        vec![(x - 10, y - 9), (x + 10, y - 9), (x, y + 9)],
        INK.filled(),
    ))?;
    Ok(())
}
