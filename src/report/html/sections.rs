//! The page's sections after the table: curves (with the run legend),
//! sweep plots, the picture grid and the config diff.

use std::collections::BTreeSet;
use std::fmt::Write;

use base64::Engine;

use super::{differing_params, esc, swatch};
use crate::report::chart::{Figure, Look};
use crate::report::pictures::{PictureRow, KINDS};
use crate::report::{parallel_size, Report, ReportError, CHART_SIZE, SWEEP_SIZE};

pub(super) fn curves_section(page: &mut String, report: &Report) -> Result<(), ReportError> {
    let smooth = if report.smooth > 0.0 {
        format!(
            ", smoothed by an exponential moving average (weight {})",
            report.smooth
        )
    } else {
        String::new()
    };
    let _ = write!(
        page,
        "<section id=\"curves\"><h2>Curves</h2><p class=\"note\">Solid: training, every step{smooth}. \
         Dashed: validation, every epoch. A y axis spanning decades is logarithmic.{}</p>",
        if report.groups.is_empty() {
            ""
        } else {
            " A group of runs is its mean (thick) in a band, its runs thin behind it."
        }
    );
    legend(page, report);
    page.push_str("<div class=\"charts\">");
    // The page's legend replaces the charts' own.
    let look = Look {
        legend: None,
        ..report.look(CHART_SIZE)
    };
    for chart in &report.charts {
        let _ = writeln!(
            page,
            "<figure class=\"chart\" id=\"chart-{}\">{}{}</figure>",
            chart.slug,
            chart.svg(&look)?,
            if chart.log_y() {
                "<figcaption>log scale</figcaption>"
            } else {
                ""
            }
        );
    }
    page.push_str("</div></section>\n");
    Ok(())
}

/// Run colours and names above the charts, staying in view while they
/// scroll; each colour toggles its run.
fn legend(page: &mut String, report: &Report) {
    if report.runs.len() > MAX_PAGE_LEGEND {
        page.push_str("<p class=\"note\">Colours as in the runs table.</p>");
        return;
    }
    page.push_str("<div class=\"legend\">");
    for i in 0..report.runs.len() {
        // A group is one entry (its runs share its colour), at its first run.
        let group = report.groups.iter().find(|g| g.members.contains(&i));
        let label = match group {
            Some(g) if g.members[0] != i => continue,
            Some(g) => &g.label,
            None => &report.labels[i],
        };
        let _ = write!(
            page,
            "<span class=\"entry run-{i}\">{}{}</span>",
            swatch(report, i, true),
            esc(label)
        );
    }
    page.push_str("</div>");
}

/// Runs named in the legend above the charts, at most.
const MAX_PAGE_LEGEND: usize = 40;

pub(super) fn sweep_section(page: &mut String, report: &Report) -> Result<(), ReportError> {
    if report.sweeps.is_empty() {
        return Ok(());
    }
    page.push_str("<section id=\"sweep\"><h2>Sweep</h2>");
    for s in &report.sweeps {
        let axes: Vec<String> = s
            .axes
            .iter()
            .map(|a| format!("<code>{}</code>", esc(&a.key)))
            .collect();
        let _ = write!(
            page,
            "<h3>Sweep <code>{}</code>: {} runs, swept {}; judged by the {}</h3>",
            esc(&s.id),
            s.runs.len(),
            if axes.is_empty() {
                "nothing".to_string()
            } else {
                axes.join(", ")
            },
            s.metric
        );
        if !s.without_metric.is_empty() {
            let ids: Vec<String> = s
                .without_metric
                .iter()
                .map(|&i| format!("<code>{}</code>", esc(&report.runs[i].info.id)))
                .collect();
            let _ = write!(
                page,
                "<p class=\"note\">Not plotted (no {} recorded): {}.</p>",
                s.metric,
                ids.join(", ")
            );
        }
        if let Some(search) = &s.search {
            let _ = write!(page, "<p class=\"note\">Search: {}.</p>", esc(search));
        }
        let pruned = s.points.iter().filter(|p| p.pruned).count();
        if pruned > 0 {
            let _ = write!(
                page,
                "<p class=\"note\">{pruned} run{} pruned (stopped early: hollow dots, thin lines, crosses).</p>",
                if pruned == 1 { "" } else { "s" }
            );
        }
        if s.points.is_empty() || s.axes.is_empty() {
            continue;
        }
        let look = Look {
            legend: None,
            ..report.look(SWEEP_SIZE)
        };
        page.push_str("<div class=\"sweep\">");
        for i in 0..s.axes.len() {
            let scatter = s.scatter(i);
            let _ = write!(
                page,
                "<figure class=\"chart sweep-scatter\">{}<figcaption>{} against <code>{}</code>; one dot per run, in its colour (hollow: pruned)</figcaption></figure>",
                scatter.svg(&look)?,
                s.metric,
                esc(scatter.key())
            );
        }
        let wide = Look {
            size: parallel_size(s),
            ..look
        };
        let _ = write!(
            page,
            "<figure class=\"chart parallel\">{}<figcaption>parallel coordinates: each run is a line through its parameters to its {}; colour from the metric (yellow: best){}</figcaption></figure>",
            s.parallel().svg(&wide)?,
            s.metric,
            if pruned > 0 { "; thin lines: pruned runs" } else { "" }
        );
        if s.points.len() >= 2 {
            let history = crate::report::search_charts::History { plot: s };
            let _ = write!(
                page,
                "<figure class=\"chart history\">{}<figcaption>optimisation history: each trial's {} in start order, the best so far as a line; a cross: pruned</figcaption></figure>",
                history.svg(&look)?,
                s.metric
            );
        }
        if let Some(shares) = crate::report::search_charts::importance(s) {
            let chart = crate::report::search_charts::Importance {
                plot: s,
                shares: &shares,
            };
            let _ = write!(
                page,
                "<figure class=\"chart importance\">{}<figcaption>parameter importance: the share of the {} variance each parameter explains alone (η² over its values, normalised; completed trials)</figcaption></figure>",
                chart.svg(&look)?,
                s.metric
            );
        }
        page.push_str("</div>");
    }
    page.push_str("</section>\n");
    Ok(())
}

/// A row's epoch slider (none without a timeline), and what the page's size
/// budget left out of it.
fn timeline_slider(row: &PictureRow, n: usize, shown: Option<usize>) -> String {
    let Some(shown) = shown.filter(|_| row.timeline.len() >= 2) else {
        return String::new();
    };
    let epochs: Vec<String> = row.timeline.iter().map(|f| f.epoch.to_string()).collect();
    let mut html = format!(
        "<br><input type=\"range\" class=\"timeline\" id=\"timeline-{n}\" min=\"0\" max=\"{}\" value=\"{shown}\" data-epochs=\"{}\" title=\"the pictures of every recorded epoch\">",
        row.timeline.len() - 1,
        epochs.join(",")
    );
    if row.timeline.len() < row.recorded {
        let _ = write!(
            html,
            "<br><span class=\"note\">{} of {} epochs (page size)</span>",
            row.timeline.len(),
            row.recorded
        );
    }
    html
}

pub(super) fn pictures_section(page: &mut String, report: &Report) {
    let pictures = &report.pictures;
    let heading = match pictures.epoch {
        Some(e) => format!("Pictures at epoch {e}"),
        None => "Pictures (each run's latest)".to_string(),
    };
    let _ = write!(
        page,
        "<section id=\"pictures\"><h2>{heading}</h2><p class=\"note\">One validation crop per run, fixed at the start of training. \
         Offsets: hue is the direction towards the cell centre; offset x and y on a blue–red scale. \
         Embedded pixels: each pixel drawn where its embedding lands, coloured by its cell; crosses mark the centres. \
         The slider under a run's name steps through every epoch it recorded pictures of (as many as the page's size allows); \
         <code>#epoch=E</code> at the end of the page's address opens every row at epoch E.</p>"
    );
    let left_out = report.runs.len() - pictures.rows.len();
    if left_out > 0 {
        let _ = write!(
            page,
            "<p class=\"note\">The {} best runs; {left_out} more are not shown (<code>--pictures N</code>).</p>",
            pictures.rows.len()
        );
    }
    if pictures.rows.iter().all(|r| r.epoch.is_none()) {
        page.push_str("<p class=\"note\">No run recorded pictures (<code>log.vis_every</code>).</p></section>\n");
        return;
    }
    page.push_str("<div class=\"scroll\"><table class=\"pictures\"><thead><tr><th>run</th>");
    for (_, title) in KINDS {
        let _ = write!(page, "<th>{title}</th>");
    }
    page.push_str("</tr></thead><tbody>\n");
    let engine = base64::engine::general_purpose::STANDARD;
    for (n, row) in pictures.rows.iter().enumerate() {
        let r = &report.runs[row.run];
        let at = match row.epoch {
            Some(e) => format!("epoch {e}"),
            None => "no pictures".into(),
        };
        let shown = row.timeline.iter().position(|f| Some(f.epoch) == row.epoch);
        let _ = write!(
            page,
            "<tr class=\"run-{}\"><td>{}<b>{}</b><br><code>{}</code><br><span class=\"note epoch-label\">{at}</span>{}</td>",
            row.run,
            swatch(report, row.run, false),
            esc(&r.info.name),
            esc(&r.info.id),
            timeline_slider(row, n, shown)
        );
        for (k, ((kind, _), cell)) in KINDS.iter().zip(&row.cells).enumerate() {
            let Some(png) = cell else {
                page.push_str("<td class=\"missing\">—</td>");
                continue;
            };
            let frame = |j: usize| {
                shown
                    .map(|_| format!(" data-frame=\"{j}\""))
                    .unwrap_or_default()
            };
            let _ = write!(
                page,
                "<td><img class=\"picture\"{} alt=\"{kind} of {}\" src=\"data:image/png;base64,{}\">",
                frame(shown.unwrap_or(0)),
                esc(&r.info.id),
                engine.encode(png)
            );
            for (j, f) in row.timeline.iter().enumerate() {
                if Some(j) == shown {
                    continue;
                }
                if let Some(png) = &f.cells[k] {
                    let _ = write!(
                        page,
                        "<img class=\"picture frame\" hidden{} alt=\"{kind} of {} at epoch {}\" src=\"data:image/png;base64,{}\">",
                        frame(j),
                        esc(&r.info.id),
                        f.epoch,
                        engine.encode(png)
                    );
                }
            }
            page.push_str("</td>");
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div></section>\n");
}

pub(super) fn config_section(page: &mut String, report: &Report) {
    let runs = &report.runs;
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.info.params.keys()).collect();
    let differing: BTreeSet<String> = differing_params(runs).into_iter().collect();
    let _ = write!(
        page,
        "<section id=\"config\"><h2>Config</h2><p class=\"note\">The resolved configuration of every run; \
         rows that differ between runs are highlighted ({} of {}). \
         <label><input type=\"checkbox\" id=\"only-diff\"> show only the differences</label></p>",
        differing.len(),
        keys.len()
    );
    page.push_str(
        "<div class=\"scroll\"><table class=\"config\" id=\"config-table\"><thead><tr><th>key</th>",
    );
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            page,
            "<th class=\"run-{i}\">{}<code>{}</code></th>",
            swatch(report, i, false),
            esc(&r.info.id)
        );
    }
    page.push_str("</tr></thead><tbody>\n");
    for key in keys {
        let class = if differing.contains(key.as_str()) {
            "diff"
        } else {
            "same"
        };
        let _ = write!(page, "<tr class=\"{class}\"><td>{}</td>", esc(key));
        for (i, r) in runs.iter().enumerate() {
            let _ = write!(
                page,
                "<td class=\"run-{i}\">{}</td>",
                esc(r
                    .info
                    .params
                    .get(key)
                    .map(|p| p.value.as_str())
                    .unwrap_or("—"))
            );
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div></section>\n");
}
