//! `keytrail validate-logs`: checks a trail's digest files and log files against a running
//! server, as `aws cloudtrail validate-logs` does (§6.7), with the same arguments and report:
//! each digest's signature (with the region's public key from ListPublicKeys), its place in the
//! chain, and the SHA-256 of each log file it lists. Exits non-zero on any problem.

use std::collections::{BTreeSet, HashMap};
use std::io::Read;

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use base64::Engine;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// The trail's ARN.
    #[arg(long)]
    trail_arn: String,
    /// Validate digests from this time (ISO 8601, e.g. 2026-11-28T20:00:00Z).
    #[arg(long)]
    start_time: String,
    /// Up to this time [default: now].
    #[arg(long)]
    end_time: Option<String>,
    /// The bucket [default: the trail's].
    #[arg(long)]
    s3_bucket: Option<String>,
    /// The key prefix [default: the trail's].
    #[arg(long)]
    s3_prefix: Option<String>,
    /// Print every digest and log file, not only problems.
    #[arg(long)]
    verbose: bool,
    /// keytrail's URL [default: $AWS_ENDPOINT_URL, else http://127.0.0.1:4566].
    #[arg(long)]
    endpoint_url: Option<String>,
    /// Region of the digests [default: the trail's home region].
    #[arg(long)]
    region: Option<String>,
}

/// A signed client for the three calls validation needs.
struct Client {
    http: reqwest::Client,
    endpoint: String,
    host: String,
    key: String,
    secret: zeroize::Zeroizing<String>,
    region: String,
}

struct Response {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Client {
    async fn send(
        &self,
        service: &str,
        method: &str,
        path: &str,
        query: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response> {
        let now = OffsetDateTime::now_utc();
        let amz_date = keytrail_sigv4::format_amz_date(now);
        let payload_hash = keytrail_sigv4::sha256_hex(body);
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.host.clone()),
            ("x-amz-date".into(), amz_date.clone()),
            ("x-amz-content-sha256".into(), payload_hash.clone()),
        ];
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let signed: Vec<String> = headers.iter().map(|(k, _)| k.to_lowercase()).collect();
        let scope = keytrail_sigv4::CredentialScope {
            date: &amz_date[..8],
            region: &self.region,
            service,
        };
        let header_refs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let parts = keytrail_sigv4::RequestParts {
            method,
            path,
            query,
            headers: &header_refs,
            payload_hash: &payload_hash,
        };
        let canonical = keytrail_sigv4::canonical_request(
            &parts,
            &signed,
            &keytrail_sigv4::canonical_uri(path),
        )?;
        let to_sign = keytrail_sigv4::string_to_sign(&amz_date, &scope, &canonical);
        let signature = keytrail_sigv4::sign(&self.secret, &scope, &to_sign);
        let mut sorted = signed.clone();
        sorted.sort();
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={}, Signature={signature}",
            self.key,
            scope.as_string(),
            sorted.join(";")
        );
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let mut request = self
            .http
            .request(method.parse()?, url)
            .header("authorization", authorization)
            .body(body.to_vec());
        for (name, value) in headers.iter().filter(|(n, _)| n != "host") {
            request = request.header(name, value);
        }
        let response = request.send().await.context("keytrail did not answer")?;
        Ok(Response {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await?.to_vec(),
        })
    }

    async fn cloudtrail(
        &self,
        operation: &str,
        input: serde_json::Value,
    ) -> Result<serde_json::Value> {
        let target = format!("com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.{operation}");
        let body = serde_json::to_vec(&input)?;
        let response = self
            .send(
                "cloudtrail",
                "POST",
                "/",
                "",
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", &target),
                ],
                &body,
            )
            .await?;
        let value: serde_json::Value = serde_json::from_slice(&response.body)?;
        if response.status != 200 {
            bail!("{operation} failed: {value}");
        }
        Ok(value)
    }

    /// One page of ListObjects (v1): keys in byte order, and whether more follow.
    async fn list(&self, bucket: &str, prefix: &str, marker: &str) -> Result<(Vec<String>, bool)> {
        let encode = |s: &str| keytrail_sigv4::uri_encode(s.as_bytes(), false);
        let query = format!("marker={}&prefix={}", encode(marker), encode(prefix));
        let response = self
            .send(
                "s3",
                "GET",
                &format!("/{}", encode(bucket)),
                &query,
                &[],
                b"",
            )
            .await?;
        let text = String::from_utf8_lossy(&response.body).into_owned();
        if response.status != 200 {
            bail!("listing s3://{bucket}/{prefix} failed: {text}");
        }
        let keys = text
            .split("<Key>")
            .skip(1)
            .filter_map(|part| part.split("</Key>").next())
            .map(xml_unescape)
            .collect();
        Ok((keys, text.contains("<IsTruncated>true</IsTruncated>")))
    }

    async fn get(&self, bucket: &str, key: &str) -> Result<Option<Response>> {
        let path = format!(
            "/{}/{}",
            keytrail_sigv4::uri_encode(bucket.as_bytes(), false),
            keytrail_sigv4::uri_encode(key.as_bytes(), true)
        );
        let response = self.send("s3", "GET", &path, "", &[], b"").await?;
        match response.status {
            200 => Ok(Some(response)),
            404 => Ok(None),
            other => bail!("GET s3://{bucket}/{key}: HTTP {other}"),
        }
    }
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn gunzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut decoder = flate2::bufread::GzDecoder::new(bytes);
    let mut out = Vec::new();
    decoder.read_to_end(&mut out).ok()?;
    // A single member and nothing after it, as the CLI requires.
    let rest = decoder.into_inner();
    rest.is_empty().then_some(out)
}

fn parse_time(text: &str) -> Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .with_context(|| format!("{text} is not an ISO 8601 time such as 2026-11-28T20:00:00Z"))
}

fn stamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What was found, for the summary and the exit status.
#[derive(Default)]
struct Tally {
    digests: usize,
    digests_valid: usize,
    logs: usize,
    logs_valid: usize,
}

pub async fn run(args: ValidateArgs) -> Result<i32> {
    let arn = args.trail_arn.clone();
    let fields: Vec<&str> = arn.split(':').collect();
    if fields.len() < 6 || fields[2] != "cloudtrail" || !fields[5].starts_with("trail/") {
        bail!("{arn} is not a trail ARN (arn:aws:cloudtrail:<region>:<account>:trail/<name>)");
    }
    let (home, account, name) = (fields[3], fields[4], &fields[5]["trail/".len()..]);
    let start = parse_time(&args.start_time)?;
    let end = match &args.end_time {
        Some(t) => parse_time(t)?,
        None => {
            let now = OffsetDateTime::now_utc();
            now.replace_nanosecond(0).unwrap_or(now)
        }
    };
    if start > end {
        bail!("--start-time must be before --end-time");
    }
    let endpoint = args
        .endpoint_url
        .clone()
        .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:4566".into())
        .trim_end_matches('/')
        .to_string();
    let host = endpoint
        .split("://")
        .nth(1)
        .unwrap_or(&endpoint)
        .to_string();
    let region = args.region.clone().unwrap_or_else(|| home.to_string());
    let client = Client {
        http: reqwest::Client::builder().build()?,
        host,
        endpoint,
        key: std::env::var("AWS_ACCESS_KEY_ID").context("AWS_ACCESS_KEY_ID is not set")?,
        secret: zeroize::Zeroizing::new(
            std::env::var("AWS_SECRET_ACCESS_KEY").context("AWS_SECRET_ACCESS_KEY is not set")?,
        ),
        region: region.clone(),
    };

    let (bucket, prefix) = match args.s3_bucket.clone() {
        Some(bucket) => (bucket, args.s3_prefix.clone()),
        None => {
            let trails = client
                .cloudtrail("DescribeTrails", serde_json::json!({}))
                .await?;
            let trail = trails["trailList"]
                .as_array()
                .and_then(|list| list.iter().find(|t| t["TrailARN"] == arn.as_str()))
                .ok_or_else(|| anyhow!("trail {arn} not found"))?;
            (
                trail["S3BucketName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                args.s3_prefix
                    .clone()
                    .or_else(|| trail["S3KeyPrefix"].as_str().map(str::to_string)),
            )
        }
    };
    let prefix = prefix.map(|p| format!("{p}/")).unwrap_or_default();
    println!(
        "Validating log files for trail {arn} between {} and {}\n",
        start.format(&Rfc3339)?,
        end.format(&Rfc3339)?
    );

    let keys = client
        .cloudtrail(
            "ListPublicKeys",
            serde_json::json!({
                "StartTime": start.unix_timestamp(),
                "EndTime": end.unix_timestamp() + 7200,
            }),
        )
        .await?;
    let mut public_keys: HashMap<String, Vec<u8>> = HashMap::new();
    for key in keys["PublicKeyList"].as_array().into_iter().flatten() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(key["Value"].as_str().unwrap_or_default())?;
        public_keys.insert(
            key["Fingerprint"].as_str().unwrap_or_default().to_string(),
            der,
        );
    }
    if public_keys.is_empty() {
        bail!(
            "No public keys found between {} and {}",
            start.format(&Rfc3339)?,
            end.format(&Rfc3339)?
        );
    }

    // Every digest of the range, in byte order (= time order).
    let digest_prefix = format!("{prefix}AWSLogs/{account}/CloudTrail-Digest/{region}/");
    let marker_part = format!("_CloudTrail-Digest_{region}_{name}_{home}_");
    let (low, high) = (stamp(start), stamp(end + time::Duration::hours(1)));
    let mut listed = BTreeSet::new();
    let mut marker = String::new();
    loop {
        let (page, more) = client.list(&bucket, &digest_prefix, &marker).await?;
        let Some(last) = page.last().cloned() else {
            break;
        };
        for key in page {
            if key.contains(&marker_part) && key.ends_with(".json.gz") && key.len() > 24 {
                let ts = &key[key.len() - 24..key.len() - 8];
                if ts >= low.as_str() && ts <= high.as_str() {
                    listed.insert(key);
                }
            }
        }
        if !more {
            break;
        }
        marker = last;
    }

    let progress = if args.verbose {
        indicatif::ProgressBar::hidden()
    } else {
        let bar = indicatif::ProgressBar::new(listed.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} digest files")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    };
    let mut tally = Tally::default();
    let mut problems = Vec::new();
    let mut report = |line: String, invalid: bool| {
        if invalid {
            problems.push(line.clone());
        }
        if args.verbose || invalid {
            progress.suspend(|| println!("{line}"));
        }
    };
    let mut expected_previous: Option<String> = None;
    let mut found_range: Option<(String, String)> = None;
    for key in listed.iter().rev() {
        progress.inc(1);
        // A digest the newer one chains to that is not where it should be.
        if let Some(previous) = expected_previous.take()
            && previous != *key
            && !listed.contains(&previous)
        {
            tally.digests += 1;
            report(
                format!("Digest file\ts3://{bucket}/{previous}\tINVALID: not found"),
                true,
            );
        }
        tally.digests += 1;
        let location = format!("s3://{bucket}/{key}");
        let Some(object) = client.get(&bucket, key).await? else {
            report(format!("Digest file\t{location}\tINVALID: not found"), true);
            continue;
        };
        let Some(raw) = gunzip(&object.body) else {
            report(
                format!("Digest file\t{location}\tINVALID: invalid format"),
                true,
            );
            continue;
        };
        let Ok(document) = serde_json::from_slice::<serde_json::Value>(&raw) else {
            report(
                format!("Digest file\t{location}\tINVALID: invalid format"),
                true,
            );
            continue;
        };
        let text = |field: &str| document[field].as_str().unwrap_or_default().to_string();
        if text("digestS3Bucket") != bucket || text("digestS3Object") != *key {
            report(
                format!(
                    "Digest file\t{location}\tINVALID: has been moved from its original location"
                ),
                true,
            );
            continue;
        }
        let signature = object
            .headers
            .get("x-amz-meta-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let Some(public) = public_keys.get(&text("digestPublicKeyFingerprint")) else {
            report(
                format!(
                    "Digest file\t{location}\tINVALID: public key not found in region {region} for fingerprint {}",
                    text("digestPublicKeyFingerprint")
                ),
                true,
            );
            continue;
        };
        let previous_signature = document["previousDigestSignature"]
            .as_str()
            .unwrap_or("null");
        let to_sign = format!(
            "{}\n{bucket}/{key}\n{}\n{previous_signature}",
            text("digestEndTime"),
            keytrail_sigv4::sha256_hex(&raw)
        );
        let signature_bytes: Option<Vec<u8>> = (signature.len() % 2 == 0)
            .then(|| {
                (0..signature.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&signature[i..i + 2], 16).ok())
                    .collect()
            })
            .flatten();
        let verified = signature_bytes.is_some_and(|bytes| {
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public)
                .verify(to_sign.as_bytes(), &bytes)
                .is_ok()
        });
        if !verified {
            report(
                format!("Digest file\t{location}\tINVALID: signature verification failed"),
                true,
            );
            continue;
        }
        tally.digests_valid += 1;
        report(format!("Digest file\t{location}\tvalid"), false);
        let window = (text("digestStartTime"), text("digestEndTime"));
        found_range = Some(match found_range {
            None => window,
            Some((_, newest_end)) => (window.0, newest_end),
        });
        for log in document["logFiles"].as_array().into_iter().flatten() {
            tally.logs += 1;
            let (log_bucket, log_key) = (
                log["s3Bucket"].as_str().unwrap_or_default(),
                log["s3Object"].as_str().unwrap_or_default(),
            );
            let log_location = format!("s3://{log_bucket}/{log_key}");
            let verdict = match client.get(log_bucket, log_key).await? {
                None => Some("not found"),
                Some(body) => match gunzip(&body.body) {
                    None => Some("invalid format"),
                    Some(json)
                        if keytrail_sigv4::sha256_hex(&json)
                            != log["hashValue"].as_str().unwrap_or_default() =>
                    {
                        Some("hash value doesn't match")
                    }
                    Some(_) => None,
                },
            };
            match verdict {
                Some(reason) => {
                    report(format!("Log file\t{log_location}\tINVALID: {reason}"), true)
                }
                None => {
                    tally.logs_valid += 1;
                    report(format!("Log file\t{log_location}\tvalid"), false);
                }
            }
        }
        match document["previousDigestS3Object"].as_str() {
            Some(previous)
                if document["digestStartTime"].as_str().unwrap_or_default()
                    >= start.format(&Rfc3339)?.as_str() =>
            {
                expected_previous = Some(previous.to_string());
            }
            Some(_) => {}
            None => {
                if key != listed.iter().next().unwrap_or(key) {
                    report(
                        format!(
                            "No log files were delivered by CloudTrail before {} (a new chain starts at {location})",
                            text("digestStartTime")
                        ),
                        false,
                    );
                }
            }
        }
    }
    progress.finish_and_clear();
    println!(
        "\nResults requested for {} to {}",
        start.format(&Rfc3339)?,
        end.format(&Rfc3339)?
    );
    if let Some((first, last)) = found_range {
        println!("Results found for {first} to {last}:\n");
    } else {
        println!("No digest files were found in that range.\n");
    }
    let line = |valid: usize, all: usize, what: &str| {
        if valid == all {
            format!("{all}/{all} {what} valid")
        } else {
            format!(
                "{valid}/{all} {what} valid, {}/{all} {what} INVALID",
                all - valid
            )
        }
    };
    println!(
        "{}",
        line(tally.digests_valid, tally.digests, "digest files")
    );
    println!("{}", line(tally.logs_valid, tally.logs, "log files"));
    Ok(if problems.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_with_trailing_bytes_is_refused() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, b"{\"Records\":[]}").unwrap();
        let mut gz = encoder.finish().unwrap();
        assert_eq!(gunzip(&gz).unwrap(), b"{\"Records\":[]}");
        gz.extend_from_slice(b"junk");
        assert!(gunzip(&gz).is_none());
    }

    #[test]
    fn key_timestamps_compare_as_the_cli_compares_them() {
        let t = parse_time("2026-11-28T21:05:23Z").unwrap();
        assert_eq!(stamp(t), "20261128T210523Z");
        assert!(parse_time("yesterday").is_err());
    }
}
