//! Key lifecycle: CreateKey, DescribeKey, GetKeyLastUsage, ListKeys, UpdateKeyDescription,
//! EnableKey, DisableKey, ScheduleKeyDeletion, CancelKeyDeletion.

use super::*;

#[async_trait::async_trait]
impl KmsOperation for CreateKeyRequest {
    const NAME: &'static str = "CreateKey";
    const READ_ONLY: bool = false;
    type Output = CreateKeyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
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
        if !asymmetric::usages(spec).contains(&usage) {
            return Err(KmsError::Validation(format!(
                "KeyUsage {usage} is not compatible with KeySpec {spec}"
            )));
        }
        let origin = self.origin.as_deref().unwrap_or("AWS_KMS");
        match origin {
            "AWS_KMS" => {}
            ORIGIN_EXTERNAL if spec == SYMMETRIC_DEFAULT => {}
            ORIGIN_EXTERNAL => {
                return Err(KmsError::UnsupportedOperation(format!(
                    "Importing key material is supported for SYMMETRIC_DEFAULT keys only by this keytrail version, not {spec}."
                )));
            }
            "AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE" => {
                return Err(KmsError::UnsupportedOperation(format!(
                    "Origin {origin} is not supported by this keytrail version."
                )));
            }
            other => {
                return Err(KmsError::constraint(
                    "origin",
                    other,
                    "Member must satisfy enum value set: [EXTERNAL_KEY_STORE, AWS_KMS, EXTERNAL, AWS_CLOUDHSM]",
                ));
            }
        }
        let multi_region = self.multi_region == Some(true);
        if multi_region && !matches!(origin, "AWS_KMS" | ORIGIN_EXTERNAL) {
            return Err(KmsError::UnsupportedOperation(format!(
                "Multi-Region keys of origin {origin} are not supported by this keytrail version."
            )));
        }
        if self.custom_key_store_id.is_some() || self.xks_key_id.is_some() {
            return Err(KmsError::UnsupportedOperation(
                "Custom key stores are not supported by this keytrail version.".into(),
            ));
        }
        let parsed_policy = self.policy.as_deref().map(validate_policy).transpose()?;
        let policy = match &self.policy {
            Some(p) => p.clone(),
            None => default_policy(&ctx.principal.account_id),
        };
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        let tags = validate_tags(self.tags.as_deref().unwrap_or_default())?;
        let mut merged = Vec::new();
        merge_tags(&mut merged, tags)?;
        let record = KeyRecord {
            description: self.description.clone().unwrap_or_default(),
            key_usage: usage.into(),
            key_spec: spec.into(),
            origin: origin.into(),
            state: if origin == ORIGIN_EXTERNAL {
                KeyState::PendingImport
            } else {
                KeyState::Enabled
            },
            policy,
            tags: merged,
            multi_region: multi_region.then(|| MultiRegionSet {
                primary_region: ctx.region.clone(),
                replica_regions: Vec::new(),
            }),
            ..KeyRecord::new(
                new_key_id(multi_region),
                ctx.principal.account_id.clone(),
                ctx.region.clone(),
            )
        };
        if let Some(parsed) = &parsed_policy
            && self.bypass_policy_lockout_safety_check != Some(true)
        {
            kms.check_policy_lockout(ctx, &record, parsed).await?;
        }
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
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        grant_tokens(kms, &self.grant_tokens)?;
        let key = kms.resolve(ctx, key_id, true).await?;
        note_key(notes, &key);
        Ok(DescribeKeyResponse {
            key_metadata: Some(metadata(&key.record)),
        })
    }
}

/// The operations GetKeyLastUsage tracks (the model's `KeyLastUsageTrackingOperation`).
const TRACKED_OPERATIONS: &[&str] = &[
    "Decrypt",
    "DeriveSharedSecret",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "ReEncrypt",
    "Sign",
    "Verify",
    "VerifyMac",
    "Encapsulate",
    "Decapsulate",
];

/// Answered from the journal: the newest successful tracked call naming the key among its
/// resources. Tracking starts with the oldest event the journal still holds (retention removes
/// older ones), or the key's creation if that is later.
#[async_trait::async_trait]
impl KmsOperation for GetKeyLastUsageRequest {
    const NAME: &'static str = "GetKeyLastUsage";
    const READ_ONLY: bool = true;
    type Output = GetKeyLastUsageResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let r = &key.record;
        let (last, oldest_ms) = kms.last_use(&key, TRACKED_OPERATIONS).await?;
        let tracking_start_ms = oldest_ms.map_or(r.created_ms, |o| o.max(r.created_ms));
        let usage = last.map(|e| KeyLastUsageData {
            operation: Some(e.event_name),
            timestamp: Some(epoch_seconds(e.event_time_ms)),
            cloud_trail_event_id: Some(e.event_id),
            kms_request_id: Some(e.request_id),
        });
        Ok(GetKeyLastUsageResponse {
            key_id: Some(r.key_id.clone()),
            key_last_usage: Some(usage.unwrap_or_default()),
            tracking_start_date: Some(epoch_seconds(tracking_start_ms)),
            key_creation_date: Some(epoch_seconds(r.created_ms)),
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
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let limit = limit(self.limit, 100)?;
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
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
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let description = required(&self.description, "description")?;
        length("description", description, 0, 8192)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, _| {
            Kms::record_not_pending_deletion(r, &r.arn())?;
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
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            Kms::record_not_pending_deletion(r, arn)?;
            Kms::record_not_pending_import(r, arn)?;
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
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            Kms::record_not_pending_deletion(r, arn)?;
            Kms::record_not_pending_import(r, arn)?;
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
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let days = self.pending_window_in_days.unwrap_or(30);
        range("pendingWindowInDays", days, 7, 30)?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        let updated = kms
            .update_key(&key, |r, arn| {
                Kms::record_not_pending_deletion(r, arn)?;
                // A multi-Region primary key outlives its replicas: its waiting period starts
                // when the last of them is deleted.
                let has_replicas = !r.is_replica()
                    && r.multi_region
                        .as_ref()
                        .is_some_and(|set| !set.replica_regions.is_empty());
                if has_replicas {
                    r.state = KeyState::PendingReplicaDeletion;
                    r.deletion_ms = None;
                } else {
                    r.state = KeyState::PendingDeletion;
                    r.deletion_ms = Some(now_ms() + days * DAY_MS);
                }
                r.pending_window_days = Some(days);
                r.rotation_enabled_before_deletion = r.rotation_enabled;
                r.rotation_enabled = false;
                Ok(())
            })
            .await?;
        let response = ScheduleKeyDeletionResponse {
            key_id: Some(updated.arn.clone()),
            deletion_date: updated.record.deletion_ms.map(epoch_seconds),
            key_state: Some(updated.record.state.as_str().into()),
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
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = kms.resolve(ctx, key_id, false).await?;
        note_key(notes, &key);
        kms.update_key(&key, |r, arn| {
            if !r.state.is_pending_deletion() {
                return Err(KmsError::InvalidState(format!(
                    "{arn} is not pending deletion."
                )));
            }
            // A key without key material (imported, then deleted or expired) waits for it again.
            r.state = if r.is_external() && r.current_material_id.is_empty() {
                KeyState::PendingImport
            } else {
                KeyState::Disabled
            };
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
