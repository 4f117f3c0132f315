//! One colour per run, the same in every chart, table row and picture row.
//! Up to ten runs get the familiar Tableau colours; more get hues spaced by
//! the golden angle with alternating brightness. Every colour is saturated
//! and distinct, so none is mistaken for the charts' black and grey chrome
//! (the page's run toggles find a run's marks by their colour).

use plotters::style::RGBColor;

use crate::viz::colour;

const TABLEAU: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (188, 189, 34),
    (23, 190, 207),
    (127, 127, 255),
];

/// `n` distinct run colours.
pub fn run_colours(n: usize) -> Vec<RGBColor> {
    if n <= TABLEAU.len() {
        return TABLEAU[..n]
            .iter()
            .map(|&(r, g, b)| RGBColor(r, g, b))
            .collect();
    }
    let mut out: Vec<RGBColor> = Vec::with_capacity(n);
    let mut i = 0usize;
    while out.len() < n {
        let hue = (i as f32 * 0.381_966) % 1.0;
        let value = [0.8, 0.62, 0.95, 0.5][i % 4];
        let [r, g, b] = colour::hsv(hue, 0.8, value);
        let c = RGBColor(r, g, b);
        if !out.contains(&c) {
            out.push(c);
        }
        i += 1;
    }
    out
}

/// `#RRGGBB` as plotters' SVG backend writes it.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2)
}

/// Viridis at `t` in [0, 1], for values (a sweep's metric) rather than runs.
pub fn viridis(t: f64) -> RGBColor {
    let [r, g, b] = colour::viridis(t.clamp(0.0, 1.0) as f32);
    RGBColor(r, g, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_distinct_and_never_grey() {
        for n in [1, 10, 11, 100, 300] {
            let colours = run_colours(n);
            assert_eq!(colours.len(), n);
            let mut hexes: Vec<String> = colours.iter().map(|&c| hex(c)).collect();
            hexes.sort();
            hexes.dedup();
            assert_eq!(hexes.len(), n, "duplicates among {n}");
            for c in colours {
                let (max, min) = (c.0.max(c.1).max(c.2), c.0.min(c.1).min(c.2));
                assert!(max - min >= 40, "{} is nearly grey", hex(c));
            }
        }
        assert_eq!(hex(RGBColor(31, 119, 180)), "#1F77B4");
    }
}
