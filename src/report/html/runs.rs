//! The runs table: best first, differing parameters, metrics, and the
//! errors of runs that did not complete.

use std::fmt::Write;

use super::columns::{present_columns, Column};
use super::{differing_params, esc, ranked, swatch};
use crate::report::collect::ReportRun;
use crate::report::Report;
use crate::store::RunStatus;
use crate::view::{duration, lineage, local_time, number};

/// At most this many differing parameters get their own column.
const MAX_PARAM_COLUMNS: usize = 12;

pub(super) fn runs_section(page: &mut String, report: &Report) {
    let runs = &report.runs;
    // What tuning chose is shown even where every run chose the same.
    let mut params: Vec<String> = runs
        .iter()
        .flat_map(|r| r.info.params.keys())
        .filter(|k| k.starts_with("tuned."))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    params.extend(
        differing_params(runs)
            .into_iter()
            .filter(|k| !k.starts_with("tuned.")),
    );
    let shown_params = &params[..params.len().min(MAX_PARAM_COLUMNS)];
    let columns = present_columns(runs);
    let value = |r: &ReportRun, c: &Column| c.value(r);
    let top: Vec<Option<f64>> = columns
        .iter()
        .map(|c| {
            let vs = runs.iter().filter_map(|r| value(r, c));
            if c.higher_is_better {
                vs.reduce(f64::max)
            } else {
                vs.reduce(f64::min)
            }
        })
        .collect();
    page.push_str("<section id=\"runs\"><h2>Runs</h2>");
    super::groups::groups_table(page, report, &columns);
    page.push_str("<p class=\"note\">Best first. Click a column to sort; click a run's colour to hide it in every chart. Parameters shown are those that differ between the runs.</p>");
    page.push_str("<div class=\"scroll tall\"><table class=\"sortable\" id=\"runs-table\"><thead><tr><th></th><th>id</th><th>name</th><th>status</th><th data-asc>started</th><th>duration</th>");
    // Where fine-tuned runs' weights came from (parent, its parent, …).
    let lineages: Vec<Option<String>> = runs.iter().map(|r| lineage(&r.info)).collect();
    let show_lineage = lineages.iter().any(Option::is_some);
    if show_lineage {
        page.push_str("<th>init from</th>");
    }
    for p in shown_params {
        let _ = write!(page, "<th class=\"param\">{}</th>", esc(p));
    }
    for c in &columns {
        page.push_str(&c.th());
    }
    page.push_str("</tr></thead><tbody>\n");
    for &i in &ranked(runs) {
        let r = &runs[i];
        let status = r.info.status.as_str();
        let title = r
            .info
            .error
            .as_deref()
            .map(|e| format!(" title=\"{}\"", esc(e)))
            .unwrap_or_default();
        let _ = write!(
            page,
            "<tr class=\"run-{i}\"><td>{}</td><td class=\"mono\">{}</td><td class=\"name\"{}>{}{}</td><td class=\"status {status}\"{title}>{status}</td><td class=\"when\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{:.1}\">{}</td>",
            swatch(report, i, true),
            esc(&r.info.id),
            notes_title(&r.info.notes),
            esc(&r.info.name),
            tag_pills(&r.info.tags),
            r.info.created,
            esc(&local_time(r.info.created)),
            r.info.duration(),
            duration(r.info.duration()),
        );
        if show_lineage {
            let from = lineages[i].as_deref().unwrap_or("—");
            let _ = write!(page, "<td class=\"lineage\">{}</td>", esc(from));
        }
        for p in shown_params {
            let v = r.info.params.get(p);
            let sort = v
                .and_then(|p| p.num)
                .map(|x| x.to_string())
                .unwrap_or_else(|| v.map(|p| p.value.clone()).unwrap_or_default());
            let _ = write!(
                page,
                "<td class=\"param\" data-v=\"{}\">{}</td>",
                esc(&sort),
                esc(v.map(|p| p.value.as_str()).unwrap_or("—"))
            );
        }
        for (c, best) in columns.iter().zip(&top) {
            let v = value(r, c);
            let class = if v.is_some() && v == *best && runs.len() > 1 {
                "num top"
            } else {
                "num"
            };
            let _ = write!(
                page,
                "<td class=\"{class}\" data-v=\"{}\">{}</td>",
                v.map(|x| x.to_string()).unwrap_or_default(),
                number(v)
            );
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div>");
    if params.len() > shown_params.len() {
        let _ = write!(
            page,
            "<p class=\"note\">{} more parameters differ; see <a href=\"#config\">Config</a>.</p>",
            params.len() - shown_params.len()
        );
    }
    let failed: Vec<usize> = (0..runs.len())
        .filter(|&i| {
            runs[i].info.error.is_some() || matches!(runs[i].info.status, RunStatus::Crashed)
        })
        .collect();
    if !failed.is_empty() {
        page.push_str("<h3>Runs that did not complete</h3><ul class=\"errors\">");
        for i in failed {
            let r = &runs[i];
            let why = r
                .info
                .error
                .clone()
                .unwrap_or_else(|| "the process ended without recording an outcome".into());
            let _ = write!(
                page,
                "<li class=\"run-{i}\">{}<code>{}</code> {} ({}): <span class=\"mono\">{}</span></li>",
                swatch(report, i, false),
                esc(&r.info.id),
                esc(&r.info.name),
                r.info.status.as_str(),
                esc(&why)
            );
        }
        page.push_str("</ul>");
    }
    page.push_str("</section>\n");
}

/// A run's tags as small labels after its name.
fn tag_pills(tags: &[String]) -> String {
    tags.iter()
        .map(|t| format!(" <span class=\"tag\">{}</span>", esc(t)))
        .collect()
}

/// A run's notes as the name cell's tooltip, one per line.
fn notes_title(notes: &[crate::store::query::Note]) -> String {
    if notes.is_empty() {
        return String::new();
    }
    let text: Vec<String> = notes
        .iter()
        .map(|n| format!("{}: {}", local_time(n.wall), n.text))
        .collect();
    format!(" title=\"{}\"", esc(&text.join("\n")))
}
