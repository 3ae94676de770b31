//! Durable storage for keytrail: accounts, users and access keys, and the event journal.
//!
//! Services talk to the [`Store`] trait only. [`sqlite::SqliteStore`] is the embedded backend
//! (bundled SQLite in WAL mode: one writer thread with group commit, readers in parallel); a
//! PostgreSQL backend implements the same trait for clusters. The SQL is kept to the subset both
//! engines share.

mod append_answers;
mod codec;
mod event_blocks;
mod event_index;
mod eventlog;
mod group_queue;
mod migrations;
pub mod sqlite;

pub use append_answers::deliver_appends_on_this_thread;

use std::borrow::Cow;

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(String),
    #[error("the store is closed")]
    Closed,
    #[error("{what} already exists")]
    AlreadyExists { what: String },
    #[error("{what} does not exist")]
    NotFound { what: String },
    #[error("{what} cannot be deleted: {reason}")]
    InUse { what: String, reason: String },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        if let rusqlite::Error::SqliteFailure(code, _) = &e
            && code.code == rusqlite::ErrorCode::ConstraintViolation
        {
            return StoreError::AlreadyExists {
                what: "record".into(),
            };
        }
        StoreError::Database(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    pub account_id: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub account_id: String,
    pub user_name: String,
    /// `AIDA...`, stable for the life of the user.
    pub user_id: String,
    pub created_at_ms: i64,
}

/// Who an inline IAM policy belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyOwner {
    User,
    Role,
}

impl PolicyOwner {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyOwner::User => "user",
            PolicyOwner::Role => "role",
        }
    }
}

/// An inline policy document of a user or role, stored as written (validated above the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDocumentRow {
    pub account_id: String,
    pub owner: PolicyOwner,
    pub owner_name: String,
    pub policy_name: String,
    pub document: String,
    pub updated_at_ms: i64,
}

/// An IAM role: who may assume it (the trust policy, validated above the store) and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRecord {
    pub account_id: String,
    pub role_name: String,
    /// `AROA...`
    pub role_id: String,
    pub trust_policy: String,
    pub description: Option<String>,
    pub max_session_duration_s: i64,
    pub created_at_ms: i64,
}

/// A customer managed policy (`arn:aws:iam::<account>:policy/<name>`), attachable to users and
/// roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedPolicyRow {
    pub account_id: String,
    pub policy_name: String,
    /// `ANPA...`
    pub policy_id: String,
    pub document: String,
    pub description: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// How many users and roles it is attached to (filled in by reads).
    pub attachment_count: i64,
}

/// An access key. The secret is stored only wrapped under the root key; this crate never sees
/// it in plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub access_key_id: String,
    pub account_id: String,
    /// `None` for the account's root credentials.
    pub user_name: Option<String>,
    pub wrapped_secret: Vec<u8>,
    /// `Active` or `Inactive`, as IAM names them.
    pub status: String,
    pub created_at_ms: i64,
}

impl std::fmt::Debug for AccessKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKeyRecord")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .field("status", &self.status)
            .field("created_at_ms", &self.created_at_ms)
            .finish_non_exhaustive()
    }
}

/// One journaled event: the indexed columns plus the full CloudTrail record as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    /// Position in the journal, assigned on commit (0 before).
    pub seq: i64,
    pub event_id: String,
    pub event_time_ms: i64,
    pub account_id: String,
    pub region: String,
    /// Borrowed when the event is built from an operation's name; owned when read back.
    pub event_source: Cow<'static, str>,
    pub event_name: Cow<'static, str>,
    pub request_id: String,
    pub access_key_id: Option<String>,
    pub read_only: bool,
    pub management: bool,
    pub record_json: String,
    /// Who made the call, as LookupEvents' `Username` attribute names it.
    pub username: Option<String>,
    /// The resources the event names, for LookupEvents (written, not read back).
    pub resources: Vec<EventResource>,
    /// For a billable KMS request: what it counts as in the hourly usage rollup, counted in
    /// the transaction that stores the event (written, not read back).
    pub kms_usage: Option<KmsUsageKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsUsageKey {
    pub key_arn: String,
    pub operation: Cow<'static, str>,
    /// Who caused it: `user`, `s3` (S3 for a user), `cloudtrail` (log delivery), `service`.
    pub source: Cow<'static, str>,
}

/// KMS requests of one hour, account, region, key, operation and source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsUsageRow {
    pub account_id: String,
    pub region: String,
    pub hour_ms: i64,
    pub key_arn: String,
    pub operation: String,
    pub source: String,
    pub requests: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventResource {
    pub resource_type: Cow<'static, str>,
    pub resource_name: String,
}

/// A CloudTrail trail: its identity, and its configuration and status as a JSON document owned
/// by the CloudTrail crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailRow {
    pub account_id: String,
    pub home_region: String,
    pub name: String,
    pub record_json: String,
}

/// How far a trail's log delivery has come: every event up to `delivered_seq` is in a log file,
/// and `pending_json` describes a delivery begun but not yet known to be complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailCursor {
    pub delivered_seq: i64,
    pub pending_json: Option<String>,
}

/// A log file a trail delivered, waiting for (or covered by) a digest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFileRow {
    pub trail_arn: String,
    pub region: String,
    pub s3_key: String,
    pub delivered_ms: i64,
    /// Bucket, hash and event times, as a JSON document owned by the CloudTrail crate.
    pub record_json: String,
}

/// A region's digest-signing key pair; the private half wrapped under the root key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub region: String,
    pub fingerprint: String,
    pub valid_from_ms: i64,
    pub valid_until_ms: i64,
    pub public_der: Vec<u8>,
    pub wrapped_private: Vec<u8>,
}

impl std::fmt::Debug for SigningKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRow")
            .field("region", &self.region)
            .field("fingerprint", &self.fingerprint)
            .field("valid_from_ms", &self.valid_from_ms)
            .field("valid_until_ms", &self.valid_until_ms)
            .finish_non_exhaustive()
    }
}

/// What LookupEvents asks of the journal (management events of one account and region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLookup {
    pub account_id: String,
    pub region: String,
    pub attribute: Option<LookupAttribute>,
    /// Inclusive bounds in milliseconds since the epoch.
    pub start_ms: i64,
    pub end_ms: i64,
    /// Continue below this (event_time_ms, seq), newest first.
    pub before: Option<(i64, i64)>,
    pub limit: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupAttribute {
    EventId(String),
    EventName(String),
    ReadOnly(bool),
    Username(String),
    ResourceType(String),
    ResourceName(String),
    EventSource(String),
    AccessKeyId(String),
}

/// A KMS key's row: its identity, and its metadata as a JSON document owned by the KMS crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KmsKeyRow {
    pub account_id: String,
    pub region: String,
    pub key_id: String,
    pub record_json: String,
}

/// One part of a [`Store::change_kms_keys`] transaction.
#[derive(Debug, Clone)]
pub enum KmsKeyChange {
    /// Creates or replaces the key's row and adds these backing keys.
    Put {
        key: KmsKeyRow,
        materials: Vec<KeyMaterialRow>,
    },
    /// Deletes the key with its materials, grants and aliases.
    Delete {
        account_id: String,
        region: String,
        key_id: String,
    },
}

/// One version of a KMS key's backing key, wrapped under the root key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyMaterialRow {
    pub material_id: String,
    pub wrapped_material: Vec<u8>,
    pub created_at_ms: i64,
    /// `None` for the key's first material, else `AUTOMATIC` or `ON_DEMAND`.
    pub rotation_type: Option<String>,
}

impl std::fmt::Debug for KeyMaterialRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterialRow")
            .field("material_id", &self.material_id)
            .field("created_at_ms", &self.created_at_ms)
            .field("rotation_type", &self.rotation_type)
            .finish_non_exhaustive()
    }
}

/// A KMS grant on a key: who may use it for what, as a JSON document owned by the KMS crate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub account_id: String,
    pub region: String,
    pub key_id: String,
    pub grant_id: String,
    pub retiring_principal: Option<String>,
    pub created_at_ms: i64,
    pub record_json: String,
}

/// A KMS custom key store (an external key store and its proxy's settings; the proxy's secret
/// is wrapped under the root key inside `record_json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomKeyStoreRow {
    pub account_id: String,
    pub region: String,
    pub custom_key_store_id: String,
    pub created_at_ms: i64,
    pub record_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRow {
    pub account_id: String,
    pub region: String,
    /// `alias/<name>`
    pub alias_name: String,
    pub target_key_id: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketRow {
    pub name: String,
    pub account_id: String,
    pub region: String,
    pub created_at_ms: i64,
    /// The bucket's configuration as a JSON document owned by the S3 crate.
    pub record_json: String,
}

/// An object's metadata; its body lives in files the S3 crate names in `record_json`, or, when
/// small, in `inline_body` (as the S3 crate sealed it).
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectRow {
    pub bucket: String,
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub modified_at_ms: i64,
    pub record_json: String,
    /// Read by `get_object` only: listings and the rows writes replace leave it `None`.
    pub inline_body: Option<Vec<u8>>,
}

impl std::fmt::Debug for ObjectRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectRow")
            .field("bucket", &self.bucket)
            .field("key", &self.key)
            .field("size", &self.size)
            .field("etag", &self.etag)
            .field("modified_at_ms", &self.modified_at_ms)
            .field("record_json", &self.record_json)
            .field("inline_body", &self.inline_body.as_ref().map(Vec::len))
            .finish()
    }
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRow {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    pub created_at_ms: i64,
    pub record_json: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartRow {
    pub upload_id: String,
    pub part_number: i64,
    pub record_json: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteBucketOutcome {
    Deleted,
    NotFound,
    NotEmpty,
}

/// Everything keytrail persists. Writes are durable when the returned future resolves.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates the account if it does not exist yet.
    async fn ensure_account(&self, account: AccountRecord) -> StoreResult<()>;
    async fn list_accounts(&self) -> StoreResult<Vec<AccountRecord>>;
    /// Creates the user, or fails with [`StoreError::AlreadyExists`].
    async fn create_user(&self, user: UserRecord) -> StoreResult<()>;
    async fn get_user(&self, account_id: &str, user_name: &str) -> StoreResult<Option<UserRecord>>;
    async fn list_users(&self, account_id: &str) -> StoreResult<Vec<UserRecord>>;
    /// Deletes a user that has no access keys and no policies left (else
    /// [`StoreError::InUse`]); returns whether it existed.
    async fn delete_user(&self, account_id: &str, user_name: &str) -> StoreResult<bool>;
    /// Creates or replaces an inline policy.
    async fn put_policy_document(&self, row: PolicyDocumentRow) -> StoreResult<()>;
    async fn list_policy_documents(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
    ) -> StoreResult<Vec<PolicyDocumentRow>>;
    /// Returns whether the policy existed.
    async fn delete_policy_document(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
        policy_name: &str,
    ) -> StoreResult<bool>;
    /// Sets an access key `Active` or `Inactive`; returns whether the key exists.
    /// Creates a role, or fails with [`StoreError::AlreadyExists`].
    async fn create_role(&self, role: RoleRecord) -> StoreResult<()>;
    async fn get_role(&self, account_id: &str, role_name: &str) -> StoreResult<Option<RoleRecord>>;
    async fn list_roles(&self, account_id: &str) -> StoreResult<Vec<RoleRecord>>;
    /// Deletes a role without inline or attached policies (else [`StoreError::InUse`]); returns
    /// whether it existed.
    async fn delete_role(&self, account_id: &str, role_name: &str) -> StoreResult<bool>;
    /// Creates a managed policy, or fails with [`StoreError::AlreadyExists`].
    async fn create_managed_policy(&self, policy: ManagedPolicyRow) -> StoreResult<()>;
    async fn get_managed_policy(
        &self,
        account_id: &str,
        policy_name: &str,
    ) -> StoreResult<Option<ManagedPolicyRow>>;
    async fn list_managed_policies(&self, account_id: &str) -> StoreResult<Vec<ManagedPolicyRow>>;
    /// Deletes a managed policy attached to nobody (else [`StoreError::InUse`]); returns whether
    /// it existed.
    async fn delete_managed_policy(&self, account_id: &str, policy_name: &str)
    -> StoreResult<bool>;
    /// Attaches a managed policy to a user or role; attaching twice is not an error. Fails with
    /// [`StoreError::NotFound`] when the policy does not exist.
    async fn attach_policy(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
        policy_name: &str,
    ) -> StoreResult<()>;
    /// Returns whether the policy was attached.
    async fn detach_policy(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
        policy_name: &str,
    ) -> StoreResult<bool>;
    /// The managed policies attached to a user or role.
    async fn list_attached_policies(
        &self,
        account_id: &str,
        owner: PolicyOwner,
        owner_name: &str,
    ) -> StoreResult<Vec<ManagedPolicyRow>>;
    async fn set_access_key_status(&self, access_key_id: &str, status: &str) -> StoreResult<bool>;
    async fn insert_access_key(&self, key: AccessKeyRecord) -> StoreResult<()>;
    async fn get_access_key(&self, access_key_id: &str) -> StoreResult<Option<AccessKeyRecord>>;
    async fn list_access_keys(&self) -> StoreResult<Vec<AccessKeyRecord>>;
    /// The access keys of one user, or of the account's root user (`user_name` `None`).
    async fn list_access_keys_of(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> StoreResult<Vec<AccessKeyRecord>>;
    /// Returns whether a key was deleted.
    async fn delete_access_key(&self, access_key_id: &str) -> StoreResult<bool>;
    /// Appends events to the journal; they are on disk when this returns.
    async fn append_events(&self, events: Vec<EventRow>) -> StoreResult<()>;
    /// The newest `limit` events, oldest first.
    async fn recent_events(&self, limit: usize) -> StoreResult<Vec<EventRow>>;
    async fn events_after(&self, seq: i64, limit: usize) -> StoreResult<Vec<EventRow>>;
    /// One account's events after `seq`, in journal order.
    async fn account_events_after(
        &self,
        account_id: &str,
        seq: i64,
        limit: usize,
    ) -> StoreResult<Vec<EventRow>>;
    /// The highest journal position (0 when empty).
    async fn last_event_seq(&self) -> StoreResult<i64>;
    /// Management events for LookupEvents, newest first, from indexes.
    async fn lookup_events(&self, lookup: EventLookup) -> StoreResult<Vec<EventRow>>;
    /// The newest successful management event of one account and region whose resources name
    /// `resource_name` and whose name is one of `event_names` (KMS's GetKeyLastUsage).
    async fn last_successful_event(
        &self,
        account_id: &str,
        region: &str,
        resource_name: &str,
        event_names: &[&str],
    ) -> StoreResult<Option<EventRow>>;
    /// The time of the oldest event the journal still holds for one account and region (older
    /// ones were removed by retention).
    async fn oldest_event_ms(&self, account_id: &str, region: &str) -> StoreResult<Option<i64>>;
    /// The hourly KMS usage rollup for hours starting in [start_ms, end_ms), optionally of one
    /// account.
    async fn kms_usage(
        &self,
        start_ms: i64,
        end_ms: i64,
        account_id: Option<&str>,
    ) -> StoreResult<Vec<KmsUsageRow>>;
    /// Deletes events older than `cutoff_ms` that no trail still has to deliver (seq at most
    /// `delivered_up_to`); returns how many.
    async fn delete_events_before(
        &self,
        cutoff_ms: i64,
        delivered_up_to: i64,
    ) -> StoreResult<usize>;
    /// Creates or replaces a trail.
    async fn put_trail(&self, trail: TrailRow) -> StoreResult<()>;
    async fn get_trail(
        &self,
        account_id: &str,
        home_region: &str,
        name: &str,
    ) -> StoreResult<Option<TrailRow>>;
    /// Every trail, or one account's.
    async fn list_trails(&self, account_id: Option<&str>) -> StoreResult<Vec<TrailRow>>;
    /// Deletes a trail and its delivery cursor; returns whether it existed.
    async fn delete_trail(
        &self,
        account_id: &str,
        home_region: &str,
        name: &str,
        trail_arn: &str,
    ) -> StoreResult<bool>;
    async fn get_trail_cursor(&self, trail_arn: &str) -> StoreResult<Option<TrailCursor>>;
    /// Moves a trail's cursor and records the log files that delivery wrote, in one
    /// transaction (a file recorded twice is recorded once).
    async fn complete_delivery(
        &self,
        trail_arn: &str,
        cursor: TrailCursor,
        files: Vec<LogFileRow>,
    ) -> StoreResult<()>;
    /// The log files of a trail's region not yet in a digest, delivered up to `until_ms`.
    async fn undigested_log_files(
        &self,
        trail_arn: &str,
        region: &str,
        until_ms: i64,
    ) -> StoreResult<Vec<LogFileRow>>;
    /// The regions a trail has delivered log files for, digested or not.
    async fn log_file_regions(&self, trail_arn: &str) -> StoreResult<Vec<String>>;
    async fn get_digest_chain(&self, trail_arn: &str, region: &str) -> StoreResult<Option<String>>;
    async fn put_digest_chain(
        &self,
        trail_arn: &str,
        region: &str,
        state_json: String,
    ) -> StoreResult<()>;
    /// Records a written digest: the chain's new state and the log files it covers, together.
    async fn complete_digest(
        &self,
        trail_arn: &str,
        region: &str,
        state_json: String,
        digested_keys: Vec<String>,
    ) -> StoreResult<()>;
    async fn put_signing_key(&self, key: SigningKeyRow) -> StoreResult<()>;
    /// A region's signing keys, oldest first.
    async fn list_signing_keys(&self, region: &str) -> StoreResult<Vec<SigningKeyRow>>;
    async fn set_trail_cursor(&self, trail_arn: &str, cursor: TrailCursor) -> StoreResult<()>;
    /// Creates or replaces a KMS key's row; with `material`, adds that backing key in the same
    /// transaction (creation and rotation).
    async fn put_kms_key(
        &self,
        key: KmsKeyRow,
        material: Option<KeyMaterialRow>,
    ) -> StoreResult<()>;
    /// Replaces a KMS key's row and removes all of its backing keys in the same transaction
    /// (imported key material deleted or expired).
    async fn put_kms_key_dropping_materials(&self, key: KmsKeyRow) -> StoreResult<()>;
    /// Applies several key changes in one transaction: the keys of a multi-Region key share
    /// their material and settings, so they change together or not at all.
    async fn change_kms_keys(&self, changes: Vec<KmsKeyChange>) -> StoreResult<()>;
    /// The key's row and every material it has had, oldest first.
    async fn get_kms_key(
        &self,
        account_id: &str,
        region: &str,
        key_id: &str,
    ) -> StoreResult<Option<(KmsKeyRow, Vec<KeyMaterialRow>)>>;
    /// Keys of one account and region, ordered by key id; every key when both are `None`.
    async fn list_kms_keys(&self, scope: Option<(&str, &str)>) -> StoreResult<Vec<KmsKeyRow>>;
    /// Stores a new grant.
    async fn put_grant(&self, grant: GrantRow) -> StoreResult<()>;
    /// The grants of one key, oldest first.
    async fn list_grants(
        &self,
        account_id: &str,
        region: &str,
        key_id: &str,
    ) -> StoreResult<Vec<GrantRow>>;
    /// The grants, on any key, that `retiring_principal` may retire.
    async fn list_grants_by_retiring_principal(
        &self,
        retiring_principal: &str,
    ) -> StoreResult<Vec<GrantRow>>;
    /// Returns whether the grant existed.
    async fn delete_grant(
        &self,
        account_id: &str,
        region: &str,
        key_id: &str,
        grant_id: &str,
    ) -> StoreResult<bool>;
    /// Deletes a key with its materials, aliases and grants.
    async fn delete_kms_key(&self, account_id: &str, region: &str, key_id: &str)
    -> StoreResult<()>;
    /// Fails with [`StoreError::AlreadyExists`] when the name is taken.
    /// Creates or replaces a custom key store.
    async fn put_custom_key_store(&self, store: CustomKeyStoreRow) -> StoreResult<()>;
    /// The custom key stores of an account in a Region, oldest first.
    async fn list_custom_key_stores(
        &self,
        account_id: &str,
        region: &str,
    ) -> StoreResult<Vec<CustomKeyStoreRow>>;
    /// Whether a custom key store was there to delete.
    async fn delete_custom_key_store(
        &self,
        account_id: &str,
        region: &str,
        custom_key_store_id: &str,
    ) -> StoreResult<bool>;

    async fn create_alias(&self, alias: AliasRow) -> StoreResult<()>;
    /// Fails with [`StoreError::NotFound`] when the alias does not exist.
    async fn update_alias(&self, alias: AliasRow) -> StoreResult<()>;
    async fn delete_alias(
        &self,
        account_id: &str,
        region: &str,
        alias_name: &str,
    ) -> StoreResult<bool>;
    /// Aliases of one account and region, ordered by name; every alias when `None`.
    async fn list_aliases(&self, scope: Option<(&str, &str)>) -> StoreResult<Vec<AliasRow>>;
    /// Fails with [`StoreError::AlreadyExists`] when the name is taken (by any account).
    async fn create_bucket(&self, bucket: BucketRow) -> StoreResult<()>;
    async fn get_bucket(&self, name: &str) -> StoreResult<Option<BucketRow>>;
    /// Replaces a bucket's configuration document; false when the bucket does not exist.
    async fn update_bucket_record(&self, name: &str, record_json: String) -> StoreResult<bool>;
    /// The account's buckets, by name.
    async fn list_buckets(&self, account_id: &str) -> StoreResult<Vec<BucketRow>>;
    /// Deletes an empty bucket.
    async fn delete_bucket(&self, name: &str) -> StoreResult<DeleteBucketOutcome>;
    /// Creates or replaces an object's row; returns the row it replaced (its body file is the
    /// caller's to remove once this returns).
    async fn put_object(&self, object: ObjectRow) -> StoreResult<Option<ObjectRow>>;
    async fn get_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRow>>;
    /// Changes an object's record (not its body) if it is still `expected_json`, so an edit
    /// such as new tags never lands on an object that was replaced meanwhile; whether it did.
    async fn replace_object_record(
        &self,
        bucket: &str,
        key: &str,
        expected_json: &str,
        record_json: String,
    ) -> StoreResult<bool>;
    /// Removes an object's row and returns it.
    async fn delete_object(&self, bucket: &str, key: &str) -> StoreResult<Option<ObjectRow>>;
    /// Objects whose key starts with `prefix` and sorts after `after`, in byte order of key.
    async fn list_objects(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<ObjectRow>>;
    async fn create_upload(&self, upload: UploadRow) -> StoreResult<()>;
    async fn get_upload(&self, upload_id: &str) -> StoreResult<Option<UploadRow>>;
    /// Uploads in progress in a bucket, by key then start time.
    async fn list_uploads(&self, bucket: &str) -> StoreResult<Vec<UploadRow>>;
    /// Adds or replaces a part; returns the part it replaced.
    async fn put_part(&self, part: PartRow) -> StoreResult<Option<PartRow>>;
    /// The parts of an upload, by part number.
    async fn list_parts(&self, upload_id: &str) -> StoreResult<Vec<PartRow>>;
    /// Ends an upload: removes it and its parts, and — when completing — stores the object in
    /// the same transaction. Returns the object row the completion replaced.
    async fn finish_upload(
        &self,
        upload_id: &str,
        object: Option<ObjectRow>,
    ) -> StoreResult<Option<ObjectRow>>;
    /// True while the store can serve reads and writes.
    async fn is_healthy(&self) -> bool;
    /// Waits for every accepted write to be durable, then refuses further writes.
    async fn close(&self);
}
