//! One frame of `esx watch`: a header, each sweep's progress, the runs
//! table, the chart of the chosen metric for the charted runs (in their
//! report colours) and a line of keys. Fits 80×24 and grows with the terminal.

use crate::text::printable;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Cell, Chart, Dataset, GraphType, LegendPosition, Paragraph, Row, Table,
    TableState,
};
use ratatui::Frame;

use super::board::{Board, SweepProgress};
use super::view::{View, SMOOTHING};
use crate::report::palette::run_colours;
use crate::report::series::ema;
use crate::store::RunStatus;
use crate::view::{duration, number};

/// Below this the frame says the terminal is too small instead.
pub const MIN_COLS: u16 = 50;
pub const MIN_ROWS: u16 = 12;
const MAX_SWEEP_LINES: usize = 3;

pub fn frame(f: &mut Frame, board: &Board, view: &View, curves: &[Vec<(f64, f64)>]) {
    let area = f.area();
    if area.width < MIN_COLS || area.height < MIN_ROWS {
        let text = format!(
            "terminal {}×{} is too small for esx watch: it needs {MIN_COLS}×{MIN_ROWS} (q quits)",
            area.width, area.height
        );
        f.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            area,
        );
        return;
    }
    let sweeps = board.sweeps.len().min(MAX_SWEEP_LINES) as u16;
    let footer = 1 + u16::from(!board.unreadable.is_empty() || view.message.is_some());
    let fixed = 1 + sweeps + footer;
    let room = area.height.saturating_sub(fixed);
    // The table takes what it needs up to half the room; the chart the rest.
    let table = (board.rows.len().max(1) as u16 + 1).min(room / 2).max(3);
    let [head, sweep_area, table_area, chart_area, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(sweeps),
        Constraint::Length(table),
        Constraint::Min(5),
        Constraint::Length(footer),
    ])
    .areas(area);
    let colours = colours(board.rows.len());
    f.render_widget(header(board, view), head);
    for (i, s) in board.sweeps.iter().take(MAX_SWEEP_LINES).enumerate() {
        let line = Rect {
            y: sweep_area.y + i as u16,
            height: 1,
            ..sweep_area
        };
        f.render_widget(sweep_line(s), line);
    }
    runs_table(f, table_area, board, view, &colours);
    chart(f, chart_area, board, view, curves, &colours);
    f.render_widget(footer_text(board, view), foot);
}

fn colours(n: usize) -> Vec<Color> {
    run_colours(n)
        .into_iter()
        .map(|c| Color::Rgb(c.0, c.1, c.2))
        .collect()
}

fn status_colour(status: RunStatus) -> Color {
    match status {
        RunStatus::Running => Color::Cyan,
        RunStatus::Completed => Color::Green,
        RunStatus::Imported => Color::Blue,
        RunStatus::Failed | RunStatus::Crashed => Color::Red,
        RunStatus::Interrupted | RunStatus::Pruned => Color::Yellow,
    }
}

fn header<'a>(board: &Board, view: &View) -> Line<'a> {
    let mut counts: Vec<(RunStatus, usize)> = Vec::new();
    for r in &board.rows {
        match counts.iter_mut().find(|(s, _)| *s == r.info.status) {
            Some(c) => c.1 += 1,
            None => counts.push((r.info.status, 1)),
        }
    }
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let mut spans = vec![
        Span::styled("esx watch", bold),
        Span::raw(format!(" · {} · ", view.roots)),
    ];
    if board.rows.is_empty() {
        spans.push(Span::raw("no runs yet, waiting"));
    } else {
        let n = board.rows.len();
        spans.push(Span::raw(format!(
            "{n} run{}: ",
            if n == 1 { "" } else { "s" }
        )));
        for (i, (status, count)) in counts.iter().enumerate() {
            if i > 0 {
                spans.push(Span::raw(", "));
            }
            spans.push(Span::styled(
                format!("{count} {}", status.as_str()),
                Style::default().fg(status_colour(*status)),
            ));
        }
    }
    spans.push(Span::raw(format!(
        " · {}",
        chrono::Local::now().format("%H:%M:%S")
    )));
    Line::from(spans)
}

fn sweep_line<'a>(s: &SweepProgress) -> Line<'a> {
    let total = s
        .planned
        .unwrap_or(s.done + s.running + s.failed + s.pruned);
    const WIDTH: usize = 16;
    let cells = |k: usize| (k * WIDTH).checked_div(total.max(1)).unwrap_or(0);
    let (done, pruned, failed, running) = (
        cells(s.done),
        cells(s.pruned),
        cells(s.failed),
        cells(s.running),
    );
    let used = (done + pruned + failed + running).min(WIDTH);
    let bar = |n: usize, c: Color| Span::styled("█".repeat(n), Style::default().fg(c));
    let short: String = s.id.chars().take(8).collect();
    Line::from(vec![
        Span::raw(format!("sweep {short} ")),
        bar(done, Color::Green),
        bar(pruned, Color::Yellow),
        bar(failed, Color::Red),
        bar(running, Color::Cyan),
        Span::styled(
            "░".repeat(WIDTH - used),
            Style::default().fg(Color::DarkGray),
        ),
        Span::raw(format!(
            " {} of {total} done · {} running · {} failed · {} pruned",
            s.done, s.running, s.failed, s.pruned
        )),
    ])
}

fn runs_table(f: &mut Frame, area: Rect, board: &Board, view: &View, colours: &[Color]) {
    let charted = view.charted_rows(board);
    let any_swept = board.rows.iter().any(|r| !r.swept.is_empty());
    let any_tags = board.rows.iter().any(|r| !r.info.tags.is_empty());
    let best = format!("BEST {}", board.objective.metric);
    let mut titles = vec!["", "ID", "NAME", "STATUS", "EPOCH", "IMG/S", "ETA", &best];
    let mut widths = vec![
        Constraint::Length(1),
        Constraint::Length(8),
        Constraint::Fill(1),
        Constraint::Length(11),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(best.len() as u16),
    ];
    if any_swept {
        titles.push("SWEPT");
        widths.push(Constraint::Fill(2));
    }
    if any_tags {
        titles.push("TAGS");
        widths.push(Constraint::Fill(1));
    }
    let rows = board.rows.iter().enumerate().map(|(i, r)| {
        let mark = if charted.contains(&i) { "●" } else { "○" };
        let epoch = match r.epochs {
            Some(n) => format!("{}/{n}", r.epoch),
            None => r.epoch.to_string(),
        };
        let mut cells = vec![
            Cell::from(mark).style(Style::default().fg(colours[i])),
            Cell::from(r.info.id.chars().take(8).collect::<String>()),
            Cell::from(printable(&r.info.name).into_owned()),
            Cell::from(r.info.status.as_str())
                .style(Style::default().fg(status_colour(r.info.status))),
            Cell::from(epoch),
            Cell::from(r.images_per_s.map_or("-".into(), |v| format!("{v:.1}"))),
            Cell::from(r.eta.map_or("-".into(), duration)),
            Cell::from(number(r.best)),
        ];
        if any_swept {
            cells.push(Cell::from(printable(&r.swept).into_owned()));
        }
        if any_tags {
            cells.push(Cell::from(printable(&r.info.tags.join(",")).into_owned()));
        }
        Row::new(cells)
    });
    let table = Table::new(rows, widths)
        .header(
            Row::new(titles.into_iter().map(String::from))
                .style(Style::default().add_modifier(Modifier::BOLD)),
        )
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = TableState::default().with_selected(view.cursor_row(board));
    f.render_stateful_widget(table, area, &mut state);
}

fn chart(
    f: &mut Frame,
    area: Rect,
    board: &Board,
    view: &View,
    curves: &[Vec<(f64, f64)>],
    colours: &[Color],
) {
    let metric = view.metric(board);
    let alpha = SMOOTHING[view.smoothing];
    let positive = curves.iter().flatten().all(|p| p.1 > 0.0);
    let log = view.log_y && positive;
    let scale = match (view.log_y, log) {
        (true, true) => "log",
        (true, false) => "linear (log needs positive values)",
        _ => "linear",
    };
    let mut title = format!(" {metric} · {scale}");
    if alpha > 0.0 {
        title += &format!(" · smoothing {alpha}");
    }
    title += " ";
    let block = Block::default().borders(Borders::ALL).title(title);
    let series: Vec<Vec<(f64, f64)>> = curves
        .iter()
        .map(|c| {
            let smooth = ema(c, alpha);
            if log {
                smooth.into_iter().map(|(x, y)| (x, y.log10())).collect()
            } else {
                smooth
            }
        })
        .collect();
    let points = || series.iter().flatten();
    if points().next().is_none() {
        let text = if board.rows.is_empty() {
            "waiting for runs".to_string()
        } else {
            format!("no {metric} recorded yet (m: another metric)")
        };
        f.render_widget(Paragraph::new(text).block(block), area);
        return;
    }
    let (x0, x1) = range(points().map(|p| p.0));
    let (x0, x1) = if x1 - x0 < 2.0 {
        let mid = ((x0 + x1) / 2.0).round();
        (mid - 1.0, mid + 1.0)
    } else {
        (x0, x1)
    };
    let (y0, y1) = range(points().map(|p| p.1));
    let pad = (y1 - y0) * 0.05;
    let (y0, y1) = (y0 - pad, y1 + pad);
    let rows = view.charted_rows(board);
    let datasets: Vec<Dataset> = series
        .iter()
        .zip(&rows)
        .map(|(s, &i)| {
            Dataset::default()
                .name(board.rows[i].info.id.chars().take(8).collect::<String>())
                .marker(Marker::Braille)
                .graph_type(if s.len() == 1 {
                    GraphType::Scatter
                } else {
                    GraphType::Line
                })
                .style(Style::default().fg(colours[i]))
                .data(s)
        })
        .collect();
    let y_label = |v: f64| number(Some(if log { 10f64.powf(v) } else { v }));
    let x_title = if metric.split == "step" {
        "step"
    } else {
        "epoch"
    };
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(if rows.len() <= 8 {
            Some(LegendPosition::TopRight)
        } else {
            None
        })
        .hidden_legend_constraints((Constraint::Ratio(1, 3), Constraint::Ratio(1, 2)))
        .x_axis(Axis::default().title(x_title).bounds([x0, x1]).labels([
            x_label(x0),
            x_label((x0 + x1) / 2.0),
            x_label(x1),
        ]))
        .y_axis(Axis::default().bounds([y0, y1]).labels([
            y_label(y0),
            y_label((y0 + y1) / 2.0),
            y_label(y1),
        ]));
    f.render_widget(chart, area);
}

/// Epochs and steps are whole numbers; a label between two is rounded.
fn x_label(x: f64) -> String {
    format!("{}", x.round() as i64)
}

/// The smallest and largest value, widened when they are equal.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        let w = lo.abs().max(1.0) * 0.5;
        return (lo - w, hi + w);
    }
    (lo, hi)
}

fn footer_text<'a>(board: &Board, view: &View) -> Paragraph<'a> {
    let keys = Line::styled(
        "↑↓ move · space chart run · a all · m/M metric · l log · s smooth · q quit",
        Style::default().fg(Color::DarkGray),
    );
    let mut lines = Vec::new();
    if let Some(m) = &view.message {
        lines.push(Line::styled(m.clone(), Style::default().fg(Color::Red)));
    } else if let Some(first) = board.unreadable.first() {
        let more = board.unreadable.len() - 1;
        let text = if more > 0 {
            format!("skipped {first} (and {more} more)")
        } else {
            format!("skipped {first}")
        };
        lines.push(Line::styled(text, Style::default().fg(Color::Yellow)));
    }
    lines.push(keys);
    Paragraph::new(lines)
}
