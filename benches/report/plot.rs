//! The report's plots, as SVG (plotters' SVG backend: no system libraries;
//! the text is SVG text, drawn by the viewer).
//!
//! - `uncontended.svg`: uncontended cost of each implementation, with the
//!   system-call floors as vertical lines;
//! - `handoff.svg`: one-way hand-off latency (log scale: the polling lock
//!   is three orders of magnitude slower);
//! - `contention.svg`: time per acquisition and fairness spread vs N.

use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::markdown::Report;
use crate::peers::Peer;
use crate::uncontended::{self as unc, Kind};

/// A plot written by [`draw_all`].
pub struct Plot {
    pub file: String,
    pub title: String,
}

const OURS: RGBColor = RGBColor(31, 119, 180);
const OURS_LIGHT: RGBColor = RGBColor(110, 170, 220);
const FLOOR: RGBColor = RGBColor(120, 120, 120);
const OTHER: RGBColor = RGBColor(230, 140, 40);
const GO: RGBColor = RGBColor(44, 160, 44);
const PYTHON: RGBColor = RGBColor(214, 39, 40);
const PURPLE: RGBColor = RGBColor(148, 103, 189);
const TEAL: RGBColor = RGBColor(23, 190, 207);
const TEAL_DARK: RGBColor = RGBColor(0, 128, 128);

fn peer_colour(peer: &Peer) -> RGBColor {
    match peer {
        Peer::Flock => FLOOR,
        Peer::FlockSocket => BLACK,
        Peer::Mm {
            legacy: true,
            timeout: false,
            fair: false,
        } => OURS,
        Peer::Mm {
            fair: true,
            legacy: true,
            ..
        } => TEAL_DARK,
        Peer::Mm { fair: true, .. } => TEAL,
        Peer::Mm { timeout: true, .. } => PURPLE,
        Peer::Mm { .. } => OURS_LIGHT,
        Peer::Go(_) => GO,
        Peer::Python(_) => PYTHON,
    }
}

struct Bar {
    label: String,
    value: f64,
    colour: RGBColor,
}

/// Horizontal bars, one per row, on the x axis `x`; `marks` are vertical
/// dashed lines with a label.
fn bar_chart<X>(
    path: &Path,
    title: &str,
    x_desc: &str,
    x: X,
    bars: &[Bar],
    marks: &[Bar],
) -> Result<(), String>
where
    X: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
{
    // The first bar at the top.
    let bars: Vec<&Bar> = bars.iter().rev().collect();
    let height = 90 + 28 * bars.len() as u32;
    // Room for the longest row label (12 px sans-serif: at most about
    // 5.5 px a character), the bars beside it.
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_area = 20 + (longest as u32 * 11) / 2;
    let root = SVGBackend::new(path, (label_area + 570, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = bars.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(label_area)
        .build_cartesian_2d(x, (0..n.saturating_sub(1)).into_segmented())
        .map_err(|e| e.to_string())?;
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(x_desc)
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .label_style(("sans-serif", 12))
        .draw()
        .map_err(|e| e.to_string())?;
    let x_range = chart.x_range();
    let x0 = x_range.start;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            let mut r = Rectangle::new(
                [
                    (x0, SegmentValue::Exact(i)),
                    (b.value.max(x0), SegmentValue::Exact(i + 1)),
                ],
                b.colour.filled(),
            );
            r.set_margin(4, 4, 0, 0);
            r
        }))
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, b)| {
            Text::new(
                format!(" {}", human_us(b.value)),
                (b.value.max(x0), SegmentValue::CenterOf(i)),
                ("sans-serif", 11).into_font(),
            )
        }))
        .map_err(|e| e.to_string())?;
    for mark in marks {
        if !mark.value.is_finite() {
            continue;
        }
        chart
            .draw_series(DashedLineSeries::new(
                [
                    (mark.value, SegmentValue::Exact(0)),
                    (mark.value, SegmentValue::Exact(n)),
                ],
                5,
                4,
                mark.colour.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?
            .label(mark.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], mark.colour));
    }
    if !marks.is_empty() {
        chart
            .configure_series_labels()
            // The first rows (the floors) are the shortest bars.
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Microseconds, for bar labels (the value is in microseconds).
fn human_us(us: f64) -> String {
    if us >= 1000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else if us >= 10.0 {
        format!("{us:.1} us")
    } else {
        format!("{us:.2} us")
    }
}

fn uncontended(report: &Report, dir: &Path) -> Option<Plot> {
    let rows = report.uncontended.as_ref()?;
    // Python's loop is two orders of magnitude slower: in the table only,
    // so that the others stay readable next to the floors.
    let bars: Vec<Bar> = rows
        .iter()
        .filter(|r| r.key != unc::PYTHON)
        .map(|r| Bar {
            label: r.label.clone(),
            value: r.ns / 1e3,
            colour: match r.kind {
                Kind::Floor => FLOOR,
                Kind::Ours => OURS,
                Kind::Peer if r.key == unc::GO => GO,
                Kind::Peer => OTHER,
            },
        })
        .collect();
    let find = |key: &str| {
        rows.iter()
            .find(|r| r.key == key)
            .map_or(f64::NAN, |r| r.ns / 1e3)
    };
    let floor = find(unc::FLOOR_OPEN);
    let socket = find(unc::FLOOR_SOCKET);
    let marks = [
        Bar {
            label: "floor: open + flock + close".into(),
            value: floor,
            colour: BLACK,
        },
        Bar {
            label: "floor + socket floor".into(),
            value: floor + socket,
            colour: RED,
        },
    ];
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max) * 1.15;
    let title = "Uncontended acquire + release, one process (us per pair, median of runs; Python: see the table)";
    let file = "uncontended.svg";
    let x: std::ops::Range<f64> = 0.0..max.max(1.0);
    check(
        file,
        bar_chart(
            &dir.join(file),
            title,
            "microseconds per acquire + release",
            x,
            &bars,
            &marks,
        ),
    );
    Some(Plot {
        file: file.into(),
        title: title.into(),
    })
}

fn handoff(report: &Report, dir: &Path) -> Option<Plot> {
    let rows = report.handoff.as_ref()?;
    let bars: Vec<Bar> = rows
        .iter()
        .map(|r| Bar {
            label: r.peer.label().to_owned(),
            value: r.median_ns / 1e3,
            colour: peer_colour(&r.peer),
        })
        .collect();
    let max = bars.iter().map(|b| b.value).fold(1.0, f64::max) * 4.0;
    let min = bars.iter().map(|b| b.value).fold(max, f64::min) / 4.0;
    let title = "Two-process hand-off, one-way latency (us, median; log scale)";
    let file = "handoff.svg";
    check(
        file,
        bar_chart(
            &dir.join(file),
            title,
            "microseconds from release to the waiter's acquire (log scale)",
            (min.max(0.1)..max).log_scale(),
            &bars,
            &[],
        ),
    );
    Some(Plot {
        file: file.into(),
        title: title.into(),
    })
}

fn contention(report: &Report, dir: &Path) -> Option<Plot> {
    let series = report.contention.as_ref()?;
    let file = "contention.svg";
    let title = "Contention: time per acquisition and spread vs N processes";
    check(file, draw_contention(&dir.join(file), series));
    Some(Plot {
        file: file.into(),
        title: title.into(),
    })
}

fn draw_contention(path: &Path, series: &[crate::contention::Series]) -> Result<(), String> {
    // One legend for both panels, in a strip below them (inside a panel it
    // hid some points).
    const COLUMNS: usize = 3;
    let entries = series.len() + 1;
    let legend_height = 20 + 20 * ((entries + COLUMNS - 1) / COLUMNS) as u32;
    let root = SVGBackend::new(path, (1100, 460 + legend_height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let (panels, legend) = root.split_vertically(460);
    let (left, right) = panels.split_horizontally(560);
    let ns: Vec<usize> = series
        .first()
        .map(|s| s.points.iter().map(|p| p.n).collect())
        .unwrap_or_default();
    // N at equal spacing (1, 2, 4, ... is a log scale): x is N's index.
    let index = |n: usize| ns.iter().position(|&m| m == n).unwrap_or(0) as f64;
    let x_max = ns.len().saturating_sub(1) as f64;
    let x_spec = || -0.3f64..x_max + 0.3;
    let n_label = |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 1e-6 && i >= 0.0 {
            ns.get(i as usize)
                .map(|n| n.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        }
    };

    let y_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.us_per_acquisition))
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&left)
        .caption("Time per acquisition (1 / throughput)", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_spec(), 0f64..y_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("processes contending (N)")
        .y_desc("microseconds per acquisition")
        .x_labels(ns.len())
        .x_label_formatter(&n_label)
        .draw()
        .map_err(|e| e.to_string())?;
    for s in series {
        let colour = peer_colour(&s.peer);
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (index(p.n), p.us_per_acquisition))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| e.to_string())?;
    }

    // Spread: infinite (a process never served) is drawn at the top.
    const CAP: f64 = 10.0;
    let spread_max = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.spread.min(CAP)))
        .fold(2.5, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&right)
        .caption("Spread: max / min per-process share", ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x_spec(), 0.9f64..spread_max)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("processes contending (N)")
        .y_desc("max / min (median of runs; >= 10 drawn at 10)")
        .x_labels(ns.len())
        .x_label_formatter(&n_label)
        .draw()
        .map_err(|e| e.to_string())?;
    chart
        .draw_series(DashedLineSeries::new(
            [(-0.3, 2.0), (x_max + 0.3, 2.0)],
            5,
            4,
            RED.stroke_width(1),
        ))
        .map_err(|e| e.to_string())?;
    for s in series {
        let colour = peer_colour(&s.peer);
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .map(|p| (index(p.n), p.spread.min(CAP)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))
            .map_err(|e| e.to_string())?;
    }

    // The shared legend: one entry per series, then the target line.
    let mut items: Vec<(String, RGBColor)> = series
        .iter()
        .map(|s| (s.peer.short().to_owned(), peer_colour(&s.peer)))
        .collect();
    items.push(("target: spread at most 2 (right panel)".to_owned(), RED));
    for (i, (label, colour)) in items.iter().enumerate() {
        let x = 70 + 340 * (i % COLUMNS) as i32;
        let y = 15 + 20 * (i / COLUMNS) as i32;
        legend
            .draw(&PathElement::new(
                vec![(x, y), (x + 24, y)],
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        legend
            .draw(&Text::new(
                label.clone(),
                (x + 32, y - 7),
                ("sans-serif", 12).into_font(),
            ))
            .map_err(|e| e.to_string())?;
    }
    root.present().map_err(|e| e.to_string())
}

/// A plot that cannot be drawn is a defect of the harness: it stops the run.
fn check(file: &str, result: Result<(), String>) {
    if let Err(e) = result {
        panic!("drawing {file}: {e}");
    }
}

/// Draws every plot whose family was measured, into `dir`.
pub fn draw_all(report: &Report, dir: &Path) -> Vec<Plot> {
    [
        uncontended(report, dir),
        handoff(report, dir),
        contention(report, dir),
    ]
    .into_iter()
    .flatten()
    .collect()
}
