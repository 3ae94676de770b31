//! `keytrail usage`: how often each KMS key was used, by whom, and what it would cost on AWS —
//! from the hourly rollup the journal keeps as it stores each KMS event (so a month answers
//! without reading events) — and what the configured trails will cost (`--projection`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use keytrail_store::{KmsUsageRow, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// KMS list prices (USD), data in the config file's `[pricing]`, defaults from spec §2.14.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pricing {
    /// Per customer managed key and month.
    pub key_month: f64,
    /// Per 10,000 requests on symmetric keys.
    pub symmetric_per_10k: f64,
    /// Per 10,000 requests on asymmetric and HMAC keys.
    pub asymmetric_per_10k: f64,
    /// Requests free each month (all regions of an account).
    pub free_requests_per_month: u64,
}

impl Default for Pricing {
    fn default() -> Self {
        Self {
            key_month: 1.0,
            symmetric_per_10k: 0.03,
            asymmetric_per_10k: 0.15,
            free_requests_per_month: 20_000,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct UsageArgs {
    /// From (ISO 8601) [default: the start of the current month, UTC].
    #[arg(long)]
    start: Option<String>,
    /// Until (ISO 8601) [default: now].
    #[arg(long)]
    end: Option<String>,
    /// One account only.
    #[arg(long)]
    account_id: Option<String>,
    /// table, json, csv or html (one self-contained page with charts).
    #[arg(long, default_value = "table")]
    format: String,
    /// Show what the configured trails will cost per day and month, beside what they did.
    #[arg(long)]
    projection: bool,
}

#[derive(Debug, Serialize)]
struct KeyUsage {
    account_id: String,
    region: String,
    key_arn: String,
    key_spec: String,
    by_source: BTreeMap<String, i64>,
    by_operation: BTreeMap<String, i64>,
    requests: i64,
}

#[derive(Debug, Serialize)]
struct Report {
    start: String,
    end: String,
    keys: Vec<KeyUsage>,
    by_source: BTreeMap<String, i64>,
    requests: i64,
    customer_managed_keys: usize,
    request_cost_usd: f64,
    key_cost_usd: f64,
    total_cost_usd: f64,
    month_projection_usd: f64,
    pricing: Pricing,
    /// Requests per hour (epoch ms) and source, for the chart.
    hourly: BTreeMap<i64, BTreeMap<String, i64>>,
}

fn parse_time(text: &str) -> Result<OffsetDateTime> {
    Ok(OffsetDateTime::parse(text, &Rfc3339)?)
}

fn month_start(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_day(1)
        .unwrap_or(t)
        .replace_time(time::Time::MIDNIGHT)
}

fn ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// The cost of a month's requests: each account's free tier first, then each key's price.
fn request_cost(keys: &[KeyUsage], pricing: &Pricing) -> f64 {
    let mut by_account: BTreeMap<&str, Vec<&KeyUsage>> = BTreeMap::new();
    for key in keys {
        by_account.entry(&key.account_id).or_default().push(key);
    }
    let free = i64::try_from(pricing.free_requests_per_month).unwrap_or(i64::MAX);
    by_account
        .values()
        .map(|keys| {
            let total: i64 = keys.iter().map(|k| k.requests).sum();
            if total <= 0 {
                return 0.0;
            }
            let share = (total - free).max(0) as f64 / total as f64;
            keys.iter()
                .map(|k| {
                    let per_10k = if k.key_spec == "SYMMETRIC_DEFAULT" {
                        pricing.symmetric_per_10k
                    } else {
                        pricing.asymmetric_per_10k
                    };
                    k.requests as f64 * share / 10_000.0 * per_10k
                })
                .sum::<f64>()
        })
        .sum()
}

async fn report(store: &Arc<dyn Store>, args: &UsageArgs, pricing: &Pricing) -> Result<Report> {
    let now = OffsetDateTime::now_utc();
    let start = match &args.start {
        Some(t) => parse_time(t)?,
        None => month_start(now),
    };
    let end = match &args.end {
        Some(t) => parse_time(t)?,
        None => now.replace_nanosecond(0).unwrap_or(now),
    };
    if start >= end {
        bail!("--start must be before --end");
    }
    let rows = store
        .kms_usage(
            ms(start) - ms(start).rem_euclid(3_600_000),
            ms(end),
            args.account_id.as_deref(),
        )
        .await?;
    let mut specs: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for key in store.list_kms_keys(None).await? {
        let record: serde_json::Value = serde_json::from_str(&key.record_json)?;
        let arn = format!(
            "arn:aws:kms:{}:{}:key/{}",
            key.region, key.account_id, key.key_id
        );
        let managed = record["awsManaged"].as_bool().unwrap_or(false);
        let pending = record["state"] == "PendingDeletion";
        let owned = args
            .account_id
            .as_ref()
            .is_none_or(|a| *a == key.account_id);
        specs.insert(
            arn,
            (
                record["keySpec"]
                    .as_str()
                    .unwrap_or("SYMMETRIC_DEFAULT")
                    .to_string(),
                owned && !managed && !pending,
            ),
        );
    }
    let mut keys: BTreeMap<String, KeyUsage> = BTreeMap::new();
    let mut by_source: BTreeMap<String, i64> = BTreeMap::new();
    let mut hourly: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for row in &rows {
        let KmsUsageRow {
            account_id,
            region,
            key_arn,
            operation,
            source,
            requests,
            ..
        } = row;
        let entry = keys.entry(key_arn.clone()).or_insert_with(|| KeyUsage {
            account_id: account_id.clone(),
            region: region.clone(),
            key_arn: key_arn.clone(),
            key_spec: specs
                .get(key_arn)
                .map_or("SYMMETRIC_DEFAULT".into(), |(spec, _)| spec.clone()),
            by_source: BTreeMap::new(),
            by_operation: BTreeMap::new(),
            requests: 0,
        });
        *entry.by_source.entry(source.clone()).or_default() += requests;
        *entry.by_operation.entry(operation.clone()).or_default() += requests;
        entry.requests += requests;
        *by_source.entry(source.clone()).or_default() += requests;
        *hourly
            .entry(row.hour_ms)
            .or_default()
            .entry(source.clone())
            .or_default() += requests;
    }
    let keys: Vec<KeyUsage> = keys.into_values().collect();
    let requests = keys.iter().map(|k| k.requests).sum();
    let customer_managed_keys = specs.values().filter(|(_, billed)| *billed).count();
    let month = 30.0 * 86_400_000.0;
    let fraction = ((ms(end) - ms(start)) as f64 / month).clamp(0.0, 1.0);
    let request_cost_usd = request_cost(&keys, pricing);
    let key_cost_usd = customer_managed_keys as f64 * pricing.key_month * fraction;
    // The month at the same pace: requests scaled to 30 days, keys for the whole month.
    let scaled: Vec<KeyUsage> = keys
        .iter()
        .map(|k| KeyUsage {
            requests: (k.requests as f64 / fraction.max(1e-9)) as i64,
            account_id: k.account_id.clone(),
            region: k.region.clone(),
            key_arn: k.key_arn.clone(),
            key_spec: k.key_spec.clone(),
            by_source: BTreeMap::new(),
            by_operation: BTreeMap::new(),
        })
        .collect();
    let month_projection_usd =
        request_cost(&scaled, pricing) + customer_managed_keys as f64 * pricing.key_month;
    Ok(Report {
        start: start.format(&Rfc3339)?,
        end: end.format(&Rfc3339)?,
        keys,
        by_source,
        requests,
        customer_managed_keys,
        request_cost_usd,
        key_cost_usd,
        total_cost_usd: request_cost_usd + key_cost_usd,
        month_projection_usd,
        pricing: pricing.clone(),
        hourly,
    })
}

/// The trails' expected KMS requests per day: one GenerateDataKey per log file (and per digest
/// when digests are KMS-encrypted), per region covered.
async fn projection(
    store: &Arc<dyn Store>,
    config: &keytrail_cloudtrail::CloudTrailConfig,
    pricing: &Pricing,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    let minutes = config.delivery_interval.as_secs_f64() / 60.0;
    let files_per_day = 24.0 * 60.0 / minutes;
    let mut accounts: BTreeMap<String, f64> = BTreeMap::new();
    for row in store.list_trails(None).await? {
        let trail: keytrail_cloudtrail::TrailRecord = serde_json::from_str(&row.record_json)?;
        if trail.kms_key_id.is_none() || !trail.status.is_logging {
            continue;
        }
        let regions = if trail.is_multi_region_trail {
            store.log_file_regions(&trail.arn()).await?.len().max(1)
        } else {
            1
        };
        let digests = if trail.log_file_validation_enabled {
            24.0 * 3600.0 / config.digest_interval.as_secs_f64()
        } else {
            0.0
        };
        let per_day = (files_per_day + digests) * regions as f64;
        lines.push(format!(
            "{}: (24 × 60 / {minutes} log files{}) × {regions} region(s) = {per_day:.0} GenerateDataKey/day",
            trail.arn(),
            if digests > 0.0 {
                format!(" + {digests:.0} digests")
            } else {
                String::new()
            }
        ));
        *accounts.entry(trail.account_id.clone()).or_default() += per_day;
    }
    let total: f64 = accounts.values().sum();
    let month = total * 30.0;
    let billable = (month - pricing.free_requests_per_month as f64).max(0.0);
    lines.push(format!(
        "all trails: {total:.0}/day across {} account(s), {month:.0}/month; beyond the free tier \
         of {}: {billable:.0} × ${}/10,000 = ${:.4}/month",
        accounts.len(),
        pricing.free_requests_per_month,
        pricing.symmetric_per_10k,
        billable / 10_000.0 * pricing.symmetric_per_10k
    ));
    let day_ago = ms(OffsetDateTime::now_utc()) - 86_400_000;
    let measured: i64 = store
        .kms_usage(day_ago - day_ago.rem_euclid(3_600_000), i64::MAX, None)
        .await?
        .iter()
        .filter(|r| r.source == "cloudtrail" && r.operation == "GenerateDataKey")
        .map(|r| r.requests)
        .sum();
    lines.push(format!(
        "measured in the last 24 hours: {measured} GenerateDataKey by CloudTrail"
    ));
    Ok(lines)
}

pub async fn run(
    args: UsageArgs,
    data_dir: &Path,
    pricing: &Pricing,
    cloudtrail: &keytrail_cloudtrail::CloudTrailConfig,
) -> Result<()> {
    let store: Arc<dyn Store> = Arc::new(keytrail_store::sqlite::SqliteStore::open(
        &data_dir.join("keytrail.db"),
    )?);
    let report = report(&store, &args, pricing).await?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        "html" => println!("{}", html(&report)),
        "csv" => {
            println!("account_id,region,key_arn,key_spec,source,requests");
            for key in &report.keys {
                for (source, n) in &key.by_source {
                    println!(
                        "{},{},{},{},{source},{n}",
                        key.account_id, key.region, key.key_arn, key.key_spec
                    );
                }
            }
        }
        "table" => {
            println!("KMS usage {} to {}", report.start, report.end);
            println!(
                "{:<14} {:<12} {:<78} {:>10}  by source",
                "account", "region", "key", "requests"
            );
            for key in &report.keys {
                let sources: Vec<String> = key
                    .by_source
                    .iter()
                    .map(|(s, n)| format!("{s} {n}"))
                    .collect();
                println!(
                    "{:<14} {:<12} {:<78} {:>10}  {}",
                    key.account_id,
                    key.region,
                    key.key_arn,
                    key.requests,
                    sources.join(", ")
                );
            }
            let sources: Vec<String> = report
                .by_source
                .iter()
                .map(|(s, n)| format!("{s} {n}"))
                .collect();
            println!(
                "total requests {} ({})",
                report.requests,
                sources.join(", ")
            );
            println!(
                "cost: requests ${:.4} + {} customer managed key(s) ${:.4} = ${:.4}; this month at this pace ${:.2}",
                report.request_cost_usd,
                report.customer_managed_keys,
                report.key_cost_usd,
                report.total_cost_usd,
                report.month_projection_usd
            );
        }
        other => bail!("--format must be table, json, csv or html, not {other}"),
    }
    if args.projection {
        for line in projection(&store, cloudtrail, pricing).await? {
            println!("{line}");
        }
    }
    store.close().await;
    Ok(())
}

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
            svg.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{ly}\" font-size=\"11\">{label}</text>",
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
fn html(report: &Report) -> String {
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
        by_key = key_chart(report),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(requests: i64, spec: &str) -> KeyUsage {
        in_account("1", requests, spec)
    }

    fn in_account(account: &str, requests: i64, spec: &str) -> KeyUsage {
        KeyUsage {
            account_id: account.into(),
            region: "us-east-1".into(),
            key_arn: "k".into(),
            key_spec: spec.into(),
            by_source: BTreeMap::new(),
            by_operation: BTreeMap::new(),
            requests,
        }
    }

    #[test]
    fn the_free_tier_comes_first_then_the_list_price() {
        let pricing = Pricing::default();
        assert_eq!(
            request_cost(&[key(20_000, "SYMMETRIC_DEFAULT")], &pricing),
            0.0
        );
        // 30,000 requests: 10,000 billable at $0.03 per 10,000.
        let cost = request_cost(&[key(30_000, "SYMMETRIC_DEFAULT")], &pricing);
        assert!((cost - 0.03).abs() < 1e-9, "{cost}");
        // The seed's case: 576 GenerateDataKey a day for 30 days = 17,280 — inside the free tier.
        assert_eq!(
            request_cost(&[key(576 * 30, "SYMMETRIC_DEFAULT")], &pricing),
            0.0
        );
        // Three accounts × two regions: 1,728 a day in all, but each account has its own free
        // tier, so each one's 576 × 30 = 17,280 is free.
        let three: Vec<_> = ["1", "2", "3"]
            .iter()
            .map(|a| in_account(a, 576 * 30, "SYMMETRIC_DEFAULT"))
            .collect();
        assert_eq!(request_cost(&three, &pricing), 0.0);
        // One account with 1,728 a day: 51,840 a month, 31,840 billable = $0.09552.
        let cost = request_cost(&[key(1_728 * 30, "SYMMETRIC_DEFAULT")], &pricing);
        assert!((cost - 0.095_52).abs() < 1e-6, "{cost}");
        let cost = request_cost(&[key(30_000, "RSA_2048")], &pricing);
        assert!((cost - 0.15).abs() < 1e-9, "{cost}");
    }
}
