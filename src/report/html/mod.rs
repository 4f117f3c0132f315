//! The page: one HTML file with its CSS, SVG charts and PNG pictures inline
//! and a few lines of plain JavaScript to sort the table and hide runs.
//! Every string that comes from a run (names, configs, errors, parameter
//! values) goes through `esc`.

mod columns;
mod groups;
mod runs;
mod sections;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use super::collect::{Ranking, ReportRun};
use super::palette::hex;
use super::{Report, ReportError};
use crate::view::{local_time, number};

/// Text safe in HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Run indices, best first by the ranking metric; runs without it last,
/// oldest first.
pub fn ranked(runs: &[ReportRun]) -> Vec<usize> {
    let ranking = Ranking::for_runs(runs.iter());
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| {
        match (ranking.value(&runs[a]), ranking.value(&runs[b])) {
            (Some(x), Some(y)) if ranking.higher_is_better => y.total_cmp(&x),
            (Some(x), Some(y)) => x.total_cmp(&y),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
        .then(a.cmp(&b))
    });
    order
}

/// Parameters whose values are not the same in every run (the run name
/// aside), in key order.
pub fn differing_params(runs: &[ReportRun]) -> Vec<String> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.info.params.keys()).collect();
    keys.into_iter()
        .filter(|k| k.as_str() != "name")
        .filter(|k| {
            let mut values = runs
                .iter()
                .map(|r| r.info.params.get(*k).map(|p| p.value.as_str()));
            let first = values.next().flatten();
            values.any(|v| v != first)
        })
        .cloned()
        .collect()
}

/// The page's style and its one script (table sorting, run toggles).
const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Records script errors on the page itself, so a headless browser's DOM
/// dump shows them.
const ERROR_TRAP: &str = "window.addEventListener('error',function(e){var d=document.documentElement;d.setAttribute('data-errors',(d.getAttribute('data-errors')||'')+e.message+';');});";

fn swatch(report: &Report, run: usize, toggle: bool) -> String {
    let colour = hex(report.colours[run]);
    if toggle {
        format!(
            "<label class=\"sw\" style=\"background:{colour}\" title=\"show or hide this run\"><input type=\"checkbox\" checked data-run=\"{run}\"></label>"
        )
    } else {
        format!("<span class=\"sw\" style=\"background:{colour}\"></span>")
    }
}

/// The page.
pub fn render(report: &Report) -> Result<String, ReportError> {
    let mut page = String::with_capacity(1 << 20);
    let n = report.runs.len();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>esx report: {n} run{}</title><script>{ERROR_TRAP}</script><style>{STYLE}",
        if n == 1 { "" } else { "s" }
    );
    for (i, c) in report.colours.iter().enumerate() {
        let h = hex(*c);
        let _ = write!(
            page,
            ".hide-{i} svg [stroke=\"{h}\"],.hide-{i} svg [fill=\"{h}\"]{{display:none}}.hide-{i} .run-{i}{{opacity:.35}}"
        );
    }
    page.push_str("</style></head><body>\n");
    header(&mut page, report);
    page.push_str("<main>\n");
    runs::runs_section(&mut page, report);
    sections::curves_section(&mut page, report)?;
    sections::sweep_section(&mut page, report)?;
    sections::pictures_section(&mut page, report);
    sections::config_section(&mut page, report);
    let _ = write!(page, "</main>\n<script>{SCRIPT}</script>\n</body></html>\n");
    Ok(page)
}

fn header(page: &mut String, report: &Report) {
    let roots: Vec<String> = report
        .roots
        .iter()
        .map(|r| format!("<code>{}</code>", esc(&r.display().to_string())))
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &report.runs {
        *counts.entry(r.info.status.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = counts
        .iter()
        .map(|(s, c)| format!("<span class=\"{s}\">{c} {s}</span>"))
        .collect();
    let _ = write!(
        page,
        "<header><h1>esx report</h1><p class=\"meta\">{} run{} from {} · {} · written {} by esx {}</p>\
         <nav><a href=\"#runs\">Runs</a><a href=\"#curves\">Curves</a>{}<a href=\"#pictures\">Pictures</a><a href=\"#config\">Config</a></nav>",
        report.runs.len(),
        if report.runs.len() == 1 { "" } else { "s" },
        roots.join(", "),
        counts.join(", "),
        esc(&local_time(crate::store::provenance::now())),
        env!("CARGO_PKG_VERSION"),
        if report.sweeps.is_empty() { "" } else { "<a href=\"#sweep\">Sweep</a>" },
    );
    page.push_str("<div class=\"summary\">");
    let ranking = Ranking::for_runs(report.runs.iter());
    let order = ranked(&report.runs);
    if let Some(&best) = order
        .first()
        .filter(|&&b| ranking.value(&report.runs[b]).is_some())
    {
        let run = &report.runs[best];
        let value = ranking.value(run);
        let epoch = ranking
            .best_epoch(run)
            .map(|e| format!(" at epoch {e}"))
            .unwrap_or_default();
        let swept = swept_text(run);
        let _ = write!(
            page,
            "<div class=\"card\" id=\"best\"><div class=\"label\">best run by {}</div>\
             <div class=\"big\">{}{} <code>{}</code> {}</div><div>{}{}{}</div></div>",
            ranking.title,
            swatch(report, best, false),
            esc(&run.info.name),
            esc(&run.info.id),
            number(value),
            esc(run.info.status.as_str()),
            epoch,
            if swept.is_empty() {
                String::new()
            } else {
                format!(" · {}", esc(&swept))
            }
        );
        if let Some(&second) = order.get(1) {
            if let Some(v2) = ranking.value(&report.runs[second]) {
                let _ = write!(
                    page,
                    "<div class=\"card\"><div class=\"label\">runner-up</div><div class=\"big\">{}{} <code>{}</code> {}</div><div>{} behind</div></div>",
                    swatch(report, second, false),
                    esc(&report.runs[second].info.name),
                    esc(&report.runs[second].info.id),
                    number(Some(v2)),
                    number(value.map(|v| (v - v2).abs())),
                );
            }
        }
    }
    page.push_str("</div></header>\n");
}

/// `lr=0.001 model.sigma_init=0.5` for a sweep's run.
fn swept_text(run: &ReportRun) -> String {
    run.info
        .swept_values()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
    }
}
