//! Why a policy document was refused.

/// A policy document that AWS would refuse when it is written. The message says what is wrong
/// in the document; services wrap it in their own error (MalformedPolicyDocumentException,
/// MalformedPolicy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    message: String,
}

impl PolicyError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    pub(crate) fn invalid_principal(principal: &str) -> Self {
        Self::new(format!(
            "invalid principal '{principal}': use \"*\", a 12-digit account id, or the ARN of an \
             account root, user, role or assumed-role session"
        ))
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}
