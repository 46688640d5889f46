//! The canvas every chart draws on: the embedded fonts, the text styles and sizes, the
//! neutral colours, and the plotters types the chart files share.
//!
//! The text is drawn with DejaVu Sans embedded in the binary (`fonts/`, license beside it),
//! because plotters' `ab_glyph` backend has no system font fallback and study-group machines
//! may have no fonts at all.

use std::error::Error;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::plot::Coord;

/// The family the embedded fonts are registered under. Every text style names it: the
/// `ab_glyph` backend finds only registered fonts, so a style naming any other family would
/// fail to draw rather than quietly use a system font.
const FAMILY: &str = "pushlab-dejavu-sans";
static REGULAR: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
static BOLD: &[u8] = include_bytes!("fonts/DejaVuSans-Bold.ttf");

pub(super) const INK: RGBColor = RGBColor(20, 20, 20);
pub(super) const MUTED: RGBColor = RGBColor(85, 85, 85);
pub(super) const GRID: RGBColor = RGBColor(200, 200, 200);
pub(super) const LIGHT_GRID: RGBColor = RGBColor(232, 232, 232);
pub(super) const STALL: RGBColor = RGBColor(226, 226, 226);
pub(super) const FLOOR: RGBColor = RGBColor(110, 110, 110);

/// A region of the 1600×900 bitmap.
pub(super) type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;
/// A plot inside an area, in the plot coordinates of `plot::Coord`.
pub(super) type Chart<'a, 'b> = ChartContext<'a, BitMapBackend<'b>, Cartesian2d<Coord, Coord>>;
/// plotters' errors are generic over the backend; boxed, they all reach `render` as text.
pub(super) type Res<T = ()> = Result<T, Box<dyn Error>>;

/// Registers the embedded fonts once per process.
pub(super) fn register_fonts() -> Result<(), String> {
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

pub(super) fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, f64::from(size)).into_font()).color(&INK)
}

pub(super) fn bold(size: u32) -> TextStyle<'static> {
    TextStyle::from((FAMILY, f64::from(size), FontStyle::Bold).into_font()).color(&INK)
}

pub(super) fn text_width(area: &Area, text: &str, style: &TextStyle) -> u32 {
    area.estimate_text_size(text, style).map_or(0, |(w, _)| w)
}

/// The largest size from `sizes` at which `text` fits `width`.
pub(super) fn fitting(
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

/// Type sizes in pixels, chosen to stay legible when 1600×900 is projected on a wall.
pub(super) const TICK: u32 = 24;
pub(super) const AXIS_TITLE: u32 = 26;
pub(super) const LEGEND: u32 = 24;
pub(super) const PANEL_TITLE: u32 = 28;

/// A text style drawn relative to an anchor other than its top left corner.
pub(super) fn anchored(style: TextStyle<'static>, h: HPos, v: VPos) -> TextStyle<'static> {
    style.pos(Pos::new(h, v))
}
