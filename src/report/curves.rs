//! The metric charts: one per quantity, every run overlaid, against the
//! training step. Training curves are the per-step values (smoothed when
//! asked), validation curves the per-epoch values at the epoch's last step.

use super::chart::{BandCurve, Curve, LineChart, Stroke};
use super::collect::ReportRun;
use super::groups::{spread, Band, Group};
use super::series::ema;

struct Quantity {
    key: &'static str,
    title: &'static str,
    /// Where the training curve comes from, first found wins.
    train: &'static [&'static str],
    /// Whether the validation split has a curve of it.
    val: bool,
    higher_is_better: bool,
    log_allowed: bool,
    /// Drawn only when some run recorded it.
    optional: bool,
}

impl Quantity {
    /// A loss term: per-step training curve, per-epoch validation curve.
    const fn loss(key: &'static str, title: &'static str) -> Quantity {
        Quantity {
            key,
            title,
            train: &["step", "train"],
            val: true,
            higher_is_better: false,
            log_allowed: true,
            optional: false,
        }
    }

    /// A validation score in [0, 1].
    const fn score(key: &'static str, title: &'static str, optional: bool) -> Quantity {
        Quantity {
            key,
            title,
            train: &[],
            val: true,
            higher_is_better: true,
            log_allowed: false,
            optional,
        }
    }
}

const QUANTITIES: &[Quantity] = &[
    Quantity::loss("loss", "total loss"),
    Quantity::loss("inst", "instance loss (Lovász hinge)"),
    Quantity::loss("var", "variance loss"),
    Quantity::loss("seed", "seed loss"),
    Quantity::score("iou", "validation IoU", false),
    Quantity::score("ap50", "validation AP50", false),
    Quantity::score("seg", "validation SEG", true),
    Quantity {
        key: "lr",
        title: "learning rate",
        train: &["train"],
        val: false,
        higher_is_better: false,
        log_allowed: false,
        optional: false,
    },
];

fn points(curve: &[(i64, i64, f64)]) -> Vec<(f64, f64)> {
    curve.iter().map(|&(s, _, v)| (s as f64, v)).collect()
}

/// The charts, in reading order. `smooth` is the EMA weight for the
/// per-step training curves (0: raw); each group's runs are drawn thin
/// behind the group's mean and band.
pub fn metric_charts(
    runs: &[ReportRun],
    smooth: f64,
    groups: &[Group],
    band: Band,
) -> Vec<LineChart> {
    let grouped: Vec<bool> = (0..runs.len())
        .map(|i| groups.iter().any(|g| g.members.contains(&i)))
        .collect();
    let mut charts = Vec::new();
    for q in QUANTITIES {
        let mut curves = Vec::new();
        for (i, run) in runs.iter().enumerate() {
            let pruned = run.info.status == crate::store::RunStatus::Pruned;
            if let Some((split, c)) = q
                .train
                .iter()
                .find_map(|s| run.curve(s, q.key).map(|c| (*s, c)))
            {
                let raw = points(c);
                let pts = if split == "step" {
                    ema(&raw, smooth)
                } else {
                    raw
                };
                curves.push(Curve {
                    run: i,
                    points: pts,
                    stroke: Stroke::Solid,
                    pruned,
                    thin: grouped[i],
                });
            }
            if q.val {
                if let Some(c) = run.curve("val", q.key) {
                    curves.push(Curve {
                        run: i,
                        points: points(c),
                        stroke: Stroke::Dashed,
                        pruned,
                        thin: grouped[i],
                    });
                }
            }
        }
        if q.optional && curves.is_empty() {
            continue;
        }
        let bands = group_bands(groups, &curves, band);
        charts.push(LineChart {
            slug: q.key.to_string(),
            title: q.title.to_string(),
            x_label: "step".into(),
            curves,
            bands,
            higher_is_better: q.higher_is_better,
            log_allowed: q.log_allowed,
            x_range: None,
        });
    }
    // One step axis for every chart, so that curves line up down the page.
    let last = runs
        .iter()
        .flat_map(|r| r.curves.values())
        .filter_map(|c| c.last().map(|p| p.0))
        .max();
    if let Some(last) = last {
        for c in &mut charts {
            c.x_range = Some((0.0, last.max(1) as f64));
        }
    }
    charts
}

/// Each group's mean and band, one per stroke (training solid, validation
/// dashed), from its members' curves as drawn.
fn group_bands(groups: &[Group], curves: &[Curve], band: Band) -> Vec<BandCurve> {
    let mut out = Vec::new();
    for g in groups {
        for stroke in [Stroke::Solid, Stroke::Dashed] {
            let members: Vec<&[(f64, f64)]> = curves
                .iter()
                .filter(|c| c.stroke == stroke && g.members.contains(&c.run))
                .map(|c| c.points.as_slice())
                .collect();
            if members.len() < 2 {
                continue;
            }
            if let Some(s) = spread(&members, band) {
                out.push(BandCurve {
                    run: g.members[0],
                    label: g.label.clone(),
                    mean: s.mean,
                    lo: s.lo,
                    hi: s.hi,
                    stroke,
                });
            }
        }
    }
    out
}
