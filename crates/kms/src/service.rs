//! The KMS service: key lookup with a cache of unwrapped backing keys, state rules, and the
//! dispatcher that journals every call.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use foldhash::HashMap;
use keytrail_audit::{
    CallContext, EventCategory, EventRecord, EventType, Journal, PrincipalKind, Resource,
};
use keytrail_crypto::RootKey;
use keytrail_iam::Identities;
use keytrail_policy::{Decision, Policy, PolicyKind, ResourceAuthority};
use keytrail_store::{AliasRow, KeyMaterialRow, KmsKeyChange, KmsKeyRow, Store};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::asymmetric::{self, KeyMaterial};
use crate::envelope::{self, MATERIAL_ID_LEN};
use crate::error::{KmsError, KmsResult};
use crate::grants::{self, Grant, GrantCache};
use crate::keys::{
    KeyIdentifier, KeyRecord, KeyState, MultiRegionSet, SharedProperties, alias_arn,
    parse_key_identifier,
};

mod key_stores;
mod multi_region;

pub const EVENT_SOURCE: &str = "kms.amazonaws.com";

/// One backing key of a KMS key, unwrapped and ready.
pub(crate) struct LoadedMaterial {
    pub id: [u8; MATERIAL_ID_LEN],
    pub id_hex: String,
    pub key: KeyMaterial,
    pub created_ms: i64,
    pub rotation_type: Option<String>,
}

/// What a change to a key does to its backing keys.
pub(crate) enum MaterialChange<'a> {
    Keep,
    /// A new generated backing key becomes current (`AUTOMATIC` or `ON_DEMAND`).
    Rotate(&'a str),
    /// Imported material (the secret and its id) becomes current.
    Import {
        secret: &'a [u8],
        id_hex: &'a str,
    },
    /// Every backing key is deleted (imported material deleted).
    DropAll,
    /// Every backing key is deleted if the newest record's material has expired; otherwise
    /// nothing changes (it was reimported meanwhile).
    DropIfExpired,
}

/// A backing key a change adds: to the key, and to the replicas of a multi-Region primary.
struct NewMaterial<'a> {
    secret: Zeroizing<Vec<u8>>,
    id_hex: String,
    rotation_type: Option<&'a str>,
}

/// A key with its backing keys and its parsed key policy, as cached.
pub(crate) struct LoadedKey {
    pub record: KeyRecord,
    pub arn: String,
    pub materials: Arc<Vec<Arc<LoadedMaterial>>>,
    /// `None` when the stored policy no longer parses: such a key allows nothing (fail closed).
    pub policy: Option<Arc<Policy>>,
}

impl LoadedKey {
    pub fn new(record: KeyRecord, materials: Arc<Vec<Arc<LoadedMaterial>>>) -> Self {
        let arn = record.arn();
        let policy = match Policy::parse(&record.policy, PolicyKind::Resource) {
            Ok(policy) => Some(Arc::new(policy)),
            Err(e) => {
                tracing::error!(key = %arn, error = %e, "stored key policy does not parse; the key allows nothing");
                None
            }
        };
        Self {
            record,
            arn,
            materials,
            policy,
        }
    }

    pub fn current(&self) -> KmsResult<&LoadedMaterial> {
        self.materials
            .iter()
            .find(|m| m.id_hex == self.record.current_material_id)
            .map(|m| &**m)
            .ok_or_else(|| KmsError::Internal("The key's current key material is missing.".into()))
    }

    pub fn material(&self, id: &[u8; MATERIAL_ID_LEN]) -> Option<&LoadedMaterial> {
        self.materials.iter().find(|m| &m.id == id).map(|m| &**m)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct KeyRef {
    pub account_id: String,
    pub region: String,
    pub key_id: String,
}

type AliasMap = Arc<BTreeMap<String, AliasRow>>;

/// What an operation adds to its event besides the request.
#[derive(Debug, Default)]
pub struct AuditNotes {
    pub key_arn: Option<String>,
    pub extra_resources: Vec<Resource>,
    pub response_elements: Option<serde_json::Value>,
    pub key_material_id: Option<String>,
    /// The key store and external key of a key in an external key store: cryptographic calls
    /// name them in `additionalEventData` instead of the key material.
    pub external_key: Option<(String, String)>,
    /// Events of the same call in other Regions (ReplicateKey's CreateKey in the replica's
    /// Region), journaled before the call's own.
    pub other_region_events: Vec<EventRecord>,
}

/// One KMS operation: its input type knows its name, how it appears in events and how to run.
#[async_trait::async_trait]
pub trait KmsOperation: Serialize + Send + Sync {
    const NAME: &'static str;
    /// Reads and cryptographic operations are `readOnly: true` in events (§5.6).
    const READ_ONLY: bool;
    type Output: Serialize + Send;

    /// The request's own condition keys (`kms:EncryptionContext:...`, `kms:KeySpec`, ...).
    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        Vec::new()
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output>;
}

/// One KMS call as its operation sees it: the invocation, and what authorizing it needs. Every
/// key an operation resolves is authorized for the operation's action; an operation that
/// succeeds without any authorization is a bug the dispatcher refuses to let through.
pub struct KmsCall<'a> {
    pub ctx: &'a CallContext,
    action: String,
    request: &'a (dyn ConditionKeySource + Sync),
    /// The request's condition keys, built the first time a policy or a grant reads them:
    /// most calls are decided by policies that read none, on keys without grants.
    condition_keys: std::sync::OnceLock<Vec<(String, Vec<String>)>>,
    authorized: std::sync::atomic::AtomicBool,
}

/// An operation's request, as the source of its condition keys.
trait ConditionKeySource {
    fn build_condition_keys(&self) -> Vec<(String, Vec<String>)>;
}

impl<O: KmsOperation> ConditionKeySource for O {
    fn build_condition_keys(&self) -> Vec<(String, Vec<String>)> {
        self.condition_keys()
    }
}

impl std::ops::Deref for KmsCall<'_> {
    type Target = CallContext;

    fn deref(&self) -> &CallContext {
        self.ctx
    }
}

impl KmsCall<'_> {
    pub fn action(&self) -> &str {
        &self.action
    }

    pub(crate) fn condition_keys(&self) -> &[(String, Vec<String>)] {
        self.condition_keys
            .get_or_init(|| self.request.build_condition_keys())
    }

    /// For RetireGrant, which no policy controls: the grant itself names who may retire it.
    pub(crate) fn authorized_by_grant(&self) {
        self.authorized
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// For operations AWS performs on a caller's behalf without a permission of its own (a
    /// service creating its AWS managed key).
    pub(crate) fn authorized_by_service(&self) {
        self.authorized
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The KMS service of one keytrail process.
pub struct Kms {
    store: Arc<dyn Store>,
    root_key: Arc<RootKey>,
    identities: Arc<Identities>,
    journal: Journal,
    keys: RwLock<HashMap<KeyRef, Arc<LoadedKey>>>,
    aliases: RwLock<HashMap<(String, String), AliasMap>>,
    grants: GrantCache,
    /// Mutations are rare; serialising them keeps the cache and the store in step.
    mutations: tokio::sync::Mutex<()>,
    /// Changes of custom key stores, apart from key mutations: they wait for XKS proxies.
    key_store_mutations: tokio::sync::Mutex<()>,
    xks_settings: crate::xks::XksSettings,
    /// Built on first use: most servers never talk to an XKS proxy.
    xks: std::sync::OnceLock<Result<crate::xks::XksClient, String>>,
    /// `keytrail_kms_requests_total` handles by key ARN and operation, so a request does not
    /// build and hash a label set in the recorder each time.
    request_counters: RwLock<HashMap<String, Vec<(&'static str, metrics::Counter)>>>,
}

/// Keys whose request counters are kept; beyond it requests go to the recorder directly.
const MAX_COUNTED_KEYS: usize = 10_000;

impl std::fmt::Debug for Kms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kms")
    }
}

fn identity_failure(e: keytrail_iam::IamError) -> KmsError {
    tracing::error!(error = %e, "identity policies could not be read");
    KmsError::Internal("The request failed because of an internal error.".into())
}

pub(crate) fn now_ms() -> i64 {
    keytrail_audit::clock::now_ms()
}

pub(crate) fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn material_aad(arn: &str, material_id_hex: &str) -> Vec<u8> {
    format!("{arn}#{material_id_hex}").into_bytes()
}

/// The event of something KMS did on its own to a key (AWS's `RotateKey`, `DeleteKey`, …).
fn internal_event(
    record: &KeyRecord,
    arn: &str,
    name: &'static str,
    event_type: EventType,
) -> EventRecord {
    let mut event = EventRecord::aws_internal(
        EVENT_SOURCE,
        name,
        &record.region,
        &record.account_id,
        event_type,
    );
    event.resources.push(Resource {
        account_id: Some(record.account_id.clone()),
        resource_type: "AWS::KMS::Key".into(),
        arn: arn.to_string(),
    });
    event
}

impl Kms {
    pub fn new(
        store: Arc<dyn Store>,
        root_key: Arc<RootKey>,
        identities: Arc<Identities>,
        journal: Journal,
    ) -> Self {
        Self {
            store,
            root_key,
            identities,
            journal,
            keys: RwLock::new(HashMap::default()),
            request_counters: RwLock::new(HashMap::default()),
            aliases: RwLock::new(HashMap::default()),
            grants: GrantCache::default(),
            mutations: tokio::sync::Mutex::new(()),
            key_store_mutations: tokio::sync::Mutex::new(()),
            xks_settings: crate::xks::XksSettings::default(),
            xks: std::sync::OnceLock::new(),
        }
    }

    /// How this KMS reaches the XKS proxies of external key stores.
    pub fn with_xks_settings(mut self, settings: crate::xks::XksSettings) -> Self {
        self.xks_settings = settings;
        self.xks = std::sync::OnceLock::new();
        self
    }

    /// Fails when stored key material cannot be unwrapped with this root key, so that a server
    /// started with the wrong root key refuses to start instead of failing every call.
    pub async fn check_root_key(&self) -> KmsResult<usize> {
        let rows = self.store.list_kms_keys(None).await?;
        for row in rows.iter().take(3) {
            let key_ref = KeyRef {
                account_id: row.account_id.clone(),
                region: row.region.clone(),
                key_id: row.key_id.clone(),
            };
            self.load(&key_ref).await?;
        }
        Ok(rows.len())
    }

    /// Runs an operation and journals it; the event is durable before the result is returned.
    pub async fn execute<O: KmsOperation>(
        &self,
        ctx: &CallContext,
        request: &O,
    ) -> KmsResult<O::Output> {
        let mut notes = AuditNotes::default();
        let call = KmsCall {
            ctx,
            action: format!("kms:{}", O::NAME),
            request,
            condition_keys: std::sync::OnceLock::new(),
            authorized: std::sync::atomic::AtomicBool::new(false),
        };
        let mut result = request.run(self, &call, &mut notes).await;
        if result.is_ok() && !call.authorized.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::error!(
                operation = O::NAME,
                "KMS operation completed without authorization"
            );
            result = Err(KmsError::Internal(
                "The request failed because of an internal error.".into(),
            ));
        }
        let mut record = EventRecord::new(
            ctx,
            EVENT_SOURCE,
            O::NAME,
            O::READ_ONLY,
            EventCategory::Management,
        );
        record.request_parameters = crate::audit::request_parameters(request);
        if result.is_ok() {
            record.response_elements = notes.response_elements.take();
        }
        if let Some(arn) = notes.key_arn.take() {
            // Prometheus: successful requests per key and operation (what usage reports bill).
            if result.is_ok() {
                self.request_counter(&arn, O::NAME).increment(1);
            }
            record.resources.push(Resource {
                account_id: Some(ctx.principal.account_id.clone()),
                resource_type: "AWS::KMS::Key".into(),
                arn,
            });
        }
        record.resources.append(&mut notes.extra_resources);
        if let Some(id) = &notes.key_material_id {
            record.additional_event_data = Some(match &notes.external_key {
                Some((store, xks_key)) => {
                    serde_json::json!({ "customKeyStoreId": store, "xksKeyId": xks_key })
                }
                None => serde_json::json!({ "keyMaterialId": id }),
            });
        }
        if let Err(e) = &result {
            record = record.failed(e.code(), &e.message());
        }
        for other in notes.other_region_events.drain(..) {
            if let Err(e) = self.journal.record(other).await {
                tracing::error!(error = %e, "KMS event could not be journaled");
                return Err(KmsError::Internal(
                    "The request failed because of an internal error.".into(),
                ));
            }
        }
        if let Err(e) = self.journal.record(record).await {
            tracing::error!(error = %e, "KMS event could not be journaled");
            return Err(KmsError::Internal(
                "The request failed because of an internal error.".into(),
            ));
        }
        result
    }

    fn request_counter(&self, key_arn: &str, operation: &'static str) -> metrics::Counter {
        if let Ok(counters) = self.request_counters.read()
            && let Some((_, counter)) = counters
                .get(key_arn)
                .and_then(|by_operation| by_operation.iter().find(|(op, _)| *op == operation))
        {
            return counter.clone();
        }
        let counter = metrics::counter!(
            "keytrail_kms_requests_total",
            "key" => key_arn.to_string(),
            "operation" => operation
        );
        if let Ok(mut counters) = self.request_counters.write()
            && (counters.len() < MAX_COUNTED_KEYS || counters.contains_key(key_arn))
        {
            let by_operation = counters.entry(key_arn.to_string()).or_default();
            if !by_operation.iter().any(|(op, _)| *op == operation) {
                by_operation.push((operation, counter.clone()));
            }
        }
        counter
    }

    /// Journals what KMS did on its own. The change it records is already stored, so a
    /// journal failure is logged rather than undoing it.
    async fn journal_internal(&self, event: EventRecord) {
        let name = event.event_name.clone();
        if let Err(e) = self.journal.record(event).await {
            tracing::error!(error = %e, event = %name, "KMS service event could not be journaled");
        }
    }

    // ---- key lookup -------------------------------------------------------------------

    fn cached(&self, key_ref: &KeyRef) -> Option<Arc<LoadedKey>> {
        self.keys.read().ok()?.get(key_ref).cloned()
    }

    fn cache(&self, key_ref: KeyRef, key: Option<Arc<LoadedKey>>) {
        if let Ok(mut keys) = self.keys.write() {
            match key {
                Some(k) => {
                    keys.insert(key_ref, k);
                }
                None => {
                    keys.remove(&key_ref);
                }
            }
        }
    }

    fn unwrap_material(
        &self,
        arn: &str,
        spec: &str,
        row: &KeyMaterialRow,
    ) -> KmsResult<LoadedMaterial> {
        let plain = self
            .root_key
            .unwrap(&row.wrapped_material, &material_aad(arn, &row.material_id))
            .map_err(|_| {
                KmsError::Internal(format!(
                    "The key material of {arn} cannot be unwrapped: the root key is not the one it was stored under."
                ))
            })?;
        let id: [u8; MATERIAL_ID_LEN] = hex::decode(&row.material_id)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| KmsError::Internal("A stored key material id is malformed.".into()))?;
        Ok(LoadedMaterial {
            id,
            id_hex: row.material_id.clone(),
            key: asymmetric::load(spec, &plain)?,
            created_ms: row.created_at_ms,
            rotation_type: row.rotation_type.clone(),
        })
    }

    /// The key from the cache, or from the store (unwrapping its materials once), as stored:
    /// without the deletion and expiry a [`Self::load`] carries out, so it is safe under the
    /// mutation lock.
    async fn fetch(&self, key_ref: &KeyRef) -> KmsResult<Option<Arc<LoadedKey>>> {
        if let Some(key) = self.cached(key_ref) {
            return Ok(Some(key));
        }
        let Some((row, materials)) = self
            .store
            .get_kms_key(&key_ref.account_id, &key_ref.region, &key_ref.key_id)
            .await?
        else {
            return Ok(None);
        };
        let record: KeyRecord = serde_json::from_str(&row.record_json)
            .map_err(|e| KmsError::Internal(format!("A stored key is unreadable: {e}")))?;
        let arn = record.arn();
        let materials = materials
            .iter()
            .map(|m| {
                self.unwrap_material(&arn, &record.key_spec, m)
                    .map(Arc::new)
            })
            .collect::<KmsResult<Vec<_>>>()?;
        let key = Arc::new(LoadedKey::new(record, Arc::new(materials)));
        self.cache(key_ref.clone(), Some(Arc::clone(&key)));
        Ok(Some(key))
    }

    /// The key from the cache, or from the store; a key whose deletion is due is deleted and
    /// imported material past its expiry dropped first.
    pub(crate) async fn load(&self, key_ref: &KeyRef) -> KmsResult<Option<Arc<LoadedKey>>> {
        let Some(key) = self.fetch(key_ref).await? else {
            return Ok(None);
        };
        // A key whose deletion window is over is gone, even before the sweeper gets to it.
        if key.record.state == KeyState::PendingDeletion
            && key.record.deletion_ms.is_some_and(|at| at <= now_ms())
        {
            self.delete_now(key_ref).await?;
            return Ok(None);
        }
        // Imported material past its ValidTo is gone, even before the sweeper gets to it.
        if key.record.valid_to_ms.is_some() && Self::material_expired(&key.record, now_ms()) {
            return Ok(Some(self.expire_material(&key).await?));
        }
        Ok(Some(key))
    }

    fn material_expired(record: &KeyRecord, now: i64) -> bool {
        !record.current_material_id.is_empty() && record.valid_to_ms.is_some_and(|at| at <= now)
    }

    async fn expire_material(&self, key: &LoadedKey) -> KmsResult<Arc<LoadedKey>> {
        let expired = self
            .change_key(key, MaterialChange::DropIfExpired, |r, _| {
                if r.state != KeyState::PendingDeletion {
                    r.state = KeyState::PendingImport;
                }
                Ok(())
            })
            .await?;
        tracing::info!(key_id = %key.record.key_id, "imported key material expired and was deleted");
        Ok(expired)
    }

    async fn alias_map(&self, account_id: &str, region: &str) -> KmsResult<AliasMap> {
        let scope = (account_id.to_string(), region.to_string());
        if let Some(map) = self
            .aliases
            .read()
            .ok()
            .and_then(|m| m.get(&scope).cloned())
        {
            return Ok(map);
        }
        let rows = self.store.list_aliases(Some((account_id, region))).await?;
        let map: AliasMap = Arc::new(
            rows.into_iter()
                .map(|r| (r.alias_name.clone(), r))
                .collect(),
        );
        if let Ok(mut aliases) = self.aliases.write() {
            aliases.insert(scope, Arc::clone(&map));
        }
        Ok(map)
    }

    fn forget_aliases(&self, account_id: &str, region: &str) {
        if let Ok(mut aliases) = self.aliases.write() {
            aliases.remove(&(account_id.to_string(), region.to_string()));
        }
    }

    fn not_found(arn: &str) -> KmsError {
        KmsError::NotFound(format!("Key '{arn}' does not exist"))
    }

    /// Resolves a `KeyId` member and authorizes the call's action on the key. Aliases are
    /// accepted only where AWS accepts them (`allow_alias`); keys of other accounts by ARN.
    pub(crate) async fn resolve(
        &self,
        call: &KmsCall<'_>,
        input: &str,
        allow_alias: bool,
    ) -> KmsResult<Arc<LoadedKey>> {
        self.resolve_for(call, input, allow_alias, &call.action)
            .await
    }

    /// [`Self::resolve`] for an action other than the operation's own (`kms:ReEncryptFrom`).
    pub(crate) async fn resolve_for(
        &self,
        call: &KmsCall<'_>,
        input: &str,
        allow_alias: bool,
        action: &str,
    ) -> KmsResult<Arc<LoadedKey>> {
        let (key, by_alias) = self.find(call.ctx, input, allow_alias).await?;
        let mut extra = Vec::new();
        if by_alias {
            extra.push(("kms:RequestAlias".to_string(), vec![input.to_string()]));
        }
        self.authorize(call, Some(&key), action, extra).await?;
        Ok(key)
    }

    /// Finds a key without authorizing anything: for lookups a service makes on its own
    /// account (checking a bucket's configured key), never for a caller's operation.
    pub(crate) async fn lookup(
        &self,
        ctx: &CallContext,
        input: &str,
        allow_alias: bool,
    ) -> KmsResult<Arc<LoadedKey>> {
        Ok(self.find(ctx, input, allow_alias).await?.0)
    }

    /// The key an identifier names, and whether it was named through an alias.
    async fn find(
        &self,
        ctx: &CallContext,
        input: &str,
        allow_alias: bool,
    ) -> KmsResult<(Arc<LoadedKey>, bool)> {
        let caller_account = ctx.principal.account_id.as_str();
        let region = ctx.region.as_str();
        let identifier = parse_key_identifier(input)?;
        let by_alias = identifier.is_alias();
        if by_alias && !allow_alias {
            return Err(KmsError::NotFound(format!("Invalid keyId '{input}'")));
        }
        // Keys are regional: an ARN of another region names nothing here.
        let (account, key_id) = match identifier {
            KeyIdentifier::KeyId(id) => (caller_account.to_string(), id),
            KeyIdentifier::KeyArn {
                region: r,
                account_id: a,
                key_id,
            } => {
                if r != region {
                    return Err(Self::not_found(input));
                }
                (a, key_id)
            }
            KeyIdentifier::AliasName(name) => (
                caller_account.to_string(),
                self.alias_target(caller_account, region, &name).await?,
            ),
            KeyIdentifier::AliasArn {
                region: r,
                account_id: a,
                alias_name,
            } => {
                if r != region {
                    return Err(KmsError::NotFound(format!("Alias {input} is not found.")));
                }
                let target = self.alias_target(&a, region, &alias_name).await?;
                (a, target)
            }
        };
        let key_ref = KeyRef {
            account_id: account.clone(),
            region: region.to_string(),
            key_id: key_id.clone(),
        };
        let key = self
            .load(&key_ref)
            .await?
            .ok_or_else(|| Self::not_found(&crate::keys::key_arn(region, &account, &key_id)))?;
        Ok((key, by_alias))
    }

    /// Authorizes `action` on `key` (or, for operations on no key, on `*` by identity policies
    /// alone): the key policy is the primary control, IAM policies count where it delegates to
    /// the account (§2.11).
    pub(crate) async fn authorize(
        &self,
        call: &KmsCall<'_>,
        key: Option<&LoadedKey>,
        action: &str,
        extra_keys: Vec<(String, Vec<String>)>,
    ) -> KmsResult<()> {
        let resource = key.map_or("*", |k| k.arn.as_str());
        self.authorize_on(call, key, resource, action, extra_keys)
            .await
    }

    /// Authorizes `action` on a resource that has no policy of its own (an alias), by the
    /// caller's identity policies.
    pub(crate) async fn authorize_resource(
        &self,
        call: &KmsCall<'_>,
        resource: &str,
        action: &str,
    ) -> KmsResult<()> {
        self.authorize_on(call, None, resource, action, Vec::new())
            .await
    }

    async fn authorize_on(
        &self,
        call: &KmsCall<'_>,
        key: Option<&LoadedKey>,
        resource: &str,
        action: &str,
        extra_keys: Vec<(String, Vec<String>)>,
    ) -> KmsResult<()> {
        let identity = self.identity_policies(call).await?;
        // Most keys and callers have policies without conditions: then the ~20 condition keys
        // are not built at all.
        let key_policy = key.and_then(|k| k.policy.as_deref());
        let request = if keytrail_iam::policies_read_request_keys(&identity, key_policy) {
            Self::policy_request(call, key.map(|k| &k.record), resource, action, extra_keys)
        } else {
            keytrail_iam::request_without_keys(call.ctx, action, resource)
        };
        let decision = match key {
            Some(key) => {
                let grants = self.grants_of(key).await?;
                let granted = !grants.is_empty() && grants::any_allows(&grants, call, action);
                Self::decide(
                    &identity,
                    &request,
                    key_policy,
                    &key.record.account_id,
                    granted,
                )
            }
            None => keytrail_iam::decide_with(
                &identity,
                &request,
                None,
                &call.principal.account_id,
                ResourceAuthority::Optional,
                false,
            ),
        };
        match decision {
            Decision::Allow => {
                call.authorized
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            denied => Err(KmsError::AccessDenied(keytrail_iam::denial_message(
                &request,
                &denied,
                key.is_some(),
            ))),
        }
    }

    /// The request as key policies see it: the global keys plus KMS's own (§2.11).
    fn policy_request(
        call: &KmsCall<'_>,
        key: Option<&KeyRecord>,
        resource: &str,
        action: &str,
        extra_keys: Vec<(String, Vec<String>)>,
    ) -> keytrail_policy::RequestContext {
        let mut request = keytrail_iam::request_context(call.ctx, action, resource);
        if !matches!(call.principal.kind, PrincipalKind::AwsService { .. }) {
            request.set("kms:CallerAccount", call.principal.account_id.clone());
        }
        if let Some(service) = &call.invoked_by {
            let name = service.strip_suffix(".amazonaws.com").unwrap_or(service);
            request.set(
                "kms:ViaService",
                format!("{name}.{}.amazonaws.com", call.region),
            );
        }
        if let Some(key) = key {
            request.set("kms:KeySpec", key.key_spec.clone());
            request.set("kms:KeyUsage", key.key_usage.clone());
            request.set("kms:KeyOrigin", key.origin.clone());
        }
        for (name, values) in call.condition_keys().iter().cloned().chain(extra_keys) {
            request.set_values(name, values);
        }
        request
    }

    async fn identity_policies(&self, call: &KmsCall<'_>) -> KmsResult<Arc<Vec<Policy>>> {
        self.identities
            .identity_policies(&call.ctx.principal)
            .await
            .map_err(identity_failure)
    }

    /// A key's policy (`None`: it allows nothing) combined with the caller's identity policies.
    fn decide(
        identity: &[Policy],
        request: &keytrail_policy::RequestContext,
        policy: Option<&Policy>,
        owner: &str,
        granted: bool,
    ) -> Decision {
        /// What a key whose stored policy does not parse is held to: nothing is allowed.
        static NOTHING_ALLOWED: Policy = Policy {
            version: keytrail_policy::Version::V2012,
            id: None,
            statements: Vec::new(),
        };
        keytrail_iam::decide_with(
            identity,
            request,
            Some(policy.unwrap_or(&NOTHING_ALLOWED)),
            owner,
            ResourceAuthority::Required,
            granted,
        )
    }

    /// The lockout safety check of CreateKey and PutKeyPolicy: unless the caller bypasses it,
    /// a new policy must still let the caller change the policy later.
    pub(crate) async fn check_policy_lockout(
        &self,
        call: &KmsCall<'_>,
        record: &KeyRecord,
        policy: &Policy,
    ) -> KmsResult<()> {
        let request = Self::policy_request(
            call,
            Some(record),
            &record.arn(),
            "kms:PutKeyPolicy",
            Vec::new(),
        );
        let identity = self.identity_policies(call).await?;
        if Self::decide(&identity, &request, Some(policy), &record.account_id, false).is_allowed() {
            Ok(())
        } else {
            Err(KmsError::MalformedPolicyDocument(
                "The new key policy will not allow you to update the key policy in the future."
                    .into(),
            ))
        }
    }

    /// A key's grants, from the cache or the store.
    /// The newest successful event of `operations` on `key` in its account and region, and the
    /// time of the oldest event the journal still holds there.
    pub(crate) async fn last_use(
        &self,
        key: &LoadedKey,
        operations: &[&str],
    ) -> KmsResult<(Option<keytrail_store::EventRow>, Option<i64>)> {
        let r = &key.record;
        let last = self
            .store
            .last_successful_event(&r.account_id, &r.region, &key.arn, operations)
            .await?;
        let oldest = self.store.oldest_event_ms(&r.account_id, &r.region).await?;
        Ok((last, oldest))
    }

    pub(crate) async fn grants_of(&self, key: &LoadedKey) -> KmsResult<Arc<Vec<Grant>>> {
        if let Some(grants) = self.grants.get(&key.arn) {
            return Ok(grants);
        }
        let record = &key.record;
        let rows = self
            .store
            .list_grants(&record.account_id, &record.region, &record.key_id)
            .await?;
        let grants: Vec<Grant> = rows
            .iter()
            .filter_map(|row| {
                serde_json::from_str(&row.record_json)
                    .inspect_err(|e| tracing::error!(grant = %row.grant_id, error = %e, "stored grant unreadable; ignored"))
                    .ok()
            })
            .collect();
        let grants = Arc::new(grants);
        self.grants.put(key.arn.clone(), Arc::clone(&grants));
        Ok(grants)
    }

    pub(crate) async fn add_grant(&self, record: &KeyRecord, grant: &Grant) -> KmsResult<()> {
        let row = keytrail_store::GrantRow {
            account_id: record.account_id.clone(),
            region: record.region.clone(),
            key_id: record.key_id.clone(),
            grant_id: grant.grant_id.clone(),
            retiring_principal: grant.retiring.clone(),
            created_at_ms: grant.created_ms,
            record_json: serde_json::to_string(grant)
                .map_err(|e| KmsError::Internal(format!("grant encoding failed: {e}")))?,
        };
        let result = self.store.put_grant(row).await;
        self.grants.forget(&record.arn());
        Ok(result?)
    }

    /// Returns whether the grant existed.
    pub(crate) async fn remove_grant(&self, record: &KeyRecord, grant_id: &str) -> KmsResult<bool> {
        let result = self
            .store
            .delete_grant(&record.account_id, &record.region, &record.key_id, grant_id)
            .await;
        self.grants.forget(&record.arn());
        Ok(result?)
    }

    /// The grants in a region that `retiring_principal` may retire, on any key.
    pub(crate) async fn retirable_grants(
        &self,
        retiring_principal: &str,
        region: &str,
    ) -> KmsResult<Vec<Grant>> {
        Ok(self
            .store
            .list_grants_by_retiring_principal(retiring_principal)
            .await?
            .iter()
            .filter(|row| row.region == region)
            .filter_map(|row| serde_json::from_str(&row.record_json).ok())
            .collect())
    }

    /// Checks the grant tokens of a request: each must be one this server issued.
    pub(crate) fn check_grant_tokens(&self, tokens: &[String]) -> KmsResult<()> {
        for token in tokens {
            grants::read_token(&self.root_key, token)?;
        }
        Ok(())
    }

    pub(crate) fn root_key(&self) -> &RootKey {
        &self.root_key
    }

    async fn alias_target(&self, account: &str, region: &str, name: &str) -> KmsResult<String> {
        self.alias_map(account, region)
            .await?
            .get(name)
            .map(|a| a.target_key_id.clone())
            .ok_or_else(|| {
                KmsError::NotFound(format!(
                    "Alias {} is not found.",
                    alias_arn(region, account, name)
                ))
            })
    }

    pub(crate) async fn aliases_of(&self, account: &str, region: &str) -> KmsResult<AliasMap> {
        self.alias_map(account, region).await
    }

    /// For services that configure a key for server-side encryption (S3 bucket encryption,
    /// CloudTrail trails): the key's ARN if it exists and is a symmetric encryption key.
    /// Only symmetric keys can protect S3 objects and CloudTrail logs (§2.4, the seed).
    pub async fn symmetric_key_arn(&self, ctx: &CallContext, key_id: &str) -> KmsResult<String> {
        let key = self.lookup(ctx, key_id, true).await?;
        if key.record.key_spec != crate::asymmetric::SYMMETRIC_DEFAULT {
            return Err(KmsError::InvalidKeyUsage(format!(
                "{} is a {} key; only symmetric encryption keys are supported for server-side encryption.",
                key.arn, key.record.key_spec
            )));
        }
        Ok(key.arn.clone())
    }

    // ---- state rules ------------------------------------------------------------------

    /// Cryptographic operations need an Enabled key (§2.6).
    pub(crate) fn usable_for_crypto(key: &LoadedKey) -> KmsResult<()> {
        Self::record_enabled(&key.record, &key.arn)
    }

    /// Enabled, or the error AWS gives for the state the key is in.
    pub(crate) fn record_enabled(record: &KeyRecord, arn: &str) -> KmsResult<()> {
        match record.state {
            KeyState::Enabled => Ok(()),
            KeyState::Disabled => Err(KmsError::Disabled(format!("{arn} is disabled."))),
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion => {
                Self::record_not_pending_deletion(record, arn)
            }
            KeyState::PendingImport => Self::record_not_pending_import(record, arn),
        }
    }

    pub(crate) fn not_pending_deletion(key: &LoadedKey) -> KmsResult<()> {
        Self::record_not_pending_deletion(&key.record, &key.arn)
    }

    /// The same rule on the record an `update_key` change sees, which may be newer than the
    /// key the request resolved.
    pub(crate) fn record_not_pending_deletion(record: &KeyRecord, arn: &str) -> KmsResult<()> {
        match record.state {
            KeyState::PendingDeletion => Err(KmsError::InvalidState(format!(
                "{arn} is pending deletion."
            ))),
            KeyState::PendingReplicaDeletion => Err(KmsError::InvalidState(format!(
                "{arn} is pending replica deletion."
            ))),
            _ => Ok(()),
        }
    }

    /// The set of a multi-Region primary key; `UnsupportedOperationException` for any other key.
    pub(crate) fn record_multi_region_primary<'r>(
        record: &'r KeyRecord,
        arn: &str,
    ) -> KmsResult<&'r MultiRegionSet> {
        match &record.multi_region {
            Some(set) if !record.is_replica() => Ok(set),
            _ => Err(KmsError::UnsupportedOperation(format!(
                "{arn} is not a multi-Region primary key."
            ))),
        }
    }

    pub(crate) fn record_not_pending_import(record: &KeyRecord, arn: &str) -> KmsResult<()> {
        if record.state == KeyState::PendingImport {
            return Err(KmsError::InvalidState(format!("{arn} is pending import.")));
        }
        Ok(())
    }

    // ---- mutations ----------------------------------------------------------------------

    fn row(record: &KeyRecord) -> KmsResult<KmsKeyRow> {
        Ok(KmsKeyRow {
            account_id: record.account_id.clone(),
            region: record.region.clone(),
            key_id: record.key_id.clone(),
            record_json: serde_json::to_string(record)
                .map_err(|e| KmsError::Internal(e.to_string()))?,
        })
    }

    /// Fresh backing key material for a key of `spec`, with a new material id.
    async fn generate_material(spec: &str) -> KmsResult<(Zeroizing<Vec<u8>>, String)> {
        let owned = spec.to_string();
        let material = asymmetric::generate_off_connection_thread(spec, move || {
            asymmetric::new_secret(&owned)
        })
        .await?;
        let id = envelope::random(MATERIAL_ID_LEN)
            .map_err(|_| KmsError::Internal("Random generator failure.".into()))?;
        Ok((material, hex::encode(id.as_slice())))
    }

    /// `secret` as backing key `id_hex` of the key `arn`: wrapped under the root key for the
    /// store, and loaded for use.
    fn material_for(
        &self,
        arn: &str,
        spec: &str,
        secret: &[u8],
        id_hex: &str,
        created_ms: i64,
        rotation_type: Option<&str>,
    ) -> KmsResult<(KeyMaterialRow, LoadedMaterial)> {
        let id: [u8; MATERIAL_ID_LEN] = hex::decode(id_hex)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| KmsError::Internal("A key material id is malformed.".into()))?;
        let wrapped = self
            .root_key
            .wrap(secret, &material_aad(arn, id_hex))
            .map_err(|_| KmsError::Internal("Key material could not be wrapped.".into()))?;
        let row = KeyMaterialRow {
            material_id: id_hex.to_string(),
            wrapped_material: wrapped,
            created_at_ms: created_ms,
            rotation_type: rotation_type.map(str::to_string),
        };
        let loaded = LoadedMaterial {
            id,
            id_hex: id_hex.to_string(),
            key: asymmetric::load(spec, secret)?,
            created_ms,
            rotation_type: rotation_type.map(str::to_string),
        };
        Ok((row, loaded))
    }

    /// Stores a new key with its first backing key; a key of origin `EXTERNAL` has none until
    /// its material is imported.
    pub(crate) async fn insert_key(&self, mut record: KeyRecord) -> KmsResult<Arc<LoadedKey>> {
        let arn = record.arn();
        let (row, materials) = if record.is_external() {
            (None, Vec::new())
        } else {
            let (secret, id_hex) = Self::generate_material(&record.key_spec).await?;
            let (row, loaded) =
                self.material_for(&arn, &record.key_spec, &secret, &id_hex, now_ms(), None)?;
            record.current_material_id = id_hex;
            (Some(row), vec![Arc::new(loaded)])
        };
        let _guard = self.mutations.lock().await;
        self.store.put_kms_key(Self::row(&record)?, row).await?;
        let key = Arc::new(LoadedKey::new(record, Arc::new(materials)));
        self.cache(Self::key_ref(&key.record), Some(Arc::clone(&key)));
        Ok(key)
    }

    fn key_ref(record: &KeyRecord) -> KeyRef {
        KeyRef {
            account_id: record.account_id.clone(),
            region: record.region.clone(),
            key_id: record.key_id.clone(),
        }
    }

    /// Applies `change` to the key's current record and stores it. `change` sees the latest
    /// state (mutations are serialised), so its checks cannot race another mutation.
    pub(crate) async fn update_key<F>(
        &self,
        key: &LoadedKey,
        change: F,
    ) -> KmsResult<Arc<LoadedKey>>
    where
        F: FnOnce(&mut KeyRecord, &str) -> KmsResult<()>,
    {
        self.change_key(key, MaterialChange::Keep, change).await
    }

    /// Adds a backing key and makes it current.
    pub(crate) async fn rotate<F>(
        &self,
        key: &LoadedKey,
        rotation_type: &str,
        check: F,
    ) -> KmsResult<Arc<LoadedKey>>
    where
        F: FnOnce(&mut KeyRecord, &str) -> KmsResult<()>,
    {
        self.change_key(key, MaterialChange::Rotate(rotation_type), check)
            .await
    }

    /// Applies `change` to the newest record under the mutation lock, does what
    /// `material_change` says to the backing keys, then stores both and refreshes the cache.
    /// A multi-Region primary key's shared properties and new backing keys go to its replicas
    /// in the same transaction.
    pub(crate) async fn change_key<F>(
        &self,
        key: &LoadedKey,
        material_change: MaterialChange<'_>,
        change: F,
    ) -> KmsResult<Arc<LoadedKey>>
    where
        F: FnOnce(&mut KeyRecord, &str) -> KmsResult<()>,
    {
        let _guard = self.mutations.lock().await;
        let key_ref = Self::key_ref(&key.record);
        let current = self
            .cached(&key_ref)
            .ok_or_else(|| Self::not_found(&key.arn))?;
        if matches!(material_change, MaterialChange::DropIfExpired)
            && !Self::material_expired(&current.record, now_ms())
        {
            return Ok(current);
        }
        let mut record = current.record.clone();
        change(&mut record, &current.arn)?;
        let rotation_type = match &material_change {
            MaterialChange::Rotate(rotation_type) => Some(*rotation_type),
            _ => None,
        };
        let expiring = matches!(material_change, MaterialChange::DropIfExpired);
        let new_material: Option<NewMaterial<'_>> = match material_change {
            MaterialChange::Keep => None,
            MaterialChange::Rotate(rotation_type) => {
                let (secret, id_hex) = Self::generate_material(&record.key_spec).await?;
                Some(NewMaterial {
                    secret,
                    id_hex,
                    rotation_type: Some(rotation_type),
                })
            }
            // Material the key already has (a reimport to change its expiry, or a concurrent one).
            MaterialChange::Import { id_hex, .. }
                if current.materials.iter().any(|m| m.id_hex == id_hex) =>
            {
                None
            }
            MaterialChange::Import { secret, id_hex } => Some(NewMaterial {
                secret: Zeroizing::new(secret.to_vec()),
                id_hex: id_hex.to_string(),
                rotation_type: None,
            }),
            MaterialChange::DropAll | MaterialChange::DropIfExpired => {
                record.current_material_id.clear();
                record.expiration_model = None;
                record.valid_to_ms = None;
                self.store
                    .put_kms_key_dropping_materials(Self::row(&record)?)
                    .await?;
                let updated = Arc::new(LoadedKey::new(record, Arc::new(Vec::new())));
                self.cache(key_ref, Some(Arc::clone(&updated)));
                if expiring {
                    let mut event = internal_event(
                        &updated.record,
                        &updated.arn,
                        "DeleteExpiredKeyMaterial",
                        EventType::AwsServiceEvent,
                    );
                    event.service_event_details =
                        Some(serde_json::json!({ "keyId": updated.record.key_id }));
                    self.journal_internal(event).await;
                }
                return Ok(updated);
            }
        };
        let created_ms = now_ms();
        let mut updates = vec![(Arc::clone(&current), record)];
        // A rotation's new backing key is shared; imported material is imported into each key
        // of a multi-Region key by its owner, as in AWS.
        let shared_changed = rotation_type.is_some()
            || SharedProperties::of(&updates[0].1) != SharedProperties::of(&current.record);
        if shared_changed && !current.record.is_replica() {
            for related in self.fetch_related(&current.record).await? {
                let mut replica = related.record.clone();
                SharedProperties::of(&updates[0].1).apply_to(&mut replica);
                updates.push((related, replica));
            }
        }
        let mut changes = Vec::with_capacity(updates.len());
        let mut loaded_keys = Vec::with_capacity(updates.len());
        for (index, (before, mut record)) in updates.into_iter().enumerate() {
            let mut materials = Arc::clone(&before.materials);
            let mut rows = Vec::new();
            if let Some(new) = new_material
                .as_ref()
                .filter(|_| index == 0 || rotation_type.is_some())
            {
                let (row, loaded) = self.material_for(
                    &before.arn,
                    &record.key_spec,
                    &new.secret,
                    &new.id_hex,
                    created_ms,
                    new.rotation_type,
                )?;
                record.current_material_id = new.id_hex.clone();
                let mut grown: Vec<Arc<LoadedMaterial>> = materials.iter().cloned().collect();
                grown.push(Arc::new(loaded));
                materials = Arc::new(grown);
                rows.push(row);
            }
            changes.push(KmsKeyChange::Put {
                key: Self::row(&record)?,
                materials: rows,
            });
            loaded_keys.push(Arc::new(LoadedKey::new(record, materials)));
        }
        self.store.change_kms_keys(changes).await?;
        for loaded in &loaded_keys {
            self.cache(Self::key_ref(&loaded.record), Some(Arc::clone(loaded)));
        }
        let changed = &loaded_keys[0];
        if let Some(rotation_type) = rotation_type {
            let mut event = internal_event(
                &changed.record,
                &changed.arn,
                "RotateKey",
                EventType::AwsServiceEvent,
            );
            event.response_elements = Some(serde_json::json!({ "keyId": changed.arn }));
            event.service_event_details = Some(serde_json::json!({
                "rotationType": rotation_type,
                "keyId": changed.record.key_id,
            }));
            self.journal_internal(event).await;
        }
        if loaded_keys.len() > 1 {
            // AWS records the synchronisation of a multi-Region key in the primary's Region,
            // naming only the primary, and as an API call.
            let mut event = internal_event(
                &changed.record,
                &changed.arn,
                "SynchronizeMultiRegionKey",
                EventType::AwsApiCall,
            );
            event.response_elements = Some(serde_json::json!({ "keyId": changed.arn }));
            self.journal_internal(event).await;
        }
        Ok(Arc::clone(changed))
    }

    /// Deletes a key whose waiting period is over. The other keys of a multi-Region key forget
    /// it in the same transaction, and a primary key that waited for its last replica starts
    /// its own waiting period.
    async fn delete_now(&self, key_ref: &KeyRef) -> KmsResult<()> {
        let _guard = self.mutations.lock().await;
        let deleted = self.fetch(key_ref).await?;
        let related = match &deleted {
            Some(key) => self.fetch_related(&key.record).await?,
            None => Vec::new(),
        };
        let mut changes = vec![KmsKeyChange::Delete {
            account_id: key_ref.account_id.clone(),
            region: key_ref.region.clone(),
            key_id: key_ref.key_id.clone(),
        }];
        let mut updated = Vec::with_capacity(related.len());
        for other in related {
            let mut record = other.record.clone();
            if let Some(set) = record.multi_region.as_mut() {
                set.replica_regions.retain(|r| *r != key_ref.region);
            }
            let last_replica_gone = record
                .multi_region
                .as_ref()
                .is_some_and(|set| set.replica_regions.is_empty());
            if record.state == KeyState::PendingReplicaDeletion && last_replica_gone {
                record.state = KeyState::PendingDeletion;
                record.deletion_ms =
                    Some(now_ms() + record.pending_window_days.unwrap_or(30) * 86_400_000);
            }
            changes.push(KmsKeyChange::Put {
                key: Self::row(&record)?,
                materials: Vec::new(),
            });
            updated.push(Arc::new(LoadedKey::new(
                record,
                Arc::clone(&other.materials),
            )));
        }
        self.store.change_kms_keys(changes).await?;
        self.cache(key_ref.clone(), None);
        for key in updated {
            self.cache(Self::key_ref(&key.record), Some(key));
        }
        self.grants.forget(&crate::keys::key_arn(
            &key_ref.region,
            &key_ref.account_id,
            &key_ref.key_id,
        ));
        self.forget_aliases(&key_ref.account_id, &key_ref.region);
        if let Some(key) = deleted {
            let mut event = internal_event(
                &key.record,
                &key.arn,
                "DeleteKey",
                EventType::AwsServiceEvent,
            );
            event.service_event_details = Some(serde_json::json!({ "keyId": key.record.key_id }));
            self.journal_internal(event).await;
        }
        tracing::info!(key_id = %key_ref.key_id, region = %key_ref.region, "KMS key deleted at the end of its waiting period");
        Ok(())
    }

    pub(crate) async fn create_alias_row(&self, row: AliasRow) -> KmsResult<()> {
        let _guard = self.mutations.lock().await;
        let (account, region) = (row.account_id.clone(), row.region.clone());
        let name = row.alias_name.clone();
        let result = self.store.create_alias(row).await;
        self.forget_aliases(&account, &region);
        match result {
            Ok(()) => Ok(()),
            Err(keytrail_store::StoreError::AlreadyExists { .. }) => {
                Err(KmsError::AlreadyExists(format!(
                    "An alias with the name {} already exists",
                    alias_arn(&region, &account, &name)
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn update_alias_row(&self, row: AliasRow) -> KmsResult<()> {
        let _guard = self.mutations.lock().await;
        let (account, region) = (row.account_id.clone(), row.region.clone());
        let name = row.alias_name.clone();
        let result = self.store.update_alias(row).await;
        self.forget_aliases(&account, &region);
        match result {
            Ok(()) => Ok(()),
            Err(keytrail_store::StoreError::NotFound { .. }) => Err(KmsError::NotFound(format!(
                "Alias {} is not found.",
                alias_arn(&region, &account, &name)
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn delete_alias_row(
        &self,
        account: &str,
        region: &str,
        name: &str,
    ) -> KmsResult<()> {
        let _guard = self.mutations.lock().await;
        let deleted = self.store.delete_alias(account, region, name).await?;
        self.forget_aliases(account, region);
        if deleted {
            Ok(())
        } else {
            Err(KmsError::NotFound(format!(
                "Alias {} is not found.",
                alias_arn(region, account, name)
            )))
        }
    }

    pub(crate) async fn list_key_rows(
        &self,
        account: &str,
        region: &str,
    ) -> KmsResult<Vec<KmsKeyRow>> {
        Ok(self.store.list_kms_keys(Some((account, region))).await?)
    }

    /// Deletes keys whose waiting period is over and rotates keys whose rotation is due.
    /// Called periodically by the server.
    pub async fn sweep(&self) -> KmsResult<()> {
        let now = now_ms();
        for row in self.store.list_kms_keys(None).await? {
            let Ok(record) = serde_json::from_str::<KeyRecord>(&row.record_json) else {
                continue;
            };
            let key_ref = Self::key_ref(&record);
            let deletion_due = record.state == KeyState::PendingDeletion
                && record.deletion_ms.is_some_and(|at| at <= now);
            if deletion_due {
                self.delete_now(&key_ref).await?;
                continue;
            }
            if Self::material_expired(&record, now) {
                // Loading an expired key deletes its material.
                self.load(&key_ref).await?;
                continue;
            }
            // A multi-Region key rotates with its primary, which brings the replicas along.
            let rotation_due = record.state == KeyState::Enabled
                && !record.is_replica()
                && record.rotation_enabled
                && record.next_rotation_ms.is_some_and(|at| at <= now);
            if rotation_due && let Some(key) = self.load(&key_ref).await? {
                self.rotate(&key, "AUTOMATIC", |r, _| {
                    let period = r.rotation_period_days.unwrap_or(365);
                    r.next_rotation_ms = Some(now_ms() + period * 86_400_000);
                    Ok(())
                })
                .await?;
                tracing::info!(key_id = %record.key_id, "KMS key rotated automatically");
            }
        }
        Ok(())
    }
}
