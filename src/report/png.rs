//! Charts as PNG: plotters' bitmap backend for the shapes, with the text
//! drawn by `viz::text` afterwards. plotters 0.3.7 lays glyphs out without
//! their side bearings, so its own bitmap text runs letters together; the
//! wrapper below hands plotters our measurements and keeps the text to draw
//! with proper layout once the shapes are done. (Rotated text is drawn
//! level; the charts use none.)

use std::cell::RefCell;
use std::rc::Rc;

use image::RgbImage;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

use super::ReportError;
use crate::viz::text;

/// One label, placed by its top-left corner.
struct Label {
    text: String,
    at: (i32, i32),
    size: f32,
    colour: [u8; 3],
}

pub struct Canvas<'a> {
    inner: BitMapBackend<'a>,
    labels: Rc<RefCell<Vec<Label>>>,
}

/// plotters' nominal font size → the pixel height of our line box, so that
/// text is as large as the SVG (which renders size ÷ 1.24 as the em).
fn pixel_size(nominal: f64) -> f32 {
    (nominal / 1.24 * 1.16) as f32
}

type Result<T, E> = std::result::Result<T, DrawingErrorKind<E>>;
type BitmapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

impl DrawingBackend for Canvas<'_> {
    type ErrorType = BitmapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), Self::ErrorType> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), Self::ErrorType> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), Self::ErrorType> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_rect(a, b, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        c: BackendCoord,
        r: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Self::ErrorType> {
        self.inner.draw_circle(c, r, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Self::ErrorType> {
        self.inner.fill_polygon(vert, style)
    }
    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        t: &str,
        style: &S,
    ) -> Result<(u32, u32), Self::ErrorType> {
        let size = pixel_size(style.size());
        Ok((text::width(t, size).ceil() as u32, size.ceil() as u32))
    }
    fn draw_text<S: BackendTextStyle>(
        &mut self,
        t: &str,
        style: &S,
        (x, y): BackendCoord,
    ) -> Result<(), Self::ErrorType> {
        let c = style.color();
        if c.alpha == 0.0 {
            return Ok(());
        }
        let size = pixel_size(style.size());
        let w = text::width(t, size);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0.0,
            HPos::Center => -w / 2.0,
            HPos::Right => -w,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0.0,
            VPos::Center => -size / 2.0,
            VPos::Bottom => -size,
        };
        // Blend with the white page by the colour's own opacity.
        let blend = |v: u8| (v as f64 * c.alpha + 255.0 * (1.0 - c.alpha)).round() as u8;
        self.labels.borrow_mut().push(Label {
            text: t.to_string(),
            at: (x + dx.round() as i32, y + dy.round() as i32),
            size,
            colour: [blend(c.rgb.0), blend(c.rgb.1), blend(c.rgb.2)],
        });
        Ok(())
    }
}

/// Draws with `draw` on a white `size` canvas and encodes it as PNG.
pub fn render(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<Canvas<'_>, Shift>) -> std::result::Result<(), String>,
) -> std::result::Result<Vec<u8>, ReportError> {
    let (w, h) = size;
    let mut buffer = vec![255u8; w as usize * h as usize * 3];
    let labels = Rc::new(RefCell::new(Vec::new()));
    {
        let canvas = Canvas {
            inner: BitMapBackend::with_buffer(&mut buffer, size),
            labels: labels.clone(),
        };
        let root = canvas.into_drawing_area();
        draw(&root).map_err(ReportError::Chart)?;
        root.present()
            .map_err(|e| ReportError::Chart(e.to_string()))?;
    }
    let mut img = RgbImage::from_raw(w, h, buffer).expect("the buffer has w·h·3 bytes");
    for label in labels.borrow().iter() {
        text::text(&mut img, &label.text, label.at, label.size, label.colour);
    }
    Ok(crate::viz::encode_png(&img))
}
