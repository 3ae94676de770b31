//! Digest files (§6): for each trail with log-file validation and each region it delivers for,
//! every `digest_interval` a signed JSON document listing the SHA-256 of every log file delivered
//! in the window, chained to the previous digest by its hash and signature, written next to the
//! logs under `CloudTrail-Digest/`. `aws cloudtrail validate-logs` checks them.
//!
//! A digest is planned (window end, files) in the chain's state before it is written and the
//! chain moves on, with its files marked, in one transaction after: a crash between the two
//! rewrites the same digest, so no log file is skipped or listed twice.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use keytrail_s3::ServicePut;
use keytrail_store::LogFileRow;

use crate::delivery::{DeliveredFile, gzip, sha256_hex};
use crate::error::{CloudTrailError, CloudTrailResult};
use crate::trail::TrailRecord;
use crate::{CloudTrail, now_ms};

const ALGORITHM: &str = "SHA256withRSA";

/// Where a trail's digest chain in one region stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct ChainState {
    /// Start of the window being collected; `None` while the chain is stopped.
    window_start_ms: Option<i64>,
    /// The digest the next one chains to; `None`: the next digest starts a chain.
    previous: Option<PreviousDigest>,
    /// A digest planned but not known to be written.
    pending: Option<PendingDigest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PreviousDigest {
    bucket: String,
    key: String,
    signature: String,
    sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PendingDigest {
    end_ms: i64,
    files: Vec<String>,
    /// The chain stops after this digest (StopLogging, validation turned off).
    last: bool,
}

/// The digest document, fields in AWS's order (§6.3). Serialized once: the signature and the
/// next digest's hash are over exactly these bytes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DigestDocument<'a> {
    aws_account_id: &'a str,
    digest_start_time: String,
    digest_end_time: String,
    digest_s3_bucket: &'a str,
    digest_s3_object: &'a str,
    digest_public_key_fingerprint: &'a str,
    digest_signature_algorithm: &'a str,
    newest_event_time: Option<String>,
    oldest_event_time: Option<String>,
    previous_digest_s3_bucket: Option<&'a str>,
    previous_digest_s3_object: Option<&'a str>,
    previous_digest_hash_value: Option<&'a str>,
    previous_digest_hash_algorithm: Option<&'a str>,
    previous_digest_signature: Option<&'a str>,
    log_files: Vec<LogFileEntry>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LogFileEntry {
    s3_bucket: String,
    s3_object: String,
    hash_value: String,
    hash_algorithm: &'static str,
    newest_event_time: Option<String>,
    oldest_event_time: Option<String>,
}

fn at(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `YYYY-MM-DDTHH:MM:SSZ`
fn iso(ms: i64) -> String {
    let t = at(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn digest_key(trail: &TrailRecord, region: &str, end_ms: i64) -> String {
    let t = at(end_ms);
    let account = &trail.account_id;
    format!(
        "{prefix}CloudTrail-Digest/{region}/{y:04}/{m:02}/{d:02}/{account}_CloudTrail-Digest_{region}_{name}_{home}_{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z.json.gz",
        prefix = trail.logs_prefix(),
        name = trail.name,
        home = trail.home_region,
        y = t.year(),
        m = u8::from(t.month()),
        d = t.day(),
        hh = t.hour(),
        mm = t.minute(),
        ss = t.second(),
    )
}

impl CloudTrail {
    /// Writes the digests that are due: windows at least `digest_interval` old, and the last
    /// digest of chains whose trail stopped logging (once its final logs are delivered) or
    /// turned validation off. Starts chains for trails that validate and log.
    pub async fn write_due_digests(&self) -> usize {
        let trails = match self.store.list_trails(None).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "trails could not be listed for digests");
                return 0;
            }
        };
        let mut written = 0;
        for row in trails {
            let Ok(trail) = Self::parse_row(&row) else {
                continue;
            };
            let mut regions = match self.store.log_file_regions(&trail.arn()).await {
                Ok(r) => r,
                Err(_) => continue,
            };
            if !regions.contains(&trail.home_region) {
                regions.push(trail.home_region.clone());
            }
            for region in regions {
                let result = self.digest_region(&trail, &region).await;
                match &result {
                    Ok(true) => written += 1,
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(trail = %trail.arn(), region, error = %e, "digest failed; will retry")
                    }
                }
                if let Err(e) = self.record_digest_outcome(&trail, &result).await {
                    tracing::error!(error = %e, "digest status not saved");
                }
            }
        }
        written
    }

    async fn record_digest_outcome(
        &self,
        trail: &TrailRecord,
        result: &CloudTrailResult<bool>,
    ) -> CloudTrailResult<()> {
        if matches!(result, Ok(false)) {
            return Ok(());
        }
        self.update_status(trail, |status| match result {
            Ok(_) => {
                status.latest_digest_delivery_ms = Some(now_ms());
                status.latest_digest_delivery_error = None;
            }
            Err(e) => status.latest_digest_delivery_error = Some(e.code.to_string()),
        })
        .await
    }

    /// One region of one trail; returns whether a digest was written.
    async fn digest_region(&self, trail: &TrailRecord, region: &str) -> CloudTrailResult<bool> {
        let arn = trail.arn();
        let mut state: ChainState = match self.store.get_digest_chain(&arn, region).await? {
            Some(json) => serde_json::from_str(&json).map_err(CloudTrailError::internal)?,
            None => ChainState::default(),
        };
        if let Some(pending) = state.pending.clone() {
            self.write_digest(trail, region, &mut state, &pending)
                .await?;
            return Ok(true);
        }
        let wanted = trail.log_file_validation_enabled && trail.status.is_logging;
        let now = now_ms();
        let Some(start) = state.window_start_ms else {
            if wanted {
                // A chain starts. Log files delivered while it was stopped (validation off, a
                // crash before the first digest) go into its first digest: every log file the
                // trail writes is covered by some digest.
                let started = ChainState {
                    window_start_ms: Some(now - now.rem_euclid(1000)),
                    previous: None,
                    pending: None,
                };
                self.store
                    .put_digest_chain(&arn, region, json(&started)?)
                    .await?;
            }
            return Ok(false);
        };
        let interval = i64::try_from(self.config.digest_interval.as_millis()).unwrap_or(i64::MAX);
        // A stopped trail's last digest waits for its final logs.
        let stopping = !wanted && trail.status.drain_until_ms.is_none();
        let due = now - start >= interval;
        if !(stopping || (wanted && due)) {
            return Ok(false);
        }
        let end_ms = (now - now.rem_euclid(1000)).max(start + 1000);
        let files = self
            .store
            .undigested_log_files(&arn, region, end_ms + 999)
            .await?
            .into_iter()
            .map(|f| f.s3_key)
            .collect();
        let pending = PendingDigest {
            end_ms,
            files,
            last: stopping,
        };
        state.pending = Some(pending.clone());
        self.store
            .put_digest_chain(&arn, region, json(&state)?)
            .await?;
        self.write_digest(trail, region, &mut state, &pending)
            .await?;
        Ok(true)
    }

    async fn write_digest(
        &self,
        trail: &TrailRecord,
        region: &str,
        state: &mut ChainState,
        pending: &PendingDigest,
    ) -> CloudTrailResult<()> {
        let arn = trail.arn();
        let start_ms = state.window_start_ms.unwrap_or(pending.end_ms);
        let rows: Vec<LogFileRow> = self
            .store
            .undigested_log_files(&arn, region, i64::MAX)
            .await?
            .into_iter()
            .filter(|f| pending.files.contains(&f.s3_key))
            .collect();
        let mut entries = Vec::with_capacity(rows.len());
        let (mut newest, mut oldest): (Option<i64>, Option<i64>) = (None, None);
        for row in &rows {
            let file: DeliveredFile =
                serde_json::from_str(&row.record_json).map_err(CloudTrailError::internal)?;
            newest = newest.max(file.newest_ms);
            oldest = match (oldest, file.oldest_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            entries.push(LogFileEntry {
                s3_bucket: file.bucket,
                s3_object: row.s3_key.clone(),
                hash_value: file.sha256,
                hash_algorithm: "SHA-256",
                newest_event_time: file.newest_ms.map(iso),
                oldest_event_time: file.oldest_ms.map(iso),
            });
        }
        let key = digest_key(trail, region, pending.end_ms);
        let signing = self.signing_key(region).await?;
        let previous = state.previous.as_ref();
        let document = DigestDocument {
            aws_account_id: &trail.account_id,
            digest_start_time: iso(start_ms),
            digest_end_time: iso(pending.end_ms),
            digest_s3_bucket: &trail.s3_bucket_name,
            digest_s3_object: &key,
            digest_public_key_fingerprint: &signing.fingerprint,
            digest_signature_algorithm: ALGORITHM,
            newest_event_time: newest.map(iso),
            oldest_event_time: oldest.map(iso),
            previous_digest_s3_bucket: previous.map(|p| p.bucket.as_str()),
            previous_digest_s3_object: previous.map(|p| p.key.as_str()),
            previous_digest_hash_value: previous.map(|p| p.sha256.as_str()),
            previous_digest_hash_algorithm: previous.map(|_| "SHA-256"),
            previous_digest_signature: previous.map(|p| p.signature.as_str()),
            log_files: entries,
        };
        let raw = serde_json::to_vec(&document).map_err(CloudTrailError::internal)?;
        let sha256 = sha256_hex(&raw);
        let to_sign = format!(
            "{}\n{}/{}\n{}\n{}",
            iso(pending.end_ms),
            trail.s3_bucket_name,
            key,
            sha256,
            previous.map_or("null", |p| p.signature.as_str())
        );
        let signature = signing.sign(to_sign.as_bytes())?;
        let ctx = Self::service_context(trail, &trail.home_region);
        self.s3
            .put_object_for_service(
                &ctx,
                ServicePut {
                    bucket: trail.s3_bucket_name.clone(),
                    key: key.clone(),
                    body: gzip(&raw)?,
                    content_type: Some("application/json".into()),
                    content_encoding: Some("gzip".into()),
                    acl: Some("bucket-owner-full-control".into()),
                    kms_key_id: trail.kms_key_id.clone(),
                    encryption_context: trail.kms_key_id.as_ref().map(|_| {
                        [("aws:cloudtrail:arn".to_string(), arn.clone())]
                            .into_iter()
                            .collect()
                    }),
                    metadata: vec![
                        ("signature".into(), signature.clone()),
                        ("signature-algorithm".into(), ALGORITHM.into()),
                    ],
                },
            )
            .await
            .map_err(|e| CloudTrailError::new("DigestDeliveryFailed", e.to_string()))?;
        let next = if pending.last {
            ChainState::default()
        } else {
            ChainState {
                window_start_ms: Some(pending.end_ms),
                previous: Some(PreviousDigest {
                    bucket: trail.s3_bucket_name.clone(),
                    key,
                    signature,
                    sha256,
                }),
                pending: None,
            }
        };
        self.store
            .complete_digest(&arn, region, json(&next)?, pending.files.clone())
            .await?;
        *state = next;
        Ok(())
    }
}

fn json(state: &ChainState) -> CloudTrailResult<String> {
    serde_json::to_string(state).map_err(CloudTrailError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_keys_and_times_follow_the_cli_pattern() {
        let trail = TrailRecord {
            name: "main".into(),
            account_id: "111122223333".into(),
            home_region: "us-east-1".into(),
            s3_key_prefix: Some("audit".into()),
            ..Default::default()
        };
        let end = 1_764_340_531_000; // 2025-11-28T14:35:31Z
        let key = digest_key(&trail, "eu-west-1", end);
        assert_eq!(
            key,
            "audit/AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2025/11/28/111122223333_CloudTrail-Digest_eu-west-1_main_us-east-1_20251128T143531Z.json.gz"
        );
        // The CLI reads the timestamp as key[-24:-8].
        assert_eq!(&key[key.len() - 24..key.len() - 8], "20251128T143531Z");
        assert_eq!(iso(end), "2025-11-28T14:35:31Z");
    }

    #[test]
    fn a_chain_start_has_null_previous_fields_in_the_document() {
        let document = DigestDocument {
            aws_account_id: "1",
            digest_start_time: iso(0),
            digest_end_time: iso(1000),
            digest_s3_bucket: "b",
            digest_s3_object: "k",
            digest_public_key_fingerprint: "f",
            digest_signature_algorithm: ALGORITHM,
            newest_event_time: None,
            oldest_event_time: None,
            previous_digest_s3_bucket: None,
            previous_digest_s3_object: None,
            previous_digest_hash_value: None,
            previous_digest_hash_algorithm: None,
            previous_digest_signature: None,
            log_files: Vec::new(),
        };
        let value: serde_json::Value =
            serde_json::from_slice(&serde_json::to_vec(&document).unwrap()).unwrap();
        for field in [
            "previousDigestSignature",
            "previousDigestS3Object",
            "newestEventTime",
        ] {
            assert!(
                value[field].is_null() && value.get(field).is_some(),
                "{field}"
            );
        }
        assert_eq!(value["logFiles"], serde_json::json!([]));
        assert_eq!(value["digestS3Bucket"], "b");
    }
}
