//! Grants (§2.10): a key's permission given to one principal for a list of operations, optionally
//! only under an encryption context, beside the key policy. Grants take effect at once here
//! (AWS's are eventually consistent); their tokens are sealed under the root key, so a token this
//! server did not issue is refused, and a valid token is accepted wherever AWS accepts one.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use foldhash::HashMap;
use keytrail_audit::{Principal, PrincipalKind};
use keytrail_crypto::RootKey;
use serde::{Deserialize, Serialize};

use crate::error::{KmsError, KmsResult};
use crate::model::{EncryptionContextMap, GrantConstraints};
use crate::service::KmsCall;

const TOKEN_PREFIX: &str = "KTG1";
const TOKEN_CONTEXT: &[u8] = b"keytrail:kms-grant-token";
/// Another process of a cluster may change a key's grants; this bounds how long one is missed.
const GRANT_CACHE_TTL: Duration = Duration::from_secs(5);

/// Operations a grant's constraints can apply to: those whose requests carry an encryption
/// context.
pub(crate) const CONTEXT_OPERATIONS: &[&str] = &[
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "CreateGrant",
];

/// A grant as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Grant {
    pub grant_id: String,
    pub name: Option<String>,
    pub key_arn: String,
    /// A principal ARN (or account id), or a service principal when `grantee_is_service`.
    pub grantee: String,
    pub grantee_is_service: bool,
    pub retiring: Option<String>,
    pub retiring_is_service: bool,
    pub operations: Vec<String>,
    pub constraints: Option<GrantConstraints>,
    /// `arn:aws:iam::<account>:root` of the account that created it.
    pub issuing_account: String,
    pub created_ms: i64,
}

/// Whether a grant's principal field names the caller: a user by ARN, a role by its ARN or a
/// session's, the root user by ARN or account id, a service by its name.
pub(crate) fn names(field: &str, is_service: bool, principal: &Principal) -> bool {
    match &principal.kind {
        PrincipalKind::AwsService { service } => is_service && field == service,
        _ if is_service => false,
        PrincipalKind::Root => field == principal.account_id || field == principal.arn(),
        PrincipalKind::IamUser { .. } => field == principal.arn(),
        PrincipalKind::AssumedRole { role_name, .. } => {
            field == principal.arn()
                || field == format!("arn:aws:iam::{}:role/{role_name}", principal.account_id)
        }
    }
}

impl Grant {
    pub fn grantee_names(&self, principal: &Principal) -> bool {
        names(&self.grantee, self.grantee_is_service, principal)
    }

    pub fn retiree_names(&self, principal: &Principal) -> bool {
        self.retiring
            .as_deref()
            .is_some_and(|r| names(r, self.retiring_is_service, principal))
    }

    /// Whether the grant lets its grantee perform `operation` with this encryption context.
    fn allows(
        &self,
        operation: &str,
        context: &BTreeMap<String, String>,
        source_arn: Option<&str>,
    ) -> bool {
        if !self.operations.iter().any(|o| o == operation) {
            return false;
        }
        let Some(constraints) = &self.constraints else {
            return true;
        };
        let equals_ok = constraints
            .encryption_context_equals
            .as_ref()
            .is_none_or(|equals| equals == context);
        let subset_ok = constraints
            .encryption_context_subset
            .as_ref()
            .is_none_or(|subset| subset.iter().all(|(k, v)| context.get(k) == Some(v)));
        let source_ok = constraints
            .source_arn
            .as_deref()
            .is_none_or(|arn| source_arn == Some(arn));
        equals_ok && subset_ok && source_ok
    }
}

#[derive(Serialize, Deserialize)]
struct TokenClaims {
    grant_id: String,
    key_arn: String,
}

pub(crate) fn issue_token(root_key: &RootKey, grant: &Grant) -> KmsResult<String> {
    let claims = serde_json::to_vec(&TokenClaims {
        grant_id: grant.grant_id.clone(),
        key_arn: grant.key_arn.clone(),
    })
    .map_err(|e| KmsError::Internal(format!("grant token encoding failed: {e}")))?;
    let sealed = root_key
        .wrap(&claims, TOKEN_CONTEXT)
        .map_err(|e| KmsError::Internal(format!("grant token sealing failed: {e}")))?;
    Ok(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
}

/// The grant id and key ARN a token was issued for, or InvalidGrantTokenException.
pub(crate) fn read_token(root_key: &RootKey, token: &str) -> KmsResult<(String, String)> {
    let invalid = || {
        KmsError::InvalidGrantToken(format!(
            "Grant token '{}' is not valid.",
            token.chars().take(32).collect::<String>()
        ))
    };
    let sealed = token
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .ok_or_else(invalid)?;
    let claims = root_key
        .unwrap(&sealed, TOKEN_CONTEXT)
        .map_err(|_| invalid())?;
    let claims: TokenClaims = serde_json::from_slice(&claims).map_err(|_| invalid())?;
    Ok((claims.grant_id, claims.key_arn))
}

/// The request's encryption context, as the operation declared it in its condition keys.
pub(crate) fn request_context(call: &KmsCall<'_>) -> EncryptionContextMap {
    call.condition_keys()
        .iter()
        .filter_map(|(name, values)| {
            let key = name.strip_prefix("kms:EncryptionContext:")?;
            Some((key.to_string(), values.first()?.clone()))
        })
        .collect()
}

/// When a key's grants were read, and the grants.
type GrantCacheEntry = (Instant, Arc<Vec<Grant>>);

/// Each key's grants, loaded on first use.
#[derive(Default)]
pub(crate) struct GrantCache {
    /// By key ARN, so a lookup on the hot path allocates nothing.
    entries: RwLock<HashMap<String, GrantCacheEntry>>,
}

impl GrantCache {
    pub fn get(&self, key_arn: &str) -> Option<Arc<Vec<Grant>>> {
        let entries = self.entries.read().ok()?;
        let (at, grants) = entries.get(key_arn)?;
        (at.elapsed() < GRANT_CACHE_TTL).then(|| Arc::clone(grants))
    }

    pub fn put(&self, key_arn: String, grants: Arc<Vec<Grant>>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() > 100_000 {
                entries.clear();
            }
            entries.insert(key_arn, (Instant::now(), grants));
        }
    }

    pub fn forget(&self, key_arn: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key_arn);
        }
    }
}

/// Whether any of `grants` lets the caller perform `action` (`kms:<Operation>`).
pub(crate) fn any_allows(grants: &[Grant], call: &KmsCall<'_>, action: &str) -> bool {
    let Some(operation) = action.strip_prefix("kms:") else {
        return false;
    };
    let mut context = None;
    grants.iter().any(|grant| {
        grant.grantee_names(&call.principal)
            && grant.allows(
                operation,
                context.get_or_insert_with(|| request_context(call)),
                call.source_arn.as_deref(),
            )
    })
}
