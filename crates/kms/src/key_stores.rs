//! Custom key stores: an external key store is a KMS-side record of an XKS proxy (where it is,
//! the credential KMS signs with, whether KMS is connected to it). Keys of origin
//! `EXTERNAL_KEY_STORE` live in one and are usable only while it is connected.
//!
//! AWS CloudHSM key stores need a CloudHSM cluster, which keytrail does not have: creating one
//! fails as it does in AWS for a cluster that does not exist.

use serde::{Deserialize, Serialize};

use crate::error::KmsError;
use crate::xks::ProxyFailure;

pub const EXTERNAL_KEY_STORE: &str = "EXTERNAL_KEY_STORE";
pub const AWS_CLOUDHSM: &str = "AWS_CLOUDHSM";
pub const PUBLIC_ENDPOINT: &str = "PUBLIC_ENDPOINT";
pub const VPC_ENDPOINT_SERVICE: &str = "VPC_ENDPOINT_SERVICE";

/// `ConnectionState` of a custom key store. Connecting and disconnecting finish within the
/// call here, so `CONNECTING` and `DISCONNECTING` are never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionState {
    Connected,
    Failed,
    Disconnected,
}

impl ConnectionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionState::Connected => "CONNECTED",
            ConnectionState::Failed => "FAILED",
            ConnectionState::Disconnected => "DISCONNECTED",
        }
    }
}

/// A stored external key store. The proxy's secret access key is wrapped under the root key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyStoreRecord {
    pub id: String,
    pub name: String,
    pub account_id: String,
    pub region: String,
    pub created_ms: i64,
    pub connection_state: ConnectionState,
    #[serde(default)]
    pub connection_error_code: Option<String>,
    pub connectivity: String,
    pub uri_endpoint: String,
    pub uri_path: String,
    #[serde(default)]
    pub vpc_endpoint_service_name: Option<String>,
    #[serde(default)]
    pub vpc_endpoint_service_owner: Option<String>,
    pub access_key_id: String,
    /// Base64 of the root-key-wrapped secret access key.
    pub wrapped_secret: String,
}

impl KeyStoreRecord {
    /// What the wrapped secret is bound to, so it cannot be moved to another key store.
    pub fn secret_aad(account_id: &str, region: &str, id: &str) -> Vec<u8> {
        format!("kms-custom-key-store:{account_id}:{region}:{id}").into_bytes()
    }
}

/// `cks-` and 17 hexadecimal digits, as AWS's custom key store ids read.
pub fn new_key_store_id() -> String {
    let bytes = uuid::Uuid::new_v4();
    let hex = hex::encode(bytes.as_bytes());
    format!("cks-{}", &hex[..17])
}

/// Which KMS call met a proxy failure: AWS KMS names the same failure differently for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyUse {
    /// CreateCustomKeyStore, UpdateCustomKeyStore (checking the proxy before saving it).
    KeyStoreSettings,
    /// CreateKey (checking the external key).
    CreateKey,
    /// Encrypt, Decrypt, ReEncrypt, GenerateDataKey*.
    Cryptography,
}

/// The message AWS KMS gives for a proxy failure; the proxy's own message is not passed on.
fn failure_message(failure: &ProxyFailure) -> &'static str {
    match failure {
        ProxyFailure::Rejected { name } => match name.as_str() {
            "InvalidStateException" => {
                "The external key associated with this KMS key in an external key store is not enabled in the external key manager. Enable the external key in the external key manager and retry the request."
            }
            "InvalidCiphertextException" => {
                "The external key store proxy rejected the request because the specified ciphertext or encryption context is corrupted, missing, or otherwise invalid."
            }
            "InvalidKeyUsageException" => {
                "The external key associated with this KMS key in an external key store does not support the requested operation. Enable the operation on the key in your external key manager, and try the request again."
            }
            "AuthenticationFailedException" => {
                "The external key store proxy rejected the request because it could not authenticate AWS KMS. Verify the XKS proxy authentication credentials for your external key store and update if necessary."
            }
            "AccessDeniedException" => {
                "The external key store proxy denied access to the operation. Verify that the user and the external key are both authorized for this operation, and try the request again."
            }
            "KeyNotFoundException" => {
                "The external key associated with this KMS key in an external key store was not found in its external key manager. If the external key ID associated with this KMS key is incorrect, create a new KMS key with the correct external key ID."
            }
            "InvalidUriPathException" => {
                "The external key store proxy rejected the request because of an invalid URI path. Verify the URI path for your external key store and update if necessary."
            }
            "UnsupportedOperationException" => {
                "The external key store proxy rejected the request because it does not support the requested operation. If you see this error repeatedly, report it to your external key store proxy administrator."
            }
            "DependencyTimeoutException" => {
                "The external key store proxy did not respond to the request in the time allotted. Retry the request. If you see this error repeatedly, report it to your external key store proxy administrator."
            }
            "ThrottlingException" => {
                "The external key store proxy rejected the request due to a very high request rate. Reduce the frequency of your calls using KMS keys in this external key store."
            }
            "InternalException" => {
                "The external key store proxy rejected the request because it cannot communicate with the external key manager. Verify that the external key store proxy configuration is correct and that the external key manager is available."
            }
            _ => INVALID_RESPONSE,
        },
        ProxyFailure::Unreachable(_) => {
            "AWS KMS cannot communicate with the external key store proxy. This might be a transient network issue. If you see this error repeatedly, verify that your external key store proxy is active and is connected to the network, and that its endpoint URI is correct in your external key store."
        }
        ProxyFailure::Tls(_) => {
            "AWS KMS cannot establish a TLS connection to the external key store proxy. Verify the TLS configuration, including its certificate."
        }
        ProxyFailure::TimedOut => {
            "AWS KMS rejected the request because the external key store proxy did not respond in time. Retry the request. If you see this error repeatedly, report it to your external key store proxy administrator."
        }
        ProxyFailure::InvalidResponse(_) => INVALID_RESPONSE,
    }
}

const INVALID_RESPONSE: &str = "AWS KMS cannot interpret the response from the external key store proxy. If you see this error repeatedly, report it to your external key store proxy administrator.";

/// The KMS error a caller sees for a proxy failure during `during`.
pub fn proxy_error(failure: &ProxyFailure, during: ProxyUse) -> KmsError {
    tracing::warn!(error = %failure, ?during, "XKS proxy call failed");
    let message = failure_message(failure).to_string();
    let rejected = match failure {
        ProxyFailure::Rejected { name } => Some(name.as_str()),
        _ => None,
    };
    match during {
        ProxyUse::Cryptography => KmsError::InvalidState(message),
        ProxyUse::CreateKey => match rejected {
            Some("KeyNotFoundException") => KmsError::XksKeyNotFound(message),
            Some("InvalidStateException" | "InvalidKeyUsageException") => {
                KmsError::XksKeyInvalidConfiguration(message)
            }
            _ => KmsError::CustomKeyStoreInvalidState(message),
        },
        ProxyUse::KeyStoreSettings => match (failure, rejected) {
            (_, Some("AuthenticationFailedException")) => {
                KmsError::XksProxyIncorrectAuthenticationCredential(message)
            }
            (_, Some("InvalidUriPathException")) => KmsError::XksProxyInvalidConfiguration(message),
            (_, Some("DependencyTimeoutException" | "ThrottlingException"))
            | (ProxyFailure::Unreachable(_) | ProxyFailure::Tls(_) | ProxyFailure::TimedOut, _) => {
                KmsError::XksProxyUriUnreachable(message)
            }
            _ => KmsError::XksProxyInvalidResponse(message),
        },
    }
}

/// `ConnectionErrorCode` of a key store whose proxy failed the connection's health check.
pub fn connection_error_code(failure: &ProxyFailure) -> &'static str {
    match failure {
        ProxyFailure::Rejected { name } => match name.as_str() {
            "AuthenticationFailedException" | "AccessDeniedException" => "XKS_PROXY_ACCESS_DENIED",
            "InvalidUriPathException" => "XKS_PROXY_INVALID_CONFIGURATION",
            "DependencyTimeoutException" => "XKS_PROXY_TIMED_OUT",
            _ => "XKS_PROXY_INVALID_RESPONSE",
        },
        ProxyFailure::Unreachable(_) => "XKS_PROXY_NOT_REACHABLE",
        ProxyFailure::Tls(_) => "XKS_PROXY_INVALID_TLS_CONFIGURATION",
        ProxyFailure::TimedOut => "XKS_PROXY_TIMED_OUT",
        ProxyFailure::InvalidResponse(_) => "XKS_PROXY_INVALID_RESPONSE",
    }
}

/// The message of a cryptographic call on a key whose key store is not connected.
pub fn not_connected() -> KmsError {
    KmsError::InvalidState(
        "This KMS key is in a custom key store that is not connected to its external key store proxy. Connect the external key store and try the request again.".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_store_ids_read_like_aws() {
        let id = new_key_store_id();
        assert_eq!(id.len(), 21);
        assert!(id.starts_with("cks-"));
        assert!(id[4..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, new_key_store_id());
    }

    #[test]
    fn one_failure_reads_differently_per_call() {
        let not_found = ProxyFailure::Rejected {
            name: "KeyNotFoundException".into(),
        };
        assert_eq!(
            proxy_error(&not_found, ProxyUse::CreateKey).code(),
            "XksKeyNotFoundException"
        );
        assert_eq!(
            proxy_error(&not_found, ProxyUse::Cryptography).code(),
            "KMSInvalidStateException"
        );
        let auth = ProxyFailure::Rejected {
            name: "AuthenticationFailedException".into(),
        };
        assert_eq!(
            proxy_error(&auth, ProxyUse::KeyStoreSettings).code(),
            "XksProxyIncorrectAuthenticationCredentialException"
        );
        assert_eq!(
            proxy_error(&auth, ProxyUse::CreateKey).code(),
            "CustomKeyStoreInvalidStateException"
        );
        assert_eq!(
            proxy_error(&ProxyFailure::TimedOut, ProxyUse::KeyStoreSettings).code(),
            "XksProxyUriUnreachableException"
        );
        assert_eq!(connection_error_code(&auth), "XKS_PROXY_ACCESS_DENIED");
        assert_eq!(
            connection_error_code(&ProxyFailure::Tls("bad certificate".into())),
            "XKS_PROXY_INVALID_TLS_CONFIGURATION"
        );
    }
}
