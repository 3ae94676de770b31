//! External key stores as the rest of KMS uses them: their stored records, the proxy's
//! credential (wrapped under the root key), and the second encryption of a blob by the proxy.

use base64::Engine;
use keytrail_audit::CallContext;
use keytrail_store::CustomKeyStoreRow;
use zeroize::Zeroizing;

use super::{Kms, KmsCall, LoadedKey};
use crate::envelope::{self, EncryptionContext, ParsedBlob, ProxySealed};
use crate::error::{KmsError, KmsResult};
use crate::key_stores::{ConnectionState, KeyStoreRecord, ProxyUse, not_connected, proxy_error};
use crate::model::b64;
use crate::xks::{ProxyFailure, ProxyTarget, RequestMetadata, XksClient};

fn unreadable(e: impl std::fmt::Display) -> KmsError {
    tracing::error!(error = %e, "a stored custom key store is unreadable");
    KmsError::Internal("The request failed because of an internal error.".into())
}

impl Kms {
    /// Held while a custom key store is read, checked and saved.
    pub(crate) async fn key_store_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.key_store_mutations.lock().await
    }

    fn xks_client(&self) -> KmsResult<&XksClient> {
        self.xks
            .get_or_init(|| XksClient::new(&self.xks_settings))
            .as_ref()
            .map_err(|e| {
                tracing::error!(error = %e, "no XKS proxy client");
                KmsError::Internal("The request failed because of an internal error.".into())
            })
    }

    /// The custom key stores of an account in a Region, oldest first.
    pub(crate) async fn key_stores(
        &self,
        account_id: &str,
        region: &str,
    ) -> KmsResult<Vec<KeyStoreRecord>> {
        self.store
            .list_custom_key_stores(account_id, region)
            .await?
            .into_iter()
            .map(|row| serde_json::from_str(&row.record_json).map_err(unreadable))
            .collect()
    }

    /// One custom key store, or `CustomKeyStoreNotFoundException`.
    pub(crate) async fn key_store(
        &self,
        account_id: &str,
        region: &str,
        id: &str,
    ) -> KmsResult<KeyStoreRecord> {
        self.key_stores(account_id, region)
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| {
                KmsError::CustomKeyStoreNotFound(format!(
                    "Custom key store {id} does not exist in this account and Region."
                ))
            })
    }

    pub(crate) async fn save_key_store(&self, record: &KeyStoreRecord) -> KmsResult<()> {
        let record_json = serde_json::to_string(record).map_err(unreadable)?;
        self.store
            .put_custom_key_store(CustomKeyStoreRow {
                account_id: record.account_id.clone(),
                region: record.region.clone(),
                custom_key_store_id: record.id.clone(),
                created_at_ms: record.created_ms,
                record_json,
            })
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_key_store(&self, record: &KeyStoreRecord) -> KmsResult<()> {
        self.store
            .delete_custom_key_store(&record.account_id, &record.region, &record.id)
            .await?;
        Ok(())
    }

    /// The KMS keys of a key store, pending deletion or not.
    pub(crate) async fn keys_in_store(
        &self,
        store: &KeyStoreRecord,
    ) -> KmsResult<Vec<crate::keys::KeyRecord>> {
        let rows = self
            .store
            .list_kms_keys(Some((&store.account_id, &store.region)))
            .await?;
        let mut keys = Vec::new();
        for row in rows {
            let record: crate::keys::KeyRecord =
                serde_json::from_str(&row.record_json).map_err(unreadable)?;
            if record.custom_key_store_id.as_deref() == Some(store.id.as_str()) {
                keys.push(record);
            }
        }
        Ok(keys)
    }

    /// Whether the key store of a key in one is connected (the key is `Unavailable` if not).
    pub(crate) async fn key_store_connected(
        &self,
        key: &crate::keys::KeyRecord,
    ) -> KmsResult<bool> {
        Ok(self.connected_store(key).await?.is_some())
    }

    /// The key store of a key in one, if it exists and is connected.
    async fn connected_store(
        &self,
        key: &crate::keys::KeyRecord,
    ) -> KmsResult<Option<KeyStoreRecord>> {
        let Some(id) = key.custom_key_store_id.as_deref() else {
            return Ok(None);
        };
        Ok(self
            .key_stores(&key.account_id, &key.region)
            .await?
            .into_iter()
            .find(|s| s.id == id && s.connection_state == ConnectionState::Connected))
    }

    /// The proxy's secret access key wrapped for storage in this key store's record.
    pub(crate) fn wrap_proxy_secret(
        &self,
        account_id: &str,
        region: &str,
        id: &str,
        secret: &str,
    ) -> KmsResult<String> {
        let wrapped = self
            .root_key
            .wrap(
                secret.as_bytes(),
                &KeyStoreRecord::secret_aad(account_id, region, id),
            )
            .map_err(|e| KmsError::Internal(format!("The credential cannot be stored: {e}")))?;
        Ok(b64().encode(wrapped))
    }

    fn proxy_secret(&self, record: &KeyStoreRecord) -> KmsResult<Zeroizing<String>> {
        let wrapped = b64().decode(&record.wrapped_secret).map_err(unreadable)?;
        let plain = self
            .root_key
            .unwrap(
                &wrapped,
                &KeyStoreRecord::secret_aad(&record.account_id, &record.region, &record.id),
            )
            .map_err(|_| {
                KmsError::Internal(format!(
                    "The proxy credential of custom key store {} cannot be unwrapped: the root key is not the one it was stored under.",
                    record.id
                ))
            })?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(unreadable)
    }

    /// GetHealthStatus of a key store's proxy with the given secret (a new one, during an update).
    pub(crate) async fn check_proxy(
        &self,
        record: &KeyStoreRecord,
        secret: Option<&str>,
        ctx: &CallContext,
        operation: &str,
    ) -> KmsResult<Result<(), ProxyFailure>> {
        let stored;
        let secret = match secret {
            Some(s) => s,
            None => {
                stored = self.proxy_secret(record)?;
                stored.as_str()
            }
        };
        let target = target(record, secret);
        let metadata = RequestMetadata {
            aws_principal_arn: None,
            kms_key_arn: None,
            kms_operation: operation,
            kms_request_id: &ctx.request_id,
        };
        Ok(self.xks_client()?.health(&target, &metadata).await)
    }

    /// GetKeyMetadata of an external key, for CreateKey.
    pub(crate) async fn external_key_metadata(
        &self,
        record: &KeyStoreRecord,
        external_key_id: &str,
        ctx: &CallContext,
    ) -> KmsResult<crate::xks::ExternalKeyMetadata> {
        let secret = self.proxy_secret(record)?;
        let principal = ctx.principal.arn();
        let metadata = RequestMetadata {
            aws_principal_arn: Some(&principal),
            kms_key_arn: None,
            kms_operation: "CreateKey",
            kms_request_id: &ctx.request_id,
        };
        self.xks_client()?
            .key_metadata(&target(record, &secret), external_key_id, &metadata)
            .await
            .map_err(|f| proxy_error(&f, ProxyUse::CreateKey))
    }

    /// The key store of a key in one, which must be connected for cryptography.
    async fn connected_store_of(&self, key: &LoadedKey) -> KmsResult<(KeyStoreRecord, String)> {
        let Some(external_key_id) = key.record.xks_key_id.clone() else {
            return Err(KmsError::Internal(
                "A key of an external key store names no external key.".into(),
            ));
        };
        let record = self
            .connected_store(&key.record)
            .await?
            .ok_or_else(not_connected)?;
        Ok((record, external_key_id))
    }

    /// A blob of a key in an external key store: `sealed` (keytrail's own encryption) encrypted
    /// again by the external key, bound to the header and the encryption context.
    pub(crate) async fn seal_through_proxy(
        &self,
        call: &KmsCall<'_>,
        key: &LoadedKey,
        header_bytes: &[u8],
        sealed: &[u8],
        context: &EncryptionContext,
    ) -> KmsResult<Vec<u8>> {
        let (record, external_key_id) = self.connected_store_of(key).await?;
        let secret = self.proxy_secret(&record)?;
        let principal = call.principal.arn();
        let metadata = request_metadata(call, key, &principal);
        let aad = envelope::proxy_aad(header_bytes, context);
        let out = self
            .xks_client()?
            .encrypt(
                &target(&record, &secret),
                &external_key_id,
                &metadata,
                sealed,
                &aad,
            )
            .await
            .map_err(|f| proxy_error(&f, ProxyUse::Cryptography))?;
        envelope::join_proxy_sealed(
            header_bytes,
            &ProxySealed {
                iv: &out.iv,
                tag: &out.tag,
                metadata: &out.metadata,
                ciphertext: &out.ciphertext,
            },
        )
        .map_err(|_| KmsError::Internal("Encryption failed.".into()))
    }

    /// The sealed part of a blob of a key in an external key store, decrypted by its proxy.
    pub(crate) async fn open_through_proxy(
        &self,
        call: &KmsCall<'_>,
        key: &LoadedKey,
        blob: &ParsedBlob<'_>,
        proxy: &ProxySealed<'_>,
        context: &EncryptionContext,
    ) -> KmsResult<Zeroizing<Vec<u8>>> {
        let (record, external_key_id) = self.connected_store_of(key).await?;
        let secret = self.proxy_secret(&record)?;
        let principal = call.principal.arn();
        let metadata = request_metadata(call, key, &principal);
        let aad = envelope::proxy_aad(blob.header_bytes(), context);
        self.xks_client()?
            .decrypt(
                &target(&record, &secret),
                &external_key_id,
                &metadata,
                proxy,
                &aad,
            )
            .await
            .map_err(|f| proxy_error(&f, ProxyUse::Cryptography))
    }
}

fn target<'a>(record: &'a KeyStoreRecord, secret: &'a str) -> ProxyTarget<'a> {
    ProxyTarget {
        uri_endpoint: &record.uri_endpoint,
        uri_path: &record.uri_path,
        access_key_id: &record.access_key_id,
        secret_access_key: secret,
        region: &record.region,
    }
}

fn request_metadata<'a>(
    call: &'a KmsCall<'_>,
    key: &'a LoadedKey,
    principal: &'a str,
) -> RequestMetadata<'a> {
    RequestMetadata {
        aws_principal_arn: Some(principal),
        kms_key_arn: Some(&key.arn),
        kms_operation: call.action().trim_start_matches("kms:"),
        kms_request_id: &call.request_id,
    }
}
