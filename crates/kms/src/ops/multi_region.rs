//! Multi-Region keys: ReplicateKey and UpdatePrimaryRegion. (CreateKey makes the primary;
//! the rotation operations refuse replicas, whose rotation follows the primary.)

use keytrail_audit::{EventCategory, EventRecord};

use super::*;
use crate::service::EVENT_SOURCE;

/// The model's `RegionType`: `^([a-z]+-){2,3}\d+$`, 1 to 32 characters.
fn region_member<'a>(value: &'a Option<String>, field: &str) -> KmsResult<&'a str> {
    let region = required(value, field)?;
    length(field, region, 1, 32)?;
    let (letters, digits) = region
        .rsplit_once('-')
        .map_or(("", ""), |(head, tail)| (head, tail));
    let words = letters.split('-').collect::<Vec<_>>();
    let well_formed = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (2..=3).contains(&words.len())
        && words
            .iter()
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()));
    if !well_formed {
        return Err(KmsError::constraint(
            field,
            region,
            r"Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\d+$",
        ));
    }
    Ok(region)
}

/// The multi-Region primary key `key_id` names (by key id or ARN), for an operation that
/// reaches out to another `region` of its set.
async fn resolve_primary(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    key_id: &str,
    region: &str,
    notes: &mut AuditNotes,
) -> KmsResult<std::sync::Arc<LoadedKey>> {
    let primary = kms.resolve(ctx, key_id, false).await?;
    note_key(notes, &primary);
    Kms::record_multi_region_primary(&primary.record, &primary.arn)?;
    if region == primary.record.region {
        return Err(KmsError::Validation(format!(
            "{} is the primary key in {region}: name another Region.",
            primary.arn
        )));
    }
    Kms::not_pending_deletion(&primary)?;
    Ok(primary)
}

/// The record AWS also writes in the other Region a call reaches: the same call (same caller
/// and request id) as `name` on that Region's key. Usage reports count the call once.
fn event_in_other_region<R: serde::Serialize>(
    ctx: &CallContext,
    name: &'static str,
    key: &LoadedKey,
    request: &R,
    response: serde_json::Value,
) -> EventRecord {
    let mut in_other_region = ctx.clone();
    in_other_region.region = key.record.region.clone();
    let mut event = EventRecord::new(
        &in_other_region,
        EVENT_SOURCE,
        name,
        false,
        EventCategory::Management,
    );
    event.request_parameters = crate::audit::request_parameters(request);
    event.response_elements = Some(response);
    event.resources.push(Resource {
        account_id: Some(key.record.account_id.clone()),
        resource_type: "AWS::KMS::Key".into(),
        arn: key.arn.clone(),
    });
    event.billed_elsewhere = true;
    event
}

#[async_trait::async_trait]
impl KmsOperation for ReplicateKeyRequest {
    const NAME: &'static str = "ReplicateKey";
    const READ_ONLY: bool = false;
    type Output = ReplicateKeyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let region = region_member(&self.replica_region, "replicaRegion")?;
        if let Some(d) = &self.description {
            length("description", d, 0, 8192)?;
        }
        let parsed_policy = self.policy.as_deref().map(validate_policy).transpose()?;
        let tags = validate_tags(self.tags.as_deref().unwrap_or_default())?;
        let mut merged = Vec::new();
        merge_tags(&mut merged, tags)?;
        let primary = resolve_primary(kms, ctx, key_id, region, notes).await?;
        // Creating the replica is a CreateKey (and tagging it a TagResource) in its Region.
        kms.authorize(ctx, None, "kms:CreateKey", Vec::new())
            .await?;
        if !merged.is_empty() {
            kms.authorize(ctx, None, "kms:TagResource", Vec::new())
                .await?;
        }
        let account = &primary.record.account_id;
        // Key spec, usage and origin are shared; the rest is the replica's own.
        let replica = KeyRecord {
            description: self.description.clone().unwrap_or_default(),
            key_usage: primary.record.key_usage.clone(),
            key_spec: primary.record.key_spec.clone(),
            origin: primary.record.origin.clone(),
            policy: self
                .policy
                .clone()
                .unwrap_or_else(|| default_policy(account)),
            tags: merged,
            ..KeyRecord::new(
                primary.record.key_id.clone(),
                account.clone(),
                region.to_string(),
            )
        };
        if let Some(parsed) = &parsed_policy
            && self.bypass_policy_lockout_safety_check != Some(true)
        {
            kms.check_policy_lockout(ctx, &replica, parsed).await?;
        }
        let replica = kms.replicate(&primary, replica).await?;
        let metadata = metadata(&replica.record);
        let replica_tags: Vec<Tag> = replica
            .record
            .tags
            .iter()
            .map(|(k, v)| Tag {
                tag_key: Some(k.clone()),
                tag_value: Some(v.clone()),
            })
            .collect();
        let created = CreateKeyResponse {
            key_metadata: Some(metadata.clone()),
        };
        notes.other_region_events.push(event_in_other_region(
            ctx,
            CreateKeyRequest::NAME,
            &replica,
            &CreateKeyRequest {
                policy: Some(replica.record.policy.clone()),
                description: self.description.clone(),
                key_usage: Some(replica.record.key_usage.clone()),
                key_spec: Some(replica.record.key_spec.clone()),
                origin: Some(replica.record.origin.clone()),
                bypass_policy_lockout_safety_check: self.bypass_policy_lockout_safety_check,
                tags: self.tags.clone(),
                multi_region: Some(true),
                ..CreateKeyRequest::default()
            },
            crate::audit::request_parameters(&created).unwrap_or_default(),
        ));
        let response = ReplicateKeyResponse {
            replica_key_metadata: Some(metadata),
            replica_policy: Some(replica.record.policy.clone()),
            replica_tags: Some(replica_tags),
        };
        notes.response_elements = crate::audit::request_parameters(&response);
        Ok(response)
    }
}

#[async_trait::async_trait]
impl KmsOperation for UpdatePrimaryRegionRequest {
    const NAME: &'static str = "UpdatePrimaryRegion";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let region = region_member(&self.primary_region, "primaryRegion")?;
        let primary = resolve_primary(kms, ctx, key_id, region, notes).await?;
        // The replica's own key policy must allow the change too.
        let replica = kms
            .related_key(&primary.record, region)
            .await?
            .ok_or_else(|| {
                KmsError::NotFound(format!("{} has no replica key in {region}.", primary.arn))
            })?;
        kms.authorize(ctx, Some(&replica), ctx.action(), Vec::new())
            .await?;
        kms.update_primary_region(&primary, region).await?;
        // Two records, as AWS writes them: one in each Region whose key changed role.
        notes.response_elements = Some(serde_json::json!({ "keyId": primary.arn }));
        notes.other_region_events.push(event_in_other_region(
            ctx,
            Self::NAME,
            &replica,
            self,
            serde_json::json!({ "keyId": replica.arn }),
        ));
        Ok(EmptyResponse {})
    }
}
