//! EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
//! ListKeyRotations.

use super::*;

/// Only symmetric encryption keys with KMS-generated material rotate (§2.12). (AWS also
/// rotates imported material on demand, into new material imported beforehand; keytrail does
/// not.)
pub(super) fn rotation_supported(r: &KeyRecord, arn: &str) -> KmsResult<()> {
    if r.is_external() {
        return Err(KmsError::UnsupportedOperation(format!(
            "{arn} has imported key material (origin EXTERNAL): it is not rotated by KMS."
        )));
    }
    if r.in_external_key_store() {
        return Err(KmsError::UnsupportedOperation(format!(
            "{arn} is in an external key store: its key material is the external key manager's and is not rotated by KMS."
        )));
    }
    if r.key_spec == SYMMETRIC_DEFAULT {
        return Ok(());
    }
    Err(KmsError::UnsupportedOperation(format!(
        "{arn} has key spec {}: only symmetric encryption keys can be rotated.",
        r.key_spec
    )))
}

/// Rotation settings change, and on-demand rotations happen, on enabled keys only — and for a
/// multi-Region key on its primary, which takes its replicas along.
pub(super) fn rotation_state_check(r: &KeyRecord, arn: &str) -> KmsResult<()> {
    rotation_supported(r, arn)?;
    if r.is_replica() {
        return Err(KmsError::UnsupportedOperation(format!(
            "{arn} is a multi-Region replica key: its rotation follows its primary key in {}.",
            r.multi_region
                .as_ref()
                .map_or("", |set| set.primary_region.as_str())
        )));
    }
    Kms::record_enabled(r, arn)
}

#[async_trait::async_trait]
impl KmsOperation for EnableKeyRotationRequest {
    const NAME: &'static str = "EnableKeyRotation";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
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
        ctx: &KmsCall<'_>,
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
        ctx: &KmsCall<'_>,
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
        ctx: &KmsCall<'_>,
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
        ctx: &KmsCall<'_>,
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
