//! The KMS operations: validation as the model constrains the input, the key-state rules of
//! §2.6, and the cryptography of §2.8.

use keytrail_audit::{CallContext, Resource};
use keytrail_store::AliasRow;

use crate::asymmetric;
use crate::envelope::{self, BlobHeader, EncryptionContext};
use crate::error::{KmsError, KmsResult};
use crate::keys::{
    KeyRecord, KeyState, alias_arn, default_policy, validate_alias_name, validate_policy,
};
use crate::model::*;
use crate::service::{AuditNotes, Kms, KmsOperation, LoadedKey, epoch_seconds, now_ms};

use crate::asymmetric::SYMMETRIC_DEFAULT;
/// The encryption context limit AWS does not document; chosen as the spec suggests.
const MAX_CONTEXT_BYTES: usize = 8192;
const MAX_TAGS: usize = 50;
const MAX_ALIASES_PER_KEY: usize = 50;
const MAX_ON_DEMAND_ROTATIONS: u32 = 25;
const DAY_MS: i64 = 86_400_000;

// ---- input checks -------------------------------------------------------------------------

fn required<'a, T>(value: &'a Option<T>, field: &str) -> KmsResult<&'a T> {
    value.as_ref().ok_or_else(|| {
        KmsError::Validation(format!(
            "1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn length(field: &str, value: &str, min: usize, max: usize) -> KmsResult<()> {
    let n = value.chars().count();
    if n < min {
        return Err(KmsError::constraint(
            field,
            value,
            &format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(KmsError::constraint(
            field,
            value,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn range(field: &str, value: i64, min: i64, max: i64) -> KmsResult<()> {
    if value < min {
        return Err(KmsError::constraint(
            field,
            &value.to_string(),
            &format!("Member must have value greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(KmsError::constraint(
            field,
            &value.to_string(),
            &format!("Member must have value less than or equal to {max}"),
        ));
    }
    Ok(())
}

fn key_id_member<'a>(value: &'a Option<String>, field: &str) -> KmsResult<&'a str> {
    let v = required(value, field)?;
    length(field, v, 1, 2048)?;
    Ok(v)
}

fn grant_tokens(tokens: &Option<Vec<String>>) -> KmsResult<()> {
    let Some(tokens) = tokens else {
        return Ok(());
    };
    if tokens.len() > 10 {
        return Err(KmsError::constraint(
            "grantTokens",
            &format!("{tokens:?}"),
            "Member must have length less than or equal to 10",
        ));
    }
    if let Some(token) = tokens.first() {
        // Grants arrive with the authorization issue: no token can be valid before.
        return Err(KmsError::InvalidGrantToken(format!(
            "Grant token '{}' is not valid: keytrail has issued no grants.",
            token.chars().take(32).collect::<String>()
        )));
    }
    Ok(())
}

fn context(value: &Option<EncryptionContextMap>) -> KmsResult<EncryptionContext> {
    let ctx: EncryptionContext = value.clone().unwrap_or_default();
    let size: usize = ctx.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_CONTEXT_BYTES {
        return Err(KmsError::Validation(format!(
            "The encryption context is {size} bytes; the limit is {MAX_CONTEXT_BYTES}."
        )));
    }
    if ctx.keys().any(String::is_empty) {
        return Err(KmsError::Validation(
            "Encryption context keys must not be empty.".into(),
        ));
    }
    Ok(ctx)
}

fn symmetric_algorithm(field: &str, value: &Option<String>, key: &LoadedKey) -> KmsResult<String> {
    match value.as_deref() {
        None | Some(SYMMETRIC_DEFAULT) => Ok(SYMMETRIC_DEFAULT.into()),
        Some(alg @ ("RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" | "SM2PKE")) => {
            Err(KmsError::InvalidKeyUsage(format!(
                "Algorithm {alg} is incompatible with key spec {}.",
                key.record.key_spec
            )))
        }
        Some(other) => Err(KmsError::constraint(
            field,
            other,
            "Member must satisfy enum value set: [SYMMETRIC_DEFAULT, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, SM2PKE]",
        )),
    }
}

fn limit(value: Option<i64>, default: usize) -> KmsResult<usize> {
    match value {
        None => Ok(default),
        Some(n) => {
            range("limit", n, 1, 1000)?;
            Ok(usize::try_from(n).unwrap_or(default))
        }
    }
}

const MARKER_PREFIX: &str = "kt1:";

/// One page of `items`, sorted by `sort_key`, starting at `marker` (the sort key of the first
/// item of the page, prefixed so foreign markers are recognised).
fn paginate<T>(
    mut items: Vec<T>,
    sort_key: impl Fn(&T) -> String,
    marker: &Option<String>,
    limit: usize,
) -> KmsResult<(Vec<T>, Option<String>, bool)> {
    items.sort_by_key(|a| sort_key(a));
    let start = match marker {
        None => 0,
        Some(m) => {
            let Some(from) = m.strip_prefix(MARKER_PREFIX) else {
                return Err(KmsError::InvalidMarker(format!("Invalid marker: {m}")));
            };
            items
                .iter()
                .position(|i| sort_key(i).as_str() >= from)
                .unwrap_or(items.len())
        }
    };
    let mut rest: Vec<T> = items.into_iter().skip(start).collect();
    if rest.len() > limit {
        let next = format!("{MARKER_PREFIX}{}", sort_key(&rest[limit]));
        rest.truncate(limit);
        Ok((rest, Some(next), true))
    } else {
        Ok((rest, None, false))
    }
}

fn dry_run(flag: Option<bool>) -> KmsResult<()> {
    if flag == Some(true) {
        return Err(KmsError::DryRun(
            "The request would have succeeded, but the DryRun option is set.".into(),
        ));
    }
    Ok(())
}

fn validate_tags(tags: &[Tag]) -> KmsResult<Vec<(String, String)>> {
    let mut out = Vec::with_capacity(tags.len());
    for tag in tags {
        let key = required(&tag.tag_key, "tagKey")?;
        let value = required(&tag.tag_value, "tagValue")?;
        length("tagKey", key, 1, 128)?;
        length("tagValue", value, 0, 256)?;
        if key.starts_with("aws:") {
            return Err(KmsError::Tag(format!(
                "Tag keys beginning with \"aws:\" are reserved: {key}"
            )));
        }
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

fn merge_tags(existing: &mut Vec<(String, String)>, new: Vec<(String, String)>) -> KmsResult<()> {
    for (k, v) in new {
        match existing.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => existing.push((k, v)),
        }
    }
    if existing.len() > MAX_TAGS {
        return Err(KmsError::LimitExceeded(format!(
            "A KMS key can have at most {MAX_TAGS} tags."
        )));
    }
    Ok(())
}

// ---- key metadata ----------------------------------------------------------------------------

pub(crate) fn metadata(record: &KeyRecord) -> KeyMetadata {
    let pending = record.state == KeyState::PendingDeletion;
    KeyMetadata {
        a_w_s_account_id: Some(record.account_id.clone()),
        key_id: Some(record.key_id.clone()),
        arn: Some(record.arn()),
        creation_date: Some(epoch_seconds(record.created_ms)),
        enabled: Some(record.state == KeyState::Enabled),
        description: Some(record.description.clone()),
        key_usage: Some(record.key_usage.clone()),
        key_state: Some(record.state.as_str().into()),
        deletion_date: record.deletion_ms.filter(|_| pending).map(epoch_seconds),
        origin: Some(record.origin.clone()),
        key_manager: Some("CUSTOMER".into()),
        customer_master_key_spec: Some(record.key_spec.clone()),
        key_spec: Some(record.key_spec.clone()),
        encryption_algorithms: non_empty(asymmetric::encryption_algorithms(
            &record.key_spec,
            &record.key_usage,
        )),
        signing_algorithms: non_empty(asymmetric::signing_algorithms(
            &record.key_spec,
            &record.key_usage,
        )),
        mac_algorithms: non_empty(asymmetric::mac_algorithms(&record.key_spec)),
        multi_region: Some(false),
        pending_deletion_window_in_days: record.pending_window_days.filter(|_| pending),
        current_key_material_id: (record.key_spec == SYMMETRIC_DEFAULT)
            .then(|| record.current_material_id.clone()),
    }
}

fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

/// Operations of symmetric encryption keys only (§2.7: InvalidKeyUsageException otherwise).
fn require_symmetric(key: &LoadedKey, operation: &str) -> KmsResult<()> {
    if key.record.key_spec == SYMMETRIC_DEFAULT {
        return Ok(());
    }
    Err(KmsError::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {operation}.",
        key.arn, key.record.key_usage
    )))
}

fn require_usage(key: &LoadedKey, usage: &str, operation: &str) -> KmsResult<()> {
    if key.record.key_usage == usage {
        return Ok(());
    }
    Err(KmsError::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {operation}.",
        key.arn, key.record.key_usage
    )))
}

fn note_key(notes: &mut AuditNotes, key: &LoadedKey) {
    notes.key_arn = Some(key.arn.clone());
}

// ---- key management ---------------------------------------------------------------------------

#[async_trait::async_trait]
impl KmsOperation for CreateKeyRequest {
    const NAME: &'static str = "CreateKey";
    const READ_ONLY: bool = false;
    type Output = CreateKeyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        if let Some(d) = &self.description {
            length("description", d, 0, 8192)?;
        }
        let spec = match (&self.key_spec, &self.customer_master_key_spec) {
            (Some(a), Some(b)) if a != b => {
                return Err(KmsError::Validation(
                    "KeySpec and CustomerMasterKeySpec must not differ; use KeySpec.".into(),
                ));
            }
            (Some(s), _) | (None, Some(s)) => s.as_str(),
            (None, None) => SYMMETRIC_DEFAULT,
        };
        let usage = self.key_usage.as_deref().unwrap_or("ENCRYPT_DECRYPT");
        if !matches!(
            usage,
            "ENCRYPT_DECRYPT"
                | "SIGN_VERIFY"
                | "GENERATE_VERIFY_MAC"
                | "KEY_AGREEMENT"
                | "ENCAPSULATE_DECAPSULATE"
        ) {
            return Err(KmsError::constraint(
                "keyUsage",
                usage,
                "Member must satisfy enum value set: [SIGN_VERIFY, GENERATE_VERIFY_MAC, ENCRYPT_DECRYPT, KEY_AGREEMENT, ENCAPSULATE_DECAPSULATE]",
            ));
        }
        if asymmetric::family(spec).is_none() {
            return Err(KmsError::UnsupportedOperation(format!(
                "KeySpec {spec} is not supported by this keytrail version."
            )));
        }
        if usage == "KEY_AGREEMENT" || usage == "ENCAPSULATE_DECAPSULATE" {
            return Err(KmsError::UnsupportedOperation(format!(
                "KeyUsage {usage} is not supported by this keytrail version."
            )));
        }
        if !asymmetric::usages(spec).contains(&usage) {
            return Err(KmsError::Validation(format!(
                "KeyUsage {usage} is not compatible with KeySpec {spec}"
            )));
        }
        let origin = self.origin.as_deref().unwrap_or("AWS_KMS");
        if origin != "AWS_KMS" {
            return Err(KmsError::UnsupportedOperation(format!(
                "Origin {origin} is not supported by this keytrail version."
            )));
        }
        if self.multi_region == Some(true) {
            return Err(KmsError::UnsupportedOperation(
                "Multi-Region keys are not supported by this keytrail version.".into(),
            ));
        }
        if self.custom_key_store_id.is_some() || self.xks_key_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Custom key stores are not supported by this keytrail version.".into(),
            ));
        }
        let policy = match &self.policy {
            Some(p) => {
                validate_policy(p)?;
                p.clone()
            }
            None => default_policy(&ctx.principal.account_id),
        };
        let tags = validate_tags(self.tags.as_deref().unwrap_or_default())?;
        let mut merged = Vec::new();
        merge_tags(&mut merged, tags)?;
        let record = KeyRecord {
            key_id: uuid::Uuid::new_v4().to_string(),
            account_id: ctx.principal.account_id.clone(),
            region: ctx.region.clone(),
            created_ms: now_ms(),
            description: self.description.clone().unwrap_or_default(),
            key_usage: usage.into(),
            key_spec: spec.into(),
            origin: origin.into(),
            state: KeyState::Enabled,
            deletion_ms: None,
            pending_window_days: None,
            policy,
            tags: merged,
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation_ms: None,
            rotation_enabled_before_deletion: false,
            on_demand_rotations: 0,
            current_material_id: String::new(),
        };
        let key = kms.insert_key(record).await?;
        note_key(notes, &key);
        let meta = metadata(&key.record);
        notes.response_elements = crate::audit::request_parameters(&CreateKeyResponse {
            key_metadata: Some(meta.clone()),
        });
        Ok(CreateKeyResponse {
            key_metadata: Some(meta),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for DescribeKeyRequest {
    const NAME: &'static str = "DescribeKey";
    const READ_ONLY: bool = true;
    type Output = DescribeKeyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        grant_tokens(&self.grant_tokens)?;
        let key = kms.resolve(ctx, key_id, true).await?;
        note_key(notes, &key);
        Ok(DescribeKeyResponse {
            key_metadata: Some(metadata(&key.record)),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListKeysRequest {
    const NAME: &'static str = "ListKeys";
    const READ_ONLY: bool = true;
    type Output = ListKeysResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let limit = limit(self.limit, 100)?;
        let rows = kms
            .list_key_rows(&ctx.principal.account_id, &ctx.region)
            .await?;
        let (page, next, truncated) = paginate(rows, |r| r.key_id.clone(), &self.marker, limit)?;
        Ok(ListKeysResponse {
            keys: Some(
                page.iter()
                    .map(|r| KeyListEntry {
                        key_id: Some(r.key_id.clone()),
                        key_arn: Some(crate::keys::key_arn(&r.region, &r.account_id, &r.key_id)),
                    })
                    .collect(),
            ),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for UpdateKeyDescriptionRequest {
    const NAME: &'static str = "UpdateKeyDescription";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let description = required(&self.description, "description")?;
        length("description", description, 0, 8192)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, _| {
            if r.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{} is pending deletion.",
                    r.arn()
                )));
            }
            r.description = description.clone();
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for EnableKeyRequest {
    const NAME: &'static str = "EnableKey";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            if r.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{arn} is pending deletion."
                )));
            }
            r.state = KeyState::Enabled;
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for DisableKeyRequest {
    const NAME: &'static str = "DisableKey";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            if r.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{arn} is pending deletion."
                )));
            }
            r.state = KeyState::Disabled;
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for ScheduleKeyDeletionRequest {
    const NAME: &'static str = "ScheduleKeyDeletion";
    const READ_ONLY: bool = false;
    type Output = ScheduleKeyDeletionResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let days = self.pending_window_in_days.unwrap_or(30);
        range("pendingWindowInDays", days, 7, 30)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let updated = kms
            .update_key(&key, |r, arn| {
                if r.state == KeyState::PendingDeletion {
                    return Err(KmsError::InvalidState(format!(
                        "{arn} is pending deletion."
                    )));
                }
                r.state = KeyState::PendingDeletion;
                r.deletion_ms = Some(now_ms() + days * DAY_MS);
                r.pending_window_days = Some(days);
                r.rotation_enabled_before_deletion = r.rotation_enabled;
                r.rotation_enabled = false;
                Ok(())
            })
            .await?;
        let response = ScheduleKeyDeletionResponse {
            key_id: Some(updated.arn.clone()),
            deletion_date: updated.record.deletion_ms.map(epoch_seconds),
            key_state: Some(KeyState::PendingDeletion.as_str().into()),
            pending_window_in_days: Some(days),
        };
        notes.response_elements = crate::audit::request_parameters(&response);
        Ok(response)
    }
}

#[async_trait::async_trait]
impl KmsOperation for CancelKeyDeletionRequest {
    const NAME: &'static str = "CancelKeyDeletion";
    const READ_ONLY: bool = false;
    type Output = KeyIdResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            if r.state != KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{arn} is not pending deletion."
                )));
            }
            r.state = KeyState::Disabled;
            r.deletion_ms = None;
            r.pending_window_days = None;
            r.rotation_enabled = r.rotation_enabled_before_deletion;
            Ok(())
        })
        .await?;
        let response = KeyIdResponse {
            key_id: Some(key.arn.clone()),
        };
        notes.response_elements = crate::audit::request_parameters(&response);
        Ok(response)
    }
}

// ---- aliases ----------------------------------------------------------------------------------

async fn alias_target_key(
    kms: &Kms,
    ctx: &CallContext,
    target: &Option<String>,
) -> KmsResult<std::sync::Arc<LoadedKey>> {
    let target = key_id_member(target, "targetKeyId")?;
    let key = kms.resolve(ctx, target, false).await?;
    Kms::not_pending_deletion(&key)?;
    Ok(key)
}

fn alias_resource(ctx: &CallContext, name: &str) -> Resource {
    Resource {
        account_id: Some(ctx.principal.account_id.clone()),
        resource_type: "AWS::KMS::Alias".into(),
        arn: alias_arn(&ctx.region, &ctx.principal.account_id, name),
    }
}

#[async_trait::async_trait]
impl KmsOperation for CreateAliasRequest {
    const NAME: &'static str = "CreateAlias";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let name = required(&self.alias_name, "aliasName")?;
        validate_alias_name(name)?;
        notes.extra_resources.push(alias_resource(ctx, name));
        let key = alias_target_key(kms, ctx, &self.target_key_id).await?;
        note_key(notes, &key);
        let existing = kms
            .aliases_of(&ctx.principal.account_id, &ctx.region)
            .await?;
        if existing
            .values()
            .filter(|a| a.target_key_id == key.record.key_id)
            .count()
            >= MAX_ALIASES_PER_KEY
        {
            return Err(KmsError::LimitExceeded(format!(
                "A KMS key can have at most {MAX_ALIASES_PER_KEY} aliases."
            )));
        }
        let now = now_ms();
        kms.create_alias_row(AliasRow {
            account_id: ctx.principal.account_id.clone(),
            region: ctx.region.clone(),
            alias_name: name.clone(),
            target_key_id: key.record.key_id.clone(),
            created_at_ms: now,
            updated_at_ms: now,
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for UpdateAliasRequest {
    const NAME: &'static str = "UpdateAlias";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let name = required(&self.alias_name, "aliasName")?;
        validate_alias_name(name)?;
        notes.extra_resources.push(alias_resource(ctx, name));
        let key = alias_target_key(kms, ctx, &self.target_key_id).await?;
        note_key(notes, &key);
        kms.update_alias_row(AliasRow {
            account_id: ctx.principal.account_id.clone(),
            region: ctx.region.clone(),
            alias_name: name.clone(),
            target_key_id: key.record.key_id.clone(),
            created_at_ms: 0,
            updated_at_ms: now_ms(),
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for DeleteAliasRequest {
    const NAME: &'static str = "DeleteAlias";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let name = required(&self.alias_name, "aliasName")?;
        length("aliasName", name, 1, 256)?;
        notes.extra_resources.push(alias_resource(ctx, name));
        kms.delete_alias_row(&ctx.principal.account_id, &ctx.region, name)
            .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListAliasesRequest {
    const NAME: &'static str = "ListAliases";
    const READ_ONLY: bool = true;
    type Output = ListAliasesResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let limit = limit(self.limit, 50)?;
        let filter = match &self.key_id {
            Some(k) => {
                length("keyId", k, 1, 2048)?;
                let key = kms.resolve(ctx, k, false).await?;
                note_key(notes, &key);
                Some(key.record.key_id.clone())
            }
            None => None,
        };
        let aliases = kms
            .aliases_of(&ctx.principal.account_id, &ctx.region)
            .await?;
        let rows: Vec<AliasRow> = aliases
            .values()
            .filter(|a| filter.as_ref().is_none_or(|k| &a.target_key_id == k))
            .cloned()
            .collect();
        let (page, next, truncated) =
            paginate(rows, |a| a.alias_name.clone(), &self.marker, limit)?;
        Ok(ListAliasesResponse {
            aliases: Some(
                page.iter()
                    .map(|a| AliasListEntry {
                        alias_name: Some(a.alias_name.clone()),
                        alias_arn: Some(alias_arn(&a.region, &a.account_id, &a.alias_name)),
                        target_key_id: Some(a.target_key_id.clone()),
                        creation_date: Some(epoch_seconds(a.created_at_ms)),
                        last_updated_date: Some(epoch_seconds(a.updated_at_ms)),
                    })
                    .collect(),
            ),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}

// ---- cryptography -------------------------------------------------------------------------------

fn header_for(key: &LoadedKey) -> KmsResult<BlobHeader> {
    let key_id = uuid::Uuid::parse_str(&key.record.key_id)
        .map_err(|_| KmsError::Internal("A stored key id is malformed.".into()))?;
    let material = key.current()?;
    Ok(BlobHeader {
        region: key.record.region.clone(),
        account_id: key.record.account_id.clone(),
        key_id: *key_id.as_bytes(),
        material_id: material.id,
    })
}

fn seal(
    key: &LoadedKey,
    ctx: &EncryptionContext,
    plaintext: &[u8],
) -> KmsResult<(Vec<u8>, String)> {
    let header = header_for(key)?;
    let material = key.current()?;
    let blob = envelope::seal(material.key.aes()?, &header, ctx, plaintext)
        .map_err(|_| KmsError::Internal("Encryption failed.".into()))?;
    Ok((blob, material.id_hex.clone()))
}

fn invalid_ciphertext() -> KmsError {
    KmsError::InvalidCiphertext(String::new())
}

/// Opens a ciphertext blob: the key it names (checked against `expected_key_id` when given),
/// then the backing key, then AES-GCM with the context. Returns the key and the plaintext.
async fn open(
    kms: &Kms,
    call: &CallContext,
    blob: &[u8],
    expected_key_id: Option<&str>,
    context: &EncryptionContext,
    notes: &mut AuditNotes,
) -> KmsResult<(
    std::sync::Arc<LoadedKey>,
    zeroize::Zeroizing<Vec<u8>>,
    String,
)> {
    let parsed = envelope::parse(blob).map_err(|_| invalid_ciphertext())?;
    let header = &parsed.header;
    if header.account_id != call.principal.account_id || header.region != call.region {
        return Err(invalid_ciphertext());
    }
    let blob_key_id = header.key_id_string();
    let key = kms
        .resolve(call, &blob_key_id, false)
        .await
        .map_err(|e| match e {
            KmsError::NotFound(_) => invalid_ciphertext(),
            other => other,
        })?;
    note_key(notes, &key);
    if let Some(expected) = expected_key_id {
        let named = kms.resolve(call, expected, true).await?;
        if named.record.key_id != key.record.key_id {
            return Err(KmsError::IncorrectKey(
                "The key ID in the request does not identify a CMK that can perform this operation."
                    .into(),
            ));
        }
    }
    Kms::usable_for_crypto(&key)?;
    let material = key
        .material(&header.material_id)
        .ok_or_else(invalid_ciphertext)?;
    let plaintext =
        envelope::open(material.key.aes()?, &parsed, context).map_err(|_| invalid_ciphertext())?;
    let material_id = material.id_hex.clone();
    Ok((key, plaintext, material_id))
}

fn data_key_length(number_of_bytes: Option<i64>, key_spec: &Option<String>) -> KmsResult<usize> {
    match (number_of_bytes, key_spec.as_deref()) {
        (Some(_), Some(_)) | (None, None) => Err(KmsError::Validation(
            "Please specify either number of bytes or key spec.".into(),
        )),
        (Some(n), None) => {
            range("numberOfBytes", n, 1, 1024)?;
            Ok(usize::try_from(n).unwrap_or(0))
        }
        (None, Some("AES_256")) => Ok(32),
        (None, Some("AES_128")) => Ok(16),
        (None, Some(other)) => Err(KmsError::constraint(
            "keySpec",
            other,
            "Member must satisfy enum value set: [AES_256, AES_128]",
        )),
    }
}

#[async_trait::async_trait]
impl KmsOperation for EncryptRequest {
    const NAME: &'static str = "Encrypt";
    const READ_ONLY: bool = true;
    type Output = EncryptResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let plaintext = required(&self.plaintext, "plaintext")?;
        if plaintext.0.is_empty() || plaintext.0.len() > 4096 {
            return Err(KmsError::constraint(
                "plaintext",
                "[SENSITIVE]",
                "Member must have length between 1 and 4096",
            ));
        }
        let enc_ctx = context(&self.encryption_context)?;
        grant_tokens(&self.grant_tokens)?;
        let key = kms.resolve(ctx, key_id, true).await?;
        note_key(notes, &key);
        Kms::usable_for_crypto(&key)?;
        if key.record.key_spec != SYMMETRIC_DEFAULT {
            require_usage(&key, "ENCRYPT_DECRYPT", Self::NAME)?;
            let (algorithm, oaep) = rsa_algorithm(&self.encryption_algorithm, &key)?;
            no_context_for_asymmetric(&enc_ctx)?;
            let material = key.current()?;
            let max = material.key.oaep_max_plaintext(oaep);
            if plaintext.0.len() > max {
                return Err(KmsError::Validation(format!(
                    "Plaintext is {} bytes; {} with {} takes at most {max}.",
                    plaintext.0.len(),
                    key.record.key_spec,
                    algorithm
                )));
            }
            dry_run(self.dry_run)?;
            let blob = material.key.rsa_encrypt(oaep, &plaintext.0)?;
            return Ok(EncryptResponse {
                ciphertext_blob: Some(Blob(blob)),
                key_id: Some(key.arn.clone()),
                encryption_algorithm: Some(algorithm),
            });
        }
        let algorithm =
            symmetric_algorithm("encryptionAlgorithm", &self.encryption_algorithm, &key)?;
        dry_run(self.dry_run)?;
        let (blob, material_id) = seal(&key, &enc_ctx, &plaintext.0)?;
        notes.key_material_id = Some(material_id);
        Ok(EncryptResponse {
            ciphertext_blob: Some(Blob(blob)),
            key_id: Some(key.arn.clone()),
            encryption_algorithm: Some(algorithm),
        })
    }
}

/// The RSA-OAEP algorithm a request names; asymmetric keys have no default (§2.4).
fn rsa_algorithm(
    value: &Option<String>,
    key: &LoadedKey,
) -> KmsResult<(String, &'static aws_lc_rs::rsa::OaepAlgorithm)> {
    let name = value.as_deref().unwrap_or(SYMMETRIC_DEFAULT);
    match asymmetric::oaep(name) {
        Some(alg) => Ok((name.to_string(), alg)),
        None => Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {name} is incompatible with key spec {}.",
            key.record.key_spec
        ))),
    }
}

fn no_context_for_asymmetric(context: &EncryptionContext) -> KmsResult<()> {
    if context.is_empty() {
        Ok(())
    } else {
        Err(KmsError::Validation(
            "EncryptionContext is only supported for symmetric encryption KMS keys.".into(),
        ))
    }
}

struct AsymmetricInput<'a> {
    blob: &'a [u8],
    key_id: Option<&'a str>,
    algorithm: &'a Option<String>,
    context: &'a EncryptionContext,
    operation: &'static str,
}

/// Decrypts with the key the request names when it is an RSA key: RSA ciphertexts are raw
/// OAEP output and carry no key id, so AWS requires `KeyId` for them. `None` for symmetric.
async fn open_asymmetric(
    kms: &Kms,
    call: &CallContext,
    input: AsymmetricInput<'_>,
    notes: &mut AuditNotes,
) -> KmsResult<
    Option<(
        std::sync::Arc<LoadedKey>,
        zeroize::Zeroizing<Vec<u8>>,
        String,
    )>,
> {
    let Some(key_id) = input.key_id else {
        return Ok(None);
    };
    let key = kms.resolve(call, key_id, true).await?;
    if key.record.key_spec == SYMMETRIC_DEFAULT {
        return Ok(None);
    }
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_usage(&key, "ENCRYPT_DECRYPT", input.operation)?;
    let (name, oaep) = rsa_algorithm(input.algorithm, &key)?;
    no_context_for_asymmetric(input.context)?;
    let plaintext = key
        .current()?
        .key
        .rsa_decrypt(oaep, input.blob)
        .ok_or_else(invalid_ciphertext)?;
    Ok(Some((key, plaintext, name)))
}

fn ciphertext_member<'a>(blob: &'a Option<Blob>, field: &str) -> KmsResult<&'a [u8]> {
    let blob = required(blob, field)?;
    if blob.0.is_empty() || blob.0.len() > 6144 {
        return Err(KmsError::constraint(
            field,
            "[BLOB]",
            "Member must have length between 1 and 6144",
        ));
    }
    Ok(&blob.0)
}

#[async_trait::async_trait]
impl KmsOperation for DecryptRequest {
    const NAME: &'static str = "Decrypt";
    const READ_ONLY: bool = true;
    type Output = DecryptResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let blob = ciphertext_member(&self.ciphertext_blob, "ciphertextBlob")?;
        let enc_ctx = context(&self.encryption_context)?;
        grant_tokens(&self.grant_tokens)?;
        if let Some(k) = &self.key_id {
            length("keyId", k, 1, 2048)?;
        }
        if let Some((key, plaintext, algorithm)) = open_asymmetric(
            kms,
            ctx,
            AsymmetricInput {
                blob,
                key_id: self.key_id.as_deref(),
                algorithm: &self.encryption_algorithm,
                context: &enc_ctx,
                operation: Self::NAME,
            },
            notes,
        )
        .await?
        {
            dry_run(self.dry_run)?;
            return Ok(DecryptResponse {
                key_id: Some(key.arn.clone()),
                plaintext: Some(SecretBlob(plaintext)),
                encryption_algorithm: Some(algorithm),
                key_material_id: None,
            });
        }
        let (key, plaintext, material_id) =
            open(kms, ctx, blob, self.key_id.as_deref(), &enc_ctx, notes).await?;
        let algorithm =
            symmetric_algorithm("encryptionAlgorithm", &self.encryption_algorithm, &key)?;
        dry_run(self.dry_run)?;
        notes.key_material_id = Some(material_id.clone());
        Ok(DecryptResponse {
            key_id: Some(key.arn.clone()),
            plaintext: Some(SecretBlob(plaintext)),
            encryption_algorithm: Some(algorithm),
            key_material_id: Some(material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for ReEncryptRequest {
    const NAME: &'static str = "ReEncrypt";
    const READ_ONLY: bool = true;
    type Output = ReEncryptResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let blob = ciphertext_member(&self.ciphertext_blob, "ciphertextBlob")?;
        let destination = key_id_member(&self.destination_key_id, "destinationKeyId")?;
        let source_ctx = context(&self.source_encryption_context)?;
        let destination_ctx = context(&self.destination_encryption_context)?;
        grant_tokens(&self.grant_tokens)?;
        let asymmetric_source = open_asymmetric(
            kms,
            ctx,
            AsymmetricInput {
                blob,
                key_id: self.source_key_id.as_deref(),
                algorithm: &self.source_encryption_algorithm,
                context: &source_ctx,
                operation: Self::NAME,
            },
            notes,
        )
        .await?;
        let (source, plaintext, source_alg, source_material) = match asymmetric_source {
            Some((key, plaintext, alg)) => (key, plaintext, alg, None),
            None => {
                let (key, plaintext, material) = open(
                    kms,
                    ctx,
                    blob,
                    self.source_key_id.as_deref(),
                    &source_ctx,
                    notes,
                )
                .await?;
                let alg = symmetric_algorithm(
                    "sourceEncryptionAlgorithm",
                    &self.source_encryption_algorithm,
                    &key,
                )?;
                (key, plaintext, alg, Some(material))
            }
        };
        let dest = kms.resolve(ctx, destination, true).await?;
        notes.extra_resources.push(Resource {
            account_id: Some(ctx.principal.account_id.clone()),
            resource_type: "AWS::KMS::Key".into(),
            arn: dest.arn.clone(),
        });
        Kms::usable_for_crypto(&dest)?;
        let (new_blob, dest_alg, dest_material) = if dest.record.key_spec == SYMMETRIC_DEFAULT {
            let dest_alg = symmetric_algorithm(
                "destinationEncryptionAlgorithm",
                &self.destination_encryption_algorithm,
                &dest,
            )?;
            dry_run(self.dry_run)?;
            let (new_blob, material) = seal(&dest, &destination_ctx, &plaintext)?;
            (new_blob, dest_alg, Some(material))
        } else {
            require_usage(&dest, "ENCRYPT_DECRYPT", Self::NAME)?;
            let (dest_alg, oaep) = rsa_algorithm(&self.destination_encryption_algorithm, &dest)?;
            no_context_for_asymmetric(&destination_ctx)?;
            let material = dest.current()?;
            if plaintext.len() > material.key.oaep_max_plaintext(oaep) {
                return Err(KmsError::Validation(format!(
                    "The plaintext is too long for {} with {dest_alg}.",
                    dest.record.key_spec
                )));
            }
            dry_run(self.dry_run)?;
            (material.key.rsa_encrypt(oaep, &plaintext)?, dest_alg, None)
        };
        notes.key_material_id = source_material.clone();
        Ok(ReEncryptResponse {
            ciphertext_blob: Some(Blob(new_blob)),
            source_key_id: Some(source.arn.clone()),
            key_id: Some(dest.arn.clone()),
            source_encryption_algorithm: Some(source_alg),
            destination_encryption_algorithm: Some(dest_alg),
            source_key_material_id: source_material,
            destination_key_material_id: dest_material,
        })
    }
}

/// The members GenerateDataKey and GenerateDataKeyWithoutPlaintext share.
struct DataKeyInput<'a> {
    operation: &'static str,
    key_id: &'a Option<String>,
    encryption_context: &'a Option<EncryptionContextMap>,
    number_of_bytes: Option<i64>,
    key_spec: &'a Option<String>,
    grant_tokens: &'a Option<Vec<String>>,
    dry_run: Option<bool>,
}

struct DataKey {
    key: std::sync::Arc<LoadedKey>,
    plaintext: zeroize::Zeroizing<Vec<u8>>,
    blob: Vec<u8>,
    material_id: String,
}

async fn generate_data_key(
    kms: &Kms,
    ctx: &CallContext,
    notes: &mut AuditNotes,
    input: DataKeyInput<'_>,
) -> KmsResult<DataKey> {
    let key_id = key_id_member(input.key_id, "keyId")?;
    let len = data_key_length(input.number_of_bytes, input.key_spec)?;
    let enc_ctx = context(input.encryption_context)?;
    grant_tokens(input.grant_tokens)?;
    let key = kms.resolve(ctx, key_id, true).await?;
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_symmetric(&key, input.operation)?;
    dry_run(input.dry_run)?;
    let plaintext = envelope::random(len)
        .map_err(|_| KmsError::Internal("Random generator failure.".into()))?;
    let (blob, material_id) = seal(&key, &enc_ctx, &plaintext)?;
    notes.key_material_id = Some(material_id.clone());
    Ok(DataKey {
        key,
        plaintext,
        blob,
        material_id,
    })
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyRequest {
    const NAME: &'static str = "GenerateDataKey";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let data_key = generate_data_key(
            kms,
            ctx,
            notes,
            DataKeyInput {
                operation: Self::NAME,
                key_id: &self.key_id,
                encryption_context: &self.encryption_context,
                number_of_bytes: self.number_of_bytes,
                key_spec: &self.key_spec,
                grant_tokens: &self.grant_tokens,
                dry_run: self.dry_run,
            },
        )
        .await?;
        Ok(GenerateDataKeyResponse {
            ciphertext_blob: Some(Blob(data_key.blob)),
            plaintext: Some(SecretBlob(data_key.plaintext)),
            key_id: Some(data_key.key.arn.clone()),
            key_material_id: Some(data_key.material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyWithoutPlaintextRequest {
    const NAME: &'static str = "GenerateDataKeyWithoutPlaintext";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyWithoutPlaintextResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let data_key = generate_data_key(
            kms,
            ctx,
            notes,
            DataKeyInput {
                operation: Self::NAME,
                key_id: &self.key_id,
                encryption_context: &self.encryption_context,
                number_of_bytes: self.number_of_bytes,
                key_spec: &self.key_spec,
                grant_tokens: &self.grant_tokens,
                dry_run: self.dry_run,
            },
        )
        .await?;
        Ok(GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: Some(Blob(data_key.blob)),
            key_id: Some(data_key.key.arn.clone()),
            key_material_id: Some(data_key.material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for GenerateRandomRequest {
    const NAME: &'static str = "GenerateRandom";
    const READ_ONLY: bool = true;
    type Output = GenerateRandomResponse;

    async fn run(
        &self,
        _kms: &Kms,
        _ctx: &CallContext,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let n = *required(&self.number_of_bytes, "numberOfBytes")?;
        range("numberOfBytes", n, 1, 1024)?;
        if self.custom_key_store_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Custom key stores are not supported by this keytrail version.".into(),
            ));
        }
        let bytes = envelope::random(usize::try_from(n).unwrap_or(0))
            .map_err(|_| KmsError::Internal("Random generator failure.".into()))?;
        Ok(GenerateRandomResponse {
            plaintext: Some(SecretBlob(bytes)),
        })
    }
}

// ---- rotation ------------------------------------------------------------------------------------

/// Only symmetric encryption keys with KMS-generated material rotate (§2.12).
fn rotation_supported(r: &KeyRecord, arn: &str) -> KmsResult<()> {
    if r.key_spec == SYMMETRIC_DEFAULT {
        return Ok(());
    }
    Err(KmsError::UnsupportedOperation(format!(
        "{arn} has key spec {}: only symmetric encryption keys can be rotated.",
        r.key_spec
    )))
}

fn rotation_state_check(r: &KeyRecord, arn: &str) -> KmsResult<()> {
    rotation_supported(r, arn)?;
    match r.state {
        KeyState::Enabled => Ok(()),
        KeyState::Disabled => Err(KmsError::Disabled(format!("{arn} is disabled."))),
        KeyState::PendingDeletion => Err(KmsError::InvalidState(format!(
            "{arn} is pending deletion."
        ))),
    }
}

#[async_trait::async_trait]
impl KmsOperation for EnableKeyRotationRequest {
    const NAME: &'static str = "EnableKeyRotation";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let period = self.rotation_period_in_days.unwrap_or(365);
        range("rotationPeriodInDays", period, 90, 2560)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            rotation_state_check(r, arn)?;
            r.rotation_enabled = true;
            r.rotation_period_days = Some(period);
            r.next_rotation_ms = Some(now_ms() + period * DAY_MS);
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for DisableKeyRotationRequest {
    const NAME: &'static str = "DisableKeyRotation";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            rotation_state_check(r, arn)?;
            r.rotation_enabled = false;
            r.next_rotation_ms = None;
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for GetKeyRotationStatusRequest {
    const NAME: &'static str = "GetKeyRotationStatus";
    const READ_ONLY: bool = true;
    type Output = GetKeyRotationStatusResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        rotation_supported(&key.record, &key.arn)?;
        let r = &key.record;
        Ok(GetKeyRotationStatusResponse {
            key_rotation_enabled: Some(r.rotation_enabled),
            key_id: Some(key.arn.clone()),
            rotation_period_in_days: r.rotation_period_days.filter(|_| r.rotation_enabled),
            next_rotation_date: r
                .next_rotation_ms
                .filter(|_| r.rotation_enabled)
                .map(epoch_seconds),
            on_demand_rotation_start_date: None,
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for RotateKeyOnDemandRequest {
    const NAME: &'static str = "RotateKeyOnDemand";
    const READ_ONLY: bool = false;
    type Output = KeyIdResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let rotated = kms
            .rotate(&key, "ON_DEMAND", |r, arn| {
                rotation_state_check(r, arn)?;
                if r.on_demand_rotations >= MAX_ON_DEMAND_ROTATIONS {
                    return Err(KmsError::LimitExceeded(format!(
                        "{arn} has reached the limit of {MAX_ON_DEMAND_ROTATIONS} on-demand rotations."
                    )));
                }
                r.on_demand_rotations += 1;
                Ok(())
            })
            .await?;
        notes.key_material_id = Some(rotated.record.current_material_id.clone());
        Ok(KeyIdResponse {
            key_id: Some(key.arn.clone()),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListKeyRotationsRequest {
    const NAME: &'static str = "ListKeyRotations";
    const READ_ONLY: bool = true;
    type Output = ListKeyRotationsResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let limit = limit(self.limit, 100)?;
        let include_all = match self.include_key_material.as_deref() {
            None | Some("ROTATIONS_ONLY") => false,
            Some("ALL_KEY_MATERIAL") => true,
            Some(other) => {
                return Err(KmsError::constraint(
                    "includeKeyMaterial",
                    other,
                    "Member must satisfy enum value set: [ALL_KEY_MATERIAL, ROTATIONS_ONLY]",
                ));
            }
        };
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        rotation_supported(&key.record, &key.arn)?;
        let entries: Vec<(usize, RotationsListEntry)> = key
            .materials
            .iter()
            .enumerate()
            .filter(|(_, m)| include_all || m.rotation_type.is_some())
            .map(|(i, m)| {
                (
                    i,
                    RotationsListEntry {
                        key_id: Some(key.arn.clone()),
                        key_material_id: Some(m.id_hex.clone()),
                        key_material_state: Some(
                            if m.id_hex == key.record.current_material_id {
                                "CURRENT"
                            } else {
                                "NON_CURRENT"
                            }
                            .into(),
                        ),
                        rotation_date: m
                            .rotation_type
                            .as_ref()
                            .map(|_| epoch_seconds(m.created_ms)),
                        rotation_type: m.rotation_type.clone(),
                    },
                )
            })
            .collect();
        let (page, next, truncated) =
            paginate(entries, |(i, _)| format!("{i:08}"), &self.marker, limit)?;
        Ok(ListKeyRotationsResponse {
            rotations: Some(page.into_iter().map(|(_, e)| e).collect()),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}

// ---- tags ----------------------------------------------------------------------------------------

#[async_trait::async_trait]
impl KmsOperation for TagResourceRequest {
    const NAME: &'static str = "TagResource";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let tags = validate_tags(required(&self.tags, "tags")?)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            if r.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{arn} is pending deletion."
                )));
            }
            merge_tags(&mut r.tags, tags)
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for UntagResourceRequest {
    const NAME: &'static str = "UntagResource";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let keys = required(&self.tag_keys, "tagKeys")?;
        for k in keys {
            length("tagKeys", k, 1, 128)?;
        }
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            if r.state == KeyState::PendingDeletion {
                return Err(KmsError::InvalidState(format!(
                    "{arn} is pending deletion."
                )));
            }
            r.tags.retain(|(k, _)| !keys.contains(k));
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListResourceTagsRequest {
    const NAME: &'static str = "ListResourceTags";
    const READ_ONLY: bool = true;
    type Output = ListResourceTagsResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let limit = limit(self.limit, 50)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let indexed: Vec<(usize, (String, String))> =
            key.record.tags.iter().cloned().enumerate().collect();
        let (page, next, truncated) =
            paginate(indexed, |(i, _)| format!("{i:08}"), &self.marker, limit)?;
        Ok(ListResourceTagsResponse {
            tags: Some(
                page.into_iter()
                    .map(|(_, (k, v))| Tag {
                        tag_key: Some(k),
                        tag_value: Some(v),
                    })
                    .collect(),
            ),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}

// ---- policies ------------------------------------------------------------------------------------

fn policy_name(name: &Option<String>) -> KmsResult<()> {
    match name.as_deref() {
        None | Some("default") => Ok(()),
        Some(other) => {
            length("policyName", other, 1, 128)?;
            if !other
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return Err(KmsError::constraint(
                    "policyName",
                    other,
                    "Member must satisfy regular expression pattern: [\\w]+",
                ));
            }
            Err(KmsError::NotFound(format!(
                "No such policy exists: {other}"
            )))
        }
    }
}

#[async_trait::async_trait]
impl KmsOperation for GetKeyPolicyRequest {
    const NAME: &'static str = "GetKeyPolicy";
    const READ_ONLY: bool = true;
    type Output = GetKeyPolicyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        policy_name(&self.policy_name)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        Ok(GetKeyPolicyResponse {
            policy: Some(key.record.policy.clone()),
            policy_name: Some("default".into()),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for PutKeyPolicyRequest {
    const NAME: &'static str = "PutKeyPolicy";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        if self.policy_name.as_deref().is_some_and(|n| n != "default") {
            policy_name(&self.policy_name)?;
        }
        let policy = required(&self.policy, "policy")?;
        validate_policy(policy)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, _| {
            r.policy = policy.clone();
            Ok(())
        })
        .await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for ListKeyPoliciesRequest {
    const NAME: &'static str = "ListKeyPolicies";
    const READ_ONLY: bool = true;
    type Output = ListKeyPoliciesResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let limit = limit(self.limit, 100)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let (page, next, truncated) = paginate(
            vec!["default".to_string()],
            Clone::clone,
            &self.marker,
            limit,
        )?;
        Ok(ListKeyPoliciesResponse {
            policy_names: Some(page),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}

// ---- asymmetric and HMAC keys (§2.4) -------------------------------------------------------------

fn message_member(message: &Option<SecretBlob>) -> KmsResult<&[u8]> {
    let message = required(message, "message")?;
    if message.0.is_empty() || message.0.len() > 4096 {
        return Err(KmsError::constraint(
            "message",
            "[SENSITIVE]",
            "Member must have length between 1 and 4096",
        ));
    }
    Ok(&message.0)
}

#[async_trait::async_trait]
impl KmsOperation for GetPublicKeyRequest {
    const NAME: &'static str = "GetPublicKey";
    const READ_ONLY: bool = true;
    type Output = GetPublicKeyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        grant_tokens(&self.grant_tokens)?;
        let key = kms.resolve(ctx, key_id, true).await?;
        note_key(notes, &key);
        Kms::usable_for_crypto(&key)?;
        let material = key.current()?;
        let Some(public) = material.key.public_key_der() else {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} is a {} key, which has no public key.",
                key.arn, key.record.key_spec
            )));
        };
        let r = &key.record;
        Ok(GetPublicKeyResponse {
            key_id: Some(key.arn.clone()),
            public_key: Some(Blob(public.to_vec())),
            customer_master_key_spec: Some(r.key_spec.clone()),
            key_spec: Some(r.key_spec.clone()),
            key_usage: Some(r.key_usage.clone()),
            encryption_algorithms: non_empty(asymmetric::encryption_algorithms(
                &r.key_spec,
                &r.key_usage,
            )),
            signing_algorithms: non_empty(asymmetric::signing_algorithms(
                &r.key_spec,
                &r.key_usage,
            )),
        })
    }
}

/// The members Sign and Verify share.
struct SigningInput<'a> {
    key_id: &'a Option<String>,
    algorithm: &'a Option<String>,
    message: &'a [u8],
    message_type: &'a Option<String>,
    operation: &'static str,
}

/// Checks shared by Sign and Verify; returns the key and the digest to sign or verify.
async fn signing_input(
    kms: &Kms,
    ctx: &CallContext,
    notes: &mut AuditNotes,
    input: SigningInput<'_>,
) -> KmsResult<(std::sync::Arc<LoadedKey>, String, aws_lc_rs::digest::Digest)> {
    let SigningInput {
        key_id,
        algorithm,
        message,
        message_type,
        operation,
    } = input;
    let key_id = key_id_member(key_id, "keyId")?;
    let algorithm = required(algorithm, "signingAlgorithm")?;
    let key = kms.resolve(ctx, key_id, true).await?;
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_usage(&key, "SIGN_VERIFY", operation)?;
    if !asymmetric::signing_algorithms(&key.record.key_spec, &key.record.key_usage)
        .contains(algorithm)
    {
        return Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {algorithm} is incompatible with key spec {}.",
            key.record.key_spec
        )));
    }
    let digest =
        asymmetric::message_digest(algorithm, message, message_type.as_deref().unwrap_or("RAW"))?;
    Ok((key, algorithm.clone(), digest))
}

#[async_trait::async_trait]
impl KmsOperation for SignRequest {
    const NAME: &'static str = "Sign";
    const READ_ONLY: bool = true;
    type Output = SignResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        grant_tokens(&self.grant_tokens)?;
        let (key, algorithm, digest) = signing_input(
            kms,
            ctx,
            notes,
            SigningInput {
                key_id: &self.key_id,
                algorithm: &self.signing_algorithm,
                message,
                message_type: &self.message_type,
                operation: Self::NAME,
            },
        )
        .await?;
        dry_run(self.dry_run)?;
        let signature = asymmetric::sign(
            &key.current()?.key,
            &key.record.key_spec,
            &algorithm,
            &digest,
        )?;
        Ok(SignResponse {
            key_id: Some(key.arn.clone()),
            signature: Some(Blob(signature)),
            signing_algorithm: Some(algorithm),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for VerifyRequest {
    const NAME: &'static str = "Verify";
    const READ_ONLY: bool = true;
    type Output = VerifyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        let signature = required(&self.signature, "signature")?;
        if signature.0.is_empty() || signature.0.len() > 6144 {
            return Err(KmsError::constraint(
                "signature",
                "[BLOB]",
                "Member must have length between 1 and 6144",
            ));
        }
        grant_tokens(&self.grant_tokens)?;
        let (key, algorithm, digest) = signing_input(
            kms,
            ctx,
            notes,
            SigningInput {
                key_id: &self.key_id,
                algorithm: &self.signing_algorithm,
                message,
                message_type: &self.message_type,
                operation: Self::NAME,
            },
        )
        .await?;
        dry_run(self.dry_run)?;
        let valid = asymmetric::verify(
            &key.current()?.key,
            &key.record.key_spec,
            &algorithm,
            &digest,
            &signature.0,
        )?;
        if !valid {
            return Err(KmsError::InvalidSignature(String::new()));
        }
        Ok(VerifyResponse {
            key_id: Some(key.arn.clone()),
            signature_valid: Some(true),
            signing_algorithm: Some(algorithm),
        })
    }
}

async fn mac_key(
    kms: &Kms,
    ctx: &CallContext,
    notes: &mut AuditNotes,
    key_id: &Option<String>,
    algorithm: &Option<String>,
    operation: &'static str,
) -> KmsResult<(std::sync::Arc<LoadedKey>, String)> {
    let key_id = key_id_member(key_id, "keyId")?;
    let algorithm = required(algorithm, "macAlgorithm")?;
    let key = kms.resolve(ctx, key_id, true).await?;
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_usage(&key, "GENERATE_VERIFY_MAC", operation)?;
    if !asymmetric::mac_algorithms(&key.record.key_spec).contains(algorithm) {
        return Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {algorithm} is incompatible with key spec {}.",
            key.record.key_spec
        )));
    }
    Ok((key, algorithm.clone()))
}

#[async_trait::async_trait]
impl KmsOperation for GenerateMacRequest {
    const NAME: &'static str = "GenerateMac";
    const READ_ONLY: bool = true;
    type Output = GenerateMacResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        grant_tokens(&self.grant_tokens)?;
        let (key, algorithm) = mac_key(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.mac_algorithm,
            Self::NAME,
        )
        .await?;
        dry_run(self.dry_run)?;
        let hmac_key = key
            .current()?
            .key
            .hmac()
            .ok_or_else(|| KmsError::Internal("HMAC key material is missing.".into()))?;
        let tag = aws_lc_rs::hmac::sign(hmac_key, message);
        Ok(GenerateMacResponse {
            mac: Some(Blob(tag.as_ref().to_vec())),
            mac_algorithm: Some(algorithm),
            key_id: Some(key.arn.clone()),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for VerifyMacRequest {
    const NAME: &'static str = "VerifyMac";
    const READ_ONLY: bool = true;
    type Output = VerifyMacResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        let mac = required(&self.mac, "mac")?;
        grant_tokens(&self.grant_tokens)?;
        let (key, algorithm) = mac_key(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.mac_algorithm,
            Self::NAME,
        )
        .await?;
        dry_run(self.dry_run)?;
        let hmac_key = key
            .current()?
            .key
            .hmac()
            .ok_or_else(|| KmsError::Internal("HMAC key material is missing.".into()))?;
        if aws_lc_rs::hmac::verify(hmac_key, message, &mac.0).is_err() {
            return Err(KmsError::InvalidMac(String::new()));
        }
        Ok(VerifyMacResponse {
            key_id: Some(key.arn.clone()),
            mac_valid: Some(true),
            mac_algorithm: Some(algorithm),
        })
    }
}

struct DataKeyPair {
    key: std::sync::Arc<LoadedKey>,
    spec: String,
    private_key: zeroize::Zeroizing<Vec<u8>>,
    public_key: Vec<u8>,
    blob: Vec<u8>,
    material_id: String,
}

async fn generate_data_key_pair(
    kms: &Kms,
    ctx: &CallContext,
    notes: &mut AuditNotes,
    key_id: &Option<String>,
    spec: &Option<String>,
    encryption_context: &Option<EncryptionContextMap>,
    operation: &'static str,
) -> KmsResult<DataKeyPair> {
    let key_id = key_id_member(key_id, "keyId")?;
    let spec = required(spec, "keyPairSpec")?;
    let enc_ctx = context(encryption_context)?;
    let key = kms.resolve(ctx, key_id, true).await?;
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_symmetric(&key, operation)?;
    let (private_key, public_key) = asymmetric::data_key_pair(spec)?;
    let (blob, material_id) = seal(&key, &enc_ctx, &private_key)?;
    notes.key_material_id = Some(material_id.clone());
    Ok(DataKeyPair {
        key,
        spec: spec.clone(),
        private_key,
        public_key,
        blob,
        material_id,
    })
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyPairRequest {
    const NAME: &'static str = "GenerateDataKeyPair";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyPairResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        grant_tokens(&self.grant_tokens)?;
        dry_run(self.dry_run)?;
        let pair = generate_data_key_pair(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.key_pair_spec,
            &self.encryption_context,
            Self::NAME,
        )
        .await?;
        Ok(GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: Some(Blob(pair.blob)),
            private_key_plaintext: Some(SecretBlob(pair.private_key)),
            public_key: Some(Blob(pair.public_key)),
            key_id: Some(pair.key.arn.clone()),
            key_pair_spec: Some(pair.spec),
            key_material_id: Some(pair.material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyPairWithoutPlaintextRequest {
    const NAME: &'static str = "GenerateDataKeyPairWithoutPlaintext";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyPairWithoutPlaintextResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &CallContext,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        grant_tokens(&self.grant_tokens)?;
        dry_run(self.dry_run)?;
        let pair = generate_data_key_pair(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.key_pair_spec,
            &self.encryption_context,
            Self::NAME,
        )
        .await?;
        Ok(GenerateDataKeyPairWithoutPlaintextResponse {
            private_key_ciphertext_blob: Some(Blob(pair.blob)),
            public_key: Some(Blob(pair.public_key)),
            key_id: Some(pair.key.arn.clone()),
            key_pair_spec: Some(pair.spec),
            key_material_id: Some(pair.material_id),
        })
    }
}
