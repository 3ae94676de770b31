//! Custom key stores: CreateCustomKeyStore, DescribeCustomKeyStores, UpdateCustomKeyStore,
//! DeleteCustomKeyStore, ConnectCustomKeyStore, DisconnectCustomKeyStore. External key stores
//! (an XKS proxy) are fully served; AWS CloudHSM key stores fail as for a cluster that does
//! not exist, since keytrail has no CloudHSM clusters.

use super::*;
use crate::key_stores::{
    AWS_CLOUDHSM, ConnectionState, EXTERNAL_KEY_STORE, KeyStoreRecord, PUBLIC_ENDPOINT, ProxyUse,
    VPC_ENDPOINT_SERVICE, connection_error_code, new_key_store_id, proxy_error,
};

/// AWS's quota of custom key stores per account and Region.
const MAX_KEY_STORES: usize = 10;

fn pattern_error(field: &str, value: &str, pattern: &str) -> KmsError {
    KmsError::constraint(
        field,
        value,
        &format!("Member must satisfy regular expression pattern: {pattern}"),
    )
}

fn key_store_id_member(value: &Option<String>) -> KmsResult<&str> {
    let id = required(value, "customKeyStoreId")?;
    length("customKeyStoreId", id, 1, 64)?;
    Ok(id)
}

/// `^https://[a-zA-Z0-9.-]+$`, 10–128 characters.
fn validate_endpoint(endpoint: &str) -> KmsResult<()> {
    length("xksProxyUriEndpoint", endpoint, 10, 128)?;
    let host = endpoint.strip_prefix("https://").unwrap_or("");
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-'))
    {
        return Err(pattern_error(
            "xksProxyUriEndpoint",
            endpoint,
            "^https://[a-zA-Z0-9.-]+$",
        ));
    }
    Ok(())
}

/// `[/<prefix>]/kms/xks/v<1–2 digits>`, 10–128 characters.
fn validate_path(path: &str) -> KmsResult<()> {
    length("xksProxyUriPath", path, 10, 128)?;
    let valid = path.rfind("/kms/xks/v").is_some_and(|at| {
        let (prefix, version) = (&path[..at], &path[at + "/kms/xks/v".len()..]);
        (1..=2).contains(&version.len())
            && version.bytes().all(|b| b.is_ascii_digit())
            && (prefix.is_empty()
                || (prefix.starts_with('/')
                    && prefix
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))))
    });
    if !valid {
        return Err(pattern_error(
            "xksProxyUriPath",
            path,
            "^(/[a-zA-Z0-9\\/_-]+/kms/xks/v\\d{1,2})$|^(/kms/xks/v\\d{1,2})$",
        ));
    }
    Ok(())
}

/// The access key id and secret of an XKS proxy credential, checked as the model constrains.
fn validate_credential(credential: &XksProxyAuthenticationCredential) -> KmsResult<(&str, &str)> {
    let access_key_id = required(
        &credential.access_key_id,
        "xksProxyAuthenticationCredential.accessKeyId",
    )?;
    let secret = required(
        &credential.raw_secret_access_key,
        "xksProxyAuthenticationCredential.rawSecretAccessKey",
    )?;
    length(
        "xksProxyAuthenticationCredential.accessKeyId",
        access_key_id,
        20,
        30,
    )?;
    if !access_key_id
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return Err(pattern_error(
            "xksProxyAuthenticationCredential.accessKeyId",
            access_key_id,
            "^[A-Z2-7]+$",
        ));
    }
    let secret = secret.0.as_str();
    let secret_ok = (43..=64).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b'='));
    if !secret_ok {
        // The value is secret: the message names the constraint, never the value.
        return Err(KmsError::Validation(
            "1 validation error detected: Value at 'xksProxyAuthenticationCredential.rawSecretAccessKey' failed to satisfy constraint: Member must have length between 43 and 64 and satisfy regular expression pattern: ^[a-zA-Z0-9\\/+=]+$".into(),
        ));
    }
    Ok((access_key_id, secret))
}

fn validate_connectivity(connectivity: &str) -> KmsResult<()> {
    if !matches!(connectivity, PUBLIC_ENDPOINT | VPC_ENDPOINT_SERVICE) {
        return Err(KmsError::constraint(
            "xksProxyConnectivity",
            connectivity,
            "Member must satisfy enum value set: [PUBLIC_ENDPOINT, VPC_ENDPOINT_SERVICE]",
        ));
    }
    Ok(())
}

/// keytrail has no VPCs: an XKS proxy behind a VPC endpoint service cannot be reached.
fn no_vpc_endpoint_service(name: Option<&str>) -> KmsError {
    KmsError::XksProxyVpcEndpointServiceNotFound(format!(
        "The VPC endpoint service {} cannot be found: keytrail reaches XKS proxies at public endpoints only (XksProxyConnectivity PUBLIC_ENDPOINT).",
        name.unwrap_or("(none given)")
    ))
}

/// AWS CloudHSM key stores: their cluster is never found.
fn no_cloudhsm_cluster(cluster_id: &str) -> KmsError {
    KmsError::CloudHsmClusterNotFound(format!(
        "AWS CloudHSM cluster {cluster_id} cannot be found: keytrail has no CloudHSM clusters (use an external key store)."
    ))
}

/// Another key store of the account and Region already uses this name, or this proxy URI.
fn check_unique(
    stores: &[KeyStoreRecord],
    except_id: Option<&str>,
    name: &str,
    uri: Option<(&str, &str)>,
) -> KmsResult<()> {
    let others = || stores.iter().filter(|s| Some(s.id.as_str()) != except_id);
    if others().any(|s| s.name == name) {
        return Err(KmsError::CustomKeyStoreNameInUse(format!(
            "A custom key store named {name} already exists in this account and Region."
        )));
    }
    if let Some((endpoint, path)) = uri
        && others().any(|s| s.uri_endpoint == endpoint && s.uri_path == path)
    {
        return Err(KmsError::XksProxyUriInUse(format!(
            "The XKS proxy URI {endpoint}{path} is already associated with another external key store in this account and Region."
        )));
    }
    Ok(())
}

fn invalid_state(record: &KeyStoreRecord, allowed: &str) -> KmsError {
    KmsError::CustomKeyStoreInvalidState(format!(
        "Custom key store {} is {}: this operation is valid only when it is {allowed}.",
        record.id,
        record.connection_state.as_str()
    ))
}

/// The key store a call names, once the call is authorized, held against other key store
/// changes until the guard is dropped.
async fn named_store<'k>(
    kms: &'k Kms,
    ctx: &KmsCall<'_>,
    id: &Option<String>,
) -> KmsResult<(tokio::sync::MutexGuard<'k, ()>, KeyStoreRecord)> {
    let id = key_store_id_member(id)?;
    kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
    let guard = kms.key_store_lock().await;
    let record = kms
        .key_store(&ctx.principal.account_id, &ctx.region, id)
        .await?;
    Ok((guard, record))
}

fn ensure_proxy_healthy(result: Result<(), crate::xks::ProxyFailure>) -> KmsResult<()> {
    result.map_err(|f| proxy_error(&f, ProxyUse::KeyStoreSettings))
}

#[async_trait::async_trait]
impl KmsOperation for CreateCustomKeyStoreRequest {
    const NAME: &'static str = "CreateCustomKeyStore";
    const READ_ONLY: bool = false;
    type Output = CreateCustomKeyStoreResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let name = required(&self.custom_key_store_name, "customKeyStoreName")?;
        length("customKeyStoreName", name, 1, 256)?;
        let store_type = self
            .custom_key_store_type
            .as_deref()
            .unwrap_or(AWS_CLOUDHSM);
        if store_type == AWS_CLOUDHSM {
            let cluster = required(&self.cloud_hsm_cluster_id, "cloudHsmClusterId")?;
            length("cloudHsmClusterId", cluster, 19, 24)?;
            required(&self.trust_anchor_certificate, "trustAnchorCertificate")?;
            required(&self.key_store_password, "keyStorePassword")?;
            kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
            return Err(no_cloudhsm_cluster(cluster));
        }
        if store_type != EXTERNAL_KEY_STORE {
            return Err(KmsError::constraint(
                "customKeyStoreType",
                store_type,
                "Member must satisfy enum value set: [AWS_CLOUDHSM, EXTERNAL_KEY_STORE]",
            ));
        }
        let endpoint = required(&self.xks_proxy_uri_endpoint, "xksProxyUriEndpoint")?;
        validate_endpoint(endpoint)?;
        let path = required(&self.xks_proxy_uri_path, "xksProxyUriPath")?;
        validate_path(path)?;
        let credential = required(
            &self.xks_proxy_authentication_credential,
            "xksProxyAuthenticationCredential",
        )?;
        let (access_key_id, secret) = validate_credential(credential)?;
        let connectivity = required(&self.xks_proxy_connectivity, "xksProxyConnectivity")?;
        validate_connectivity(connectivity)?;
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        if connectivity == VPC_ENDPOINT_SERVICE {
            return Err(no_vpc_endpoint_service(
                self.xks_proxy_vpc_endpoint_service_name.as_deref(),
            ));
        }
        let account = &ctx.principal.account_id;
        let _guard = kms.key_store_lock().await;
        let stores = kms.key_stores(account, &ctx.region).await?;
        if stores.len() >= MAX_KEY_STORES {
            return Err(KmsError::LimitExceeded(format!(
                "This account already has {MAX_KEY_STORES} custom key stores in {}.",
                ctx.region
            )));
        }
        check_unique(&stores, None, name, Some((endpoint, path)))?;
        let id = new_key_store_id();
        let record = KeyStoreRecord {
            wrapped_secret: kms.wrap_proxy_secret(account, &ctx.region, &id, secret)?,
            id,
            name: name.clone(),
            account_id: account.clone(),
            region: ctx.region.clone(),
            created_ms: now_ms(),
            connection_state: ConnectionState::Disconnected,
            connection_error_code: None,
            connectivity: connectivity.clone(),
            uri_endpoint: endpoint.clone(),
            uri_path: path.clone(),
            vpc_endpoint_service_name: None,
            vpc_endpoint_service_owner: None,
            access_key_id: access_key_id.to_string(),
        };
        ensure_proxy_healthy(
            kms.check_proxy(&record, Some(secret), ctx, Self::NAME)
                .await?,
        )?;
        kms.save_key_store(&record).await?;
        notes.response_elements = Some(serde_json::json!({ "customKeyStoreId": record.id }));
        Ok(CreateCustomKeyStoreResponse {
            custom_key_store_id: Some(record.id),
        })
    }
}

fn list_entry(record: &KeyStoreRecord) -> CustomKeyStoresListEntry {
    CustomKeyStoresListEntry {
        custom_key_store_id: Some(record.id.clone()),
        custom_key_store_name: Some(record.name.clone()),
        connection_state: Some(record.connection_state.as_str().into()),
        connection_error_code: record
            .connection_error_code
            .clone()
            .filter(|_| record.connection_state == ConnectionState::Failed),
        creation_date: Some(epoch_seconds(record.created_ms)),
        custom_key_store_type: Some(EXTERNAL_KEY_STORE.into()),
        xks_proxy_configuration: Some(XksProxyConfiguration {
            connectivity: Some(record.connectivity.clone()),
            access_key_id: Some(record.access_key_id.clone()),
            uri_endpoint: Some(record.uri_endpoint.clone()),
            uri_path: Some(record.uri_path.clone()),
            vpc_endpoint_service_name: record.vpc_endpoint_service_name.clone(),
            vpc_endpoint_service_owner: record.vpc_endpoint_service_owner.clone(),
        }),
        ..Default::default()
    }
}

#[async_trait::async_trait]
impl KmsOperation for DescribeCustomKeyStoresRequest {
    const NAME: &'static str = "DescribeCustomKeyStores";
    const READ_ONLY: bool = true;
    type Output = DescribeCustomKeyStoresResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        if let Some(id) = &self.custom_key_store_id {
            length("customKeyStoreId", id, 1, 64)?;
        }
        if let Some(name) = &self.custom_key_store_name {
            length("customKeyStoreName", name, 1, 256)?;
        }
        let limit = limit(self.limit, 100)?;
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        let mut stores = kms
            .key_stores(&ctx.principal.account_id, &ctx.region)
            .await?;
        if let Some(id) = &self.custom_key_store_id {
            stores.retain(|s| &s.id == id);
            if stores.is_empty() {
                return Err(KmsError::CustomKeyStoreNotFound(format!(
                    "Custom key store {id} does not exist in this account and Region."
                )));
            }
        }
        if let Some(name) = &self.custom_key_store_name {
            stores.retain(|s| &s.name == name);
            if stores.is_empty() {
                return Err(KmsError::CustomKeyStoreNotFound(format!(
                    "No custom key store named {name} exists in this account and Region."
                )));
            }
        }
        let indexed: Vec<(usize, KeyStoreRecord)> = stores.into_iter().enumerate().collect();
        let (page, next, truncated) =
            paginate(indexed, |(i, _)| format!("{i:08}"), &self.marker, limit)?;
        Ok(DescribeCustomKeyStoresResponse {
            custom_key_stores: Some(page.iter().map(|(_, s)| list_entry(s)).collect()),
            next_marker: next,
            truncated: Some(truncated),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for ConnectCustomKeyStoreRequest {
    const NAME: &'static str = "ConnectCustomKeyStore";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    /// Connecting is finished when the call returns: the proxy's health check decides between
    /// CONNECTED and FAILED (with its ConnectionErrorCode), and the call succeeds either way,
    /// as AWS's asynchronous connection does.
    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let (_guard, mut record) = named_store(kms, ctx, &self.custom_key_store_id).await?;
        let id = record.id.clone();
        match record.connection_state {
            ConnectionState::Connected => return Ok(EmptyResponse {}),
            ConnectionState::Failed => {
                return Err(KmsError::CustomKeyStoreInvalidState(format!(
                    "Custom key store {id} is FAILED: disconnect it (DisconnectCustomKeyStore) before connecting it again."
                )));
            }
            ConnectionState::Disconnected => {}
        }
        match kms.check_proxy(&record, None, ctx, Self::NAME).await? {
            Ok(()) => {
                record.connection_state = ConnectionState::Connected;
                record.connection_error_code = None;
            }
            Err(failure) => {
                tracing::warn!(key_store = %id, error = %failure, "connecting a custom key store failed");
                record.connection_state = ConnectionState::Failed;
                record.connection_error_code = Some(connection_error_code(&failure).into());
            }
        }
        kms.save_key_store(&record).await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for DisconnectCustomKeyStoreRequest {
    const NAME: &'static str = "DisconnectCustomKeyStore";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let (_guard, mut record) = named_store(kms, ctx, &self.custom_key_store_id).await?;
        if record.connection_state == ConnectionState::Disconnected {
            return Err(invalid_state(&record, "CONNECTED or FAILED"));
        }
        record.connection_state = ConnectionState::Disconnected;
        record.connection_error_code = None;
        kms.save_key_store(&record).await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for DeleteCustomKeyStoreRequest {
    const NAME: &'static str = "DeleteCustomKeyStore";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let (_guard, record) = named_store(kms, ctx, &self.custom_key_store_id).await?;
        let id = &record.id;
        if record.connection_state != ConnectionState::Disconnected {
            return Err(invalid_state(&record, "DISCONNECTED"));
        }
        let keys = kms.keys_in_store(&record).await?;
        if !keys.is_empty() {
            return Err(KmsError::CustomKeyStoreHasKeys(format!(
                "Custom key store {id} still holds {} KMS key(s): schedule their deletion (ScheduleKeyDeletion) and delete the key store once they are deleted.",
                keys.len()
            )));
        }
        kms.delete_key_store(&record).await?;
        Ok(EmptyResponse {})
    }
}

#[async_trait::async_trait]
impl KmsOperation for UpdateCustomKeyStoreRequest {
    const NAME: &'static str = "UpdateCustomKeyStore";
    const READ_ONLY: bool = false;
    type Output = EmptyResponse;

    /// The name, the credential and the URI path change while the key store is connected or
    /// disconnected; the endpoint and the connectivity only while it is disconnected. A change
    /// the proxy sees (credential, path, endpoint) is checked with the proxy before it is saved.
    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let id = key_store_id_member(&self.custom_key_store_id)?;
        if let Some(name) = &self.new_custom_key_store_name {
            length("newCustomKeyStoreName", name, 1, 256)?;
        }
        if let Some(endpoint) = &self.xks_proxy_uri_endpoint {
            validate_endpoint(endpoint)?;
        }
        if let Some(path) = &self.xks_proxy_uri_path {
            validate_path(path)?;
        }
        let credential = self
            .xks_proxy_authentication_credential
            .as_ref()
            .map(validate_credential)
            .transpose()?;
        if let Some(connectivity) = &self.xks_proxy_connectivity {
            validate_connectivity(connectivity)?;
        }
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        let _guard = kms.key_store_lock().await;
        let stores = kms
            .key_stores(&ctx.principal.account_id, &ctx.region)
            .await?;
        let Some(mut record) = stores.iter().find(|s| s.id == id).cloned() else {
            return Err(KmsError::CustomKeyStoreNotFound(format!(
                "Custom key store {id} does not exist in this account and Region."
            )));
        };
        if self.cloud_hsm_cluster_id.is_some() || self.key_store_password.is_some() {
            return Err(KmsError::Validation(format!(
                "CloudHsmClusterId and KeyStorePassword apply to AWS CloudHSM key stores; {id} is an external key store."
            )));
        }
        let needs_disconnected = self.xks_proxy_uri_endpoint.is_some()
            || self.xks_proxy_connectivity.is_some()
            || self.xks_proxy_vpc_endpoint_service_name.is_some()
            || self.xks_proxy_vpc_endpoint_service_owner.is_some();
        match record.connection_state {
            ConnectionState::Disconnected => {}
            ConnectionState::Connected if !needs_disconnected => {}
            ConnectionState::Connected => {
                return Err(invalid_state(
                    &record,
                    "DISCONNECTED (the endpoint and connectivity change only then)",
                ));
            }
            ConnectionState::Failed => {
                return Err(invalid_state(&record, "CONNECTED or DISCONNECTED"));
            }
        }
        if self.xks_proxy_connectivity.as_deref() == Some(VPC_ENDPOINT_SERVICE) {
            return Err(no_vpc_endpoint_service(
                self.xks_proxy_vpc_endpoint_service_name.as_deref(),
            ));
        }
        if let Some(name) = &self.new_custom_key_store_name {
            record.name = name.clone();
        }
        if let Some(endpoint) = &self.xks_proxy_uri_endpoint {
            record.uri_endpoint = endpoint.clone();
        }
        if let Some(path) = &self.xks_proxy_uri_path {
            record.uri_path = path.clone();
        }
        if let Some(connectivity) = &self.xks_proxy_connectivity {
            record.connectivity = connectivity.clone();
        }
        check_unique(
            &stores,
            Some(id),
            &record.name,
            Some((&record.uri_endpoint, &record.uri_path)),
        )?;
        if let Some((access_key_id, secret)) = credential {
            record.access_key_id = access_key_id.to_string();
            record.wrapped_secret =
                kms.wrap_proxy_secret(&record.account_id, &record.region, id, secret)?;
        }
        let proxy_changed = credential.is_some()
            || self.xks_proxy_uri_endpoint.is_some()
            || self.xks_proxy_uri_path.is_some();
        if proxy_changed {
            ensure_proxy_healthy(
                kms.check_proxy(&record, credential.map(|(_, s)| s), ctx, Self::NAME)
                    .await?,
            )?;
        }
        kms.save_key_store(&record).await?;
        Ok(EmptyResponse {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_uri_paths_follow_the_model() {
        for good in [
            "/kms/xks/v1",
            "/keystores/a-b_c/kms/xks/v1",
            "/p/kms/xks/v12",
        ] {
            assert!(validate_path(good).is_ok(), "{good}");
        }
        for bad in [
            "/kms/xks/v",
            "kms/xks/v1/",
            "/kms/xks/v123",
            "/a b/kms/xks/v1",
            "/kms/xks/v1/keys",
        ] {
            assert!(validate_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proxy_endpoints_are_bare_https_hosts() {
        assert!(validate_endpoint("https://xks.example.com").is_ok());
        for bad in [
            "http://xks.example.com",
            "https://xks.example.com:8443",
            "https://xks.example.com/",
            "https://",
        ] {
            assert!(validate_endpoint(bad).is_err(), "{bad}");
        }
    }
}
