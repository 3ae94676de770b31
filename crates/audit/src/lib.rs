//! The audit journal: every operation keytrail performs — for a user or for one of its own
//! services — ends here as one CloudTrail event record, durably stored before the caller hears
//! the outcome.
//!
//! [`CallContext`] carries who called, from where, and on whose behalf; [`EventRecord`] is the
//! CloudTrail record (§5.6–5.7 of the behaviour spec) with AWS's field names; [`Journal`] turns
//! records into store rows and appends them (the store batches concurrent appends into one
//! commit).

pub mod clock;
mod context;
mod json;
mod parameters;
mod record;

use std::sync::Arc;

pub use context::{CallContext, Principal, PrincipalKind, TlsDetails};
pub use parameters::request_parameters;
pub use record::{
    AWS_INTERNAL, EVENT_VERSION, EventCategory, EventRecord, EventType, Resource, SessionContext,
    UserIdentity, guid,
};

use keytrail_store::{EventResource, EventRow, KmsUsageKey, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit journal could not store the event: {0}")]
    Store(#[from] StoreError),
    #[error("the event could not be serialized: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("the event's JSON is not UTF-8: {0}")]
    Encoding(String),
}

/// Appends event records to the store. Cheap to clone.
#[derive(Clone)]
pub struct Journal {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

impl Journal {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Stores one record; when this returns `Ok` the record is on disk. The record is
    /// consumed: its fields move into the stored row instead of being copied.
    pub async fn record(&self, record: EventRecord) -> Result<(), AuditError> {
        let row = to_row(record)?;
        self.store.append_events(vec![row]).await?;
        Ok(())
    }

    /// The newest `limit` records, oldest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<EventRecord>, AuditError> {
        self.store
            .recent_events(limit)
            .await?
            .iter()
            .map(|row| Ok(serde_json::from_str(&row.record_json)?))
            .collect()
    }
}

/// The record as JSON, written into a buffer sized for a typical record (1–2 KiB) rather than
/// one that doubles its way up from 128 bytes.
fn record_json(record: &EventRecord) -> Result<String, AuditError> {
    let mut out = Vec::with_capacity(2048);
    json::write_record(&mut out, record);
    // Only whole `str`s and ASCII go into the buffer.
    String::from_utf8(out).map_err(|e| AuditError::Encoding(e.to_string()))
}

fn to_row(record: EventRecord) -> Result<EventRow, AuditError> {
    let record_json = record_json(&record)?;
    let event_time_ms = record.event_time_ms();
    let username = username(&record.user_identity);
    let kms_usage = kms_usage(&record);
    Ok(EventRow {
        seq: 0,
        event_time_ms,
        read_only: record.read_only,
        management: record.management_event,
        record_json,
        username,
        kms_usage,
        resources: record
            .resources
            .into_iter()
            .map(|r| EventResource {
                resource_type: r.resource_type,
                resource_name: r.arn,
            })
            .collect(),
        access_key_id: record.user_identity.access_key_id.filter(|k| !k.is_empty()),
        event_id: record.event_id,
        account_id: record.recipient_account_id,
        region: record.aws_region,
        event_source: record.event_source,
        event_name: record.event_name,
        request_id: record.request_id,
    })
}

/// What a KMS request counts as in usage reports: billable requests only (those that
/// succeeded and name a key), attributed to who caused them.
fn kms_usage(record: &EventRecord) -> Option<KmsUsageKey> {
    // What KMS does on its own (rotating, deleting a key) is not a request anyone pays for.
    if record.event_source != "kms.amazonaws.com"
        || record.error_code.is_some()
        || record.user_identity.is_aws_internal()
        || record.billed_elsewhere
    {
        return None;
    }
    let key = record
        .resources
        .iter()
        .find(|r| r.resource_type == "AWS::KMS::Key")?;
    let identity = &record.user_identity;
    let source = match (
        identity.identity_type.as_str(),
        identity.invoked_by.as_deref(),
    ) {
        ("AWSService", Some("cloudtrail.amazonaws.com")) => "cloudtrail",
        ("AWSService", _) => "service",
        (_, Some("s3.amazonaws.com")) => "s3",
        (_, Some(_)) => "service",
        _ => "user",
    };
    Some(KmsUsageKey {
        key_arn: key.arn.clone(),
        operation: record.event_name.clone(),
        source: source.into(),
    })
}

/// The `Username` Event history shows: `root`, the IAM user's name, a role session's name, or
/// the service acting on its own.
fn username(identity: &UserIdentity) -> Option<String> {
    match identity.identity_type.as_str() {
        "Root" => Some("root".into()),
        "IAMUser" => identity.user_name.clone(),
        "AssumedRole" => identity
            .arn
            .as_deref()
            .and_then(|arn| arn.rsplit('/').next())
            .map(str::to_string),
        _ => identity.invoked_by.clone(),
    }
}

#[cfg(test)]
mod tests;
