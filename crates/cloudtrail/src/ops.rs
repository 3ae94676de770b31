//! The trail operations (§5.3, §5.4, §5.8): their checks, errors and answers.

use keytrail_audit::CallContext;
use keytrail_kms::KmsError;
use keytrail_kms::model::GenerateDataKeyRequest;
use keytrail_store::{TrailCursor, TrailRow};

use crate::error::{CloudTrailError, CloudTrailResult};
use crate::model::*;
use crate::selectors::{validate_advanced, validate_basic};
use crate::trail::{TrailRecord, TrailStatus, parse_trail_arn, trail_arn, validate_trail_name};
use crate::{CallOutcome, CloudTrail, epoch_seconds, now_ms};

const MAX_TRAILS_PER_REGION: usize = 5;
const MAX_TAGS: usize = 50;
const LOG_ACL: &str = "bucket-owner-full-control";

fn iso(ms: Option<i64>) -> Option<String> {
    let ms = ms?;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.replace_nanosecond(0)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

fn validate_prefix(prefix: &Option<String>) -> CloudTrailResult<()> {
    if let Some(p) = prefix
        && (p.len() > 200 || p.starts_with('/') || p.ends_with('/') || p.contains("//"))
    {
        return Err(CloudTrailError::new(
            "InvalidS3PrefixException",
            format!("Invalid S3 prefix: {p}"),
        ));
    }
    Ok(())
}

fn validate_tags(tags: &[Tag]) -> CloudTrailResult<Vec<(String, String)>> {
    if tags.len() > MAX_TAGS {
        return Err(CloudTrailError::new(
            "TagsLimitExceededException",
            format!("A trail can have at most {MAX_TAGS} tags."),
        ));
    }
    tags.iter()
        .map(|t| {
            let key = t.key.clone().unwrap_or_default();
            let value = t.value.clone().unwrap_or_default();
            if key.is_empty() || key.chars().count() > 128 || value.chars().count() > 256 {
                return Err(CloudTrailError::new(
                    "InvalidTagParameterException",
                    format!("Tag key must be 1-128 characters and value at most 256: {key}"),
                ));
            }
            Ok((key, value))
        })
        .collect()
}

fn tag_list(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// Maps a KMS failure of the trail's key check to CloudTrail's exceptions (§5.12).
fn kms_failure(key: &str, e: KmsError, bucket: &str) -> CloudTrailError {
    match e {
        KmsError::NotFound(_) | KmsError::InvalidArn(_) => CloudTrailError::new(
            "KmsKeyNotFoundException",
            format!("KMS key {key} not found, or not in the bucket's region."),
        ),
        KmsError::AccessDenied(_) => CloudTrailError::new(
            "InsufficientEncryptionPolicyException",
            format!("Insufficient permissions to access S3 bucket {bucket} or KMS key {key}."),
        ),
        KmsError::InvalidKeyUsage(_) => CloudTrailError::new(
            "InvalidKmsKeyIdException",
            format!(
                "KMS key {key} is not a symmetric encryption key. CloudTrail supports only \
                 symmetric encryption KMS keys."
            ),
        ),
        other => CloudTrailError::new("KmsException", format!("KMS key {key}: {other}")),
    }
}

impl CloudTrail {
    /// The trail a `Name` member names: a name in the caller's region (its own trails, then the
    /// multi-region trails seen there as shadows), or an ARN.
    pub(crate) async fn find_trail(
        &self,
        ctx: &CallContext,
        name: &str,
    ) -> CloudTrailResult<TrailRecord> {
        if name.is_empty() {
            return Err(CloudTrailError::new(
                "TrailNotProvidedException",
                "A trail name or ARN is required.",
            ));
        }
        let (region, account, name) = match parse_trail_arn(name) {
            Some((region, account, name)) => (region.to_string(), account.to_string(), name),
            None if name.starts_with("arn:") => {
                return Err(CloudTrailError::new(
                    "CloudTrailARNInvalidException",
                    format!("{name} is not a valid trail ARN."),
                ));
            }
            None => {
                validate_trail_name(name)?;
                (ctx.region.clone(), ctx.principal.account_id.clone(), name)
            }
        };
        if account != ctx.principal.account_id {
            return Err(CloudTrailError::not_found(name));
        }
        if let Some(row) = self.store.get_trail(&account, &region, name).await? {
            return Self::parse_row(&row);
        }
        // A multi-region trail named from another region is its shadow there.
        for row in self.store.list_trails(Some(&account)).await? {
            if row.name == name {
                let record = Self::parse_row(&row)?;
                if record.is_multi_region_trail {
                    return Ok(record);
                }
            }
        }
        Err(CloudTrailError::not_found(name))
    }

    /// The trail a call names, recorded as its event's resource and authorized for `action`.
    async fn trail_for(
        &self,
        ctx: &CallContext,
        name: &str,
        action: &str,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<TrailRecord> {
        let record = self.find_trail(ctx, name).await?;
        outcome.trail_arn = Some(record.arn());
        self.authorize(ctx, action, &record.arn()).await?;
        Ok(record)
    }

    /// [`Self::trail_for`] for calls that change a trail, which only its home region may make.
    async fn trail_to_change(
        &self,
        ctx: &CallContext,
        name: &str,
        action: &str,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<TrailRecord> {
        let record = self.trail_for(ctx, name, action, outcome).await?;
        Self::home_only(ctx, &record)?;
        Ok(record)
    }

    pub(crate) fn parse_row(row: &TrailRow) -> CloudTrailResult<TrailRecord> {
        serde_json::from_str(&row.record_json).map_err(CloudTrailError::internal)
    }

    pub(crate) async fn save(&self, record: &TrailRecord) -> CloudTrailResult<()> {
        self.store
            .put_trail(TrailRow {
                account_id: record.account_id.clone(),
                home_region: record.home_region.clone(),
                name: record.name.clone(),
                record_json: serde_json::to_string(record).map_err(CloudTrailError::internal)?,
            })
            .await?;
        Ok(())
    }

    fn home_only(ctx: &CallContext, record: &TrailRecord) -> CloudTrailResult<()> {
        if record.home_region == ctx.region {
            Ok(())
        } else {
            Err(CloudTrailError::new(
                "InvalidHomeRegionException",
                format!(
                    "This operation must be called from the trail's home region {}.",
                    record.home_region
                ),
            ))
        }
    }

    /// The checks CreateTrail and UpdateTrail make of a trail's bucket and key (§5.11, §5.12):
    /// the bucket exists and its policy lets CloudTrail check its ACL and write under the
    /// trail's prefix; the key is a symmetric key in the bucket's region that CloudTrail may
    /// generate data keys under. Returns the key's ARN.
    async fn check_destination(
        &self,
        record: &TrailRecord,
        key_as_given: Option<&str>,
    ) -> CloudTrailResult<Option<String>> {
        let bucket = self
            .store
            .get_bucket(&record.s3_bucket_name)
            .await?
            .ok_or_else(|| {
                CloudTrailError::new(
                    "S3BucketDoesNotExistException",
                    format!("S3 bucket {} does not exist.", record.s3_bucket_name),
                )
            })?;
        let ctx = Self::service_context(record, &bucket.region);
        let insufficient = || {
            CloudTrailError::new(
                "InsufficientS3BucketPolicyException",
                format!(
                    "Incorrect S3 bucket policy is detected for bucket: {}",
                    record.s3_bucket_name
                ),
            )
        };
        let authorizer = self.s3.authorizer();
        let mut acl = http::HeaderMap::new();
        acl.insert("x-amz-acl", http::HeaderValue::from_static(LOG_ACL));
        let uri = http::Uri::from_static("/");
        authorizer
            .authorize_operation(
                &ctx,
                "GetBucketAcl",
                Some(&record.s3_bucket_name),
                None,
                &http::HeaderMap::new(),
                &uri,
            )
            .await
            .map_err(|_| insufficient())?;
        let probe = format!("{}CloudTrail/{}/", record.logs_prefix(), bucket.region);
        authorizer
            .authorize_operation(
                &ctx,
                "PutObject",
                Some(&record.s3_bucket_name),
                Some(&probe),
                &acl,
                &uri,
            )
            .await
            .map_err(|_| insufficient())?;

        let Some(key) = key_as_given else {
            return Ok(None);
        };
        if key.is_empty() {
            return Ok(None);
        }
        let arn = self
            .kms
            .symmetric_key_arn(&ctx, key)
            .await
            .map_err(|e| kms_failure(key, e, &record.s3_bucket_name))?;
        if arn.split(':').nth(3) != Some(bucket.region.as_str()) {
            return Err(CloudTrailError::new(
                "KmsKeyNotFoundException",
                format!(
                    "KMS key {arn} is not in the region of bucket {} ({}).",
                    record.s3_bucket_name, bucket.region
                ),
            ));
        }
        // Proof that CloudTrail may use the key: one GenerateDataKey under the trail's context,
        // its data key thrown away (the seed's first record).
        let context = [
            ("aws:cloudtrail:arn".to_string(), record.arn()),
            (
                "aws:s3:arn".to_string(),
                format!(
                    "arn:aws:s3:::{}/{}",
                    record.s3_bucket_name,
                    record.logs_prefix()
                ),
            ),
        ]
        .into_iter()
        .collect();
        self.kms
            .execute(
                &ctx,
                &GenerateDataKeyRequest {
                    key_id: Some(key.to_string()),
                    encryption_context: Some(context),
                    key_spec: Some("AES_256".into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| kms_failure(key, e, &record.s3_bucket_name))?;
        Ok(Some(arn))
    }

    pub(crate) async fn create_trail(
        &self,
        ctx: &CallContext,
        input: CreateTrailRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<TrailSettings> {
        let name = input.name.clone().ok_or_else(|| {
            CloudTrailError::new("TrailNotProvidedException", "Name is required.")
        })?;
        validate_trail_name(&name)?;
        let bucket = input.s3_bucket_name.clone().unwrap_or_default();
        if bucket.is_empty() {
            return Err(CloudTrailError::new(
                "InvalidS3BucketNameException",
                "S3BucketName is required.",
            ));
        }
        validate_prefix(&input.s3_key_prefix)?;
        let tags = validate_tags(input.tags_list.as_deref().unwrap_or_default())?;
        if input.is_organization_trail == Some(true) {
            return Err(CloudTrailError::new(
                "OrganizationsNotInUseException",
                "This account is not part of an organization; organization trails are not \
                 available.",
            ));
        }
        let account = ctx.principal.account_id.clone();
        let arn = trail_arn(&ctx.region, &account, &name);
        outcome.trail_arn = Some(arn.clone());
        self.authorize(ctx, "cloudtrail:CreateTrail", &arn).await?;

        let _guard = self.mutations.lock().await;
        let existing = self.store.list_trails(Some(&account)).await?;
        if existing.iter().any(|t| t.name == name) {
            return Err(CloudTrailError::new(
                "TrailAlreadyExistsException",
                format!("Trail {name} already exists for customer: {account}"),
            ));
        }
        if existing
            .iter()
            .filter(|t| t.home_region == ctx.region)
            .count()
            >= MAX_TRAILS_PER_REGION
        {
            return Err(CloudTrailError::new(
                "MaximumNumberOfTrailsExceededException",
                format!(
                    "User: {account} already has {MAX_TRAILS_PER_REGION} trails in {}.",
                    ctx.region
                ),
            ));
        }
        let mut record = TrailRecord {
            name,
            account_id: account,
            home_region: ctx.region.clone(),
            s3_bucket_name: bucket,
            s3_key_prefix: input.s3_key_prefix.clone().filter(|p| !p.is_empty()),
            sns_topic_name: input.sns_topic_name.clone(),
            include_global_service_events: input.include_global_service_events.unwrap_or(true),
            is_multi_region_trail: input.is_multi_region_trail.unwrap_or(false),
            log_file_validation_enabled: input.enable_log_file_validation.unwrap_or(false),
            cloud_watch_logs_log_group_arn: input.cloud_watch_logs_log_group_arn.clone(),
            cloud_watch_logs_role_arn: input.cloud_watch_logs_role_arn.clone(),
            kms_key_id: None,
            is_organization_trail: false,
            recursive_logging: input.recursive_logging.unwrap_or(true),
            event_selectors: None,
            advanced_event_selectors: None,
            tags,
            status: TrailStatus::default(),
            created_seq: self.store.last_event_seq().await?,
        };
        if record.is_multi_region_trail && !record.include_global_service_events {
            return Err(CloudTrailError::new(
                "InvalidParameterCombinationException",
                "Multi-Region trail must include global service events.",
            ));
        }
        record.kms_key_id = self
            .check_destination(&record, input.kms_key_id.as_deref())
            .await?;
        self.save(&record).await?;
        let settings = record.settings();
        outcome.response_elements = keytrail_audit::request_parameters(&settings);
        Ok(settings)
    }

    pub(crate) async fn update_trail(
        &self,
        ctx: &CallContext,
        input: UpdateTrailRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<TrailSettings> {
        let name = input.name.clone().unwrap_or_default();
        let _guard = self.mutations.lock().await;
        let mut record = self
            .trail_to_change(ctx, &name, "cloudtrail:UpdateTrail", outcome)
            .await?;
        validate_prefix(&input.s3_key_prefix)?;
        let destination_changed = input.s3_bucket_name.is_some()
            || input.s3_key_prefix.is_some()
            || input.kms_key_id.is_some();
        if let Some(bucket) = &input.s3_bucket_name {
            record.s3_bucket_name = bucket.clone();
        }
        if let Some(prefix) = &input.s3_key_prefix {
            record.s3_key_prefix = Some(prefix.clone()).filter(|p| !p.is_empty());
        }
        if let Some(topic) = &input.sns_topic_name {
            record.sns_topic_name = Some(topic.clone()).filter(|t| !t.is_empty());
        }
        if let Some(v) = input.include_global_service_events {
            record.include_global_service_events = v;
        }
        if let Some(v) = input.is_multi_region_trail {
            record.is_multi_region_trail = v;
        }
        if let Some(v) = input.enable_log_file_validation {
            record.log_file_validation_enabled = v;
        }
        if let Some(v) = &input.cloud_watch_logs_log_group_arn {
            record.cloud_watch_logs_log_group_arn = Some(v.clone()).filter(|s| !s.is_empty());
        }
        if let Some(v) = &input.cloud_watch_logs_role_arn {
            record.cloud_watch_logs_role_arn = Some(v.clone()).filter(|s| !s.is_empty());
        }
        if let Some(v) = input.recursive_logging {
            record.recursive_logging = v;
        }
        if input.is_organization_trail == Some(true) {
            return Err(CloudTrailError::new(
                "OrganizationsNotInUseException",
                "This account is not part of an organization.",
            ));
        }
        if record.is_multi_region_trail && !record.include_global_service_events {
            return Err(CloudTrailError::new(
                "InvalidParameterCombinationException",
                "Multi-Region trail must include global service events.",
            ));
        }
        if destination_changed {
            // An empty KmsKeyId turns log-file encryption off (§5.3, documented choice).
            let key = match &input.kms_key_id {
                Some(k) => Some(k.clone()),
                None => record.kms_key_id.clone(),
            };
            record.kms_key_id = self.check_destination(&record, key.as_deref()).await?;
        }
        self.save(&record).await?;
        let settings = record.settings();
        outcome.response_elements = keytrail_audit::request_parameters(&settings);
        Ok(settings)
    }

    pub(crate) async fn delete_trail(
        &self,
        ctx: &CallContext,
        input: NameRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<Empty> {
        let name = input.name.unwrap_or_default();
        let _guard = self.mutations.lock().await;
        let record = self
            .trail_to_change(ctx, &name, "cloudtrail:DeleteTrail", outcome)
            .await?;
        self.store
            .delete_trail(
                &record.account_id,
                &record.home_region,
                &record.name,
                &record.arn(),
            )
            .await?;
        Ok(Empty {})
    }

    pub(crate) async fn get_trail(
        &self,
        ctx: &CallContext,
        input: NameRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<GetTrailResponse> {
        let record = self
            .trail_for(
                ctx,
                input.name.as_deref().unwrap_or_default(),
                "cloudtrail:GetTrail",
                outcome,
            )
            .await?;
        Ok(GetTrailResponse {
            trail: Some(record.trail()),
        })
    }

    pub(crate) async fn describe_trails(
        &self,
        ctx: &CallContext,
        input: DescribeTrailsRequest,
        _outcome: &mut CallOutcome,
    ) -> CloudTrailResult<DescribeTrailsResponse> {
        self.authorize(ctx, "cloudtrail:DescribeTrails", "*")
            .await?;
        let names = input.trail_name_list.unwrap_or_default();
        let trails = if names.is_empty() {
            let shadows = input.include_shadow_trails.unwrap_or(true);
            self.store
                .list_trails(Some(&ctx.principal.account_id))
                .await?
                .iter()
                .map(Self::parse_row)
                .collect::<CloudTrailResult<Vec<_>>>()?
                .into_iter()
                .filter(|t| t.home_region == ctx.region || (shadows && t.is_multi_region_trail))
                .map(|t| t.trail())
                .collect()
        } else {
            let mut found = Vec::new();
            for name in &names {
                // Unknown names are left out, as AWS does.
                if let Ok(record) = self.find_trail(ctx, name).await {
                    found.push(record.trail());
                }
            }
            found
        };
        Ok(DescribeTrailsResponse { trail_list: trails })
    }

    pub(crate) async fn list_trails(
        &self,
        ctx: &CallContext,
        _input: ListTrailsRequest,
        _outcome: &mut CallOutcome,
    ) -> CloudTrailResult<ListTrailsResponse> {
        self.authorize(ctx, "cloudtrail:ListTrails", "*").await?;
        let trails = self
            .store
            .list_trails(Some(&ctx.principal.account_id))
            .await?
            .iter()
            .map(|row| TrailInfo {
                trail_a_r_n: Some(trail_arn(&row.home_region, &row.account_id, &row.name)),
                name: Some(row.name.clone()),
                home_region: Some(row.home_region.clone()),
            })
            .collect();
        Ok(ListTrailsResponse {
            trails: Some(trails),
            next_token: None,
        })
    }

    pub(crate) async fn get_trail_status(
        &self,
        ctx: &CallContext,
        input: NameRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<GetTrailStatusResponse> {
        let record = self
            .trail_for(
                ctx,
                input.name.as_deref().unwrap_or_default(),
                "cloudtrail:GetTrailStatus",
                outcome,
            )
            .await?;
        let s = &record.status;
        Ok(GetTrailStatusResponse {
            is_logging: Some(s.is_logging),
            latest_delivery_error: s.latest_delivery_error.clone(),
            latest_delivery_time: s.latest_delivery_ms.map(epoch_seconds),
            start_logging_time: s.start_logging_ms.map(epoch_seconds),
            stop_logging_time: s.stop_logging_ms.map(epoch_seconds),
            latest_delivery_attempt_time: iso(s.latest_delivery_attempt_ms),
            latest_delivery_attempt_succeeded: iso(s.latest_delivery_succeeded_ms),
            time_logging_started: iso(s.start_logging_ms),
            time_logging_stopped: iso(s.stop_logging_ms),
            latest_digest_delivery_time: s.latest_digest_delivery_ms.map(epoch_seconds),
            latest_digest_delivery_error: s.latest_digest_delivery_error.clone(),
            ..Default::default()
        })
    }

    pub(crate) async fn start_logging(
        &self,
        ctx: &CallContext,
        input: NameRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<Empty> {
        let _guard = self.mutations.lock().await;
        let mut record = self
            .trail_to_change(
                ctx,
                input.name.as_deref().unwrap_or_default(),
                "cloudtrail:StartLogging",
                outcome,
            )
            .await?;
        if !record.status.is_logging {
            // A new trail logs from its creation; a restarted one from now, unless a drain still
            // owed from an earlier StopLogging keeps its place in the journal.
            let cursor = self.store.get_trail_cursor(&record.arn()).await?;
            let start = match cursor {
                None => Some(record.created_seq),
                Some(c) if c.pending_json.is_some() || record.status.drain_until_ms.is_some() => {
                    None
                }
                Some(_) => Some(self.store.last_event_seq().await?),
            };
            if let Some(start) = start {
                self.store
                    .set_trail_cursor(
                        &record.arn(),
                        TrailCursor {
                            delivered_seq: start,
                            pending_json: None,
                        },
                    )
                    .await?;
            }
            record.status.is_logging = true;
            record.status.start_logging_ms = Some(now_ms());
            self.save(&record).await?;
        }
        Ok(Empty {})
    }

    pub(crate) async fn stop_logging(
        &self,
        ctx: &CallContext,
        input: NameRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<Empty> {
        let _guard = self.mutations.lock().await;
        let mut record = self
            .trail_to_change(
                ctx,
                input.name.as_deref().unwrap_or_default(),
                "cloudtrail:StopLogging",
                outcome,
            )
            .await?;
        if record.status.is_logging {
            let now = now_ms();
            record.status.is_logging = false;
            record.status.stop_logging_ms = Some(now);
            // What was recorded up to now — the StopLogging call included — is still delivered.
            record.status.drain_until_ms = Some(now + 1000);
            self.save(&record).await?;
        }
        Ok(Empty {})
    }

    pub(crate) async fn put_event_selectors(
        &self,
        ctx: &CallContext,
        input: PutEventSelectorsRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<EventSelectorsResponse> {
        let _guard = self.mutations.lock().await;
        let mut record = self
            .trail_to_change(
                ctx,
                input.trail_name.as_deref().unwrap_or_default(),
                "cloudtrail:PutEventSelectors",
                outcome,
            )
            .await?;
        match (&input.event_selectors, &input.advanced_event_selectors) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(CloudTrailError::new(
                    "InvalidParameterCombinationException",
                    "Specify either EventSelectors or AdvancedEventSelectors, not both.",
                ));
            }
            (Some(basic), None) => {
                validate_basic(basic)?;
                record.event_selectors = Some(basic.clone());
                record.advanced_event_selectors = None;
            }
            (None, Some(advanced)) => {
                validate_advanced(advanced)?;
                record.advanced_event_selectors = Some(advanced.clone());
                record.event_selectors = None;
            }
        }
        self.save(&record).await?;
        Ok(EventSelectorsResponse {
            trail_a_r_n: Some(record.arn()),
            event_selectors: record.event_selectors,
            advanced_event_selectors: record.advanced_event_selectors,
        })
    }

    pub(crate) async fn get_event_selectors(
        &self,
        ctx: &CallContext,
        input: GetEventSelectorsRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<EventSelectorsResponse> {
        let record = self
            .trail_for(
                ctx,
                input.trail_name.as_deref().unwrap_or_default(),
                "cloudtrail:GetEventSelectors",
                outcome,
            )
            .await?;
        // A trail without custom selectors logs all management events, read and write.
        let basic = record.event_selectors.clone().or_else(|| {
            record.advanced_event_selectors.is_none().then(|| {
                vec![EventSelector {
                    read_write_type: Some("All".into()),
                    include_management_events: Some(true),
                    data_resources: Some(Vec::new()),
                    exclude_management_event_sources: Some(Vec::new()),
                }]
            })
        });
        Ok(EventSelectorsResponse {
            trail_a_r_n: Some(record.arn()),
            event_selectors: basic,
            advanced_event_selectors: record.advanced_event_selectors,
        })
    }

    async fn tagged_trail(&self, ctx: &CallContext, id: &str) -> CloudTrailResult<TrailRecord> {
        if parse_trail_arn(id).is_none() {
            return Err(CloudTrailError::new(
                "CloudTrailARNInvalidException",
                format!("{id} is not a valid trail ARN."),
            ));
        }
        self.find_trail(ctx, id).await.map_err(|e| {
            if e.code == "TrailNotFoundException" {
                CloudTrailError::new(
                    "ResourceNotFoundException",
                    format!("Resource {id} does not exist."),
                )
            } else {
                e
            }
        })
    }

    /// The trail a tag operation names by ARN, authorized for `action`.
    async fn trail_to_tag(
        &self,
        ctx: &CallContext,
        input: &TagsRequest,
        action: &str,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<TrailRecord> {
        let id = input.resource_id.clone().unwrap_or_default();
        let record = self.tagged_trail(ctx, &id).await?;
        outcome.trail_arn = Some(record.arn());
        self.authorize(ctx, action, &record.arn()).await?;
        Ok(record)
    }

    pub(crate) async fn add_tags(
        &self,
        ctx: &CallContext,
        input: TagsRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<Empty> {
        let _guard = self.mutations.lock().await;
        let mut record = self
            .trail_to_tag(ctx, &input, "cloudtrail:AddTags", outcome)
            .await?;
        for (key, value) in validate_tags(input.tags_list.as_deref().unwrap_or_default())? {
            match record.tags.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => record.tags.push((key, value)),
            }
        }
        if record.tags.len() > MAX_TAGS {
            return Err(CloudTrailError::new(
                "TagsLimitExceededException",
                format!("A trail can have at most {MAX_TAGS} tags."),
            ));
        }
        self.save(&record).await?;
        Ok(Empty {})
    }

    pub(crate) async fn remove_tags(
        &self,
        ctx: &CallContext,
        input: TagsRequest,
        outcome: &mut CallOutcome,
    ) -> CloudTrailResult<Empty> {
        let _guard = self.mutations.lock().await;
        let mut record = self
            .trail_to_tag(ctx, &input, "cloudtrail:RemoveTags", outcome)
            .await?;
        let remove: Vec<String> = input
            .tags_list
            .unwrap_or_default()
            .into_iter()
            .filter_map(|t| t.key)
            .collect();
        record.tags.retain(|(k, _)| !remove.contains(k));
        self.save(&record).await?;
        Ok(Empty {})
    }

    pub(crate) async fn list_tags(
        &self,
        ctx: &CallContext,
        input: ListTagsRequest,
        _outcome: &mut CallOutcome,
    ) -> CloudTrailResult<ListTagsResponse> {
        let mut list = Vec::new();
        for id in input.resource_id_list.unwrap_or_default() {
            let record = self.tagged_trail(ctx, &id).await?;
            self.authorize(ctx, "cloudtrail:ListTags", &record.arn())
                .await?;
            list.push(ResourceTag {
                resource_id: Some(record.arn()),
                tags_list: Some(tag_list(&record.tags)),
            });
        }
        Ok(ListTagsResponse {
            resource_tag_list: Some(list),
            next_token: None,
        })
    }
}
