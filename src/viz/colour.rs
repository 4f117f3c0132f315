//! Colour maps: viridis for magnitudes, a blue–white–red diverging map for
//! signed values, HSV for directions, and distinct colours for instances.

pub type Rgb = [u8; 3];

/// Viridis, sampled at 9 stops and interpolated linearly; t in [0, 1].
pub fn viridis(t: f32) -> Rgb {
    const STOPS: [[f32; 3]; 9] = [
        [68.0, 1.0, 84.0],
        [71.0, 44.0, 122.0],
        [59.0, 81.0, 139.0],
        [44.0, 113.0, 142.0],
        [33.0, 144.0, 141.0],
        [39.0, 173.0, 129.0],
        [92.0, 200.0, 99.0],
        [170.0, 220.0, 50.0],
        [253.0, 231.0, 37.0],
    ];
    interpolate(&STOPS, t)
}

/// Blue (−1) – white (0) – red (+1), as matplotlib's RdBu reversed.
pub fn diverging(t: f32) -> Rgb {
    const STOPS: [[f32; 3]; 5] = [
        [33.0, 102.0, 172.0],
        [146.0, 197.0, 222.0],
        [247.0, 247.0, 247.0],
        [244.0, 165.0, 130.0],
        [178.0, 24.0, 43.0],
    ];
    interpolate(&STOPS, (t + 1.0) / 2.0)
}

fn interpolate(stops: &[[f32; 3]], t: f32) -> Rgb {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (stops.len() - 1) as f32;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f32;
    let mix = |c: usize| (stops[i][c] * (1.0 - f) + stops[i + 1][c] * f).round() as u8;
    [mix(0), mix(1), mix(2)]
}

/// Hue in turns (0..1), saturation and value in 0..1.
pub fn hsv(h: f32, s: f32, v: f32) -> Rgb {
    let h = (h.rem_euclid(1.0)) * 6.0;
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let q = |u: f32| ((u + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

/// A bright colour for instance `id` (> 0); neighbouring ids differ in hue
/// by the golden angle, so adjacent cells rarely look alike.
pub fn instance(id: u32) -> Rgb {
    let h = (id as f32 * 0.618_034).fract();
    let v = if id.is_multiple_of(2) { 0.95 } else { 0.8 };
    hsv(h, 0.75, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_hit_their_ends_and_middle() {
        assert_eq!(viridis(0.0), [68, 1, 84]);
        assert_eq!(viridis(1.0), [253, 231, 37]);
        assert_eq!(diverging(0.0), [247, 247, 247]);
        assert_eq!(diverging(-1.0), [33, 102, 172]);
        assert_eq!(diverging(5.0), [178, 24, 43]);
        assert_eq!(hsv(0.0, 1.0, 1.0), [255, 0, 0]);
        assert_eq!(hsv(1.0 / 3.0, 1.0, 1.0), [0, 255, 0]);
        assert_eq!(hsv(0.5, 0.0, 1.0), [255, 255, 255]);
        assert_ne!(instance(1), instance(2));
    }
}
