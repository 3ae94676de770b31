//! Identities: accounts (12-digit ids), their root principals, IAM users, roles and access keys,
//! STS sessions and identity operations, the IAM API over them (inline and managed policies), and authorization: the caller's identity
//! policies combined with a resource's policy by the policy engine.
//!
//! Secrets are stored only wrapped under the root key (bound to their access key id) and handed
//! out in zeroizing buffers for signature verification. Lookups are cached for a few seconds:
//! every signed request needs one, and keys managed offline by `keytrail credentials` are seen
//! by a running server within that time.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

mod access;
mod management;
mod policies;
mod roles;
mod sessions;

pub use access::{
    caller_of, decide_with, denial_message, policies_read_request_keys, request_context,
    request_without_keys,
};
pub use management::{AccessKeyMetadata, IamApiError, IamApiResult, user_arn};
pub use policies::{IamEntity, ManagedPolicy, managed_policy_arn};
pub use roles::role_arn;
pub use sessions::{Credential, SessionCredentials};

use keytrail_audit::{Principal, PrincipalKind};
use keytrail_crypto::{CryptoError, RootKey, random_string};
use keytrail_store::{AccessKeyRecord, AccountRecord, Store, StoreError, UserRecord};
use zeroize::Zeroizing;

/// Identifiers for access keys and users use IAM's alphabet: upper-case letters and 2–7.
pub(crate) const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
pub(crate) const SECRET_ALPHABET: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(5);
const NEGATIVE_CACHE_TTL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("account id must be 12 digits: '{0}'")]
    InvalidAccountId(String),
    #[error("user name must be 1-64 characters of [A-Za-z0-9+=,.@_-]: '{0}'")]
    InvalidUserName(String),
    #[error("access key id must be 16-128 characters of [A-Za-z0-9]: '{0}'")]
    InvalidAccessKeyId(String),
    #[error("the stored secret of access key {0} cannot be unwrapped with this root key")]
    UnreadableSecret(String),
}

pub type IamResult<T> = Result<T, IamError>;

/// An access key resolved for signature verification.
#[derive(Clone)]
pub struct ResolvedKey {
    pub principal: Principal,
    pub secret: Zeroizing<String>,
    pub active: bool,
}

impl std::fmt::Debug for ResolvedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedKey")
            .field("principal", &self.principal)
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

/// A freshly created key pair: the only moment the secret is shown.
pub struct NewAccessKey {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub account_id: String,
    pub user_name: Option<String>,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// A key declared in the configuration file (e.g. `test`/`test` for tools that assume it).
#[derive(Clone, PartialEq, Eq)]
pub struct DeclaredCredential {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub account_id: String,
    pub user_name: Option<String>,
}

impl std::fmt::Debug for DeclaredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeclaredCredential")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

/// What `GetCallerIdentity` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    pub user_id: String,
}

pub fn get_caller_identity(principal: &Principal) -> CallerIdentity {
    CallerIdentity {
        account: principal.account_id.clone(),
        arn: principal.arn(),
        user_id: principal.principal_id(),
    }
}

pub fn validate_account_id(account_id: &str) -> IamResult<()> {
    if account_id.len() == 12 && account_id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(IamError::InvalidAccountId(account_id.to_string()))
    }
}

/// IAM's names (users, roles, policies): `[\w+=,.@-]+` up to `max` characters.
pub(crate) fn is_iam_name(name: &str, max: usize) -> bool {
    (1..=max).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

pub fn validate_user_name(name: &str) -> IamResult<()> {
    if is_iam_name(name, 64) {
        Ok(())
    } else {
        Err(IamError::InvalidUserName(name.to_string()))
    }
}

fn validate_access_key_id(id: &str) -> IamResult<()> {
    // IAM allows 16-128; `test` is accepted too because LocalStack-era tools hard-code it.
    let ok = (4..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(IamError::InvalidAccessKeyId(id.to_string()))
    }
}

pub(crate) fn now_ms() -> i64 {
    keytrail_audit::clock::now_ms()
}

type CacheEntry = (Instant, Option<Arc<ResolvedKey>>);

/// Accounts, users and access keys over the store.
pub struct Identities {
    store: Arc<dyn Store>,
    root_key: Arc<RootKey>,
    cache: RwLock<HashMap<String, CacheEntry>>,
    policy_cache: RwLock<HashMap<(String, &'static str, String), access::PolicyCacheEntry>>,
    /// The current id of each role sessions were checked against, by (account, role name).
    role_ids: RwLock<HashMap<(String, String), sessions::RoleIdEntry>>,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identities")
    }
}

impl Identities {
    pub fn new(store: Arc<dyn Store>, root_key: Arc<RootKey>) -> Self {
        Self {
            store,
            root_key,
            cache: RwLock::new(HashMap::new()),
            policy_cache: RwLock::new(HashMap::new()),
            role_ids: RwLock::new(HashMap::new()),
        }
    }

    /// The principal and secret behind an access key, or `None` when the key does not exist.
    /// Shared with the cache: a request reads the secret and the principal without copying the
    /// secret (and zeroizing the copy) each time.
    pub async fn resolve(&self, access_key_id: &str) -> IamResult<Option<Arc<ResolvedKey>>> {
        if let Ok(cache) = self.cache.read()
            && let Some((at, entry)) = cache.get(access_key_id)
        {
            let ttl = if entry.is_some() {
                CACHE_TTL
            } else {
                NEGATIVE_CACHE_TTL
            };
            if at.elapsed() < ttl {
                return Ok(entry.clone());
            }
        }
        let resolved = match self.store.get_access_key(access_key_id).await? {
            None => None,
            Some(record) => Some(Arc::new(self.resolve_record(&record).await?)),
        };
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(
                access_key_id.to_string(),
                (Instant::now(), resolved.clone()),
            );
        }
        Ok(resolved)
    }

    async fn resolve_record(&self, record: &AccessKeyRecord) -> IamResult<ResolvedKey> {
        let secret = self
            .root_key
            .unwrap(&record.wrapped_secret, record.access_key_id.as_bytes())
            .map_err(|_| IamError::UnreadableSecret(record.access_key_id.clone()))?;
        let secret = Zeroizing::new(
            String::from_utf8(secret.to_vec())
                .map_err(|_| IamError::UnreadableSecret(record.access_key_id.clone()))?,
        );
        let kind = match &record.user_name {
            None => PrincipalKind::Root,
            Some(user_name) => {
                let user_id = self
                    .store
                    .get_user(&record.account_id, user_name)
                    .await?
                    .map(|u| u.user_id)
                    .unwrap_or_default();
                PrincipalKind::IamUser {
                    user_name: user_name.clone(),
                    user_id,
                }
            }
        };
        Ok(ResolvedKey {
            principal: Principal {
                account_id: record.account_id.clone(),
                kind,
                access_key_id: Some(record.access_key_id.clone()),
            },
            secret,
            active: record.status == "Active",
        })
    }

    pub async fn ensure_account(&self, account_id: &str) -> IamResult<()> {
        validate_account_id(account_id)?;
        self.store
            .ensure_account(AccountRecord {
                account_id: account_id.to_string(),
                created_at_ms: now_ms(),
            })
            .await?;
        Ok(())
    }

    /// Creates a user with a fresh `AIDA...` id in an existing account, or fails with
    /// [`StoreError::AlreadyExists`].
    pub(crate) async fn create_user(
        &self,
        account_id: &str,
        user_name: &str,
    ) -> IamResult<UserRecord> {
        let user = UserRecord {
            account_id: account_id.to_string(),
            user_name: user_name.to_string(),
            user_id: format!("AIDA{}", random_string(17, ID_ALPHABET)?),
            created_at_ms: now_ms(),
        };
        self.store.create_user(user.clone()).await?;
        Ok(user)
    }

    /// Returns the user, creating it (and its account) when it does not exist.
    pub async fn ensure_user(&self, account_id: &str, user_name: &str) -> IamResult<UserRecord> {
        validate_user_name(user_name)?;
        self.ensure_account(account_id).await?;
        if let Some(user) = self.store.get_user(account_id, user_name).await? {
            return Ok(user);
        }
        match self.create_user(account_id, user_name).await {
            Ok(user) => Ok(user),
            // Lost a race with another creator: theirs is the user.
            Err(IamError::Store(StoreError::AlreadyExists { .. })) => self
                .store
                .get_user(account_id, user_name)
                .await?
                .ok_or(IamError::Store(StoreError::NotFound {
                    what: format!("user {user_name}"),
                })),
            Err(e) => Err(e),
        }
    }

    async fn store_key(
        &self,
        account_id: &str,
        user_name: Option<&str>,
        access_key_id: &str,
        secret: &str,
    ) -> IamResult<()> {
        match user_name {
            Some(name) => {
                self.ensure_user(account_id, name).await?;
            }
            None => self.ensure_account(account_id).await?,
        }
        let wrapped_secret = self
            .root_key
            .wrap(secret.as_bytes(), access_key_id.as_bytes())?;
        self.store
            .insert_access_key(AccessKeyRecord {
                access_key_id: access_key_id.to_string(),
                account_id: account_id.to_string(),
                user_name: user_name.map(str::to_string),
                wrapped_secret,
                status: "Active".into(),
                created_at_ms: now_ms(),
            })
            .await?;
        self.forget(access_key_id);
        Ok(())
    }

    /// Creates a new access key for the account root (`user_name` `None`) or an IAM user.
    pub async fn create_access_key(
        &self,
        account_id: &str,
        user_name: Option<&str>,
    ) -> IamResult<NewAccessKey> {
        let access_key_id = format!("AKIA{}", random_string(16, ID_ALPHABET)?);
        let secret = Zeroizing::new(random_string(40, SECRET_ALPHABET)?);
        self.store_key(account_id, user_name, &access_key_id, &secret)
            .await?;
        Ok(NewAccessKey {
            access_key_id,
            secret_access_key: secret,
            account_id: account_id.to_string(),
            user_name: user_name.map(str::to_string),
        })
    }

    /// Makes a declared credential exist exactly as declared (replacing a stale one).
    pub async fn import(&self, declared: &DeclaredCredential) -> IamResult<()> {
        validate_access_key_id(&declared.access_key_id)?;
        validate_account_id(&declared.account_id)?;
        if let Some(existing) = self.store.get_access_key(&declared.access_key_id).await? {
            let same_owner = existing.account_id == declared.account_id
                && existing.user_name == declared.user_name;
            let same_secret = self
                .root_key
                .unwrap(&existing.wrapped_secret, existing.access_key_id.as_bytes())
                .map(|s| s.as_slice() == declared.secret_access_key.as_bytes())
                .unwrap_or(false);
            if same_owner && same_secret && existing.status == "Active" {
                return Ok(());
            }
            self.store
                .delete_access_key(&declared.access_key_id)
                .await?;
        }
        self.store_key(
            &declared.account_id,
            declared.user_name.as_deref(),
            &declared.access_key_id,
            &declared.secret_access_key,
        )
        .await
    }

    pub async fn list_access_keys(&self) -> IamResult<Vec<AccessKeyRecord>> {
        Ok(self.store.list_access_keys().await?)
    }

    pub async fn delete_access_key(&self, access_key_id: &str) -> IamResult<bool> {
        let deleted = self.store.delete_access_key(access_key_id).await?;
        self.forget(access_key_id);
        Ok(deleted)
    }

    fn forget(&self, access_key_id: &str) {
        if let Ok(mut cache) = self.cache.write() {
            cache.remove(access_key_id);
        }
    }

    /// Fails when a stored secret cannot be unwrapped: the root key is not the one the data
    /// directory was created with.
    pub async fn check_root_key(&self) -> IamResult<()> {
        if let Some(record) = self.store.list_access_keys().await?.first() {
            self.root_key
                .unwrap(&record.wrapped_secret, record.access_key_id.as_bytes())
                .map_err(|_| IamError::UnreadableSecret(record.access_key_id.clone()))?;
        }
        Ok(())
    }

    /// Start-up: declared credentials are made to exist; when none are declared and the store
    /// holds no key at all, a root key for `default_account` is created and returned so that
    /// the caller can show it once.
    pub async fn bootstrap(
        &self,
        declared: &[DeclaredCredential],
        default_account: &str,
    ) -> IamResult<Option<NewAccessKey>> {
        for credential in declared {
            self.import(credential).await?;
        }
        if declared.is_empty() && self.store.list_access_keys().await?.is_empty() {
            return Ok(Some(self.create_access_key(default_account, None).await?));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests;
