//! Authorization: turning a call into what the policy engine evaluates (the caller, the global
//! condition keys of the request) and deciding with the caller's identity policies, which are
//! cached here.

use std::sync::Arc;
use std::time::Instant;

use keytrail_audit::{CallContext, Principal, PrincipalKind};
use keytrail_policy::{
    Authorization, Caller, Decision, Policy, PolicyKind, RequestContext, ResourceAuthority,
};
use keytrail_store::PolicyOwner;
use time::format_description::well_known::Rfc3339;

use crate::{CACHE_TTL, IamResult, Identities};

/// The policy engine's view of a principal.
pub fn caller_of(principal: &Principal) -> Caller {
    let account = principal.account_id.clone();
    match &principal.kind {
        PrincipalKind::Root => Caller::Root { account },
        PrincipalKind::IamUser { .. } => Caller::User {
            arn: principal.arn(),
            account,
        },
        PrincipalKind::AssumedRole { role_name, .. } => Caller::AssumedRole {
            role_arn: format!("arn:aws:iam::{account}:role/{role_name}"),
            session_arn: principal.arn(),
            account,
        },
        PrincipalKind::AwsService { service } => Caller::Service {
            name: service.clone(),
        },
    }
}

/// The request with no condition keys, for policies that read none (see
/// [`policies_read_request_keys`]).
pub fn request_without_keys(ctx: &CallContext, action: &str, resource: &str) -> RequestContext {
    RequestContext::without_keys(caller_of(&ctx.principal), action, resource)
}

/// The request as policies see it, with the global condition keys every call has
/// (`aws:SourceIp`, `aws:SecureTransport`, `aws:CurrentTime`, `aws:EpochTime`,
/// `aws:RequestedRegion`, `aws:userid`, `aws:CalledVia` for calls a service makes for a user,
/// `aws:SourceArn`/`aws:SourceAccount` for calls a service makes for one of its resources).
pub fn request_context(ctx: &CallContext, action: &str, resource: &str) -> RequestContext {
    let mut request = RequestContext::new(caller_of(&ctx.principal), action, resource);
    if ctx.source_ip.parse::<std::net::IpAddr>().is_ok() {
        request.set("aws:SourceIp", ctx.source_ip.clone());
    }
    request.set(
        "aws:SecureTransport",
        if ctx.tls.is_some() { "true" } else { "false" },
    );
    if let Ok(now) = ctx.time.format(&Rfc3339) {
        request.set("aws:CurrentTime", now);
    }
    request.set("aws:EpochTime", ctx.time.unix_timestamp().to_string());
    request.set("aws:RequestedRegion", ctx.region.clone());
    if !matches!(ctx.principal.kind, PrincipalKind::AwsService { .. }) {
        request.set("aws:userid", ctx.principal.principal_id());
    }
    if let Some(arn) = &ctx.source_arn {
        request.set("aws:SourceArn", arn.clone());
    }
    if let Some(account) = &ctx.source_account {
        request.set("aws:SourceAccount", account.clone());
    }
    if let Some(service) = &ctx.invoked_by {
        request.set("aws:CalledVia", service.clone());
        request.set("aws:ViaAWSService", "true");
    } else {
        request.set("aws:ViaAWSService", "false");
    }
    request
}

/// The message of an AccessDenied, in AWS's words: who, what, on which resource, and which
/// kind of policy was missing — never the policy itself.
pub fn denial_message(
    request: &RequestContext,
    decision: &Decision,
    resource_side: bool,
) -> String {
    let who = match &request.caller {
        Caller::Service { name } => format!("Service: {name}"),
        caller => format!("User: {}", caller.display_arn()),
    };
    let kind = if resource_side {
        "resource-based"
    } else {
        "identity-based"
    };
    let why = match decision {
        Decision::ExplicitDeny(_) => format!("with an explicit deny in a {kind} policy"),
        _ => format!(
            "because no {kind} policy allows the {} action",
            request.action
        ),
    };
    format!(
        "{who} is not authorized to perform: {} on resource: {} {why}",
        request.action, request.resource
    )
}

pub(crate) type PolicyCacheEntry = (Instant, Arc<Vec<Policy>>);

impl Identities {
    /// The inline and attached policies of the user or role behind a principal (none for root and services).
    pub async fn identity_policies(&self, principal: &Principal) -> IamResult<Arc<Vec<Policy>>> {
        let (owner, name) = match &principal.kind {
            PrincipalKind::IamUser { user_name, .. } => (PolicyOwner::User, user_name.as_str()),
            PrincipalKind::AssumedRole { role_name, .. } => (PolicyOwner::Role, role_name.as_str()),
            PrincipalKind::Root | PrincipalKind::AwsService { .. } => {
                return Ok(Arc::new(Vec::new()));
            }
        };
        let cache_key = (
            principal.account_id.clone(),
            owner.as_str(),
            name.to_string(),
        );
        if let Ok(cache) = self.policy_cache.read()
            && let Some((at, policies)) = cache.get(&cache_key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Arc::clone(policies));
        }
        let inline = self
            .store
            .list_policy_documents(&principal.account_id, owner, name)
            .await?;
        let attached = self
            .store
            .list_attached_policies(&principal.account_id, owner, name)
            .await?;
        let documents = inline
            .iter()
            .map(|row| (&row.policy_name, &row.document))
            .chain(attached.iter().map(|row| (&row.policy_name, &row.document)));
        // Documents were validated when written; one that no longer parses (written by an older
        // version) is skipped loudly rather than failing every call of its owner.
        let policies: Vec<Policy> = documents
            .filter_map(|(policy_name, document)| {
                match Policy::parse(document, PolicyKind::Identity) {
                    Ok(policy) => Some(policy),
                    Err(e) => {
                        tracing::warn!(policy = %policy_name, error = %e, "stored policy ignored");
                        None
                    }
                }
            })
            .collect();
        let policies = Arc::new(policies);
        if let Ok(mut cache) = self.policy_cache.write() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(cache_key, (Instant::now(), Arc::clone(&policies)));
        }
        Ok(policies)
    }

    pub(crate) fn forget_policies(&self, account_id: &str, owner: PolicyOwner, name: &str) {
        if let Ok(mut cache) = self.policy_cache.write() {
            cache.remove(&(account_id.to_string(), owner.as_str(), name.to_string()));
        }
    }

    /// Decides a request: the caller's identity policies, the resource's policy if it has one,
    /// and grants (`granted`) combined as AWS combines them.
    pub async fn decide(
        &self,
        ctx: &CallContext,
        request: &RequestContext,
        resource_policy: Option<&Policy>,
        resource_account: &str,
        authority: ResourceAuthority,
        granted: bool,
    ) -> IamResult<Decision> {
        let identity = self.identity_policies(&ctx.principal).await?;
        Ok(decide_with(
            &identity,
            request,
            resource_policy,
            resource_account,
            authority,
            granted,
        ))
    }
}

/// Whether deciding a request under `identity` policies and `resource_policy` can read the
/// request's condition keys: when none of them does, [`request_without_keys`] decides the same
/// as [`request_context`], for less.
pub fn policies_read_request_keys(identity: &[Policy], resource_policy: Option<&Policy>) -> bool {
    resource_policy.is_some_and(Policy::reads_request_keys)
        || identity.iter().any(Policy::reads_request_keys)
}

/// [`Identities::decide`] for a caller whose identity policies were already fetched (with
/// [`Identities::identity_policies`]), so a call that also asks
/// [`policies_read_request_keys`] fetches them once.
pub fn decide_with(
    identity: &[Policy],
    request: &RequestContext,
    resource_policy: Option<&Policy>,
    resource_account: &str,
    authority: ResourceAuthority,
    granted: bool,
) -> Decision {
    let identity: Vec<&Policy> = identity.iter().collect();
    Authorization {
        request,
        identity_policies: &identity,
        resource_policy,
        resource_account,
        authority,
        granted,
    }
    .decide()
}
