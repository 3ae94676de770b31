//! Log-file delivery (§5.5): for each logging trail, the journal's events after the trail's
//! cursor that its selectors pick, one gzipped `{"Records":[...]}` per region (split when large),
//! written through the S3 engine as `cloudtrail.amazonaws.com` with
//! `x-amz-acl: bucket-owner-full-control` and, when the trail has a key, SSE-KMS under it with
//! the trail's ARN in the encryption context.
//!
//! Exactly once: the plan (journal range and object keys) is stored before any object is
//! written and the cursor moves past the range only after all are; a delivery interrupted by a
//! crash or a failure is redone from the plan, writing the same keys with the same bytes.

use std::io::Write;
use std::time::{Duration, Instant};

use bytes::Bytes;
use keytrail_audit::{EventCategory, EventRecord, Resource, clock};
use keytrail_s3::ServicePut;
use keytrail_store::{EventRow, LogFileRow, TrailCursor};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{CloudTrailError, CloudTrailResult};
use crate::selectors::trail_logs;
use crate::trail::TrailRecord;
use crate::{CloudTrail, now_ms};

/// Journal rows read per step; a step's files are written before the next is read.
const BATCH: usize = 20_000;
const LOG_ACL: &str = "bucket-owner-full-control";
const UNIQUE_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// A delivery decided but not yet known to be complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    /// The events after this journal position…
    from_seq: i64,
    /// …up to and including this one.
    to_seq: i64,
    files: Vec<PlannedFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlannedFile {
    region: String,
    /// Which slice of the region's selected events (files hold at most `max_records_per_file`).
    chunk: usize,
    key: String,
}

/// What one trail's delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub files: usize,
    pub records: usize,
}

fn object_key(trail: &TrailRecord, region: &str, at: OffsetDateTime) -> CloudTrailResult<String> {
    let unique =
        keytrail_crypto::random_string(16, UNIQUE_ALPHABET).map_err(CloudTrailError::internal)?;
    let account = &trail.account_id;
    Ok(format!(
        "{prefix}CloudTrail/{region}/{y:04}/{m:02}/{d:02}/{account}_CloudTrail_{region}_{y:04}{m:02}{d:02}T{hh:02}{mm:02}Z_{unique}.json.gz",
        prefix = trail.logs_prefix(),
        y = at.year(),
        m = u8::from(at.month()),
        d = at.day(),
        hh = at.hour(),
        mm = at.minute(),
    ))
}

/// A log file as written: the gzip, and what its digest entry records (§6.3).
pub(crate) struct LogFile {
    pub body: Bytes,
    /// Lowercase hex SHA-256 of the uncompressed JSON.
    pub sha256: String,
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
}

/// One single-member gzip of `{"Records":[...]}` (validate-logs refuses trailing data).
fn log_file(records: &[&EventRow]) -> CloudTrailResult<LogFile> {
    let mut json = String::with_capacity(
        records
            .iter()
            .map(|r| r.record_json.len() + 1)
            .sum::<usize>()
            + 16,
    );
    json.push_str("{\"Records\":[");
    for (i, row) in records.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str(&row.record_json);
    }
    json.push_str("]}");
    Ok(LogFile {
        body: gzip(json.as_bytes())?,
        sha256: sha256_hex(json.as_bytes()),
        oldest_ms: records.iter().map(|r| r.event_time_ms).min(),
        newest_ms: records.iter().map(|r| r.event_time_ms).max(),
    })
}

pub(crate) fn gzip(bytes: &[u8]) -> CloudTrailResult<Bytes> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(bytes)
        .map_err(CloudTrailError::internal)?;
    Ok(Bytes::from(
        encoder.finish().map_err(CloudTrailError::internal)?,
    ))
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// What the digest of a log file's window records of it (stored with the file's row).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeliveredFile {
    pub bucket: String,
    pub sha256: String,
    pub oldest_ms: Option<i64>,
    pub newest_ms: Option<i64>,
}

/// The events of `rows` the trail logs, by region, in journal order.
fn select<'a>(trail: &TrailRecord, rows: &'a [EventRow]) -> Vec<(String, Vec<&'a EventRow>)> {
    let mut by_region: Vec<(String, Vec<&EventRow>)> = Vec::new();
    for row in rows {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&row.record_json) else {
            continue;
        };
        if !trail_logs(trail, &event) {
            continue;
        }
        match by_region.iter_mut().find(|(r, _)| *r == row.region) {
            Some((_, list)) => list.push(row),
            None => by_region.push((row.region.clone(), vec![row])),
        }
    }
    by_region
}

impl CloudTrail {
    /// The background task: delivers whenever the service clock reaches a multiple of
    /// `delivery_interval` (on the fives for five minutes, so the schedule does not drift by the
    /// time each delivery takes) or at once when StartLogging or StopLogging asks, and enforces
    /// Event history's retention hourly, until `shutdown`.
    pub async fn run_delivery(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_retention: Option<Instant> = None;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(clock::real_until_next_multiple(self.config.delivery_interval)) => {}
                () = self.wake.notified() => {}
            }
            self.deliver_all().await;
            self.write_due_digests().await;
            if last_retention.is_none_or(|at| at.elapsed() >= RETENTION_EVERY) {
                last_retention = Some(Instant::now());
                match self.enforce_retention().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "Event history retention removed events"),
                    Err(e) => tracing::warn!(error = %e, "Event history retention failed"),
                }
            }
        }
    }

    /// Delivers for every trail that is logging or still owes a final delivery. Failures are
    /// recorded in the trail's status and retried next time.
    pub async fn deliver_all(&self) -> Delivered {
        let _running = self.delivering.lock().await;
        let mut total = Delivered::default();
        let trails = match self.store.list_trails(None).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "trails could not be listed for delivery");
                return total;
            }
        };
        for row in trails {
            let Ok(trail) = Self::parse_row(&row) else {
                continue;
            };
            if !trail.status.is_logging && trail.status.drain_until_ms.is_none() {
                continue;
            }
            let attempt = now_ms();
            let result = self.deliver_trail(&trail).await;
            if let Ok((done, _)) = &result {
                total.files += done.files;
                total.records += done.records;
            }
            if let Err(e) = self.record_outcome(&trail, attempt, &result).await {
                tracing::error!(trail = %trail.arn(), error = %e, "delivery status not saved");
            }
        }
        total
    }

    async fn record_outcome(
        &self,
        trail: &TrailRecord,
        attempt_ms: i64,
        result: &Result<(Delivered, bool), CloudTrailError>,
    ) -> CloudTrailResult<()> {
        if let Err(e) = result {
            tracing::warn!(trail = %trail.arn(), error = %e, "log delivery failed; will retry");
        }
        self.update_status(trail, |status| match result {
            Ok((done, drained)) => {
                if done.files > 0 {
                    status.latest_delivery_attempt_ms = Some(attempt_ms);
                    status.latest_delivery_succeeded_ms = Some(now_ms());
                    status.latest_delivery_ms = Some(now_ms());
                    status.latest_delivery_error = None;
                }
                if *drained && !status.is_logging {
                    status.drain_until_ms = None;
                }
            }
            Err(e) => {
                status.latest_delivery_attempt_ms = Some(attempt_ms);
                status.latest_delivery_error = Some(e.code.to_string());
            }
        })
        .await
    }

    /// Changes the stored trail's status (the trail may have changed, or gone, meanwhile).
    pub(crate) async fn update_status(
        &self,
        trail: &TrailRecord,
        change: impl FnOnce(&mut crate::trail::TrailStatus),
    ) -> CloudTrailResult<()> {
        let _guard = self.mutations.lock().await;
        let Some(row) = self
            .store
            .get_trail(&trail.account_id, &trail.home_region, &trail.name)
            .await?
        else {
            return Ok(());
        };
        let mut record = Self::parse_row(&row)?;
        change(&mut record.status);
        self.save(&record).await
    }

    /// Delivers one trail's pending events. Returns what was delivered and whether a stopped
    /// trail has now delivered everything it owed.
    async fn deliver_trail(&self, trail: &TrailRecord) -> CloudTrailResult<(Delivered, bool)> {
        let arn = trail.arn();
        let mut cursor = match self.store.get_trail_cursor(&arn).await? {
            Some(c) => c,
            None => TrailCursor {
                delivered_seq: self.store.last_event_seq().await?,
                pending_json: None,
            },
        };
        let mut done = Delivered::default();
        if let Some(pending) = cursor.pending_json.take() {
            let plan: Plan = serde_json::from_str(&pending).map_err(CloudTrailError::internal)?;
            let rows = self.rows_between(trail, plan.from_seq, plan.to_seq).await?;
            let (records, files) = self.write_plan(trail, &plan, &select(trail, &rows)).await?;
            done.records += records;
            done.files += plan.files.len();
            cursor.delivered_seq = plan.to_seq;
            self.store
                .complete_delivery(&arn, cursor.clone(), files)
                .await?;
        }
        let drain_until = (!trail.status.is_logging)
            .then_some(trail.status.drain_until_ms)
            .flatten();
        loop {
            let mut rows = self
                .store
                .account_events_after(&trail.account_id, cursor.delivered_seq, BATCH)
                .await?;
            let full_batch = rows.len() == BATCH;
            let mut reached_end = !full_batch;
            if let Some(until) = drain_until
                && let Some(cut) = rows.iter().position(|r| r.event_time_ms > until)
            {
                rows.truncate(cut);
                reached_end = true;
            }
            let Some(last) = rows.last() else {
                return Ok((done, drain_until.is_some()));
            };
            let to_seq = last.seq;
            let selected = select(trail, &rows);
            if selected.is_empty() {
                cursor.delivered_seq = to_seq;
                self.store.set_trail_cursor(&arn, cursor.clone()).await?;
            } else {
                let at = clock::now();
                let per_file = self.config.max_records_per_file.max(1);
                let mut files = Vec::new();
                for (region, events) in &selected {
                    for chunk in 0..events.len().div_ceil(per_file) {
                        files.push(PlannedFile {
                            region: region.clone(),
                            chunk,
                            key: object_key(trail, region, at)?,
                        });
                    }
                }
                let plan = Plan {
                    from_seq: cursor.delivered_seq,
                    to_seq,
                    files,
                };
                self.store
                    .set_trail_cursor(
                        &arn,
                        TrailCursor {
                            delivered_seq: cursor.delivered_seq,
                            pending_json: Some(
                                serde_json::to_string(&plan).map_err(CloudTrailError::internal)?,
                            ),
                        },
                    )
                    .await?;
                let (records, files) = self.write_plan(trail, &plan, &selected).await?;
                done.records += records;
                done.files += plan.files.len();
                cursor.delivered_seq = to_seq;
                self.store
                    .complete_delivery(&arn, cursor.clone(), files)
                    .await?;
            }
            if reached_end {
                return Ok((done, drain_until.is_some()));
            }
        }
    }

    /// The account's events in (from, to], in journal order.
    async fn rows_between(
        &self,
        trail: &TrailRecord,
        from: i64,
        to: i64,
    ) -> CloudTrailResult<Vec<EventRow>> {
        let mut rows = Vec::new();
        let mut after = from;
        loop {
            let page = self
                .store
                .account_events_after(&trail.account_id, after, BATCH)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            let full = page.len() == BATCH;
            rows.extend(page.into_iter().filter(|r| r.seq <= to));
            if after >= to || !full {
                break;
            }
        }
        Ok(rows)
    }

    /// Writes the plan's files from the events selected for its range (by region); returns how
    /// many records they hold and the rows that record them for the digest.
    async fn write_plan(
        &self,
        trail: &TrailRecord,
        plan: &Plan,
        selected: &[(String, Vec<&EventRow>)],
    ) -> CloudTrailResult<(usize, Vec<LogFileRow>)> {
        let per_file = self.config.max_records_per_file.max(1);
        let mut records = 0;
        let mut written = Vec::new();
        for file in &plan.files {
            let events = selected
                .iter()
                .find(|(region, _)| *region == file.region)
                .map(|(_, events)| events.as_slice())
                .unwrap_or_default();
            let start = file.chunk * per_file;
            let slice = events
                .get(start..(start + per_file).min(events.len()))
                .unwrap_or_default();
            records += slice.len();
            let log = log_file(slice)?;
            let delivered = DeliveredFile {
                bucket: trail.s3_bucket_name.clone(),
                sha256: log.sha256.clone(),
                oldest_ms: log.oldest_ms,
                newest_ms: log.newest_ms,
            };
            self.put_log_object(trail, &file.key, log.body).await?;
            written.push(LogFileRow {
                trail_arn: trail.arn(),
                region: file.region.clone(),
                s3_key: file.key.clone(),
                delivered_ms: now_ms(),
                record_json: serde_json::to_string(&delivered)
                    .map_err(CloudTrailError::internal)?,
            });
        }
        Ok((records, written))
    }

    /// One object into the trail's bucket, as CloudTrail, journaled as S3's data event.
    async fn put_log_object(
        &self,
        trail: &TrailRecord,
        key: &str,
        body: Bytes,
    ) -> CloudTrailResult<()> {
        let ctx = Self::service_context(trail, &trail.home_region);
        let encryption_context = trail.kms_key_id.as_ref().map(|_| {
            [("aws:cloudtrail:arn".to_string(), trail.arn())]
                .into_iter()
                .collect()
        });
        let size = body.len();
        let result = self
            .s3
            .put_object_for_service(
                &ctx,
                ServicePut {
                    bucket: trail.s3_bucket_name.clone(),
                    key: key.to_string(),
                    body,
                    content_type: Some("application/json".into()),
                    content_encoding: Some("gzip".into()),
                    acl: Some(LOG_ACL.into()),
                    kms_key_id: trail.kms_key_id.clone(),
                    encryption_context,
                    metadata: Vec::new(),
                },
            )
            .await;
        let mut record = EventRecord::new(
            &ctx,
            "s3.amazonaws.com",
            "PutObject",
            false,
            EventCategory::Data,
        );
        record.request_parameters = Some(serde_json::json!({
            "bucketName": trail.s3_bucket_name,
            "key": key,
            "x-amz-acl": LOG_ACL,
            "x-amz-server-side-encryption": if trail.kms_key_id.is_some() { "aws:kms" } else { "AES256" },
        }));
        record.additional_event_data = Some(serde_json::json!({ "bytesTransferredIn": size }));
        record.resources = vec![
            Resource {
                account_id: None,
                resource_type: "AWS::S3::Object".into(),
                arn: format!("arn:aws:s3:::{}/{key}", trail.s3_bucket_name),
            },
            Resource {
                account_id: Some(trail.account_id.clone()),
                resource_type: "AWS::S3::Bucket".into(),
                arn: format!("arn:aws:s3:::{}", trail.s3_bucket_name),
            },
        ];
        let outcome = match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let code: &'static str = match e.code().as_str() {
                    "AccessDenied" => "AccessDenied",
                    "NoSuchBucket" => "NoSuchBucket",
                    other if other.starts_with("KMS.") || other.contains("KMS") => "KMS.KeyError",
                    _ => "InternalError",
                };
                let message = e.message().unwrap_or_default().to_string();
                record = record.failed(e.code().as_str(), &message);
                Err(CloudTrailError::new(
                    if code == "KMS.KeyError" {
                        kms_code(e.code().as_str())
                    } else {
                        code
                    },
                    message,
                ))
            }
        };
        self.journal
            .record(record)
            .await
            .map_err(CloudTrailError::internal)?;
        outcome
    }
}

/// S3's KMS error codes as GetTrailStatus reports them.
fn kms_code(code: &str) -> &'static str {
    match code {
        "KMS.DisabledException" => "KMS.DisabledException",
        "KMS.NotFoundException" => "KMS.NotFoundException",
        "KMS.KMSInvalidStateException" => "KMS.KMSInvalidStateException",
        "KMS.AccessDeniedException" => "KMS.AccessDeniedException",
        _ => "KMS.KMSException",
    }
}
