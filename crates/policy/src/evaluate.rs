//! Evaluation: which statements of a policy apply to a request, and how identity policies,
//! a resource policy and grants combine into one decision, in AWS's order (an explicit Deny
//! wins, then an Allow, else the implicit deny).

use crate::context::{Caller, RequestContext};
use crate::document::{Effect, PatternBlock, Policy, PrincipalBlock, PrincipalPattern, Version};
use crate::pattern::{substitute_variables, wildcard_match};

/// How a resource policy's Allow reached the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PrincipalMatch {
    /// The statement names the account (`arn:aws:iam::<account>:root`): the account's own IAM
    /// policies must allow the call too.
    ViaAccount,
    /// The statement names the caller itself (or `*`, or its role, or its service).
    Direct,
}

/// What one policy (or a set of policies of one kind) says about a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyVerdict {
    /// The Sid (or position) of the first Deny statement that applies.
    pub denied_by: Option<String>,
    /// The strongest way an Allow statement applies.
    pub allowed: Option<PrincipalMatch>,
}

impl PolicyVerdict {
    fn merge(&mut self, other: PolicyVerdict) {
        if self.denied_by.is_none() {
            self.denied_by = other.denied_by;
        }
        self.allowed = self.allowed.max(other.allowed);
    }
}

impl Policy {
    /// Whether evaluating this policy can read the request's condition keys: through a
    /// condition, or through a policy variable in a resource (in `2012-10-17` documents; in
    /// `2008-10-17` ones `${...}` is literal text). Principals and actions read no keys.
    pub fn reads_request_keys(&self) -> bool {
        self.statements.iter().any(|statement| {
            !statement.conditions.is_empty()
                || (self.version == Version::V2012
                    && statement
                        .resource
                        .as_ref()
                        .is_some_and(|block| block.patterns.iter().any(|p| p.contains("${"))))
        })
    }

    /// Evaluates every statement against the request.
    pub fn evaluate(&self, request: &RequestContext) -> PolicyVerdict {
        let mut verdict = PolicyVerdict::default();
        for (index, statement) in self.statements.iter().enumerate() {
            let principal_match = match &statement.principal {
                None => Some(PrincipalMatch::Direct),
                Some(block) => principal_matches(block, &request.caller),
            };
            let Some(principal_match) = principal_match else {
                continue;
            };
            if !action_matches(&statement.action, &request.action)
                || !statement
                    .resource
                    .as_ref()
                    .is_none_or(|block| resource_matches(block, request, self.version))
                || !statement
                    .conditions
                    .iter()
                    .all(|condition| condition.holds(request, self.version))
            {
                continue;
            }
            match statement.effect {
                Effect::Deny => {
                    if verdict.denied_by.is_none() {
                        verdict.denied_by = Some(
                            statement
                                .sid
                                .clone()
                                .unwrap_or_else(|| format!("statement {}", index + 1)),
                        );
                    }
                }
                Effect::Allow => verdict.allowed = verdict.allowed.max(Some(principal_match)),
            }
        }
        verdict
    }
}

/// Evaluates several policies of one kind (e.g. all identity policies of a user) together.
pub fn evaluate_all<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    request: &RequestContext,
) -> PolicyVerdict {
    let mut verdict = PolicyVerdict::default();
    for policy in policies {
        verdict.merge(policy.evaluate(request));
    }
    verdict
}

fn action_matches(block: &PatternBlock, action: &str) -> bool {
    let hit = block
        .patterns
        .iter()
        .any(|pattern| wildcard_match(pattern, action, true));
    hit != block.negated
}

fn resource_matches(block: &PatternBlock, request: &RequestContext, version: Version) -> bool {
    let hit = block.patterns.iter().any(|pattern| {
        let pattern = match version {
            Version::V2012 => substitute_variables(pattern, request),
            Version::V2008 => Some(std::borrow::Cow::Borrowed(pattern.as_str())),
        };
        pattern.is_some_and(|pattern| wildcard_match(&pattern, &request.resource, false))
    });
    hit != block.negated
}

fn principal_matches(block: &PrincipalBlock, caller: &Caller) -> Option<PrincipalMatch> {
    let best = block
        .patterns
        .iter()
        .filter_map(|pattern| pattern_matches(pattern, caller))
        .max();
    if block.negated {
        // NotPrincipal applies to everyone it does not name, and always directly.
        best.is_none().then_some(PrincipalMatch::Direct)
    } else {
        best
    }
}

fn pattern_matches(pattern: &PrincipalPattern, caller: &Caller) -> Option<PrincipalMatch> {
    match (pattern, caller) {
        (PrincipalPattern::Anyone, _) => Some(PrincipalMatch::Direct),
        (PrincipalPattern::Account(account), _) if caller.account() == Some(account.as_str()) => {
            match caller {
                // The root user is the account: naming the account names it directly.
                Caller::Root { .. } => Some(PrincipalMatch::Direct),
                _ => Some(PrincipalMatch::ViaAccount),
            }
        }
        (PrincipalPattern::Arn(arn), Caller::User { arn: user, .. }) if arn == user => {
            Some(PrincipalMatch::Direct)
        }
        (
            PrincipalPattern::Arn(arn),
            Caller::AssumedRole {
                role_arn,
                session_arn,
                ..
            },
        ) if arn == role_arn || arn == session_arn => Some(PrincipalMatch::Direct),
        (PrincipalPattern::Service(service), Caller::Service { name })
            if service.eq_ignore_ascii_case(name) =>
        {
            Some(PrincipalMatch::Direct)
        }
        _ => None,
    }
}

/// How a service combines a resource policy with the caller's identity policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceAuthority {
    /// KMS: the key policy must allow the call; IAM policies count only where the key policy
    /// delegates to the account (`arn:aws:iam::<account>:root`).
    Required,
    /// S3 and the rest: within an account either an identity policy or the resource policy may
    /// allow; across accounts both must.
    Optional,
}

/// The final answer for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// An explicit Deny applied (named by Sid or position, for logs — never for the caller).
    ExplicitDeny(String),
    /// Nothing allowed the request.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }
}

/// The inputs of one authorization decision.
#[derive(Debug, Clone, Copy)]
pub struct Authorization<'a> {
    pub request: &'a RequestContext,
    /// The caller's own policies (user or role policies, inline and attached); empty for the
    /// root user and for services.
    pub identity_policies: &'a [&'a Policy],
    /// The resource's policy, if the resource has one.
    pub resource_policy: Option<&'a Policy>,
    /// The account that owns the resource.
    pub resource_account: &'a str,
    pub authority: ResourceAuthority,
    /// Whether something outside the policies (a KMS grant) allows the request directly.
    pub granted: bool,
}

impl Authorization<'_> {
    pub fn decide(&self) -> Decision {
        let identity = evaluate_all(self.identity_policies.iter().copied(), self.request);
        let resource = self
            .resource_policy
            .map(|policy| policy.evaluate(self.request))
            .unwrap_or_default();
        if let Some(sid) = identity.denied_by.or(resource.denied_by) {
            return Decision::ExplicitDeny(sid);
        }
        // A grant allows its grantee directly, from any account, with no IAM policy needed.
        if self.granted {
            return Decision::Allow;
        }
        let caller = &self.request.caller;
        // The root user needs no identity policy in its own account; a service has none.
        let identity_allows = match caller {
            Caller::Root { .. } => true,
            Caller::Service { .. } | Caller::Anonymous => false,
            Caller::User { .. } | Caller::AssumedRole { .. } => identity.allowed.is_some(),
        };
        let resource_allows = resource.allowed;
        let same_account = caller.account() == Some(self.resource_account);
        let allowed = match (same_account, self.authority) {
            (true, ResourceAuthority::Required) => match resource_allows {
                Some(PrincipalMatch::Direct) => true,
                Some(PrincipalMatch::ViaAccount) => identity_allows,
                None => false,
            },
            (true, ResourceAuthority::Optional) => {
                identity_allows || resource_allows == Some(PrincipalMatch::Direct)
            }
            (false, _) => match caller {
                // Services and anonymous callers belong to no account: the resource policy
                // alone speaks for them.
                Caller::Service { .. } | Caller::Anonymous => {
                    resource_allows == Some(PrincipalMatch::Direct)
                }
                _ => resource_allows.is_some() && identity_allows,
            },
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        }
    }
}
