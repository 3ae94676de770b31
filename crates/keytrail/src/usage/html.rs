//! The usage report as one self-contained HTML page: totals, cost per account, and two inline
//! SVG charts (requests per hour stacked by source; requests per key).

use time::OffsetDateTime;

use super::Report;
use super::cost::ACCOUNT_COLUMNS;

const SOURCE_COLOURS: &[(&str, &str)] = &[
    ("user", "#2b6cb0"),
    ("s3", "#38a169"),
    ("cloudtrail", "#dd6b20"),
    ("service", "#805ad5"),
];

fn colour(source: &str) -> &'static str {
    SOURCE_COLOURS
        .iter()
        .find(|(s, _)| *s == source)
        .map_or("#718096", |(_, c)| c)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Requests per hour, stacked by source, as inline SVG.
fn hourly_chart(report: &Report) -> String {
    let (width, height, left, bottom) = (880.0, 260.0, 50.0, 30.0);
    let hours = report.hourly.len().max(1) as f64;
    let peak = report
        .hourly
        .values()
        .map(|s| s.values().sum::<i64>())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let bar = (width - left) / hours;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"KMS requests per hour by source\">\
         <line x1=\"{left}\" y1=\"{y}\" x2=\"{width}\" y2=\"{y}\" stroke=\"#444\"/>\
         <text x=\"4\" y=\"14\" font-size=\"11\">{peak}</text><text x=\"4\" y=\"{y}\" font-size=\"11\">0</text>",
        y = height - bottom
    );
    for (i, (hour, sources)) in report.hourly.iter().enumerate() {
        let x = left + i as f64 * bar;
        let mut top = height - bottom;
        for (source, n) in sources {
            let h = *n as f64 / peak * (height - bottom - 10.0);
            top -= h;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{c}\"><title>{source}: {n}</title></rect>",
                w = (bar - 1.0).max(1.0),
                c = colour(source)
            ));
        }
        if i == 0 || i + 1 == report.hourly.len() {
            let label = OffsetDateTime::from_unix_timestamp(hour / 1000)
                .map(|t| format!("{:02}-{:02} {:02}h", u8::from(t.month()), t.day(), t.hour()))
                .unwrap_or_default();
            // The last hour's label ends at its bar's right edge, inside the chart.
            let (lx, anchor) = if i == 0 && report.hourly.len() > 1 {
                (x, "start")
            } else {
                (x + bar, "end")
            };
            svg.push_str(&format!(
                "<text x=\"{lx:.1}\" y=\"{ly}\" font-size=\"11\" text-anchor=\"{anchor}\">{label}</text>",
                ly = height - 10.0
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Requests per key, as horizontal inline-SVG bars.
fn key_chart(report: &Report) -> String {
    let row = 26.0;
    let height = row * report.keys.len().max(1) as f64 + 10.0;
    let peak = report
        .keys
        .iter()
        .map(|k| k.requests)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"880\" height=\"{height}\" role=\"img\" aria-label=\"KMS requests per key\">"
    );
    for (i, key) in report.keys.iter().enumerate() {
        let y = 5.0 + i as f64 * row;
        let mut x = 330.0;
        let short = key.key_arn.rsplit('/').next().unwrap_or(&key.key_arn);
        svg.push_str(&format!(
            "<text x=\"0\" y=\"{ty:.1}\" font-size=\"12\">{} {}</text>",
            escape(&key.region),
            escape(short),
            ty = y + 15.0
        ));
        for (source, n) in &key.by_source {
            let w = *n as f64 / peak * 480.0;
            svg.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"20\" fill=\"{c}\"><title>{source}: {n}</title></rect>",
                c = colour(source)
            ));
            x += w;
        }
        svg.push_str(&format!(
            "<text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"12\">{}</text>",
            key.requests,
            tx = x + 6.0,
            ty = y + 15.0
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// One self-contained page: the totals, the cost, and the two charts.
pub(super) fn html(report: &Report) -> String {
    let legend: String = SOURCE_COLOURS
        .iter()
        .map(|(s, c)| format!("<span style=\"color:{c}\">&#9632;</span> {s} &nbsp; "))
        .collect();
    let rows: String = report
        .keys
        .iter()
        .map(|k| {
            let sources: Vec<String> =
                k.by_source.iter().map(|(s, n)| format!("{s} {n}")).collect();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=n>{}</td><td>{}</td></tr>",
                escape(&k.account_id),
                escape(&k.region),
                escape(&k.key_arn),
                escape(&k.key_spec),
                k.requests,
                escape(&sources.join(", "))
            )
        })
        .collect();
    let accounts: String = report
        .accounts
        .iter()
        .map(|a| {
            let cells: String = a
                .cells()
                .iter()
                .enumerate()
                .map(|(i, cell)| {
                    let class = if i == 0 { "" } else { " class=n" };
                    format!("<td{class}>{}</td>", escape(cell))
                })
                .collect();
            format!("<tr>{cells}</tr>")
        })
        .collect();
    let account_header: String = ACCOUNT_COLUMNS
        .iter()
        .map(|c| format!("<th>{c}</th>"))
        .collect();
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>keytrail KMS usage</title>\
         <style>body{{font-family:sans-serif;margin:24px;color:#1a202c}}table{{border-collapse:collapse}}\
         td,th{{border-bottom:1px solid #ddd;padding:4px 8px;font-size:13px;text-align:left}}.n{{text-align:right}}\
         .big{{font-size:28px;font-weight:bold}}</style></head><body>\
         <h1>KMS usage</h1><p>{start} to {end}</p>\
         <p><span class=big>{requests}</span> requests &nbsp; <span class=big>${total:.4}</span> at AWS prices \
         (requests ${req:.4} + {keys} customer managed key(s) ${keycost:.4}); this month at this pace ${proj:.2}</p>\
         <h2>Requests per hour, by source</h2><p>{legend}</p>{hourly}\
         <h2>Requests per key</h2>{by_key}\
         <h2>Cost per account</h2><table><tr>{account_header}</tr>{accounts}</table>\
         <h2>Keys</h2><table><tr><th>account</th><th>region</th><th>key</th><th>spec</th><th>requests</th><th>by source</th></tr>{rows}</table>\
         </body></html>",
        start = escape(&report.start),
        end = escape(&report.end),
        requests = report.requests,
        total = report.total_cost_usd,
        req = report.request_cost_usd,
        keys = report.customer_managed_keys,
        keycost = report.key_cost_usd,
        proj = report.month_projection_usd,
        hourly = hourly_chart(report),
        accounts = accounts,
        account_header = account_header,
        by_key = key_chart(report),
    )
}
