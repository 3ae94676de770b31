//! STS sessions: AssumeRole evaluates the role's trust policy and hands out temporary
//! credentials — an `ASIA...` access key, its secret, and a session token that carries both
//! (sealed under the root key, bound to the access key id) with the role and the expiry. Nothing
//! is stored: a token proves itself on every request, and stops working when it expires or when
//! its role is deleted.

use std::sync::Arc;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keytrail_audit::{CallContext, Principal, PrincipalKind};
use keytrail_crypto::random_string;
use keytrail_policy::{Decision, ResourceAuthority};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

use crate::access::{denial_message, request_context};
use crate::roles::parse_trust_policy;
use crate::{
    CACHE_TTL, ID_ALPHABET, IamApiError, IamApiResult, IamError, IamResult, Identities,
    ResolvedKey, SECRET_ALPHABET, is_iam_name,
};

const TOKEN_PREFIX: &str = "KT1";
const SHORTEST_SESSION_S: i64 = 900;
/// Sessions of a role assumed by another role's session last at most an hour.
const ROLE_CHAINING_LIMIT_S: i64 = 3600;

/// When a role's current id was read, and the id (`None`: the role no longer exists).
pub(crate) type RoleIdEntry = (Instant, Option<String>);

/// What a session token carries. Sealed, so only this server can read or make one.
#[derive(Serialize, Deserialize)]
struct SessionClaims {
    access_key_id: String,
    secret: String,
    account_id: String,
    role_name: String,
    role_id: String,
    session_name: String,
    created: i64,
    expires: i64,
}

impl Drop for SessionClaims {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

fn token_context(access_key_id: &str) -> Vec<u8> {
    format!("keytrail:sts-session:{access_key_id}").into_bytes()
}

/// Temporary credentials as AssumeRole returns them.
pub struct SessionCredentials {
    pub access_key_id: String,
    pub secret_access_key: Zeroizing<String>,
    pub session_token: String,
    pub expiration: OffsetDateTime,
    /// `AROA...:<session name>`
    pub assumed_role_id: String,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`
    pub arn: String,
}

impl std::fmt::Debug for SessionCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expiration", &self.expiration)
            .field("arn", &self.arn)
            .finish_non_exhaustive()
    }
}

/// The outcome of looking up the credentials a request was signed with.
#[derive(Debug)]
pub enum Credential {
    Known(Arc<ResolvedKey>),
    /// No such access key (or a session key presented without its token).
    UnknownKey,
    /// A token that this server did not issue for this access key, or that was altered.
    InvalidToken,
    /// A genuine token past its expiry; the principal is known, so the failure can be journaled.
    ExpiredToken(Principal),
}

/// `arn:aws:iam::<account>:role/[<path>/]<name>` → (account, name).
fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, resource) = rest.split_once(':')?;
    let path_and_name = resource.strip_prefix("role/")?;
    let name = path_and_name.rsplit('/').next()?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) && is_iam_name(name, 64))
        .then_some((account, name))
}

fn validation(message: impl Into<String>) -> IamApiError {
    IamApiError::Validation(message.into())
}

impl Identities {
    /// STS AssumeRole: the role's trust policy must allow the caller (and, where it trusts the
    /// caller's account rather than the caller, the caller's identity policies must too).
    pub async fn api_assume_role(
        &self,
        ctx: &CallContext,
        role_arn: &str,
        session_name: &str,
        duration_s: Option<i64>,
    ) -> IamApiResult<SessionCredentials> {
        let session_name_ok = (2..=64).contains(&session_name.len())
            && session_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !session_name_ok {
            return Err(validation(format!(
                "1 validation error detected: Value '{session_name}' at 'roleSessionName' \
                 failed to satisfy constraint: Member must satisfy regular expression pattern: \
                 [\\w+=,.@-]*"
            )));
        }
        let Some((role_account, role_name)) = parse_role_arn(role_arn) else {
            return Err(validation(format!("{role_arn} is invalid")));
        };
        let chained = matches!(ctx.principal.kind, PrincipalKind::AssumedRole { .. });
        if let Some(d) = duration_s
            && d < SHORTEST_SESSION_S
        {
            return Err(validation(format!(
                "1 validation error detected: Value '{d}' at 'durationSeconds' failed to \
                 satisfy constraint: Member must have value greater than or equal to \
                 {SHORTEST_SESSION_S}"
            )));
        }
        if chained && duration_s.is_some_and(|d| d > ROLE_CHAINING_LIMIT_S) {
            return Err(validation(
                "The requested DurationSeconds exceeds the 1 hour session limit for roles \
                 assumed by role chaining.",
            ));
        }
        if matches!(ctx.principal.kind, PrincipalKind::Root) {
            return Err(IamApiError::AccessDenied(
                "Roles may not be assumed by root accounts.".into(),
            ));
        }

        let mut request = request_context(ctx, "sts:AssumeRole", role_arn);
        request.set("sts:RoleSessionName", session_name.to_string());
        let role = self.store.get_role(role_account, role_name).await?;
        // A missing role is denied like a forbidden one: AssumeRole does not reveal which.
        let decision = match &role {
            None => Decision::ImplicitDeny,
            Some(role) => {
                let trust = parse_trust_policy(&role.trust_policy)?;
                self.decide(
                    ctx,
                    &request,
                    Some(&trust),
                    role_account,
                    ResourceAuthority::Required,
                    false,
                )
                .await?
            }
        };
        let (Decision::Allow, Some(role)) = (&decision, role) else {
            return Err(IamApiError::AccessDenied(denial_message(
                &request, &decision, false,
            )));
        };
        let duration_s = duration_s.unwrap_or(3600);
        if duration_s > role.max_session_duration_s {
            return Err(validation(
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
            ));
        }

        let created = ctx.time;
        let expiration = created + time::Duration::seconds(duration_s);
        let claims = SessionClaims {
            access_key_id: format!(
                "ASIA{}",
                random_string(16, ID_ALPHABET).map_err(IamError::from)?
            ),
            secret: random_string(40, SECRET_ALPHABET).map_err(IamError::from)?,
            account_id: role.account_id.clone(),
            role_name: role.role_name.clone(),
            role_id: role.role_id.clone(),
            session_name: session_name.to_string(),
            created: created.unix_timestamp(),
            expires: expiration.unix_timestamp(),
        };
        let json = Zeroizing::new(serde_json::to_vec(&claims).map_err(|e| {
            IamApiError::ServiceFailure(format!("session token encoding failed: {e}"))
        })?);
        let sealed = self
            .root_key
            .wrap(&json, &token_context(&claims.access_key_id))
            .map_err(IamError::from)?;
        Ok(SessionCredentials {
            access_key_id: claims.access_key_id.clone(),
            secret_access_key: Zeroizing::new(claims.secret.clone()),
            session_token: format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)),
            expiration,
            assumed_role_id: format!("{}:{session_name}", role.role_id),
            arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{session_name}",
                role.account_id, role.role_name
            ),
        })
    }

    /// The credentials behind an access key and, for temporary credentials, the session token
    /// that came with the request.
    pub async fn resolve_credential(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
    ) -> IamResult<Credential> {
        let Some(token) = session_token else {
            return Ok(match self.resolve(access_key_id).await? {
                Some(key) => Credential::Known(key),
                None => Credential::UnknownKey,
            });
        };
        let Some(claims) = self.open_token(access_key_id, token) else {
            return Ok(Credential::InvalidToken);
        };
        let principal = Principal {
            account_id: claims.account_id.clone(),
            kind: PrincipalKind::AssumedRole {
                role_name: claims.role_name.clone(),
                role_id: claims.role_id.clone(),
                session_name: claims.session_name.clone(),
                session_created: OffsetDateTime::from_unix_timestamp(claims.created)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
            },
            access_key_id: Some(access_key_id.to_string()),
        };
        if keytrail_audit::clock::now().unix_timestamp() >= claims.expires {
            return Ok(Credential::ExpiredToken(principal));
        }
        // A deleted role (or one deleted and created again) ends its sessions.
        if !self
            .role_is_current(&claims.account_id, &claims.role_name, &claims.role_id)
            .await?
        {
            return Ok(Credential::InvalidToken);
        }
        Ok(Credential::Known(Arc::new(ResolvedKey {
            principal,
            secret: Zeroizing::new(claims.secret.clone()),
            active: true,
        })))
    }

    fn open_token(&self, access_key_id: &str, token: &str) -> Option<SessionClaims> {
        let sealed = URL_SAFE_NO_PAD
            .decode(token.strip_prefix(TOKEN_PREFIX)?)
            .ok()?;
        let json = self
            .root_key
            .unwrap(&sealed, &token_context(access_key_id))
            .ok()?;
        let claims: SessionClaims = serde_json::from_slice(&json).ok()?;
        (claims.access_key_id == access_key_id).then_some(claims)
    }

    async fn role_is_current(
        &self,
        account_id: &str,
        role_name: &str,
        role_id: &str,
    ) -> IamResult<bool> {
        let cache_key = (account_id.to_string(), role_name.to_string());
        if let Ok(cache) = self.role_ids.read()
            && let Some((at, current)) = cache.get(&cache_key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(current.as_deref() == Some(role_id));
        }
        let current = self
            .store
            .get_role(account_id, role_name)
            .await?
            .map(|r| r.role_id);
        let matches = current.as_deref() == Some(role_id);
        if let Ok(mut cache) = self.role_ids.write() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(cache_key, (Instant::now(), current));
        }
        Ok(matches)
    }

    pub(crate) fn forget_role(&self, account_id: &str, role_name: &str) {
        if let Ok(mut cache) = self.role_ids.write() {
            cache.remove(&(account_id.to_string(), role_name.to_string()));
        }
    }
}
