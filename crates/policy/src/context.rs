//! What a request looks like to a policy: who calls, which action on which resource, and the
//! values of the condition keys.

use std::borrow::Cow;

/// The principal making a request, as the policy language distinguishes principals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The account's root user.
    Root { account: String },
    /// An IAM user: `arn:aws:iam::<account>:user[/path]/<name>`.
    User { account: String, arn: String },
    /// A session of a role: `role_arn` is the role's IAM ARN, `session_arn` the
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>` it is known by.
    AssumedRole {
        account: String,
        role_arn: String,
        session_arn: String,
    },
    /// An AWS service principal such as `cloudtrail.amazonaws.com`.
    Service { name: String },
    /// No credentials at all.
    Anonymous,
}

impl Caller {
    pub fn account(&self) -> Option<&str> {
        match self {
            Caller::Root { account }
            | Caller::User { account, .. }
            | Caller::AssumedRole { account, .. } => Some(account),
            Caller::Service { .. } | Caller::Anonymous => None,
        }
    }

    /// The ARN AWS uses for `aws:PrincipalArn` (the role, not the session, for a role session).
    pub fn principal_arn(&self) -> Option<String> {
        match self {
            Caller::Root { account } => Some(format!("arn:aws:iam::{account}:root")),
            Caller::User { arn, .. } => Some(arn.clone()),
            Caller::AssumedRole { role_arn, .. } => Some(role_arn.clone()),
            Caller::Service { .. } | Caller::Anonymous => None,
        }
    }

    /// The ARN that names the caller in messages (`User: <arn> is not authorized ...`).
    pub fn display_arn(&self) -> String {
        match self {
            Caller::Root { account } => format!("arn:aws:iam::{account}:root"),
            Caller::User { arn, .. } => arn.clone(),
            Caller::AssumedRole { session_arn, .. } => session_arn.clone(),
            Caller::Service { name } => name.clone(),
            Caller::Anonymous => "anonymous".to_string(),
        }
    }
}

/// One request as policies see it. Condition key names are case-insensitive in AWS, so they are
/// looked up ignoring ASCII case; values keep their case.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub caller: Caller,
    /// `service:Operation`, e.g. `kms:GenerateDataKey`.
    pub action: String,
    /// The ARN of the resource acted on.
    pub resource: String,
    /// In the order they were set; a later key replaces an earlier one of the same name. Every
    /// request carries ~20 keys and a policy reads few of them: a list of names mostly
    /// borrowed from the code costs far less to build than a map of lower-cased copies.
    keys: Vec<(Cow<'static, str>, KeyValues)>,
}

/// Most keys hold one value, often a constant (`aws:SecureTransport` is `true` or `false`):
/// that one is kept without a list around it or a copy of it.
#[derive(Debug, Clone)]
enum KeyValues {
    One(Cow<'static, str>),
    Many(Vec<Cow<'static, str>>),
}

impl RequestContext {
    /// A context with the principal keys every request carries (`aws:PrincipalArn`,
    /// `aws:PrincipalAccount`, `aws:PrincipalType`, `aws:username` where they apply; the caller
    /// adds `aws:userid` and the service keys).
    pub fn new(caller: Caller, action: impl Into<String>, resource: impl Into<String>) -> Self {
        let mut context = Self {
            caller,
            action: action.into(),
            resource: resource.into(),
            keys: Vec::with_capacity(24),
        };
        if let Some(arn) = context.caller.principal_arn() {
            context.set("aws:PrincipalArn", arn);
        }
        if let Some(account) = context.caller.account().map(str::to_string) {
            context.set("aws:PrincipalAccount", account);
        }
        let principal_type = match &context.caller {
            Caller::Root { .. } => Some("Account"),
            Caller::User { .. } => Some("User"),
            Caller::AssumedRole { .. } => Some("AssumedRole"),
            Caller::Service { .. } => None,
            Caller::Anonymous => Some("Anonymous"),
        };
        if let Some(principal_type) = principal_type {
            context.set("aws:PrincipalType", principal_type);
        }
        let named = match &context.caller {
            Caller::User { arn, .. } => arn
                .rsplit('/')
                .next()
                .map(|name| ("aws:username", name.to_string())),
            Caller::Service { name } => Some(("aws:PrincipalServiceName", name.clone())),
            _ => None,
        };
        if let Some((key, value)) = named {
            context.set(key, value);
        }
        context
    }

    /// A context without condition keys, for policies that read none (see
    /// [`Policy::reads_request_keys`](crate::Policy::reads_request_keys)): most requests are
    /// decided by policies without conditions, and building ~20 keys each time cost more than
    /// evaluating them.
    pub fn without_keys(
        caller: Caller,
        action: impl Into<String>,
        resource: impl Into<String>,
    ) -> Self {
        Self {
            caller,
            action: action.into(),
            resource: resource.into(),
            keys: Vec::new(),
        }
    }

    /// Sets a single-valued key, replacing what was there.
    pub fn set(&mut self, key: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) {
        self.keys.push((key.into(), KeyValues::One(value.into())));
    }

    /// Sets a multi-valued key (such as `kms:EncryptionContextKeys`).
    pub fn set_values(&mut self, key: impl Into<Cow<'static, str>>, values: Vec<String>) {
        self.keys.push((
            key.into(),
            KeyValues::Many(values.into_iter().map(Cow::Owned).collect()),
        ));
    }

    pub fn with(
        mut self,
        key: impl Into<Cow<'static, str>>,
        value: impl Into<Cow<'static, str>>,
    ) -> Self {
        self.set(key, value);
        self
    }

    pub fn values(&self, key: &str) -> Option<&[Cow<'static, str>]> {
        self.keys
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case(key))
            .map(|(_, values)| match values {
                KeyValues::One(one) => std::slice::from_ref(one),
                KeyValues::Many(many) => many.as_slice(),
            })
    }

    /// The value of a single-valued key (a policy variable needs exactly one).
    pub fn single_value(&self, key: &str) -> Option<&str> {
        match self.values(key) {
            Some([one]) => Some(one),
            _ => None,
        }
    }
}
