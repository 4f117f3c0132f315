//! `esx report`: one self-contained HTML page comparing runs — a runs table,
//! metric curves, sweep plots, the training pictures and the config diff.
//! Charts are plotters SVG inline, pictures PNG data URIs, no network and no
//! framework; `--format png` also writes each chart as a PNG beside it.

pub mod chart;
pub mod collect;
pub mod curves;
pub mod groups;
pub mod html;
pub mod palette;
pub mod pictures;
pub mod png;
pub mod search_charts;
pub mod series;
pub mod sweep_charts;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::style::RGBColor;
use serde::Serialize;

pub use crate::store::select::Selection;
pub use collect::ReportRun;

use chart::{Figure, LineChart, Look};
use sweep_charts::SweepPlot;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("no runs to report under {0} (with the filters given)")]
    NoRuns(String),
    #[error("--group-by {text}: {why}")]
    BadGroupBy { text: String, why: String },
    #[error("--smooth {0}: the EMA weight must be at least 0 and below 1")]
    BadSmooth(f64),
    #[error("--epoch {epoch}: no run in the report has pictures of that epoch (epochs with pictures: {recorded})")]
    NoPictures { epoch: i64, recorded: String },
    #[error("drawing a chart: {0}")]
    Chart(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ReportError {
    fn io(path: &Path, source: std::io::Error) -> ReportError {
        ReportError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub struct ReportOptions {
    pub selection: Selection,
    pub out: PathBuf,
    /// EMA weight of the per-step curves (0: raw).
    pub smooth: f64,
    /// The epoch of the pictures (default: the latest all runs have).
    pub epoch: Option<i64>,
    /// Also write every chart as PNG beside the page.
    pub png: bool,
    /// Picture rows at most, best runs first (pictures weigh ~250 kB a run).
    pub picture_rows: usize,
    /// Which runs are one experiment repeated, and what their band spans.
    pub grouping: groups::Grouping,
    pub band: groups::Band,
}

/// What was written.
#[derive(Debug, Serialize)]
pub struct ReportOutcome {
    pub out: PathBuf,
    pub bytes: u64,
    pub runs: usize,
    pub charts: usize,
    pub picture_rows: usize,
    pub picture_epoch: Option<i64>,
    pub pngs: Vec<PathBuf>,
}

/// Everything the page shows, ready to render.
pub struct Report {
    pub runs: Vec<ReportRun>,
    /// Seed groups (two or more runs each); their runs share a colour.
    pub groups: Vec<groups::Group>,
    pub colours: Vec<RGBColor>,
    pub labels: Vec<String>,
    pub charts: Vec<LineChart>,
    pub sweeps: Vec<SweepPlot>,
    pub pictures: pictures::Pictures,
    pub smooth: f64,
    pub roots: Vec<PathBuf>,
}

pub const CHART_SIZE: (u32, u32) = (560, 330);
pub const SWEEP_SIZE: (u32, u32) = (420, 300);
/// Legends inside charts only while they stay readable.
const MAX_LEGEND: usize = 10;

/// plotters measures text with a font registered by family name; ours is
/// compiled in, so charts look the same on every machine.
pub fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [
            plotters::style::FontStyle::Normal,
            plotters::style::FontStyle::Bold,
        ] {
            plotters::style::register_font(chart::FONT, style, crate::viz::text::FONT_BYTES)
                .unwrap_or_else(|_| panic!("the embedded font parses"));
        }
    });
}

impl Report {
    /// Selects and reads the runs and lays out what the page will show.
    pub fn build(opts: &ReportOptions, warn: &dyn Fn(String)) -> Result<Report, ReportError> {
        if !(0.0..1.0).contains(&opts.smooth) {
            return Err(ReportError::BadSmooth(opts.smooth));
        }
        fonts();
        let infos = collect::select(&opts.selection, warn)?;
        let runs = collect::load(infos, warn)?;
        let groups = groups::find(&runs, &opts.grouping)?;
        let colours = group_colours(runs.len(), &groups);
        let labels = runs.iter().map(ReportRun::label).collect();
        let charts = curves::metric_charts(&runs, opts.smooth, &groups, opts.band);
        let sweeps = sweep_charts::sweep_plots(&runs, &groups);
        let mut shown: Vec<usize> = html::ranked(&runs);
        shown.truncate(opts.picture_rows);
        let pictures = pictures::load(&runs, &shown, opts.epoch)?;
        Ok(Report {
            runs,
            groups,
            colours,
            labels,
            charts,
            sweeps,
            pictures,
            smooth: opts.smooth,
            roots: opts.selection.roots.clone(),
        })
    }

    pub fn look(&self, size: (u32, u32)) -> Look<'_> {
        Look {
            colours: &self.colours,
            legend: (self.runs.len() <= MAX_LEGEND).then_some(self.labels.as_slice()),
            size,
            svg: false,
        }
    }

    /// Every figure with its file stem, in page order (for `--format png`).
    fn pngs(&self) -> Result<Vec<(String, Vec<u8>)>, ReportError> {
        let mut out = Vec::new();
        for c in &self.charts {
            out.push((c.slug.clone(), c.png(&self.look(CHART_SIZE))?));
        }
        for s in &self.sweeps {
            let look = Look {
                legend: None,
                ..self.look(SWEEP_SIZE)
            };
            for i in 0..s.axes.len() {
                let scatter = s.scatter(i);
                let stem = format!("sweep-{}-{}", s.id, file_safe(scatter.key()));
                out.push((stem, scatter.png(&look)?));
            }
            let wide = Look {
                size: parallel_size(s),
                ..look
            };
            out.push((format!("sweep-{}-parallel", s.id), s.parallel().png(&wide)?));
            if s.points.len() >= 2 {
                let history = search_charts::History { plot: s };
                out.push((format!("sweep-{}-history", s.id), history.png(&look)?));
            }
            if let Some(shares) = search_charts::importance(s) {
                let chart = search_charts::Importance {
                    plot: s,
                    shares: &shares,
                };
                out.push((format!("sweep-{}-importance", s.id), chart.png(&look)?));
            }
        }
        Ok(out)
    }
}

/// One colour per group and per run outside groups; a group's runs share
/// its colour, so its thin curves, table rows and pictures match its band.
fn group_colours(runs: usize, groups: &[groups::Group]) -> Vec<RGBColor> {
    let mut unit = vec![usize::MAX; runs];
    let mut units = 0;
    for i in 0..runs {
        if unit[i] != usize::MAX {
            continue;
        }
        let members = groups
            .iter()
            .find(|g| g.members.contains(&i))
            .map_or(vec![i], |g| g.members.clone());
        for m in members {
            unit[m] = units;
        }
        units += 1;
    }
    let colours = palette::run_colours(units);
    unit.into_iter().map(|u| colours[u]).collect()
}

/// The parallel-coordinates chart widens with its axes.
pub fn parallel_size(s: &SweepPlot) -> (u32, u32) {
    (
        (260 + 200 * (s.axes.len() as u32 + 1)).clamp(560, 1200),
        340,
    )
}

fn file_safe(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Builds the report and writes the page (and the PNGs), each file through
/// a temporary file and a rename so a reader never sees half of one.
pub fn write(opts: &ReportOptions, warn: &dyn Fn(String)) -> Result<ReportOutcome, ReportError> {
    let report = Report::build(opts, warn)?;
    let page = html::render(&report)?;
    let dir = match opts.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| ReportError::io(&dir, e))?;
    write_atomically(&opts.out, page.as_bytes())?;
    let mut pngs = Vec::new();
    if opts.png {
        let stem = opts
            .out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "report".into());
        for (name, bytes) in report.pngs()? {
            let path = dir.join(format!("{stem}-{name}.png"));
            write_atomically(&path, &bytes)?;
            pngs.push(path);
        }
    }
    Ok(ReportOutcome {
        out: opts.out.clone(),
        bytes: page.len() as u64,
        runs: report.runs.len(),
        charts: report.charts.len(),
        picture_rows: report
            .pictures
            .rows
            .iter()
            .filter(|r| r.epoch.is_some())
            .count(),
        picture_epoch: report.pictures.epoch,
        pngs,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::output::write(path, bytes).map_err(|e| ReportError::io(path, e))
}
