//! The seed's arithmetic, measured: one simulated day of CloudTrail delivering a log file every
//! five minutes, on a service clock running 288 times as fast as the wall clock (a day in five
//! minutes; `keytrail serve --clock-rate 288 --clock-start …`).
//!
//! Five accounts share the server: one with a single-region trail (the spec's 288 a day), one
//! with a trail over two regions (the seed's 576) and three more like it (1,728 between them).
//! Every account is busy in both regions all day, so every five-minute window has a log file
//! per region, and each log file costs exactly one GenerateDataKey that S3 asks of KMS for
//! CloudTrail. Afterwards an auditor reads log files: one Decrypt each, attributed to them.
//! The usage API, `keytrail usage --format json` (costs at list prices, and with no free tier)
//! and `keytrail usage --projection` are checked against the hand-computed figures.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const RATE: &str = "288";
const CLOCK_START: &str = "2026-10-31T23:00:00Z";
const DAY_START: &str = "2026-11-01T00:00:00Z";
const DAY_END: &str = "2026-11-02T00:00:00Z";
const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

/// The single-region account, the two-region account, and three more two-region accounts.
const SINGLE: &str = "555555555555";
const SEED: &str = "111111111111";
const THREE: [&str; 3] = ["222222222222", "333333333333", "444444444444"];
/// A two-region trail whose bucket encrypts with an S3 Bucket Key.
const BUCKET_KEYED: &str = "666666666666";
const ALL: [&str; 6] = [SINGLE, SEED, THREE[0], THREE[1], THREE[2], BUCKET_KEYED];

/// How an account's trail is set up.
#[derive(Clone, Copy, PartialEq)]
enum Trail {
    SingleRegion,
    MultiRegion,
    /// Multi-region, into a bucket whose default encryption uses an S3 Bucket Key.
    MultiRegionBucketKey,
}

fn root_key(account: &str) -> String {
    format!("AKIAROOT{account}")
}

fn root_secret(account: &str) -> String {
    format!("root/Secret+Key{account}0000000000000")
}

fn config() -> String {
    ALL.iter()
        .map(|account| {
            format!(
                "[[credentials]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\naccount_id = \"{account}\"\n\n",
                root_key(account),
                root_secret(account)
            )
        })
        .collect()
}

fn bucket(account: &str) -> String {
    format!("trail-logs-{account}")
}

/// A bucket, a key and a logging trail; the key ARN.
async fn set_up_trail(url: &str, account: &str, trail: Trail) -> String {
    let (key, secret) = (root_key(account), root_secret(account));
    let s3 = s3_client(url, &key, &secret);
    let kms = kms_client(url, &key, &secret);
    let ct = cloudtrail_client(url, &key, &secret);
    let bucket = bucket(account);
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    s3.put_bucket_policy()
        .bucket(&bucket)
        .policy(cloudtrail_bucket_policy(&bucket))
        .send()
        .await
        .unwrap();
    // With a Bucket Key, S3 asks KMS for the bucket's key: the context is the bucket's ARN.
    let policy = if trail == Trail::MultiRegionBucketKey {
        bucket_key_policy(account, &bucket)
    } else {
        cloudtrail_key_policy(account)
    };
    let created = kms.create_key().policy(policy).send().await.unwrap();
    let key_arn = created.key_metadata().unwrap().arn().unwrap().to_string();
    if trail == Trail::MultiRegionBucketKey {
        s3.put_bucket_encryption()
            .bucket(&bucket)
            .server_side_encryption_configuration(sse_kms_default(&key_arn, true))
            .send()
            .await
            .unwrap();
    }
    ct.create_trail()
        .name("main")
        .s3_bucket_name(&bucket)
        .kms_key_id(&key_arn)
        .is_multi_region_trail(trail != Trail::SingleRegion)
        .send()
        .await
        .unwrap();
    ct.start_logging().name("main").send().await.unwrap();
    key_arn
}

/// CloudTrail's usual key policy, plus its use of the key for the bucket's Bucket Key (whose
/// encryption context is the bucket's ARN, not the trail's).
fn bucket_key_policy(account: &str, bucket: &str) -> String {
    let mut policy: serde_json::Value =
        serde_json::from_str(&cloudtrail_key_policy(account)).unwrap();
    policy["Statement"].as_array_mut().unwrap().push(serde_json::json!({
        "Sid": "Allow CloudTrail's log files a Bucket Key",
        "Effect": "Allow",
        "Principal": {"Service": "cloudtrail.amazonaws.com"},
        "Action": "kms:GenerateDataKey*",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:aws:s3:arn": format!("arn:aws:s3:::{bucket}")}}
    }));
    policy.to_string()
}

/// The service clock's time now: the newest event's time (the lookup's own call included).
async fn service_time(ct: &aws_sdk_cloudtrail::Client) -> OffsetDateTime {
    let page = ct.lookup_events().max_results(1).send().await.unwrap();
    let seconds = page.events()[0].event_time().unwrap().secs();
    OffsetDateTime::from_unix_timestamp(seconds).unwrap()
}

fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

fn creds(account: &str) -> (String, String) {
    (root_key(account), root_secret(account))
}

/// CloudTrail's GenerateDataKey calls in the simulated day, from the usage API.
async fn delivery_requests(url: &str, account: &str) -> i64 {
    let (key, secret) = creds(account);
    let (status, body) = usage(
        url,
        Creds {
            key: &key,
            secret: &secret,
        },
        &format!("start={DAY_START}&end={DAY_END}&groupBy=source"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let groups = body["groups"].as_array().unwrap();
    assert_eq!(
        groups.len(),
        1,
        "only CloudTrail used KMS during the day: {body}"
    );
    assert_eq!(groups[0]["name"], "cloudtrail", "{body}");
    groups[0]["requests"].as_i64().unwrap()
}

/// Log files delivered for the day in one region of one account's trail.
async fn log_files(url: &str, account: &str, region: &str) -> Vec<String> {
    let (key, secret) = creds(account);
    let s3 = s3_client(url, &key, &secret);
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket(bucket(account))
            .prefix(format!("AWSLogs/{account}/CloudTrail/{region}/2026/11/01/"))
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
        token = page.next_continuation_token().map(String::from);
        if token.is_none() {
            return keys;
        }
    }
}

fn within_one(measured: i64, expected: i64, what: &str) {
    assert!(
        (measured - expected).abs() <= 1,
        "{what}: measured {measured}, expected {expected} ± 1 for the partial interval at an edge"
    );
}

fn usage_json(server: &TestServer, config: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(keytrail_bin())
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(server.data_dir())
        .args([
            "usage", "--start", DAY_START, "--end", DAY_END, "--format", "json",
        ])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn account<'a>(report: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    report["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account_id"] == id)
        .unwrap_or_else(|| panic!("no account {id} in {report}"))
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < 1e-6, "{what}: {a} is not {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_day_costs_what_the_seed_says() {
    let server = TestServer::start_with(
        &config(),
        &["--clock-rate", RATE, "--clock-start", CLOCK_START],
    );
    let url = server.url.clone();
    set_up_trail(&url, SINGLE, Trail::SingleRegion).await;
    let mut key_arns = Vec::new();
    for account in std::iter::once(SEED).chain(THREE) {
        key_arns.push(set_up_trail(&url, account, Trail::MultiRegion).await);
    }
    set_up_trail(&url, BUCKET_KEYED, Trail::MultiRegionBucketKey).await;
    let (seed_key, seed_secret) = creds(SEED);
    let seed_ct = cloudtrail_client(&url, &seed_key, &seed_secret);
    let ready = service_time(&seed_ct).await;
    assert!(
        ready < at(DAY_START),
        "setting up took until {ready} on the service clock, past the day's start"
    );

    // Every account busy in both regions all day: a call every 100 ms of real time is one every
    // 29 s of service time, about ten in each five-minute window.
    let busy = Arc::new(AtomicBool::new(true));
    let mut workers = Vec::new();
    for account in ALL {
        for region in REGIONS {
            let (key, secret) = creds(account);
            let ct = cloudtrail_client_in(&url, long_term(&key, &secret), region);
            let busy = Arc::clone(&busy);
            workers.push(tokio::spawn(async move {
                while busy.load(Ordering::Relaxed) {
                    ct.describe_trails().send().await.unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }));
        }
    }
    // Until ten minutes past the day: the last window's file is delivered and its KMS call
    // counted (in the next day, outside the range).
    let done = at(DAY_END) + time::Duration::minutes(10);
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        if service_time(&seed_ct).await >= done {
            break;
        }
    }
    busy.store(false, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }

    // 24 × 60 / 5 = 288 log files per region: one GenerateDataKey each.
    let single = delivery_requests(&url, SINGLE).await;
    within_one(single, 288, "one account, one region");
    let seed = delivery_requests(&url, SEED).await;
    within_one(seed, 576, "one account, two regions");
    let (status, by_day) = usage(
        &url,
        Creds {
            key: &seed_key,
            secret: &seed_secret,
        },
        &format!("start={DAY_START}&end={DAY_END}&groupBy=day"),
    )
    .await;
    assert_eq!(status, 200, "{by_day}");
    assert_eq!(
        by_day["groups"],
        serde_json::json!([{ "name": "2026-11-01", "requests": seed }])
    );
    let mut three = 0;
    for account in THREE {
        let n = delivery_requests(&url, account).await;
        within_one(n, 576, "each of three accounts, two regions");
        three += n;
    }
    assert!(
        (three - 1_728).abs() <= 3,
        "three accounts × two regions: {three}, expected 1,728"
    );
    // With a Bucket Key, one data key serves both regions' files of a delivery and is reused for
    // five minutes: at most one GenerateDataKey per delivery, at least one per two.
    let keyed = delivery_requests(&url, BUCKET_KEYED).await;
    assert!(
        (143..=289).contains(&keyed),
        "a Bucket Key: {keyed} GenerateDataKey for 576 log files"
    );
    let mut keyed_files = 0;
    for region in REGIONS {
        keyed_files += log_files(&url, BUCKET_KEYED, region).await.len() as i64;
    }
    within_one(keyed_files, 576, "log files with a Bucket Key");
    // The files are there, as many as the KMS calls: CloudTrail asked for no data key it did not
    // use.
    let mut seed_files = Vec::new();
    for region in REGIONS {
        let files = log_files(&url, SEED, region).await;
        within_one(files.len() as i64, 288, region);
        seed_files.extend(files);
    }
    assert_eq!(
        seed_files.len() as i64,
        seed,
        "log files vs GenerateDataKey"
    );
    println!(
        "measured GenerateDataKey by CloudTrail on {DAY_START}: one region {single}, \
         two regions {seed}, three accounts × two regions {three}, two regions with a Bucket \
         Key {keyed}"
    );

    // Reading N log files costs N Decrypts, attributed to the reader.
    let iam = iam_client(&url, &seed_key, &seed_secret);
    let auditor = create_user_with_key(&iam, "auditor").await;
    iam.put_user_policy()
        .user_name("auditor")
        .policy_name("read-logs")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[
              {{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{}/*"}},
              {{"Effect":"Allow","Action":"kms:Decrypt","Resource":"{}"}}]}}"#,
            bucket(SEED),
            key_arns[0]
        ))
        .send()
        .await
        .unwrap();
    let reading_from = service_time(&seed_ct).await;
    let reader = s3_client_with(&url, auditor);
    const READS: usize = 7;
    for key in seed_files.iter().take(READS) {
        let body = read_object(&reader, &bucket(SEED), key).await;
        assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip log file");
    }
    let reading_from = reading_from
        .replace_nanosecond(0)
        .unwrap()
        .format(&Rfc3339)
        .unwrap();
    let (status, by_operation) = usage(
        &url,
        Creds {
            key: &seed_key,
            secret: &seed_secret,
        },
        &format!("start={reading_from}&groupBy=operation"),
    )
    .await;
    assert_eq!(status, 200, "{by_operation}");
    let decrypts = by_operation["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Decrypt")
        .and_then(|g| g["requests"].as_i64());
    assert_eq!(decrypts, Some(READS as i64), "{by_operation}");
    let read_events: Vec<_> = server
        .events()
        .into_iter()
        .filter(|e| e["eventName"] == "Decrypt" && e["recipientAccountId"] == SEED)
        .collect();
    assert_eq!(read_events.len(), READS);
    for event in &read_events {
        assert_eq!(event["userIdentity"]["userName"], "auditor", "{event}");
        assert_eq!(event["userIdentity"]["invokedBy"], "s3.amazonaws.com");
    }

    // Costs for the day, at list prices: every account's requests are inside its free tier, and
    // each key costs 24 of a month's 730 hours.
    let list_prices = server.data.path().join("keytrail.toml");
    let report = usage_json(&server, &list_prices, &["--projection"]);
    println!(
        "projection: {}",
        serde_json::to_string_pretty(&report["projection"]).unwrap()
    );
    for id in ALL {
        let a = account(&report, id);
        close(
            a["request_cost_usd"].as_f64().unwrap(),
            0.0,
            "requests in the free tier",
        );
        close(
            a["key_hours"].as_f64().unwrap(),
            24.0,
            "a key alive all day",
        );
        close(
            a["key_cost_usd"].as_f64().unwrap(),
            24.0 / 730.0,
            "a day of a key",
        );
        // A month at this pace: 576 × 730 / 24 = 17,520 requests, still free, and the key.
        close(
            a["month_projection_usd"].as_f64().unwrap(),
            1.0,
            "the month",
        );
    }
    // The projection from configuration, with its arithmetic, beside the measurement.
    let projection = &report["projection"];
    for trail in projection["trails"].as_array().unwrap() {
        let expected = if trail["account_id"] == SINGLE || trail["account_id"] == BUCKET_KEYED {
            288.0
        } else {
            576.0
        };
        assert_eq!(trail["bucket_key"], trail["account_id"] == BUCKET_KEYED);
        close(
            trail["generate_data_key_per_day"].as_f64().unwrap(),
            expected,
            "projected per day",
        );
        close(
            trail["generate_data_key_per_month"].as_f64().unwrap(),
            expected * 730.0 / 24.0,
            "projected per month",
        );
    }
    let projected_three: f64 = projection["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| THREE.contains(&a["account_id"].as_str().unwrap()))
        .map(|a| a["generate_data_key_per_day"].as_f64().unwrap())
        .sum();
    close(projected_three, 1_728.0, "three accounts × two regions");
    let seed_projection = projection["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account_id"] == SEED)
        .unwrap();
    assert_eq!(seed_projection["measured_last_24h"].as_i64(), Some(seed));

    // The HTML report of the day and the reads after it, when asked for (docs/usage-report.png
    // is this page in Chromium).
    if let Ok(path) = std::env::var("KEYTRAIL_SIMULATED_DAY_REPORT") {
        let out = Command::new(keytrail_bin())
            .arg("--config")
            .arg(&list_prices)
            .arg("--data-dir")
            .arg(server.data_dir())
            .args([
                "usage",
                "--start",
                DAY_START,
                "--end",
                "2026-11-02T01:00:00Z",
                "--format",
                "html",
            ])
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(path, out.stdout).unwrap();
    }

    // Without a free tier the requests show: the day's 576 cost 576 × $0.03 / 10,000.
    let no_free_tier = server.data.path().join("no-free-tier.toml");
    std::fs::write(
        &no_free_tier,
        format!("{}\n[pricing]\nfree_requests_per_month = 0\n", config()),
    )
    .unwrap();
    let report = usage_json(&server, &no_free_tier, &[]);
    let a = account(&report, SEED);
    assert_eq!(a["requests"].as_i64(), Some(seed));
    close(
        a["request_cost_usd"].as_f64().unwrap(),
        seed as f64 * 0.03 / 10_000.0,
        "the day's requests",
    );
    close(
        a["month_projection_usd"].as_f64().unwrap(),
        (seed as f64 * 730.0 / 24.0).round() * 0.03 / 10_000.0 + 1.0,
        "the month's requests and key",
    );
    let three_cost: f64 = THREE
        .iter()
        .map(|id| account(&report, id)["request_cost_usd"].as_f64().unwrap())
        .sum();
    close(three_cost, three as f64 * 0.03 / 10_000.0, "three accounts");
}
