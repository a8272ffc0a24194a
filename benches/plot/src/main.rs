//! The charts of `benches/compare.sh`.
//!
//! Usage: `compare_plot DIR`. Reads `DIR/summary.tsv` (one line per case and server: the
//! medians compare.sh printed) and writes, one panel per case, a bar per server:
//!
//! - `DIR/throughput.svg`: req/s;
//! - `DIR/cpu_per_request.svg`: server CPU µs per request (from /proc/PID/stat);
//! - `DIR/latency.svg`: p50 as the bar, p99 as the whisker above it.
//!
//! Corral's bar is drawn in its own colour. A server whose run was client-bound (the load
//! generator, not the server, was the limit) has a `*` after its name: its throughput then
//! says more about the client than about it, and its CPU per request is the figure to read.

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::RangedCoordi32;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One server's medians in one case.
struct Row {
    server: String,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_us: f64,
    client_bound: bool,
}

/// One case: its title and the servers measured, in the order compare.sh wrote them.
struct Case {
    title: String,
    rows: Vec<Row>,
}

const CORRAL: RGBColor = RGBColor(214, 96, 30);
const PEERS: [RGBColor; 5] = [
    RGBColor(70, 110, 160),
    RGBColor(95, 150, 95),
    RGBColor(150, 110, 170),
    RGBColor(120, 120, 120),
    RGBColor(175, 140, 60),
];
const PANEL_W: u32 = 440;
const PANEL_H: u32 = 300;
const TITLE_H: u32 = 40;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir] = args.as_slice() else {
        eprintln!("usage: compare_plot DIR   (DIR holds compare.sh's summary.tsv)");
        return ExitCode::from(2);
    };
    match run(Path::new(dir)) {
        Ok(written) => {
            for path in written {
                eprintln!("compare_plot: wrote {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("compare_plot: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &Path) -> Result<Vec<PathBuf>, Box<dyn Error>> {
    let cases = read_summary(&dir.join("summary.tsv"))?;
    if cases.is_empty() {
        return Err("summary.tsv has no results".into());
    }
    let servers = server_colours(&cases);
    let mut written = Vec::new();
    let throughput = dir.join("throughput.svg");
    draw_bars(
        &throughput,
        "Throughput, req/s (medians)",
        &cases,
        &servers,
        |r| r.rps,
    )?;
    written.push(throughput);
    let cpu = dir.join("cpu_per_request.svg");
    draw_bars(
        &cpu,
        "Server CPU per request, µs (/proc/PID/stat)",
        &cases,
        &servers,
        |r| r.cpu_us,
    )?;
    written.push(cpu);
    let latency = dir.join("latency.svg");
    draw_latency(&latency, &cases, &servers)?;
    written.push(latency);
    Ok(written)
}

/// Parses summary.tsv: a header naming the columns, then one line per case and server.
fn read_summary(path: &Path) -> Result<Vec<Case>, Box<dyn Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("summary.tsv is empty")?
        .split('\t')
        .collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("summary.tsv has no column '{name}'"))
    };
    let (case, title, server) = (column("case")?, column("title")?, column("server")?);
    let (rps, p50, p99, cpu) = (
        column("rps")?,
        column("p50_us")?,
        column("p99_us")?,
        column("cpu_us_per_req")?,
    );
    let limit = column("limit")?;
    let number = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    let mut order: Vec<String> = Vec::new();
    let mut cases: BTreeMap<String, Case> = BTreeMap::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < header.len() {
            return Err(format!("short line in summary.tsv: {line}").into());
        }
        let entry = cases.entry(f[case].to_string()).or_insert_with(|| {
            order.push(f[case].to_string());
            Case {
                title: f[title].to_string(),
                rows: Vec::new(),
            }
        });
        entry.rows.push(Row {
            server: f[server].to_string(),
            rps: number(f[rps]),
            p50_us: number(f[p50]),
            p99_us: number(f[p99]),
            cpu_us: number(f[cpu]),
            client_bound: f[limit] == "client",
        });
    }
    Ok(order.iter().filter_map(|name| cases.remove(name)).collect())
}

/// Corral in its colour; each peer keeps one colour across every panel and chart.
fn server_colours(cases: &[Case]) -> BTreeMap<String, RGBColor> {
    let mut colours = BTreeMap::new();
    let mut next = 0;
    for row in cases.iter().flat_map(|c| &c.rows) {
        if !colours.contains_key(&row.server) {
            let colour = if row.server == "corral" {
                CORRAL
            } else {
                next += 1;
                PEERS[(next - 1) % PEERS.len()]
            };
            colours.insert(row.server.clone(), colour);
        }
    }
    colours
}

/// The drawing area of a figure with one panel per case, and the panels.
fn panels<'a>(
    root: &DrawingArea<SVGBackend<'a>, Shift>,
    title: &str,
    cases: usize,
) -> Result<Vec<DrawingArea<SVGBackend<'a>, Shift>>, Box<dyn Error>> {
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 20))?;
    let cols = cases.clamp(1, 3);
    let rows = cases.div_ceil(cols);
    Ok(root
        .split_evenly((rows, cols))
        .into_iter()
        .take(cases)
        .collect())
}

/// `n` segments on the x axis, one per server (plotters' segmented `0..n` has one more).
fn segments(n: i32) -> SegmentedCoord<RangedCoordi32> {
    (0..(n - 1).max(0)).into_segmented()
}

fn figure_size(cases: usize) -> (u32, u32) {
    let cols = cases.clamp(1, 3) as u32;
    let rows = cases.div_ceil(3).max(1) as u32;
    (PANEL_W * cols, PANEL_H * rows + TITLE_H)
}

/// A short figure: 1234567 -> "1.23M", 61234 -> "61.2k", 4.95 -> "4.95".
fn short(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v == 0.0 {
        "0".into()
    } else if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn label(row: &Row) -> String {
    if row.client_bound {
        format!("{}*", row.server)
    } else {
        row.server.clone()
    }
}

fn draw_bars(
    path: &Path,
    title: &str,
    cases: &[Case],
    colours: &BTreeMap<String, RGBColor>,
    value: impl Fn(&Row) -> f64,
) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, figure_size(cases.len())).into_drawing_area();
    let title = format!("{title}   (name* = client-bound)");
    for (area, case) in panels(&root, &title, cases.len())?.iter().zip(cases) {
        let values: Vec<f64> = case.rows.iter().map(&value).collect();
        let top = values
            .iter()
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let top = if top > 0.0 { top * 1.18 } else { 1.0 };
        let n = case.rows.len() as i32;
        let mut chart = ChartBuilder::on(area)
            .caption(&case.title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(segments(n), 0f64..top)?;
        let names: Vec<String> = case.rows.iter().map(label).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(case.rows.len())
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|y| short(*y))
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, (row, v)) in case.rows.iter().zip(&values).enumerate() {
            let i = i as i32;
            if !v.is_finite() {
                continue;
            }
            let colour = colours.get(&row.server).copied().unwrap_or(BLACK);
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                colour.filled(),
            );
            bar.set_margin(0, 0, 8, 8);
            chart.draw_series(std::iter::once(bar))?;
            let text = ("sans-serif", 12)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(std::iter::once(Text::new(
                short(*v),
                (SegmentValue::CenterOf(i), *v),
                text,
            )))?;
        }
    }
    root.present()?;
    Ok(())
}

fn draw_latency(
    path: &Path,
    cases: &[Case],
    colours: &BTreeMap<String, RGBColor>,
) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, figure_size(cases.len())).into_drawing_area();
    let title = "Latency, ms, log scale: p50 bar, p99 whisker (medians)";
    for (area, case) in panels(&root, title, cases.len())?.iter().zip(cases) {
        let finite: Vec<f64> = case
            .rows
            .iter()
            .flat_map(|r| [r.p50_us, r.p99_us])
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(|us| us / 1e3)
            .collect();
        // A log scale: p99 is often 10-100 times p50, and both must stay readable.
        let low = finite.iter().copied().fold(f64::INFINITY, f64::min);
        let high = finite.iter().copied().fold(0.0, f64::max);
        let (low, top) = if finite.is_empty() {
            (0.01, 1.0)
        } else {
            (low / 2.0, high * 2.5)
        };
        let n = case.rows.len() as i32;
        let mut chart = ChartBuilder::on(area)
            .caption(&case.title, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(52)
            .build_cartesian_2d(segments(n), (low..top).log_scale())?;
        let names: Vec<String> = case.rows.iter().map(label).collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(case.rows.len())
            .x_label_formatter(&|x| match x {
                SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .y_label_formatter(&|y| format!("{y}"))
            .label_style(("sans-serif", 12))
            .draw()?;
        for (i, row) in case.rows.iter().enumerate() {
            let i = i as i32;
            let colour = colours.get(&row.server).copied().unwrap_or(BLACK);
            let (p50, p99) = (row.p50_us / 1e3, row.p99_us / 1e3);
            if p50.is_finite() {
                let mut bar = Rectangle::new(
                    [
                        (SegmentValue::Exact(i), 0.0),
                        (SegmentValue::Exact(i + 1), p50),
                    ],
                    colour.filled(),
                );
                bar.set_margin(0, 0, 14, 14);
                chart.draw_series(std::iter::once(bar))?;
            }
            if p50.is_finite() && p99.is_finite() {
                let centre = || SegmentValue::CenterOf(i);
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(centre(), p50), (centre(), p99)],
                    BLACK.stroke_width(2),
                )))?;
                chart.draw_series(std::iter::once(Circle::new(
                    (centre(), p99),
                    3,
                    BLACK.filled(),
                )))?;
                let text = ("sans-serif", 11)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom));
                chart.draw_series(std::iter::once(Text::new(
                    format!("{p50:.2} / {p99:.2}"),
                    (centre(), p99 * 1.15),
                    text,
                )))?;
            }
        }
    }
    root.present()?;
    Ok(())
}
