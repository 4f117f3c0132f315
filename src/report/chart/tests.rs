//! Line charts: ticks, SVG size and escaping, group bands.

use super::super::palette::hex;
use super::*;

fn solid(run: usize, points: impl Iterator<Item = (f64, f64)>) -> Curve {
    Curve {
        run,
        points: points.collect(),
        stroke: Stroke::Solid,
        pruned: false,
        thin: false,
    }
}

fn chart(curves: Vec<Curve>) -> LineChart {
    LineChart {
        slug: "loss".into(),
        title: "loss <b>".into(),
        x_label: "step".into(),
        curves,
        bands: Vec::new(),
        higher_is_better: false,
        log_allowed: true,
        x_range: None,
    }
}

fn svg_with_legend(c: &LineChart, colours: &[RGBColor], labels: &[&str]) -> String {
    let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
    c.svg(&Look {
        colours,
        legend: Some(&labels),
        size: (560, 320),
        svg: false,
    })
    .unwrap()
}

#[test]
fn a_group_is_a_pale_band_with_its_mean_over_thin_member_curves() {
    super::super::fonts();
    let colours = vec![RGBColor(200, 0, 0); 2];
    let member = |run: usize, k: f64| Curve {
        thin: true,
        ..solid(run, (0..20).map(move |i| (i as f64, k * i as f64)))
    };
    let mut c = chart(vec![member(0, 1.0), member(1, 3.0)]);
    c.log_allowed = false;
    c.bands.push(BandCurve {
        run: 0,
        label: "lr=0.001 (2 seeds)".into(),
        mean: (0..20).map(|i| (i as f64, 2.0 * i as f64)).collect(),
        lo: (0..20).map(|i| (i as f64, i as f64)).collect(),
        hi: (0..20).map(|i| (i as f64, 3.0 * i as f64)).collect(),
        stroke: Stroke::Solid,
    });
    let svg = svg_with_legend(&c, &colours, &["run a", "run b"]);
    assert_eq!(svg.matches("<polygon").count(), 1, "one band");
    assert!(svg.contains("opacity=\"0.2\""), "a pale band");
    assert!(
        svg.contains("lr=0.001 (2 seeds)"),
        "the group in the legend"
    );
    assert!(
        !svg.contains("run a") && !svg.contains("run b"),
        "members unlabelled"
    );
    // Two thin pale members; the mean (and its legend line) thick.
    let lines: Vec<&str> = svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains("stroke=\"#C80000\""))
        .collect();
    let thin = lines.iter().filter(|l| l.contains("opacity=\"0.45\""));
    assert_eq!(thin.count(), 2, "{lines:#?}");
    let thick = lines.iter().filter(|l| l.contains("stroke-width=\"3\""));
    assert_eq!(thick.count(), 2, "{lines:#?}");
}

#[test]
fn ticks_are_short() {
    assert_eq!(tick(0.5), "0.5");
    assert_eq!(tick(0.12345), "0.1235");
    assert_eq!(tick(250.0), "250");
    assert_eq!(tick(1e-5), "1e-5");
    assert_eq!(tick(2.5e-4), "2.5e-4");
    assert_eq!(steps(12_000.0), "12k");
    assert_eq!(steps(950.0), "950");
}

#[test]
fn svg_has_one_polyline_per_solid_curve_and_escapes_text() {
    super::super::fonts();
    let colours = super::super::palette::run_colours(2);
    let c = chart(vec![
        solid(0, (0..5000).map(|i| (i as f64, 1.0 / (1.0 + i as f64)))),
        solid(1, (0..5000).map(|i| (i as f64, 2.0 / (1.0 + i as f64)))),
        Curve {
            run: 1,
            points: vec![(1000.0, 0.01), (2000.0, 0.005)],
            stroke: Stroke::Dashed,
            pruned: false,
            thin: false,
        },
    ]);
    assert!(c.log_y());
    let svg = svg_with_legend(&c, &colours, &["a", "<script>"]);
    assert!(svg.contains("loss &lt;b&gt;"));
    assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script>"));
    let run1 = hex(colours[1]);
    let lines = svg
        .lines()
        .filter(|l| l.starts_with("<polyline") && l.contains(&run1))
        .count();
    // The solid curve, the dashed one and the legend sample.
    assert_eq!(lines, 3, "{svg}");
    let dashed: Vec<&str> = svg
        .lines()
        .filter(|l| l.contains("stroke-dasharray"))
        .collect();
    assert_eq!(dashed.len(), 1);
    assert!(dashed[0].contains(&run1));
    assert!(!svg.contains(&format!("stroke-width=\"{SVG_DASH_MARK}\"")));
    // 5000 points become at most two per pixel column.
    let longest = svg
        .lines()
        .filter(|l| l.starts_with("<polyline"))
        .map(|l| l.matches(',').count())
        .max()
        .unwrap();
    assert!(longest <= 2 * 560, "{longest}");
}
