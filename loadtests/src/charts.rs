//! The report's charts, drawn as SVG: requests per second stacked by instance, instances
//! serving at once beside the platform's desired and in-service counts, and latency.

use std::collections::BTreeMap;

use plotters::prelude::*;

use crate::report::Report;
use crate::timeline::Window;

/// Instances drawn by name in the stacked chart; the rest are summed as "others".
const NAMED: usize = 8;

type Fail = Box<dyn std::error::Error>;

/// A line to draw: its label, points (seconds, value), colour and width.
struct Line<'a> {
    label: &'a str,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    width: u32,
}

fn err<E: std::fmt::Display>(e: E) -> Fail {
    e.to_string().into()
}

/// Steps: each window's value held from its start to its end.
fn steps(rows: &[Window], mut value: impl FnMut(&Window) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    for w in rows {
        if let Some(v) = value(w) {
            out.push((w.start_s, v));
            out.push((w.end_s, v));
        }
    }
    out
}

/// All three panels as one SVG document.
pub fn svg(report: &Report) -> Result<String, Fail> {
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1000, 900)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let panels = root.split_evenly((3, 1));
        stacked(report, &panels[0])?;
        serving(report, &panels[1])?;
        latency(report, &panels[2])?;
        root.present().map_err(err)?;
    }
    Ok(out)
}

fn end_s(report: &Report) -> f64 {
    report
        .windows
        .last()
        .map_or(report.duration_s, |w| w.end_s)
        .max(1.0)
}

fn stacked<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), Fail>
where
    DB::ErrorType: 'static,
{
    let rows = &report.windows;
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for w in rows {
        for (n, i) in &w.per_instance {
            *totals.entry(n.as_str()).or_default() += i.ok + i.errors;
        }
    }
    let mut names: Vec<&str> = totals.keys().copied().collect();
    names.sort_by(|a, b| totals[b].cmp(&totals[a]).then(a.cmp(b)));
    let named: Vec<&str> = names.iter().copied().take(NAMED).collect();
    // Series k is the sum of the first k+1 instances (then "others", then no instance).
    let mut layers: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let span = |w: &Window| (w.end_s - w.start_s).max(0.001);
    let rate = |w: &Window, pick: &dyn Fn(&str) -> bool| {
        w.per_instance
            .iter()
            .filter(|(n, _)| pick(n))
            .map(|(_, i)| (i.ok + i.errors) as f64)
            .sum::<f64>()
            / span(w)
    };
    let mut labels: Vec<String> = named.iter().map(|s| s.to_string()).collect();
    if names.len() > NAMED {
        labels.push(format!("{} others", names.len() - NAMED));
    }
    let missing = rows.iter().any(|w| {
        w.requests
            > w.per_instance
                .values()
                .map(|i| i.ok + i.errors)
                .sum::<u64>()
    });
    if missing {
        labels.push("no instance (failed requests)".into());
    }
    for k in 0..labels.len() {
        let pts = steps(rows, |w| {
            let mut v = 0.0;
            for n in named.iter().take((k + 1).min(named.len())) {
                v += rate(w, &|x| x == *n);
            }
            if k >= named.len() && names.len() > NAMED {
                v += rate(w, &|x| !named.contains(&x));
            }
            if missing && k == labels.len() - 1 {
                let with: u64 = w.per_instance.values().map(|i| i.ok + i.errors).sum();
                v += w.requests.saturating_sub(with) as f64 / span(w);
            }
            Some(v)
        });
        layers.push((labels[k].clone(), pts));
    }
    let top = layers
        .last()
        .map(|(_, p)| p.iter().map(|p| p.1).fold(0.0, f64::max))
        .unwrap_or(0.0)
        .max(1.0)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(
            "requests per second, stacked by the instance that answered",
            ("sans-serif", 15),
        )
        .x_label_area_size(30)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..end_s(report), 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .x_labels(12)
        .light_line_style(RGBColor(245, 245, 245))
        .y_labels(5)
        .draw()
        .map_err(err)?;
    for (k, (label, pts)) in layers.iter().enumerate().rev() {
        let color = if missing && k == layers.len() - 1 {
            RGBColor(200, 40, 40)
        } else {
            let c = Palette99::pick(k).to_rgba();
            RGBColor(c.0, c.1, c.2)
        };
        chart
            .draw_series(AreaSeries::new(pts.clone(), 0.0, color.mix(0.85)).border_style(color))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn serving<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), Fail>
where
    DB::ErrorType: 'static,
{
    let rows = &report.windows;
    let mut last = None;
    let serving = steps(rows, |w| {
        if w.judged {
            last = Some(w.serving.len() as f64);
        }
        last
    });
    let desired = steps(rows, |w| w.platform_desired.map(f64::from));
    let in_service = steps(rows, |w| w.platform_in_service.map(f64::from));
    let top = serving
        .iter()
        .chain(&desired)
        .chain(&in_service)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1.0)
        + 1.0;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(
            "instances serving at once (load test) and the platform's desired / in service",
            ("sans-serif", 15),
        )
        .x_label_area_size(30)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..end_s(report), 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .x_labels(12)
        .light_line_style(RGBColor(245, 245, 245))
        .y_labels(top as usize + 1)
        .draw()
        .map_err(err)?;
    let series = [
        Line {
            label: "desired (platform)",
            points: desired,
            color: RGBColor(120, 120, 120),
            width: 2,
        },
        Line {
            label: "in service (platform)",
            points: in_service,
            color: RGBColor(230, 140, 20),
            width: 2,
        },
        Line {
            label: "serving (load test)",
            points: serving,
            color: RGBColor(20, 110, 200),
            width: 3,
        },
    ];
    for Line {
        label,
        points: pts,
        color,
        width,
    } in series
    {
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(width)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(3))
            });
    }
    if let Some(p) = &report.platform {
        for d in &p.decisions {
            chart
                .draw_series(LineSeries::new(
                    vec![(d.t_s.max(0.0), 0.0), (d.t_s.max(0.0), top)],
                    BLACK.mix(0.35),
                ))
                .map_err(err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}

fn latency<DB: DrawingBackend>(
    report: &Report,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), Fail>
where
    DB::ErrorType: 'static,
{
    let rows: Vec<&Window> = report.windows.iter().filter(|w| w.requests > 0).collect();
    let mid = |w: &Window| (w.start_s + w.end_s) / 2.0;
    let p50: Vec<(f64, f64)> = rows.iter().map(|w| (mid(w), w.p50_ms)).collect();
    let p95: Vec<(f64, f64)> = rows.iter().map(|w| (mid(w), w.p95_ms)).collect();
    let corrected: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|w| w.p95_corrected_ms.map(|p| (mid(w), p)))
        .collect();
    let top = p95
        .iter()
        .chain(&corrected)
        .map(|p| p.1)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption("latency per window (ms)", ("sans-serif", 15))
        .x_label_area_size(30)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..end_s(report), 0f64..top)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .x_labels(12)
        .light_line_style(RGBColor(245, 245, 245))
        .y_labels(5)
        .draw()
        .map_err(err)?;
    let series = [
        Line {
            label: "p50",
            points: p50,
            color: RGBColor(40, 150, 60),
            width: 2,
        },
        Line {
            label: "p95",
            points: p95,
            color: RGBColor(200, 40, 40),
            width: 2,
        },
        Line {
            label: "p95 corrected for coordinated omission",
            points: corrected,
            color: RGBColor(140, 40, 160),
            width: 2,
        },
    ];
    for Line {
        label,
        points: pts,
        color,
        width,
    } in series
    {
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(width)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(3))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(err)?;
    Ok(())
}
