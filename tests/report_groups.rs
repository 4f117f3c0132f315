//! Seed groups in `esx report` over a real lr × seed sweep: the group
//! table's mean ± std against the runs' own values, bands and thin member
//! curves in one colour a group, the legend, sweep plots by group, `--band`,
//! `--group-by`.

mod common;

use common::{element, fails, succeeds, write_files};

/// The `<polygon …>` elements (bands) of a chart.
fn polygons(figure: &str) -> Vec<&str> {
    figure
        .match_indices("<polygon")
        .map(|(i, _)| &figure[i..i + figure[i..].find("/>").unwrap()])
        .collect()
}

#[test]
fn seed_groups_are_bands_around_their_mean_with_mean_and_std_in_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_files(
        d,
        &[("tiny.toml", &esx::bench::sweep::tiny_experiment(2, 3))],
    );
    succeeds(
        d,
        &[
            "sweep",
            "tiny.toml",
            "lr=1e-3,3e-3",
            "seed=1,2",
            "--jobs",
            "2",
            "--quiet",
        ],
    );
    let listed: serde_json::Value = serde_json::from_str(&succeeds(d, &["ls", "--json"])).unwrap();
    let best_iou = |lr: f64| -> Vec<f64> {
        listed
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["params"]["lr"]["num"].as_f64() == Some(lr))
            .map(|r| {
                r["summary"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|s| s["split"] == "val" && s["key"] == "iou")
                    .unwrap()["max"]
                    .as_f64()
                    .unwrap()
            })
            .collect()
    };

    succeeds(d, &["report", "runs", "--out", "g.html"]);
    let html = std::fs::read_to_string(d.join("g.html")).unwrap();
    let table = element(
        &html,
        "<table class=\"sortable\" id=\"groups-table\">",
        "</table>",
    );
    assert_eq!(table.matches("<tr class=\"group-").count(), 2, "{table}");
    for lr in [1e-3, 3e-3] {
        let label = format!("lr={lr} (2 seeds)");
        let row = element(table, &format!("{label}</td>"), "</tr>");
        // Mean ± sample std of the members' best validation IoU, by hand.
        let v = best_iou(lr);
        assert_eq!(v.len(), 2);
        let mean = (v[0] + v[1]) / 2.0;
        let std = (v[0] - v[1]).abs() / 2f64.sqrt();
        let cell = format!(
            "{} ± {}",
            esx::view::number(Some(mean)),
            esx::view::number(Some(std))
        );
        assert!(row.contains(&cell), "{cell} in {row}");
    }
    // Each group: a band per curve kind (training, validation), its mean
    // over its runs drawn thin, all in one colour per group.
    let loss = element(&html, "id=\"chart-loss\"", "</figure>");
    let minmax = polygons(loss);
    assert_eq!(minmax.len(), 4, "{loss}");
    assert!(minmax.iter().all(|p| p.contains("opacity=\"0.2\"")));
    let colours: std::collections::BTreeSet<&str> = loss
        .match_indices("stroke=\"#")
        .map(|(i, _)| &loss[i + 8..i + 15])
        .filter(|c| *c != "#000000" && !c.starts_with("#5A5A5A") && !c.starts_with("#D7D7D7"))
        .collect();
    assert!(
        colours.len() <= 4,
        "two group colours and the chrome: {colours:?}"
    );
    let legend = element(&html, "<div class=\"legend\">", "</div>");
    assert_eq!(
        legend.matches("class=\"entry").count(),
        2,
        "one entry a group: {legend}"
    );
    assert!(legend.contains("lr=0.001 (2 seeds)") && legend.contains("lr=0.003 (2 seeds)"));
    // The sweep is drawn by group means: lr alone is an axis, not seed.
    let sweep = element(&html, "<section id=\"sweep\">", "</section>");
    assert_eq!(sweep.matches("class=\"chart sweep-scatter\"").count(), 1);
    assert!(!sweep.contains("vs seed"), "{sweep}");

    // ± std bands are other bands; no groups, no bands; groups by lr.
    succeeds(d, &["report", "runs", "--out", "s.html", "--band", "std"]);
    let std_html = std::fs::read_to_string(d.join("s.html")).unwrap();
    let std_loss = element(&std_html, "id=\"chart-loss\"", "</figure>");
    assert_eq!(polygons(std_loss).len(), 4);
    assert_ne!(polygons(std_loss), minmax);
    succeeds(
        d,
        &["report", "runs", "--out", "n.html", "--group-by", "none"],
    );
    let none = std::fs::read_to_string(d.join("n.html")).unwrap();
    assert!(!none.contains("<polygon") && !none.contains("groups-table"));
    let sweep = element(&none, "<section id=\"sweep\">", "</section>");
    assert_eq!(sweep.matches("class=\"chart sweep-scatter\"").count(), 2);
    succeeds(
        d,
        &["report", "runs", "--out", "l.html", "--group-by", "lr"],
    );
    let by_lr = std::fs::read_to_string(d.join("l.html")).unwrap();
    assert!(by_lr.contains("lr=0.001 (2 runs)") && by_lr.contains("lr=0.003 (2 runs)"));

    let err = fails(d, &["report", "runs", "--group-by", "nosuchkey"]);
    assert!(
        err.contains("--group-by nosuchkey: no run has that parameter"),
        "{err}"
    );
    let err = fails(d, &["report", "runs", "--group-by", "lr,,seed"]);
    assert!(err.contains("expected KEY[,KEY…]"), "{err}");
}
