//! The keys of a multi-Region key: one record per Region with the same id and backing keys,
//! changed together in one store transaction (replication, a change of primary; rotation goes
//! through `Kms::change_key`, which brings the replicas along).

use std::sync::Arc;

use keytrail_store::{KeyMaterialRow, KmsKeyChange};

use super::{KeyRef, Kms, LoadedKey, LoadedMaterial, material_aad};
use crate::error::{KmsError, KmsResult};
use crate::keys::{KeyRecord, KeyState, MultiRegionSet, SharedProperties};

/// A replica about to be stored: its record and its copies of the primary's backing keys.
struct NewReplica {
    record: KeyRecord,
    rows: Vec<KeyMaterialRow>,
    materials: Vec<Arc<LoadedMaterial>>,
}

impl Kms {
    /// The other keys of a multi-Region key (none for a single-Region key).
    pub(super) async fn fetch_related(&self, record: &KeyRecord) -> KmsResult<Vec<Arc<LoadedKey>>> {
        let mut related = Vec::new();
        for region in record.related_regions() {
            let key_ref = KeyRef {
                account_id: record.account_id.clone(),
                region,
                key_id: record.key_id.clone(),
            };
            match self.fetch(&key_ref).await? {
                Some(key) => related.push(key),
                None => tracing::warn!(
                    key_id = %record.key_id,
                    region = %key_ref.region,
                    "a related multi-Region key is missing"
                ),
            }
        }
        Ok(related)
    }

    /// The key of the same multi-Region key in `region`, if there is one.
    pub(crate) async fn related_key(
        &self,
        record: &KeyRecord,
        region: &str,
    ) -> KmsResult<Option<Arc<LoadedKey>>> {
        self.fetch(&KeyRef {
            account_id: record.account_id.clone(),
            region: region.to_string(),
            key_id: record.key_id.clone(),
        })
        .await
    }

    /// The newest record of a multi-Region primary key, checked to still be one and not
    /// pending deletion (under the mutation lock).
    async fn current_primary(
        &self,
        key: &LoadedKey,
    ) -> KmsResult<(Arc<LoadedKey>, MultiRegionSet)> {
        let current = self
            .fetch(&Self::key_ref(&key.record))
            .await?
            .ok_or_else(|| Self::not_found(&key.arn))?;
        let set = Self::record_multi_region_primary(&current.record, &current.arn)?.clone();
        Self::record_not_pending_deletion(&current.record, &current.arn)?;
        Ok((current, set))
    }

    /// Stores `keys` with `set` as their multi-Region configuration, along with a new
    /// `replica`, in one transaction, and caches them (the replica first).
    async fn store_set(
        &self,
        replica: Option<NewReplica>,
        keys: Vec<Arc<LoadedKey>>,
        set: &MultiRegionSet,
    ) -> KmsResult<Vec<Arc<LoadedKey>>> {
        let mut changes = Vec::with_capacity(keys.len() + 1);
        let mut stored = Vec::with_capacity(keys.len() + 1);
        if let Some(replica) = replica {
            changes.push(KmsKeyChange::Put {
                key: Self::row(&replica.record)?,
                materials: replica.rows,
            });
            stored.push(Arc::new(LoadedKey::new(
                replica.record,
                Arc::new(replica.materials),
            )));
        }
        for key in keys {
            let mut record = key.record.clone();
            record.multi_region = Some(set.clone());
            changes.push(KmsKeyChange::Put {
                key: Self::row(&record)?,
                materials: Vec::new(),
            });
            stored.push(Arc::new(LoadedKey::new(record, Arc::clone(&key.materials))));
        }
        self.store.change_kms_keys(changes).await?;
        for key in &stored {
            self.cache(Self::key_ref(&key.record), Some(Arc::clone(key)));
        }
        Ok(stored)
    }

    /// Creates `replica` (the primary's id in another Region) with a copy of every backing key
    /// of the primary and its shared properties, and adds its Region to every key of the set,
    /// in one transaction.
    pub(crate) async fn replicate(
        &self,
        primary: &LoadedKey,
        mut replica: KeyRecord,
    ) -> KmsResult<Arc<LoadedKey>> {
        let _guard = self.mutations.lock().await;
        let (current, mut set) = self.current_primary(primary).await?;
        let exists = set.regions().any(|r| r == replica.region)
            || self.fetch(&Self::key_ref(&replica)).await?.is_some();
        if exists {
            return Err(KmsError::AlreadyExists(format!(
                "Replica key {} already exists",
                replica.arn()
            )));
        }
        set.replica_regions.push(replica.region.clone());
        SharedProperties::of(&current.record).apply_to(&mut replica);
        replica.multi_region = Some(set.clone());
        let replica_arn = replica.arn();
        // Imported material is not copied: the replica waits for the same material to be
        // imported into it, as AWS has it.
        let stored_materials = if current.record.is_external() {
            replica.state = KeyState::PendingImport;
            replica.imported_material_ids = current.record.imported_material_ids.clone();
            Vec::new()
        } else {
            replica.current_material_id = current.record.current_material_id.clone();
            self.store
                .get_kms_key(
                    &current.record.account_id,
                    &current.record.region,
                    &current.record.key_id,
                )
                .await?
                .map(|(_, materials)| materials)
                .unwrap_or_default()
        };
        let mut rows = Vec::with_capacity(stored_materials.len());
        let mut loaded = Vec::with_capacity(stored_materials.len());
        for m in &stored_materials {
            let secret = self
                .root_key
                .unwrap(
                    &m.wrapped_material,
                    &material_aad(&current.arn, &m.material_id),
                )
                .map_err(|_| {
                    KmsError::Internal(format!(
                        "The key material of {} cannot be unwrapped.",
                        current.arn
                    ))
                })?;
            let (row, material) = self.material_for(
                &replica_arn,
                &replica.key_spec,
                &secret,
                &m.material_id,
                m.created_at_ms,
                m.rotation_type.as_deref(),
            )?;
            rows.push(row);
            loaded.push(Arc::new(material));
        }
        let mut keys = vec![current];
        keys.extend(self.fetch_related(&keys[0].record).await?);
        let stored = self
            .store_set(
                Some(NewReplica {
                    record: replica,
                    rows,
                    materials: loaded,
                }),
                keys,
                &set,
            )
            .await?;
        Ok(Arc::clone(&stored[0]))
    }

    /// Makes the replica in `region` the primary key and the primary a replica.
    pub(crate) async fn update_primary_region(
        &self,
        primary: &LoadedKey,
        region: &str,
    ) -> KmsResult<()> {
        let _guard = self.mutations.lock().await;
        let (current, set) = self.current_primary(primary).await?;
        let mut keys = vec![Arc::clone(&current)];
        keys.extend(self.fetch_related(&current.record).await?);
        let Some(new_primary) = keys.iter().skip(1).find(|k| k.record.region == region) else {
            return Err(KmsError::NotFound(format!(
                "{} has no replica key in {region}.",
                current.arn
            )));
        };
        Self::record_not_pending_deletion(&new_primary.record, &new_primary.arn)?;
        let mut replica_regions: Vec<String> = set
            .replica_regions
            .iter()
            .filter(|r| *r != region)
            .cloned()
            .collect();
        replica_regions.push(set.primary_region.clone());
        let set = MultiRegionSet {
            primary_region: region.to_string(),
            replica_regions,
        };
        self.store_set(None, keys, &set).await?;
        Ok(())
    }

    /// Every material id imported into any key of `key`'s multi-Region key (its own alone for
    /// a single-Region key): the keys of a set must all hold the same material.
    pub(crate) async fn imported_material_ids_of_set(
        &self,
        key: &LoadedKey,
    ) -> KmsResult<Vec<String>> {
        let mut ids = key.record.imported_material_ids.clone();
        for related in self.fetch_related(&key.record).await? {
            for id in &related.record.imported_material_ids {
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
        }
        Ok(ids)
    }
}
