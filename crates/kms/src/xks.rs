//! The client side of the External Key Store (XKS) proxy API, version 1: JSON over HTTPS, each
//! request signed with SigV4 (service `kms-xks-proxy`) under the key store's proxy credential.
//! KMS calls it to check a proxy (GetHealthStatus), to check an external key when a KMS key is
//! created for it (GetKeyMetadata), and to encrypt and decrypt with that key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::model::b64;

/// The service name in the credential scope of requests to a proxy.
pub const SIGNING_SERVICE: &str = "kms-xks-proxy";
/// How long AWS KMS waits for a proxy's answer.
pub const AWS_TIMEOUT: Duration = Duration::from_millis(250);
const TAG_LEN: usize = 16;

/// How keytrail reaches XKS proxies.
#[derive(Debug, Clone, Default)]
pub struct XksSettings {
    /// PEM certificates trusted as issuers of proxies' TLS certificates, besides the system's.
    pub trusted_ca_pem: Vec<u8>,
    /// Host name → address (port included) to connect to instead of resolving the name: for
    /// proxies without DNS or listening on another port than 443, which an endpoint URI (a bare
    /// `https://host`) cannot say.
    pub addresses: HashMap<String, SocketAddr>,
    /// How long to wait for a proxy; AWS's 250 ms when not given.
    pub timeout: Option<Duration>,
}

/// The system's CA bundle, where Debian and most distributions keep it.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// Where a key store's proxy is and the credential KMS signs with.
pub struct ProxyTarget<'a> {
    /// `https://<host>`
    pub uri_endpoint: &'a str,
    /// `[/<prefix>]/kms/xks/v1`
    pub uri_path: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    /// The Region KMS calls from (the credential scope's).
    pub region: &'a str,
}

/// Who asks, for which KMS call: the proxy may log it and authorize on it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aws_principal_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_arn: Option<&'a str>,
    pub kms_operation: &'a str,
    pub kms_request_id: &'a str,
}

/// An external key as its proxy describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalKeyMetadata {
    pub key_spec: String,
    pub key_usage: Vec<String>,
    pub key_status: String,
}

/// What the external key manager made of a plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCiphertext {
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub metadata: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Why a call to a proxy failed, in the terms AWS KMS tells its callers apart by.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyFailure {
    /// The proxy answered with an error; `name` is its `errorName` (`KeyNotFoundException`, …).
    #[error("the proxy answered {name}")]
    Rejected { name: String },
    #[error("the proxy cannot be reached: {0}")]
    Unreachable(String),
    #[error("no TLS connection to the proxy: {0}")]
    Tls(String),
    #[error("the proxy did not answer in time")]
    TimedOut,
    #[error("the proxy's answer is not valid: {0}")]
    InvalidResponse(String),
}

/// A client for XKS proxies (one for all key stores; connections are pooled per host).
pub struct XksClient {
    http: reqwest::Client,
}

impl std::fmt::Debug for XksClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("XksClient")
    }
}

impl XksClient {
    pub fn new(settings: &XksSettings) -> Result<Self, String> {
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout.unwrap_or(AWS_TIMEOUT));
        let mut bundles: Vec<Vec<u8>> = SYSTEM_CA_BUNDLES
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .collect();
        if !settings.trusted_ca_pem.is_empty() {
            bundles.push(settings.trusted_ca_pem.clone());
        }
        for bundle in &bundles {
            for cert in reqwest::Certificate::from_pem_bundle(bundle)
                .map_err(|e| format!("a trusted CA certificate does not parse: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        for (host, addr) in &settings.addresses {
            builder = builder.resolve(host, *addr);
        }
        let http = builder
            .build()
            .map_err(|e| format!("the XKS proxy client cannot be built: {e}"))?;
        Ok(Self { http })
    }

    /// GetHealthStatus: whether the proxy answers, to this credential, at this path.
    pub async fn health(
        &self,
        target: &ProxyTarget<'_>,
        metadata: &RequestMetadata<'_>,
    ) -> Result<(), ProxyFailure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Health {
            xks_proxy_fleet_size: u64,
            ekm_fleet_details: Vec<serde_json::Value>,
        }
        let body = serde_json::json!({ "requestMetadata": metadata });
        let health: Health = self.call(target, "/health", &body).await?;
        if health.xks_proxy_fleet_size == 0
            || health.ekm_fleet_details.is_empty()
            || health.ekm_fleet_details.len() > 10
        {
            return Err(ProxyFailure::InvalidResponse(
                "the health status names no proxy or no key manager".into(),
            ));
        }
        Ok(())
    }

    /// GetKeyMetadata of an external key.
    pub async fn key_metadata(
        &self,
        target: &ProxyTarget<'_>,
        external_key_id: &str,
        metadata: &RequestMetadata<'_>,
    ) -> Result<ExternalKeyMetadata, ProxyFailure> {
        let body = serde_json::json!({ "requestMetadata": metadata });
        self.call(target, &format!("/keys/{external_key_id}/metadata"), &body)
            .await
    }

    /// Encrypt with an external key (AES-GCM), asking for the ciphertext data integrity value
    /// and checking it, as AWS KMS does before it lets a data key's plaintext go.
    pub async fn encrypt(
        &self,
        target: &ProxyTarget<'_>,
        external_key_id: &str,
        metadata: &RequestMetadata<'_>,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<ProxyCiphertext, ProxyFailure> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Encrypted {
            ciphertext: String,
            #[serde(default)]
            ciphertext_metadata: Option<String>,
            initialization_vector: String,
            authentication_tag: String,
            #[serde(default)]
            ciphertext_data_integrity_value: Option<String>,
        }
        let plaintext_b64 = Zeroizing::new(b64().encode(plaintext));
        let body = serde_json::json!({
            "requestMetadata": metadata,
            "plaintext": plaintext_b64.as_str(),
            "encryptionAlgorithm": "AES_GCM",
            "additionalAuthenticatedData": b64().encode(aad),
            "ciphertextDataIntegrityValueAlgorithm": "SHA_256",
        });
        let out: Encrypted = self
            .call(target, &format!("/keys/{external_key_id}/encrypt"), &body)
            .await?;
        let decode = |field: &str, value: &str| {
            b64()
                .decode(value)
                .map_err(|_| ProxyFailure::InvalidResponse(format!("{field} is not base64")))
        };
        let sealed = ProxyCiphertext {
            ciphertext: decode("ciphertext", &out.ciphertext)?,
            metadata: match &out.ciphertext_metadata {
                Some(m) => decode("ciphertextMetadata", m)?,
                None => Vec::new(),
            },
            iv: decode("initializationVector", &out.initialization_vector)?,
            tag: decode("authenticationTag", &out.authentication_tag)?,
        };
        if sealed.ciphertext.len() != plaintext.len()
            || !matches!(sealed.iv.len(), 12 | 16)
            || sealed.tag.len() != TAG_LEN
            || sealed.metadata.len() > crate::envelope::MAX_PROXY_METADATA_LEN
        {
            return Err(ProxyFailure::InvalidResponse(
                "the ciphertext, IV, tag or metadata has the wrong length".into(),
            ));
        }
        let expected = integrity_value(aad, &sealed);
        let given = out
            .ciphertext_data_integrity_value
            .as_deref()
            .map(|v| decode("ciphertextDataIntegrityValue", v))
            .transpose()?;
        if given.as_deref() != Some(expected.as_slice()) {
            return Err(ProxyFailure::InvalidResponse(
                "the ciphertext data integrity value does not match".into(),
            ));
        }
        Ok(sealed)
    }

    /// Decrypt with an external key.
    pub async fn decrypt(
        &self,
        target: &ProxyTarget<'_>,
        external_key_id: &str,
        metadata: &RequestMetadata<'_>,
        sealed: &crate::envelope::ProxySealed<'_>,
        aad: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProxyFailure> {
        #[derive(Deserialize)]
        struct Decrypted {
            plaintext: crate::model::SecretString,
        }
        let mut body = serde_json::json!({
            "requestMetadata": metadata,
            "ciphertext": b64().encode(sealed.ciphertext),
            "encryptionAlgorithm": "AES_GCM",
            "additionalAuthenticatedData": b64().encode(aad),
            "initializationVector": b64().encode(sealed.iv),
            "authenticationTag": b64().encode(sealed.tag),
        });
        if !sealed.metadata.is_empty() {
            body["ciphertextMetadata"] = b64().encode(sealed.metadata).into();
        }
        let out: Decrypted = self
            .call(target, &format!("/keys/{external_key_id}/decrypt"), &body)
            .await?;
        let plaintext = Zeroizing::new(
            b64()
                .decode(out.plaintext.0.as_bytes())
                .map_err(|_| ProxyFailure::InvalidResponse("plaintext is not base64".into()))?,
        );
        if plaintext.len() != sealed.ciphertext.len() {
            return Err(ProxyFailure::InvalidResponse(
                "the plaintext is not as long as the ciphertext".into(),
            ));
        }
        Ok(plaintext)
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        target: &ProxyTarget<'_>,
        operation_path: &str,
        body: &serde_json::Value,
    ) -> Result<T, ProxyFailure> {
        let body = Zeroizing::new(
            serde_json::to_vec(body)
                .map_err(|e| ProxyFailure::InvalidResponse(format!("request encoding: {e}")))?,
        );
        let path = format!("{}{operation_path}", target.uri_path);
        let host = target
            .uri_endpoint
            .strip_prefix("https://")
            .ok_or_else(|| ProxyFailure::Unreachable("the endpoint is not https".into()))?;
        let url = format!("{}{path}", target.uri_endpoint);
        let (amz_date, authorization) = sign(target, host, &path, &body);
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("x-amz-date", amz_date)
            .header("authorization", authorization)
            .body(body.to_vec())
            .send()
            .await
            .map_err(transport_failure)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(transport_failure)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ProxyFailure::InvalidResponse(format!("the answer does not parse: {e}"))
            });
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct ProxyError {
            error_name: String,
        }
        match serde_json::from_slice::<ProxyError>(&bytes) {
            Ok(e) => Err(ProxyFailure::Rejected { name: e.error_name }),
            Err(_) => Err(ProxyFailure::InvalidResponse(format!(
                "HTTP {status} without an error name"
            ))),
        }
    }
}

/// SigV4 as the XKS API wants it: `host;x-amz-date` signed, the payload's SHA-256 included.
fn sign(target: &ProxyTarget<'_>, host: &str, path: &str, body: &[u8]) -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let amz_date = keytrail_sigv4::format_amz_date(now);
    let scope = keytrail_sigv4::CredentialScope {
        date: &amz_date[..8],
        region: target.region,
        service: SIGNING_SERVICE,
    };
    let payload_hash = keytrail_sigv4::sha256_hex(body);
    let headers = [("host", host), ("x-amz-date", amz_date.as_str())];
    let signed = ["host", "x-amz-date"];
    let parts = keytrail_sigv4::RequestParts {
        method: "POST",
        path,
        query: "",
        headers: &headers,
        payload_hash: &payload_hash,
    };
    // Every signed header is in `headers`, so the canonical request always builds.
    let canonical =
        keytrail_sigv4::canonical_request(&parts, &signed, &keytrail_sigv4::canonical_uri(path))
            .unwrap_or_default();
    let string_to_sign = keytrail_sigv4::string_to_sign(&amz_date, &scope, &canonical);
    let signature = keytrail_sigv4::sign(target.secret_access_key, &scope, &string_to_sign);
    let authorization = format!(
        "{} Credential={}/{}, SignedHeaders=host;x-amz-date, Signature={signature}",
        keytrail_sigv4::ALGORITHM,
        target.access_key_id,
        scope.as_string()
    );
    (amz_date, authorization)
}

/// The ciphertext data integrity value (XKS API appendix C): SHA-256 over the AAD, metadata, IV,
/// ciphertext and tag, concatenated.
fn integrity_value(aad: &[u8], sealed: &ProxyCiphertext) -> Vec<u8> {
    let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in [
        aad,
        &sealed.metadata,
        &sealed.iv,
        &sealed.ciphertext,
        &sealed.tag,
    ] {
        hasher.update(part);
    }
    hasher.finish().as_ref().to_vec()
}

fn transport_failure(e: reqwest::Error) -> ProxyFailure {
    if e.is_timeout() {
        return ProxyFailure::TimedOut;
    }
    // The causes, not the top-level message: that one names the URL, whose host may contain
    // any of the words looked for.
    let mut causes = String::new();
    let mut source = std::error::Error::source(&e);
    while let Some(err) = source {
        causes.push_str(": ");
        causes.push_str(&err.to_string());
        source = err.source();
    }
    let lower = causes.to_ascii_lowercase();
    let described = format!("{e}{causes}");
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        ProxyFailure::Tls(described)
    } else {
        ProxyFailure::Unreachable(described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrity_value_matches_the_specifications_example() {
        // Appendix C of the XKS proxy API specification.
        let sealed = ProxyCiphertext {
            metadata: b"key_version=1".to_vec(),
            iv: b64().decode("HMrlRw85cAJUd5Ax").unwrap(),
            ciphertext: b64().decode("ghxkK1txeDNn3q8Y").unwrap(),
            tag: b64().decode("vBxN2ncH1oEkR8WVXpmyYQ==").unwrap(),
        };
        let value = integrity_value(b"project=nile,department=marketing", &sealed);
        assert_eq!(
            b64().encode(value),
            "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc="
        );
    }

    #[test]
    fn requests_are_signed_for_the_proxy_service_over_host_and_date() {
        let target = ProxyTarget {
            uri_endpoint: "https://xks.example.com",
            uri_path: "/kms/xks/v1",
            access_key_id: "ABCDEFGHIJKLMNOPQRST",
            secret_access_key: "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIz",
            region: "eu-west-1",
        };
        let (date, auth) = sign(&target, "xks.example.com", "/kms/xks/v1/health", b"{}");
        let parsed = keytrail_sigv4::parse_authorization(&auth).unwrap();
        assert_eq!(parsed.scope.service, "kms-xks-proxy");
        assert_eq!(parsed.scope.region, "eu-west-1");
        assert_eq!(parsed.signed_headers, ["host", "x-amz-date"]);
        let headers = [("Host", "xks.example.com"), ("X-Amz-Date", date.as_str())];
        let hash = keytrail_sigv4::sha256_hex(b"{}");
        let parts = keytrail_sigv4::RequestParts {
            method: "POST",
            path: "/kms/xks/v1/health",
            query: "",
            headers: &headers,
            payload_hash: &hash,
        };
        assert!(
            keytrail_sigv4::verify(&parts, &parsed, &date, target.secret_access_key).is_ok(),
            "a verifier with the same secret accepts the signature"
        );
        assert!(keytrail_sigv4::verify(&parts, &parsed, &date, "another secret").is_err());
    }
}
