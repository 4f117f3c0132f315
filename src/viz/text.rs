//! Text on RGB images, in the DejaVu Sans font compiled into the binary (no
//! system fonts needed; its licence lies beside it). Glyphs are laid out on a
//! baseline with their advances, bearings and kerning, and blended by coverage.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use image::RgbImage;

use super::colour::Rgb;

pub const FONT_BYTES: &[u8] = include_bytes!("DejaVuSans.ttf");

fn font() -> &'static FontRef<'static> {
    static FONT: OnceLock<FontRef<'static>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).expect("the embedded font parses"))
}

/// Each glyph of `text` with its pen position (advances and kerning applied)
/// and the caret after the last one.
fn layout(text: &str, size: f32) -> (Vec<(ab_glyph::GlyphId, f32)>, f32) {
    let font = font().as_scaled(PxScale::from(size));
    let mut caret = 0.0;
    let mut previous = None;
    let mut glyphs = Vec::with_capacity(text.len());
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = previous {
            caret += font.kern(p, id);
        }
        previous = Some(id);
        glyphs.push((id, caret));
        caret += font.h_advance(id);
    }
    (glyphs, caret)
}

/// Writes `text` with the top-left of its line box at (x, y); `size` in pixels.
pub fn text(img: &mut RgbImage, text: &str, (x, y): (i32, i32), size: f32, colour: Rgb) {
    let font = font().as_scaled(PxScale::from(size));
    let baseline = y as f32 + font.ascent();
    for (id, pen) in layout(text, size).0 {
        let glyph =
            id.with_scale_and_position(PxScale::from(size), point(x as f32 + pen, baseline));
        let Some(outline) = font.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        outline.draw(|gx, gy, coverage| {
            let (px, py) = (
                bounds.min.x as i32 + gx as i32,
                bounds.min.y as i32 + gy as i32,
            );
            if px < 0 || py < 0 || px >= img.width() as i32 || py >= img.height() as i32 {
                return;
            }
            let p = img.get_pixel_mut(px as u32, py as u32);
            let a = coverage.clamp(0.0, 1.0);
            for (dst, &src) in p.0.iter_mut().zip(&colour) {
                *dst = (*dst as f32 * (1.0 - a) + src as f32 * a).round() as u8;
            }
        });
    }
}

/// The width `text` takes at `size`.
pub fn width(text: &str, size: f32) -> f32 {
    layout(text, size).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_ink_left_to_right_within_its_width() {
        let mut img = RgbImage::new(120, 24);
        text(&mut img, "cluster 0.9", (2, 2), 16.0, [255, 255, 255]);
        let lit: Vec<u32> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0[0] > 128)
            .map(|(x, _, _)| x)
            .collect();
        assert!(lit.len() > 40, "only {} pixels drawn", lit.len());
        let right = *lit.iter().max().unwrap() as f32;
        assert!(right <= 2.0 + width("cluster 0.9", 16.0) + 1.0);
        assert!(width("cluster", 16.0) > width("clus", 16.0));
    }
}
