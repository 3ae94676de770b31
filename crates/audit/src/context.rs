//! Who is calling, for every operation.

use time::OffsetDateTime;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// 12-digit account id.
    pub account_id: String,
    pub kind: PrincipalKind,
    /// The access key the request was signed with, when it came from outside.
    pub access_key_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The account's root user.
    Root,
    IamUser {
        user_name: String,
        /// `AIDA...`
        user_id: String,
    },
    AssumedRole {
        role_name: String,
        /// `AROA...`
        role_id: String,
        session_name: String,
        session_created: OffsetDateTime,
    },
    /// An AWS service acting on its own (e.g. CloudTrail delivering a log file).
    AwsService { service: String },
}

impl Principal {
    pub fn root(account_id: &str, access_key_id: Option<String>) -> Self {
        Self {
            account_id: account_id.to_string(),
            kind: PrincipalKind::Root,
            access_key_id,
        }
    }

    pub fn service(account_id: &str, service: &str) -> Self {
        Self {
            account_id: account_id.to_string(),
            kind: PrincipalKind::AwsService {
                service: service.to_string(),
            },
            access_key_id: None,
        }
    }

    /// The ARN IAM and STS report for this principal.
    pub fn arn(&self) -> String {
        let account = &self.account_id;
        match &self.kind {
            PrincipalKind::Root => format!("arn:aws:iam::{account}:root"),
            PrincipalKind::IamUser { user_name, .. } => {
                format!("arn:aws:iam::{account}:user/{user_name}")
            }
            PrincipalKind::AssumedRole {
                role_name,
                session_name,
                ..
            } => format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}"),
            PrincipalKind::AwsService { service } => service.clone(),
        }
    }

    /// The `UserId` of `GetCallerIdentity` and the `principalId` of events.
    pub fn principal_id(&self) -> String {
        match &self.kind {
            PrincipalKind::Root => self.account_id.clone(),
            PrincipalKind::IamUser { user_id, .. } => user_id.clone(),
            PrincipalKind::AssumedRole {
                role_id,
                session_name,
                ..
            } => format!("{role_id}:{session_name}"),
            PrincipalKind::AwsService { service } => service.clone(),
        }
    }
}

/// TLS facts of the connection, as CloudTrail's `tlsDetails` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsDetails {
    pub tls_version: String,
    pub cipher_suite: String,
    pub client_provided_host_header: String,
}

/// Everything an operation needs to know about its invocation, external or internal.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub request_id: String,
    pub time: OffsetDateTime,
    /// The region the request was made to (from the SigV4 scope).
    pub region: String,
    pub principal: Principal,
    pub source_ip: String,
    pub user_agent: String,
    /// The service that made this call on the principal's behalf (`s3.amazonaws.com`, …).
    pub invoked_by: Option<String>,
    /// The resource a service acts for (a trail's ARN when CloudTrail writes its logs), as
    /// policies see it in `aws:SourceArn`, and that resource's account (`aws:SourceAccount`).
    pub source_arn: Option<String>,
    pub source_account: Option<String>,
    pub tls: Option<TlsDetails>,
}
