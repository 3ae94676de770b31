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
            ORIGIN_EXTERNAL_KEY_STORE if spec == SYMMETRIC_DEFAULT => {}
            ORIGIN_EXTERNAL_KEY_STORE => {
                return Err(KmsError::UnsupportedOperation(format!(
                    "Keys in an external key store are symmetric encryption keys (SYMMETRIC_DEFAULT), not {spec}."
                )));
            }
            "AWS_CLOUDHSM" => {
                required(&self.custom_key_store_id, "customKeyStoreId")?;
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
        if self.xks_key_id.is_some() && origin != ORIGIN_EXTERNAL_KEY_STORE {
            return Err(KmsError::Validation(
                "XksKeyId is valid only for keys of origin EXTERNAL_KEY_STORE.".into(),
            ));
        }
        if self.custom_key_store_id.is_some()
            && !matches!(origin, ORIGIN_EXTERNAL_KEY_STORE | "AWS_CLOUDHSM")
        {
            return Err(KmsError::Validation(format!(
                "CustomKeyStoreId is valid only for keys of origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE, not {origin}."
            )));
        }
        let parsed_policy = self.policy.as_deref().map(validate_policy).transpose()?;
        let policy = match &self.policy {
            Some(p) => p.clone(),
            None => default_policy(&ctx.principal.account_id),
        };
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        let tags = validate_tags(self.tags.as_deref().unwrap_or_default())?;
        let external_key = match origin {
            ORIGIN_EXTERNAL_KEY_STORE => Some(external_key_for(kms, ctx, self).await?),
            "AWS_CLOUDHSM" => {
                let id = required(&self.custom_key_store_id, "customKeyStoreId")?;
                // Every custom key store here is an external one: none can hold CloudHSM keys.
                kms.key_store(&ctx.principal.account_id, &ctx.region, id)
                    .await?;
                return Err(KmsError::CustomKeyStoreInvalidState(format!(
                    "{id} is an external key store; origin AWS_CLOUDHSM needs an AWS CloudHSM key store."
                )));
            }
            _ => None,
        };
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
            custom_key_store_id: external_key.as_ref().map(|(store, _)| store.clone()),
            xks_key_id: external_key.map(|(_, key)| key),
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

/// The key store and external key a key of origin EXTERNAL_KEY_STORE is created for: the store
/// must be connected, the external key unused by other keys of the store, and, as its proxy
/// describes it, an enabled AES-256 key that encrypts and decrypts.
async fn external_key_for(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    request: &CreateKeyRequest,
) -> KmsResult<(String, String)> {
    let store_id = required(&request.custom_key_store_id, "customKeyStoreId")?;
    let xks_key_id = required(&request.xks_key_id, "xksKeyId")?;
    length("xksKeyId", xks_key_id, 1, 128)?;
    if !xks_key_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(KmsError::constraint(
            "xksKeyId",
            xks_key_id,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9-_.]+$",
        ));
    }
    let store = kms
        .key_store(&ctx.principal.account_id, &ctx.region, store_id)
        .await?;
    if store.connection_state != crate::key_stores::ConnectionState::Connected {
        return Err(KmsError::CustomKeyStoreInvalidState(format!(
            "Custom key store {store_id} is not connected (its connection state is {}). Connect it and try again.",
            store.connection_state.as_str()
        )));
    }
    if kms
        .keys_in_store(&store)
        .await?
        .iter()
        .any(|k| k.xks_key_id.as_deref() == Some(xks_key_id))
    {
        return Err(KmsError::XksKeyAlreadyInUse(format!(
            "External key {xks_key_id} is already associated with a KMS key in custom key store {store_id}."
        )));
    }
    let described = kms.external_key_metadata(&store, xks_key_id, ctx).await?;
    let usable = described.key_spec == "AES_256"
        && ["ENCRYPT", "DECRYPT"]
            .iter()
            .all(|u| described.key_usage.iter().any(|k| k == u))
        && described.key_status == "ENABLED";
    if !usable {
        return Err(KmsError::XksKeyInvalidConfiguration(format!(
            "External key {xks_key_id} must be an enabled AES_256 key that can ENCRYPT and DECRYPT; its proxy describes it as {} with usage {:?}, {}.",
            described.key_spec, described.key_usage, described.key_status
        )));
    }
    Ok((store_id.clone(), xks_key_id.clone()))
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
        let mut meta = metadata(&key.record);
        if key.record.in_external_key_store() && !kms.key_store_connected(&key.record).await? {
            meta.key_state = Some("Unavailable".into());
            meta.enabled = Some(false);
        }
        Ok(DescribeKeyResponse {
            key_metadata: Some(meta),
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
            operation: Some(e.event_name.into_owned()),
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
