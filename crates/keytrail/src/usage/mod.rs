//! `keytrail usage`: how often each KMS key was used, by whom, and what it would cost on AWS —
//! from the hourly rollup the journal keeps as it stores each KMS event (so a month answers
//! without reading events) — and what the configured trails will cost (`--projection`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Result, bail};
use keytrail_store::{KmsUsageRow, Store};
use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

mod cost;
mod html;

pub use cost::Pricing;
use cost::{AccountCost, KeyLife, KeyRequests};

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
    /// Customer managed keys billable at the range's end.
    customer_managed_keys: usize,
    /// Per account: each has its own free tier.
    accounts: Vec<AccountCost>,
    request_cost_usd: f64,
    key_cost_usd: f64,
    total_cost_usd: f64,
    month_projection_usd: f64,
    pricing: Pricing,
    /// Requests per hour (epoch ms) and source, for the chart.
    hourly: BTreeMap<i64, BTreeMap<String, i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    projection: Option<Projection>,
    #[serde(skip)]
    end_ms: i64,
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
    let mut specs: BTreeMap<String, String> = BTreeMap::new();
    let mut lives: Vec<KeyLife> = Vec::new();
    for key in store.list_kms_keys(None).await? {
        let record: keytrail_kms::keys::KeyRecord = serde_json::from_str(&key.record_json)?;
        let owned = args
            .account_id
            .as_ref()
            .is_none_or(|a| *a == record.account_id);
        if owned && !record.aws_managed {
            lives.push(KeyLife {
                account_id: record.account_id.clone(),
                created_ms: record.created_ms,
                billable_until_ms: pending_deletion_since(&record),
            });
        }
        specs.insert(record.arn(), record.key_spec);
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
                .cloned()
                .unwrap_or_else(|| "SYMMETRIC_DEFAULT".into()),
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
    let requests_by_key: Vec<KeyRequests> = keys
        .iter()
        .map(|k| KeyRequests {
            account_id: k.account_id.clone(),
            symmetric: k.key_spec == "SYMMETRIC_DEFAULT",
            requests: k.requests,
        })
        .collect();
    let accounts = cost::account_costs(&requests_by_key, &lives, ms(start), ms(end), pricing);
    let customer_managed_keys = lives.iter().filter(|l| l.billable_at(ms(end))).count();
    let request_cost_usd = accounts.iter().map(|a| a.request_cost_usd).sum();
    let key_cost_usd = accounts.iter().map(|a| a.key_cost_usd).sum();
    let month_projection_usd = accounts.iter().map(|a| a.month_projection_usd).sum();
    Ok(Report {
        start: start.format(&Rfc3339)?,
        end: end.format(&Rfc3339)?,
        keys,
        by_source,
        requests,
        customer_managed_keys,
        accounts,
        request_cost_usd,
        key_cost_usd,
        total_cost_usd: request_cost_usd + key_cost_usd,
        month_projection_usd,
        pricing: pricing.clone(),
        hourly,
        projection: None,
        end_ms: ms(end),
    })
}

/// When a key pending deletion stopped being billable: the day its deletion was scheduled.
fn pending_deletion_since(record: &keytrail_kms::keys::KeyRecord) -> Option<i64> {
    if record.state != keytrail_kms::keys::KeyState::PendingDeletion {
        return None;
    }
    let deletion = record.deletion_ms?;
    Some(deletion - record.pending_window_days.unwrap_or(30) * 86_400_000)
}

/// What one trail will ask of KMS, with the arithmetic.
#[derive(Debug, Serialize)]
struct TrailProjection {
    trail_arn: String,
    account_id: String,
    /// 24 × 60 / delivery minutes.
    log_files_per_region_day: f64,
    /// 24 × 3600 / digest seconds when digests are on (they are KMS-encrypted too), else 0.
    digests_per_region_day: f64,
    /// The home region, or every region a multi-region trail has delivered for.
    regions: usize,
    /// The trail's bucket encrypts with an S3 Bucket Key: one data key serves every region's
    /// files of a delivery (and is reused for five minutes), so regions do not multiply.
    bucket_key: bool,
    generate_data_key_per_day: f64,
    generate_data_key_per_month: f64,
    arithmetic: String,
}

#[derive(Debug, Serialize)]
struct AccountProjection {
    account_id: String,
    generate_data_key_per_day: f64,
    generate_data_key_per_month: f64,
    /// GenerateDataKey CloudTrail caused in the 24 hours before the report's end.
    measured_last_24h: i64,
    billable_per_month: f64,
    request_cost_per_month_usd: f64,
    keys: usize,
    key_cost_per_month_usd: f64,
    total_per_month_usd: f64,
}

#[derive(Debug, Serialize)]
struct Projection {
    delivery_minutes: f64,
    trails: Vec<TrailProjection>,
    accounts: Vec<AccountProjection>,
    total_per_month_usd: f64,
}

/// The trails' expected KMS requests: one GenerateDataKey per log file (and per digest, since
/// digests are encrypted with the trail's key too), per region covered, beside what CloudTrail
/// caused in the 24 hours before `end_ms`.
async fn projection(
    store: &Arc<dyn Store>,
    config: &keytrail_cloudtrail::CloudTrailConfig,
    pricing: &Pricing,
    end_ms: i64,
) -> Result<Projection> {
    let minutes = config.delivery_interval.as_secs_f64() / 60.0;
    let files_per_day = 24.0 * 60.0 / minutes;
    let days_per_month = cost::HOURS_PER_MONTH / 24.0;
    let mut trails = Vec::new();
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
        let bucket_key = bucket_uses_bucket_key(store, &trail.s3_bucket_name).await?;
        let digest_term = if digests > 0.0 {
            format!(" + {digests:.0} digests")
        } else {
            String::new()
        };
        let (per_day, arithmetic) = if bucket_key {
            // Digests follow a delivery within the key's five minutes and reuse it.
            (
                files_per_day,
                format!(
                    "24 × 60 / {minutes} = at most {files_per_day:.0} deliveries, one Bucket Key \
                     GenerateDataKey each for all {regions} region(s)"
                ),
            )
        } else {
            let per_day = (files_per_day + digests) * regions as f64;
            (
                per_day,
                format!(
                    "(24 × 60 / {minutes} = {files_per_day:.0} log files{digest_term}) × {regions} region(s)"
                ),
            )
        };
        let per_month = per_day * days_per_month;
        trails.push(TrailProjection {
            arithmetic: format!(
                "{arithmetic} = {per_day:.0}/day × {days_per_month:.2} days = {per_month:.0}/month"
            ),
            bucket_key,
            trail_arn: trail.arn(),
            account_id: trail.account_id.clone(),
            log_files_per_region_day: files_per_day,
            digests_per_region_day: digests,
            regions,
            generate_data_key_per_day: per_day,
            generate_data_key_per_month: per_month,
        });
    }
    let day_ago = end_ms - 86_400_000;
    let mut measured: BTreeMap<String, i64> = BTreeMap::new();
    for row in store
        .kms_usage(day_ago - day_ago.rem_euclid(3_600_000), end_ms, None)
        .await?
    {
        if row.source == "cloudtrail" && row.operation == "GenerateDataKey" {
            *measured.entry(row.account_id).or_default() += row.requests;
        }
    }
    let mut keys: BTreeMap<String, usize> = BTreeMap::new();
    for key in store.list_kms_keys(None).await? {
        let record: keytrail_kms::keys::KeyRecord = serde_json::from_str(&key.record_json)?;
        if !record.aws_managed && pending_deletion_since(&record).is_none() {
            *keys.entry(record.account_id).or_default() += 1;
        }
    }
    let mut per_account: BTreeMap<String, f64> = BTreeMap::new();
    for trail in &trails {
        *per_account.entry(trail.account_id.clone()).or_default() +=
            trail.generate_data_key_per_day;
    }
    let accounts: Vec<AccountProjection> = per_account
        .into_iter()
        .map(|(account_id, per_day)| {
            let per_month = per_day * days_per_month;
            let billable = (per_month - pricing.free_requests_per_month as f64).max(0.0);
            let request_cost = billable / 10_000.0 * pricing.symmetric_per_10k;
            let key_count = keys.get(&account_id).copied().unwrap_or(0);
            let key_cost = key_count as f64 * pricing.key_month;
            AccountProjection {
                measured_last_24h: measured.get(&account_id).copied().unwrap_or(0),
                account_id,
                generate_data_key_per_day: per_day,
                generate_data_key_per_month: per_month,
                billable_per_month: billable,
                request_cost_per_month_usd: request_cost,
                keys: key_count,
                key_cost_per_month_usd: key_cost,
                total_per_month_usd: request_cost + key_cost,
            }
        })
        .collect();
    Ok(Projection {
        delivery_minutes: minutes,
        total_per_month_usd: accounts.iter().map(|a| a.total_per_month_usd).sum(),
        trails,
        accounts,
    })
}

/// Whether a bucket's default encryption turns S3 Bucket Keys on (they then apply to PUTs that
/// ask for SSE-KMS without saying otherwise, as CloudTrail's do).
async fn bucket_uses_bucket_key(store: &Arc<dyn Store>, bucket: &str) -> Result<bool> {
    let Some(row) = store.get_bucket(bucket).await? else {
        return Ok(false);
    };
    let record: serde_json::Value = serde_json::from_str(&row.record_json)?;
    Ok(record["encryption"]["bucketKeyEnabled"].as_bool() == Some(true))
}

fn print_projection(projection: &Projection, pricing: &Pricing) {
    println!(
        "\nProjection from the configured trails: one GenerateDataKey per log file every {} min, per region; 730-hour month",
        projection.delivery_minutes
    );
    for trail in &projection.trails {
        println!("  {}: {}", trail.trail_arn, trail.arithmetic);
    }
    println!(
        "  {:<14} {:>10} {:>10} {:>14} {:>10} {:>12} {:>5} {:>10} {:>10}",
        "account",
        "GDK/day",
        "GDK/month",
        "measured 24h",
        "billable",
        "requests $",
        "keys",
        "keys $",
        "month $"
    );
    for a in &projection.accounts {
        println!(
            "  {:<14} {:>10.0} {:>10.0} {:>14} {:>10.0} {:>12.4} {:>5} {:>10.2} {:>10.4}",
            a.account_id,
            a.generate_data_key_per_day,
            a.generate_data_key_per_month,
            a.measured_last_24h,
            a.billable_per_month,
            a.request_cost_per_month_usd,
            a.keys,
            a.key_cost_per_month_usd,
            a.total_per_month_usd
        );
    }
    println!(
        "  total ${:.4}/month (each account's first {} requests a month are free; ${} per 10,000 beyond; ${} per key-month)",
        projection.total_per_month_usd,
        pricing.free_requests_per_month,
        pricing.symmetric_per_10k,
        pricing.key_month
    );
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
    let mut report = report(&store, &args, pricing).await?;
    if args.projection {
        report.projection = Some(projection(&store, cloudtrail, pricing, report.end_ms).await?);
    }
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string_pretty(&report)?),
        "html" => println!("{}", html::html(&report)),
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
            let row = |cells: &[String]| {
                let (account, numbers) = cells
                    .split_first()
                    .map_or(("", &[][..]), |(a, n)| (a.as_str(), n));
                let numbers: Vec<String> = numbers.iter().map(|n| format!("{n:>20}")).collect();
                println!("{account:<14} {}", numbers.join(" "));
            };
            row(&cost::ACCOUNT_COLUMNS.map(String::from));
            for a in &report.accounts {
                row(&a.cells());
            }
            if let Some(projection) = &report.projection {
                print_projection(projection, pricing);
            }
        }
        other => bail!("--format must be table, json, csv or html, not {other}"),
    }
    store.close().await;
    Ok(())
}
