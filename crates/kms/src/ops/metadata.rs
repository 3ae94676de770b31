//! KeyMetadata as DescribeKey and CreateKey return it, and the key-type rules.

use super::*;

pub(crate) fn metadata(record: &KeyRecord) -> KeyMetadata {
    let pending = record.state.is_pending_deletion();
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
        key_manager: Some(
            if record.aws_managed {
                "AWS"
            } else {
                "CUSTOMER"
            }
            .into(),
        ),
        customer_master_key_spec: asymmetric::has_customer_master_key_spec(&record.key_spec)
            .then(|| record.key_spec.clone()),
        key_spec: Some(record.key_spec.clone()),
        encryption_algorithms: non_empty(asymmetric::encryption_algorithms(
            &record.key_spec,
            &record.key_usage,
        )),
        signing_algorithms: non_empty(asymmetric::signing_algorithms(
            &record.key_spec,
            &record.key_usage,
        )),
        key_agreement_algorithms: non_empty(asymmetric::key_agreement_algorithms(
            &record.key_usage,
        )),
        encapsulation_algorithms: non_empty(asymmetric::encapsulation_algorithms(
            &record.key_usage,
        )),
        mac_algorithms: non_empty(asymmetric::mac_algorithms(&record.key_spec)),
        multi_region: Some(record.multi_region.is_some()),
        multi_region_configuration: record
            .multi_region
            .as_ref()
            .map(|set| multi_region_configuration(record, set)),
        pending_deletion_window_in_days: record.pending_window_days.filter(|_| pending),
        current_key_material_id: (record.key_spec == SYMMETRIC_DEFAULT
            && !record.in_external_key_store()
            && !record.current_material_id.is_empty())
        .then(|| record.current_material_id.clone()),
        expiration_model: record.expiration_model.clone(),
        valid_to: record.valid_to_ms.map(epoch_seconds),
        custom_key_store_id: record.custom_key_store_id.clone(),
        xks_key_configuration: record.xks_key_id.as_ref().map(|id| XksKeyConfiguration {
            id: Some(id.clone()),
        }),
    }
}

/// Which key of the set this is, and where the others are.
fn multi_region_configuration(
    record: &KeyRecord,
    set: &MultiRegionSet,
) -> MultiRegionConfiguration {
    let key = |region: &str| MultiRegionKey {
        arn: Some(key_arn(region, &record.account_id, &record.key_id)),
        region: Some(region.to_string()),
    };
    MultiRegionConfiguration {
        multi_region_key_type: Some(
            if record.is_replica() {
                "REPLICA"
            } else {
                "PRIMARY"
            }
            .into(),
        ),
        primary_key: Some(key(&set.primary_region)),
        replica_keys: Some(set.replica_regions.iter().map(|r| key(r)).collect()),
    }
}

pub(super) fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}

/// Operations of symmetric encryption keys only (§2.7: InvalidKeyUsageException otherwise).
pub(super) fn require_symmetric(key: &LoadedKey, operation: &str) -> KmsResult<()> {
    if key.record.key_spec == SYMMETRIC_DEFAULT {
        return Ok(());
    }
    Err(KmsError::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {operation}.",
        key.arn, key.record.key_usage
    )))
}

pub(super) fn require_usage(key: &LoadedKey, usage: &str, operation: &str) -> KmsResult<()> {
    if key.record.key_usage == usage {
        return Ok(());
    }
    Err(KmsError::InvalidKeyUsage(format!(
        "{} key usage is {} which is not valid for {operation}.",
        key.arn, key.record.key_usage
    )))
}

pub(super) fn note_key(notes: &mut AuditNotes, key: &LoadedKey) {
    notes.key_arn = Some(key.arn.clone());
    notes.external_key = key
        .record
        .custom_key_store_id
        .clone()
        .zip(key.record.xks_key_id.clone());
}
