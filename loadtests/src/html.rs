//! report.html: one self-contained page (no scripts, no fetched assets) with the verdict, the
//! gates, the charts, the per-window table, the instances and the platform's decisions.

use std::fmt::Write as _;

use crate::report::{EndedBy, Report};
use crate::timeline::{clock, Phase};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
.verdict{font-size:1.1em;padding:.8em 1em;border-left:6px solid #1a6ec8;background:#f2f7fd}
.platform{padding:.6em 1em;border-left:6px solid #e68c14;background:#fdf6ec}
.warn{padding:.6em 1em;border-left:6px solid #c82828;background:#fdf0f0}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .5em;text-align:right}
th{background:#f4f4f4}td.l,th.l{text-align:left}.ok{color:#1a7a2a;font-weight:bold}.bad{color:#c82828;font-weight:bold}
tr.ramp td{color:#777}tr.drain td{color:#999;font-style:italic}.muted{color:#777}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}";

/// The whole page. `goose_html` is the file name of goose's own report, when written.
pub fn page(r: &Report, goose_html: Option<&str>) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>bookstore loadtest: {}</title><style>{STYLE}</style></head><body>\n",
        esc(&r.url)
    );
    let _ = writeln!(h, "<h1>bookstore loadtest: {}</h1>", esc(&r.url));
    let _ = writeln!(
        h,
        "<p class=\"muted\">scenario {} · stages {}{}{} · started {} UTC · {:.0} s · windows of {} s</p>",
        r.scenario.name(),
        esc(&r.model.stages.to_string()),
        r.model.think.map(|t| format!(" · think {t}")).unwrap_or_default(),
        r.model.throttle.map(|t| format!(" · throttle {t} req/s")).unwrap_or_default(),
        r.started_at.format("%Y-%m-%d %H:%M:%S"),
        r.duration_s,
        r.window_s
    );
    if let Some(sh) = &r.shards {
        let class = if sh.missing.is_empty() {
            "muted"
        } else {
            "warn"
        };
        let _ = writeln!(
            h,
            "<p class=\"{class}\">{}</p>",
            esc(&crate::merge::shards_line(sh))
        );
    }
    match r.ended_by {
        EndedBy::Plan => {}
        EndedBy::Interrupted => h.push_str("<p class=\"warn\">Stopped early by Ctrl-C: what follows is everything gathered until then.</p>\n"),
        EndedBy::SafetyTimeout => h.push_str("<p class=\"warn\">Stopped by the safety timeout (users had not finished after the planned end): what follows is everything gathered until then.</p>\n"),
    }
    let _ = writeln!(
        h,
        "<p class=\"verdict\"><b>Verdict:</b> {}</p>",
        esc(&r.verdict.text)
    );
    if let Some(p) = &r.platform_verdict {
        let _ = writeln!(h, "<p class=\"platform\"><b>Platform:</b> {}</p>", esc(p));
    }

    h.push_str("<h2>Gates</h2>\n");
    if r.gates.is_empty() {
        h.push_str("<p class=\"muted\">No gate was given (--max-p95, --max-error-rate, --expect-instances, --expect-scale-out, --expect-scale-in).</p>\n");
    } else {
        h.push_str("<table><tr><th class=\"l\">gate</th><th>result</th><th class=\"l\">measured</th></tr>\n");
        for g in &r.gates {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td class=\"{}\">{}</td><td class=\"l\">{}</td></tr>",
                esc(&g.flag),
                if g.passed { "ok" } else { "bad" },
                if g.passed { "ok" } else { "FAILED" },
                esc(&g.message)
            );
        }
        h.push_str("</table>\n");
    }
    if !r.steady_stages.is_empty() {
        h.push_str("<table><tr><th class=\"l\">steady stage</th><th>windows</th><th>requests</th><th>errors %</th><th>p95 ms</th></tr>\n");
        for p in &r.steady_stages {
            let _ = writeln!(
                h,
                "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                p.windows,
                p.requests,
                p.error_rate_pct,
                p.p95_ms
            );
        }
        h.push_str("</table>\n");
    }

    h.push_str("<h2>Charts</h2>\n");
    match crate::charts::svg(r) {
        Ok(svg) => {
            let svg = svg.trim_start_matches(|c| c != '<');
            let svg = svg.strip_prefix("<?xml").map_or(svg, |rest| {
                rest.split_once("?>").map_or(rest, |(_, s)| s.trim_start())
            });
            let _ = writeln!(h, "<figure>{svg}</figure>");
        }
        Err(e) => {
            let _ = writeln!(
                h,
                "<p class=\"warn\">The charts could not be drawn: {}</p>",
                esc(&e.to_string())
            );
        }
    }

    let t = &r.totals;
    h.push_str("<h2>Totals</h2>\n");
    let _ = writeln!(
        h,
        "<p>{} requests, {} errors ({}%), {} req/s, p50 {} ms, p95 {} ms{}, {} connections opened, {} requests without an instance header.</p><p class=\"muted\">{}</p>",
        t.requests,
        t.errors,
        t.error_rate_pct,
        t.rps,
        t.p50_ms,
        t.p95_ms,
        t.p95_corrected_ms.map(|p| format!(" (corrected for coordinated omission: {p} ms)")).unwrap_or_default(),
        t.connections,
        t.without_instance,
        esc(&r.model.latency_note)
    );

    h.push_str("<h2>Windows</h2>\n<table><tr><th>window</th><th>UTC</th><th class=\"l\">phase</th><th>users</th><th>requests</th><th>req/s</th><th>errors</th><th>p50 ms</th><th>p95 ms</th><th>serving</th><th>desired</th><th>in service</th><th class=\"l\">instances (share; struck: answered but not serving)</th></tr>\n");
    for w in &r.windows {
        let (class, phase) = match w.phase {
            Phase::Steady => ("", "hold"),
            Phase::Ramp => ("ramp", "ramp"),
            Phase::Drain => ("drain", "drain"),
        };
        let shares: Vec<String> = w
            .per_instance
            .iter()
            .map(|(n, i)| {
                let cell = format!(
                    "{} {:.0}%{}",
                    esc(n),
                    i.share,
                    if i.errors > 0 {
                        format!(" ({} err)", i.errors)
                    } else {
                        String::new()
                    }
                );
                if w.serving.contains(n) {
                    cell
                } else {
                    format!("<s>{cell}</s>")
                }
            })
            .collect();
        let opt = |v: Option<u32>| v.map_or("".into(), |v| v.to_string());
        let _ = writeln!(
            h,
            "<tr class=\"{class}\"><td>{}</td><td>{}</td><td class=\"l\">{phase}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            clock(w.start_s),
            w.start.format("%H:%M:%S"),
            w.active_users,
            w.requests,
            w.rps,
            w.errors,
            w.p50_ms,
            w.p95_ms,
            if w.judged { w.serving.len().to_string() } else { "-".into() },
            opt(w.platform_desired),
            opt(w.platform_in_service),
            shares.join(", ")
        );
    }
    h.push_str("</table>\n");

    h.push_str("<h2>Instances</h2>\n<table><tr><th class=\"l\">instance</th><th>first seen</th><th>first ok</th><th>last ok</th><th>requests</th><th>errors</th><th>share %</th><th>p95 ms</th><th>serving windows</th></tr>\n");
    for i in &r.instances {
        let o = |v: Option<f64>| v.map_or("-".into(), clock);
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{} ({} UTC)</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&i.name),
            i.first_seen,
            i.first_seen_at.format("%H:%M:%S"),
            o(i.first_ok_s),
            o(i.last_ok_s),
            i.requests,
            i.errors,
            i.share,
            i.p95_ms,
            i.serving_windows
        );
    }
    h.push_str("</table>\n");

    if let Some(p) = &r.platform {
        let _ = writeln!(h, "<h2>Platform: {}</h2>", esc(&p.source));
        let _ = writeln!(
            h,
            "<p class=\"muted\">{} polls, {} failed{}.</p>",
            p.polls,
            p.poll_errors,
            p.last_error
                .as_ref()
                .map(|e| format!(" (last: {})", esc(e)))
                .unwrap_or_default()
        );
        h.push_str("<table><tr><th>when</th><th class=\"l\">decision</th><th class=\"l\">cause</th><th class=\"l\">added</th><th class=\"l\">removed</th></tr>\n");
        for d in &p.decisions {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">desired {} → {}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                clock(d.t_s),
                d.from.map_or("?".into(), |f| f.to_string()),
                d.to,
                esc(&d.cause),
                esc(&d.added.join(", ")),
                esc(&d.removed.join(", "))
            );
        }
        h.push_str("</table>\n<table><tr><th>when</th><th class=\"l\">instance</th><th class=\"l\">event</th></tr>\n");
        for e in &p.instance_events {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                clock(e.t_s.max(0.0)),
                esc(&e.id),
                esc(&e.event)
            );
        }
        h.push_str("</table>\n");
    }

    if !r.errors_by_reason.is_empty() {
        h.push_str("<h2>Errors by reason</h2>\n<table><tr><th>count</th><th class=\"l\">reason</th></tr>\n");
        for (reason, n) in r.errors_by_reason.iter().take(50) {
            let _ = writeln!(
                h,
                "<tr><td>{n}</td><td class=\"l\">{}</td></tr>",
                esc(reason)
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Files</h2>\n<ul><li><a href=\"timeline.json\">timeline.json</a>: all of the above for machines, with the mergeable aggregate (HDR histograms per window and instance)</li><li><a href=\"chart.svg\">chart.svg</a>: the charts alone</li>");
    if let Some(g) = goose_html {
        let _ = write!(h, "<li><a href=\"{0}\">{0}</a>: goose's own report (requests by name, status codes, its graphs)</li>", esc(g));
    }
    h.push_str("</ul>\n</body></html>\n");
    h
}
