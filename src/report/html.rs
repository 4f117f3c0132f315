//! The page: one HTML file with its CSS, SVG charts and PNG pictures inline
//! and a few lines of plain JavaScript to sort the table and hide runs.
//! Every string that comes from a run (names, configs, errors, parameter
//! values) goes through `esc`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use base64::Engine;

use super::chart::{Figure, Look};
use super::collect::{Ranking, ReportRun};
use super::palette::hex;
use super::pictures::KINDS;
use super::{parallel_size, Report, ReportError, CHART_SIZE, SWEEP_SIZE};
use crate::store::RunStatus;
use crate::view::{duration, local_time, number};

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

const STYLE: &str = r#"
:root{--ink:#1d2329;--mute:#5f6b76;--line:#d9dee3;--soft:#f4f6f8;--good:#0b7a3e;--bad:#b3261e}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:#fff}
header{padding:18px 28px 10px;border-bottom:1px solid var(--line);background:var(--soft)}
h1{margin:0 0 4px;font-size:22px}
h2{margin:28px 0 10px;font-size:18px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{margin:18px 0 8px;font-size:15px}
main{padding:0 28px 40px}
nav a{margin-right:14px;color:#2458a6;text-decoration:none}
.meta{color:var(--mute);margin:2px 0 8px}
code,.mono{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px}
.summary{display:flex;flex-wrap:wrap;gap:12px;margin-top:16px}
.card{border:1px solid var(--line);border-radius:8px;padding:10px 14px;background:#fff;min-width:240px}
.card .big{font-size:20px;font-weight:600}
.card .label{color:var(--mute);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.sw{display:inline-block;width:12px;height:12px;border-radius:3px;vertical-align:-1px;margin-right:6px}
.sw input{margin:0;opacity:0;width:12px;height:12px;cursor:pointer}
.sw.off{background:#fff!important;outline:2px solid #bbb}
.scroll{overflow-x:auto}
.scroll.tall{max-height:560px;overflow-y:auto}
.scroll.tall thead th{position:sticky;top:0;z-index:1}
td.name{white-space:nowrap}
table{border-collapse:collapse}
th,td{padding:4px 8px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:hover{background:#e8ecf0}
th.asc::after{content:" ▲";font-size:10px}th.desc::after{content:" ▼";font-size:10px}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.top{font-weight:700;color:var(--good)}
.param{color:#6b3fa0}
.status{font-weight:600}.completed{color:var(--good)}.failed,.crashed{color:var(--bad)}.running{color:#2458a6}.interrupted{color:#a86500}
.errors li{margin:3px 0}.errors .mono{color:var(--bad)}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:14px}
figure{margin:0;border:1px solid var(--line);border-radius:6px;padding:6px;background:#fff}
figure svg{display:block;max-width:100%;height:auto}
figcaption{color:var(--mute);font-size:12px;padding:2px 4px}
.sweep{display:flex;flex-wrap:wrap;gap:12px}
table.pictures td{padding:4px}
table.pictures img{height:150px;width:auto;display:block;image-rendering:pixelated;border-radius:3px}
td.missing{color:var(--mute);text-align:center;vertical-align:middle;width:150px}
table.config td{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12.5px;white-space:nowrap}
table.config tr.diff td{background:#fff4cc}
table.config tr.diff td:first-child{font-weight:700}
table.config.only-diff tr.same{display:none}
.note{color:var(--mute)}
.legend{position:sticky;top:0;z-index:2;background:rgba(255,255,255,.95);border-bottom:1px solid var(--line);padding:6px 0;margin-bottom:10px;display:flex;flex-wrap:wrap;gap:4px 16px;font-size:13px}
.legend .entry{white-space:nowrap}
td.when{white-space:nowrap}
"#;

const SCRIPT: &str = r#"
(function(){
  function value(td){var v=td.getAttribute('data-v');return v===null?td.textContent.trim():v;}
  document.querySelectorAll('table.sortable').forEach(function(table){
    table.querySelectorAll('thead th').forEach(function(th,col){
      th.addEventListener('click',function(){
        var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
        var dir=th.classList.contains('desc')?1:-1;
        if(!th.classList.contains('asc')&&!th.classList.contains('desc'))dir=th.hasAttribute('data-asc')?1:-1;
        table.querySelectorAll('thead th').forEach(function(h){h.classList.remove('asc','desc');});
        th.classList.add(dir>0?'asc':'desc');
        rows.sort(function(a,b){
          var x=value(a.cells[col]),y=value(b.cells[col]);
          if(x===''&&y==='')return 0;if(x==='')return 1;if(y==='')return -1;
          var nx=Number(x),ny=Number(y);
          if(!isNaN(nx)&&!isNaN(ny))return dir*(nx-ny);
          return dir*x.localeCompare(y);
        });
        rows.forEach(function(r){body.appendChild(r);});
      });
    });
  });
  document.querySelectorAll('input[data-run]').forEach(function(box){
    box.addEventListener('change',function(){
      var run=box.getAttribute('data-run');
      document.body.classList.toggle('hide-'+run,!box.checked);
      document.querySelectorAll('input[data-run="'+run+'"]').forEach(function(b){b.checked=box.checked;b.parentNode.classList.toggle('off',!box.checked);});
    });
  });
  var only=document.getElementById('only-diff');
  if(only)only.addEventListener('change',function(){document.getElementById('config-table').classList.toggle('only-diff',only.checked);});
  document.body.setAttribute('data-ready','1');
})();
"#;

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
    runs_section(&mut page, report);
    curves_section(&mut page, report)?;
    sweep_section(&mut page, report)?;
    pictures_section(&mut page, report);
    config_section(&mut page, report);
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
        .swept
        .as_ref()
        .map(|m| {
            m.iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A metric column of the runs table.
struct Column {
    title: &'static str,
    split: &'static str,
    key: &'static str,
    best: bool,
    higher_is_better: bool,
}

const COLUMNS: &[Column] = &[
    Column {
        title: "best val IoU",
        split: "val",
        key: "iou",
        best: true,
        higher_is_better: true,
    },
    Column {
        title: "final val IoU",
        split: "val",
        key: "iou",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "best val AP50",
        split: "val",
        key: "ap50",
        best: true,
        higher_is_better: true,
    },
    Column {
        title: "final val AP50",
        split: "val",
        key: "ap50",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "best val SEG",
        split: "val",
        key: "seg",
        best: true,
        higher_is_better: true,
    },
    Column {
        title: "final val SEG",
        split: "val",
        key: "seg",
        best: false,
        higher_is_better: true,
    },
    Column {
        title: "final train loss",
        split: "train",
        key: "loss",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final val loss",
        split: "val",
        key: "loss",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final inst",
        split: "train",
        key: "inst",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final var",
        split: "train",
        key: "var",
        best: false,
        higher_is_better: false,
    },
    Column {
        title: "final seed",
        split: "train",
        key: "seed",
        best: false,
        higher_is_better: false,
    },
];

/// At most this many differing parameters get their own column.
const MAX_PARAM_COLUMNS: usize = 12;

fn runs_section(page: &mut String, report: &Report) {
    let runs = &report.runs;
    let params = differing_params(runs);
    let shown_params = &params[..params.len().min(MAX_PARAM_COLUMNS)];
    let columns: Vec<&Column> = COLUMNS
        .iter()
        .filter(|c| {
            runs.iter()
                .any(|r| r.info.summary(c.split, c.key).is_some())
        })
        .collect();
    let value = |r: &ReportRun, c: &Column| {
        let v = if c.best {
            if c.higher_is_better {
                r.max(c.split, c.key)
            } else {
                r.min(c.split, c.key)
            }
        } else {
            r.last(c.split, c.key)
        };
        v.filter(|v| v.is_finite())
    };
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
    page.push_str("<p class=\"note\">Best first. Click a column to sort; click a run's colour to hide it in every chart. Parameters shown are those that differ between the runs.</p>");
    page.push_str("<div class=\"scroll tall\"><table class=\"sortable\" id=\"runs-table\"><thead><tr><th></th><th>id</th><th>name</th><th>status</th><th data-asc>started</th><th>duration</th>");
    for p in shown_params {
        let _ = write!(page, "<th class=\"param\">{}</th>", esc(p));
    }
    for c in &columns {
        let _ = write!(
            page,
            "<th{}>{}</th>",
            if c.higher_is_better { "" } else { " data-asc" },
            c.title
        );
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
            "<tr class=\"run-{i}\"><td>{}</td><td class=\"mono\">{}</td><td class=\"name\">{}</td><td class=\"status {status}\"{title}>{status}</td><td class=\"when\" data-v=\"{}\">{}</td><td class=\"num\" data-v=\"{:.1}\">{}</td>",
            swatch(report, i, true),
            esc(&r.info.id),
            esc(&r.info.name),
            r.info.created,
            esc(&local_time(r.info.created)),
            r.info.duration(),
            duration(r.info.duration()),
        );
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

fn curves_section(page: &mut String, report: &Report) -> Result<(), ReportError> {
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
         Dashed: validation, every epoch. A y axis spanning decades is logarithmic.</p>"
    );
    legend(page, report);
    page.push_str("<div class=\"charts\">");
    // The page's legend replaces the charts' own.
    let look = Look {
        legend: None,
        ..report.look(CHART_SIZE)
    };
    for chart in &report.charts {
        let _ = write!(
            page,
            "<figure class=\"chart\" id=\"chart-{}\">{}{}</figure>\n",
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
        let _ = write!(
            page,
            "<span class=\"entry run-{i}\">{}{}</span>",
            swatch(report, i, true),
            esc(&report.labels[i])
        );
    }
    page.push_str("</div>");
}

/// Runs named in the legend above the charts, at most.
const MAX_PAGE_LEGEND: usize = 40;

fn sweep_section(page: &mut String, report: &Report) -> Result<(), ReportError> {
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
                "<figure class=\"chart sweep-scatter\">{}<figcaption>{} against <code>{}</code>; one dot per run, in its colour</figcaption></figure>",
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
            "<figure class=\"chart parallel\">{}<figcaption>parallel coordinates: each run is a line through its parameters to its {}; colour from the metric (yellow: best)</figcaption></figure>",
            s.parallel().svg(&wide)?,
            s.metric
        );
        page.push_str("</div>");
    }
    page.push_str("</section>\n");
    Ok(())
}

fn pictures_section(page: &mut String, report: &Report) {
    let pictures = &report.pictures;
    let heading = match pictures.epoch {
        Some(e) => format!("Pictures at epoch {e}"),
        None => "Pictures (each run's latest)".to_string(),
    };
    let _ = write!(
        page,
        "<section id=\"pictures\"><h2>{heading}</h2><p class=\"note\">One validation crop per run, fixed at the start of training. \
         Offsets: hue is the direction towards the cell centre; offset x and y on a blue–red scale. \
         Embedded pixels: each pixel drawn where its embedding lands, coloured by its cell; crosses mark the centres.</p>"
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
    for row in &pictures.rows {
        let r = &report.runs[row.run];
        let at = match row.epoch {
            Some(e) => format!("epoch {e}"),
            None => "no pictures".into(),
        };
        let _ = write!(
            page,
            "<tr class=\"run-{}\"><td>{}<b>{}</b><br><code>{}</code><br><span class=\"note\">{at}</span></td>",
            row.run,
            swatch(report, row.run, false),
            esc(&r.info.name),
            esc(&r.info.id)
        );
        for ((kind, _), cell) in KINDS.iter().zip(&row.cells) {
            match cell {
                Some(png) => {
                    let _ = write!(
                        page,
                        "<td><img class=\"picture\" alt=\"{kind} of {}\" src=\"data:image/png;base64,{}\"></td>",
                        esc(&r.info.id),
                        engine.encode(png)
                    );
                }
                None => page.push_str("<td class=\"missing\">—</td>"),
            }
        }
        page.push_str("</tr>\n");
    }
    page.push_str("</tbody></table></div></section>\n");
}

fn config_section(page: &mut String, report: &Report) {
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
