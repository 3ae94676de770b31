//! Request and response shapes of the KMS operations, member for member as in botocore's
//! `kms/2014-11-01` model (awsJson 1.1: PascalCase members, base64 blobs, epoch-second
//! timestamps). Every input member is optional here so that a missing required member is a
//! `ValidationException`, as AWS reports it, not a parse error.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A non-secret binary value (a ciphertext blob) as base64 on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Blob(pub Vec<u8>);

/// A secret binary value (plaintext, data key): wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretBlob(pub Zeroizing<Vec<u8>>);

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for SecretBlob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for SecretBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBlob({} bytes)", self.0.len())
    }
}

/// Base64 as the awsJson protocol and the XKS proxy API write it (standard alphabet, padded).
pub(crate) fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn decode_b64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let s = Zeroizing::new(String::deserialize(d)?);
    b64()
        .decode(s.as_bytes())
        .map_err(|e| serde::de::Error::custom(format!("invalid base64: {e}")))
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        decode_b64(d).map(Blob)
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&b64().encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for SecretBlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        decode_b64(d).map(|v| SecretBlob(Zeroizing::new(v)))
    }
}

impl Serialize for SecretBlob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let encoded = Zeroizing::new(b64().encode(self.0.as_slice()));
        s.serialize_str(&encoded)
    }
}

/// A secret string (a password, an XKS proxy's secret access key): wiped on drop, never printed,
/// never serialized into events.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct SecretString(pub Zeroizing<String>);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretString(..)")
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretString(Zeroizing::new(s)))
    }
}

pub type EncryptionContextMap = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Tag {
    pub tag_key: Option<String>,
    pub tag_value: Option<String>,
}

macro_rules! request {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

macro_rules! response {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "PascalCase")]
        pub struct $name {
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

request!(CreateKeyRequest {
    policy: String,
    description: String,
    key_usage: String,
    customer_master_key_spec: String,
    key_spec: String,
    origin: String,
    custom_key_store_id: String,
    bypass_policy_lockout_safety_check: bool,
    tags: Vec<Tag>,
    multi_region: bool,
    xks_key_id: String,
});

response!(CreateKeyResponse {
    key_metadata: KeyMetadata
});

response!(
    /// DescribeKey and CreateKey's view of a key.
    KeyMetadata {
        a_w_s_account_id: String,
        key_id: String,
        arn: String,
        creation_date: f64,
        enabled: bool,
        description: String,
        key_usage: String,
        key_state: String,
        deletion_date: f64,
        origin: String,
        key_manager: String,
        customer_master_key_spec: String,
        key_spec: String,
        encryption_algorithms: Vec<String>,
        signing_algorithms: Vec<String>,
        key_agreement_algorithms: Vec<String>,
        encapsulation_algorithms: Vec<String>,
        mac_algorithms: Vec<String>,
        multi_region: bool,
        multi_region_configuration: MultiRegionConfiguration,
        pending_deletion_window_in_days: i64,
        current_key_material_id: String,
        expiration_model: String,
        valid_to: f64,
        custom_key_store_id: String,
        xks_key_configuration: XksKeyConfiguration,
    }
);

response!(XksKeyConfiguration { id: String });

response!(MultiRegionConfiguration {
    multi_region_key_type: String,
    primary_key: MultiRegionKey,
    replica_keys: Vec<MultiRegionKey>,
});
response!(MultiRegionKey {
    arn: String,
    region: String
});

request!(ReplicateKeyRequest {
    key_id: String,
    replica_region: String,
    policy: String,
    bypass_policy_lockout_safety_check: bool,
    description: String,
    tags: Vec<Tag>,
});
response!(ReplicateKeyResponse {
    replica_key_metadata: KeyMetadata,
    replica_policy: String,
    replica_tags: Vec<Tag>,
});
request!(UpdatePrimaryRegionRequest {
    key_id: String,
    primary_region: String
});

request!(DescribeKeyRequest { key_id: String, grant_tokens: Vec<String> });
response!(DescribeKeyResponse {
    key_metadata: KeyMetadata
});

request!(GetKeyLastUsageRequest { key_id: String });
response!(KeyLastUsageData {
    operation: String,
    timestamp: f64,
    cloud_trail_event_id: String,
    kms_request_id: String,
});
response!(GetKeyLastUsageResponse {
    key_id: String,
    key_last_usage: KeyLastUsageData,
    tracking_start_date: f64,
    key_creation_date: f64,
});

request!(ListKeysRequest {
    limit: i64,
    marker: String
});
response!(KeyListEntry {
    key_id: String,
    key_arn: String
});
response!(ListKeysResponse {
    keys: Vec<KeyListEntry>,
    next_marker: String,
    truncated: bool,
});

request!(UpdateKeyDescriptionRequest {
    key_id: String,
    description: String
});
request!(EnableKeyRequest { key_id: String });
request!(DisableKeyRequest { key_id: String });
response!(EmptyResponse {});

request!(ScheduleKeyDeletionRequest {
    key_id: String,
    pending_window_in_days: i64
});
response!(ScheduleKeyDeletionResponse {
    key_id: String,
    deletion_date: f64,
    key_state: String,
    pending_window_in_days: i64,
});

request!(CancelKeyDeletionRequest { key_id: String });
response!(KeyIdResponse { key_id: String });

request!(CreateAliasRequest {
    alias_name: String,
    target_key_id: String
});
request!(UpdateAliasRequest {
    alias_name: String,
    target_key_id: String
});
request!(DeleteAliasRequest { alias_name: String });
request!(ListAliasesRequest {
    key_id: String,
    limit: i64,
    marker: String
});
response!(AliasListEntry {
    alias_name: String,
    alias_arn: String,
    target_key_id: String,
    creation_date: f64,
    last_updated_date: f64,
});
response!(ListAliasesResponse {
    aliases: Vec<AliasListEntry>,
    next_marker: String,
    truncated: bool,
});

/// Secret members are never serialized: serialization feeds the event record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub plaintext: Option<SecretBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<EncryptionContextMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(EncryptResponse {
    ciphertext_blob: Blob,
    key_id: String,
    encryption_algorithm: String,
});

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptRequest {
    #[serde(default, skip_serializing)]
    pub ciphertext_blob: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_context: Option<EncryptionContextMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(DecryptResponse {
    key_id: String,
    plaintext: SecretBlob,
    encryption_algorithm: String,
    key_material_id: String,
});

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptRequest {
    #[serde(default, skip_serializing)]
    pub ciphertext_blob: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_encryption_context: Option<EncryptionContextMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_encryption_context: Option<EncryptionContextMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_encryption_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_encryption_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(ReEncryptResponse {
    ciphertext_blob: Blob,
    source_key_id: String,
    key_id: String,
    source_encryption_algorithm: String,
    destination_encryption_algorithm: String,
    source_key_material_id: String,
    destination_key_material_id: String,
});

request!(GenerateDataKeyRequest {
    key_id: String,
    encryption_context: EncryptionContextMap,
    number_of_bytes: i64,
    key_spec: String,
    grant_tokens: Vec<String>,
    dry_run: bool,
});
response!(GenerateDataKeyResponse {
    ciphertext_blob: Blob,
    plaintext: SecretBlob,
    key_id: String,
    key_material_id: String,
});

request!(GenerateDataKeyWithoutPlaintextRequest {
    key_id: String,
    encryption_context: EncryptionContextMap,
    key_spec: String,
    number_of_bytes: i64,
    grant_tokens: Vec<String>,
    dry_run: bool,
});
response!(GenerateDataKeyWithoutPlaintextResponse {
    ciphertext_blob: Blob,
    key_id: String,
    key_material_id: String,
});

request!(GenerateRandomRequest {
    number_of_bytes: i64,
    custom_key_store_id: String
});
response!(GenerateRandomResponse {
    plaintext: SecretBlob
});

request!(EnableKeyRotationRequest {
    key_id: String,
    rotation_period_in_days: i64
});
request!(DisableKeyRotationRequest { key_id: String });
request!(GetKeyRotationStatusRequest { key_id: String });
response!(GetKeyRotationStatusResponse {
    key_rotation_enabled: bool,
    key_id: String,
    rotation_period_in_days: i64,
    next_rotation_date: f64,
    on_demand_rotation_start_date: f64,
});
request!(RotateKeyOnDemandRequest { key_id: String });

request!(GetParametersForImportRequest {
    key_id: String,
    wrapping_algorithm: String,
    wrapping_key_spec: String,
});
response!(GetParametersForImportResponse {
    key_id: String,
    import_token: Blob,
    public_key: Blob,
    parameters_valid_to: f64,
});

/// The import token and the wrapped key material are not part of the event record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImportKeyMaterialRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub import_token: Option<Blob>,
    #[serde(default, skip_serializing)]
    pub encrypted_key_material: Option<SecretBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_material_description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_material_id: Option<String>,
}
response!(KeyMaterialResponse {
    key_id: String,
    key_material_id: String,
});

request!(DeleteImportedKeyMaterialRequest {
    key_id: String,
    key_material_id: String,
});
request!(ListKeyRotationsRequest {
    key_id: String,
    include_key_material: String,
    limit: i64,
    marker: String,
});
response!(RotationsListEntry {
    key_id: String,
    key_material_id: String,
    key_material_state: String,
    rotation_date: f64,
    rotation_type: String,
});
response!(ListKeyRotationsResponse {
    rotations: Vec<RotationsListEntry>,
    next_marker: String,
    truncated: bool,
});

request!(TagResourceRequest { key_id: String, tags: Vec<Tag> });
request!(UntagResourceRequest { key_id: String, tag_keys: Vec<String> });
request!(ListResourceTagsRequest {
    key_id: String,
    limit: i64,
    marker: String
});
response!(ListResourceTagsResponse {
    tags: Vec<Tag>,
    next_marker: String,
    truncated: bool,
});

request!(GetKeyPolicyRequest {
    key_id: String,
    policy_name: String
});
response!(GetKeyPolicyResponse {
    policy: String,
    policy_name: String
});
request!(PutKeyPolicyRequest {
    key_id: String,
    policy_name: String,
    policy: String,
    bypass_policy_lockout_safety_check: bool,
});
request!(ListKeyPoliciesRequest {
    key_id: String,
    limit: i64,
    marker: String
});
response!(ListKeyPoliciesResponse {
    policy_names: Vec<String>,
    next_marker: String,
    truncated: bool,
});

request!(GetPublicKeyRequest { key_id: String, grant_tokens: Vec<String> });
response!(GetPublicKeyResponse {
    key_id: String,
    public_key: Blob,
    customer_master_key_spec: String,
    key_spec: String,
    key_usage: String,
    encryption_algorithms: Vec<String>,
    signing_algorithms: Vec<String>,
    key_agreement_algorithms: Vec<String>,
    encapsulation_algorithms: Vec<String>,
});

request!(EncapsulateRequest {
    key_id: String,
    encapsulation_algorithm: String,
    grant_tokens: Vec<String>,
    dry_run: bool,
});
response!(EncapsulateResponse {
    key_id: String,
    shared_secret: SecretBlob,
    shared_secret_ciphertext_blob: Blob,
    encapsulation_algorithm: String,
});

/// The ciphertext is not part of the event record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecapsulateRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub shared_secret_ciphertext_blob: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encapsulation_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(DecapsulateResponse {
    key_id: String,
    shared_secret: SecretBlob,
    encapsulation_algorithm: String,
});

/// The peer's public key is not part of the event record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeriveSharedSecretRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_agreement_algorithm: Option<String>,
    #[serde(default, skip_serializing)]
    pub public_key: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(DeriveSharedSecretResponse {
    key_id: String,
    shared_secret: SecretBlob,
    key_agreement_algorithm: String,
    key_origin: String,
});

/// The message is never serialized: serialization feeds the event record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SignRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub message: Option<SecretBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(SignResponse {
    key_id: String,
    signature: Blob,
    signing_algorithm: String,
});

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub message: Option<SecretBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_type: Option<String>,
    #[serde(default, skip_serializing)]
    pub signature: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(VerifyResponse {
    key_id: String,
    signature_valid: bool,
    signing_algorithm: String,
});

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateMacRequest {
    #[serde(default, skip_serializing)]
    pub message: Option<SecretBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_algorithm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(GenerateMacResponse {
    mac: Blob,
    mac_algorithm: String,
    key_id: String,
});

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct VerifyMacRequest {
    #[serde(default, skip_serializing)]
    pub message: Option<SecretBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_algorithm: Option<String>,
    #[serde(default, skip_serializing)]
    pub mac: Option<Blob>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_tokens: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
}
response!(VerifyMacResponse {
    key_id: String,
    mac_valid: bool,
    mac_algorithm: String,
});

request!(GenerateDataKeyPairRequest {
    encryption_context: EncryptionContextMap,
    key_id: String,
    key_pair_spec: String,
    grant_tokens: Vec<String>,
    dry_run: bool,
});
response!(GenerateDataKeyPairResponse {
    private_key_ciphertext_blob: Blob,
    private_key_plaintext: SecretBlob,
    public_key: Blob,
    key_id: String,
    key_pair_spec: String,
    key_material_id: String,
});
request!(GenerateDataKeyPairWithoutPlaintextRequest {
    encryption_context: EncryptionContextMap,
    key_id: String,
    key_pair_spec: String,
    grant_tokens: Vec<String>,
    dry_run: bool,
});
response!(GenerateDataKeyPairWithoutPlaintextResponse {
    private_key_ciphertext_blob: Blob,
    public_key: Blob,
    key_id: String,
    key_pair_spec: String,
    key_material_id: String,
});

response!(
    /// What a grant requires of the encryption context (and, for services, the source).
    GrantConstraints {
        encryption_context_subset: EncryptionContextMap,
        encryption_context_equals: EncryptionContextMap,
        source_arn: String,
    }
);
request!(CreateGrantRequest {
    key_id: String,
    grantee_principal: String,
    grantee_service_principal: String,
    retiring_principal: String,
    retiring_service_principal: String,
    operations: Vec<String>,
    constraints: GrantConstraints,
    grant_tokens: Vec<String>,
    name: String,
    dry_run: bool,
});
response!(CreateGrantResponse {
    grant_token: String,
    grant_id: String,
});
request!(ListGrantsRequest {
    limit: i64,
    marker: String,
    key_id: String,
    grant_id: String,
    grantee_principal: String,
    grantee_service_principal: String,
});
request!(ListRetirableGrantsRequest {
    limit: i64,
    marker: String,
    retiring_principal: String,
    retiring_service_principal: String,
});
response!(GrantListEntry {
    key_id: String,
    grant_id: String,
    name: String,
    creation_date: f64,
    grantee_principal: String,
    grantee_service_principal: String,
    retiring_principal: String,
    retiring_service_principal: String,
    issuing_account: String,
    operations: Vec<String>,
    constraints: GrantConstraints,
});
response!(ListGrantsResponse {
    grants: Vec<GrantListEntry>,
    next_marker: String,
    truncated: bool,
});
request!(RetireGrantRequest {
    grant_token: String,
    key_id: String,
    grant_id: String,
    dry_run: bool,
});
request!(RevokeGrantRequest {
    key_id: String,
    grant_id: String,
    dry_run: bool,
});

/// The XKS proxy's credential: the secret is never serialized (events), only read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct XksProxyAuthenticationCredential {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing)]
    pub raw_secret_access_key: Option<SecretString>,
}

/// CreateCustomKeyStore. The CloudHSM password is never serialized (events).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateCustomKeyStoreRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_store_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_anchor_certificate: Option<String>,
    #[serde(default, skip_serializing)]
    pub key_store_password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_store_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_uri_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_uri_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_vpc_endpoint_service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_vpc_endpoint_service_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_authentication_credential: Option<XksProxyAuthenticationCredential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_connectivity: Option<String>,
}
response!(CreateCustomKeyStoreResponse {
    custom_key_store_id: String
});

/// UpdateCustomKeyStore. The CloudHSM password is never serialized (events).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateCustomKeyStoreRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_key_store_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_custom_key_store_name: Option<String>,
    #[serde(default, skip_serializing)]
    pub key_store_password: Option<SecretString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_hsm_cluster_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_uri_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_uri_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_vpc_endpoint_service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_vpc_endpoint_service_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_authentication_credential: Option<XksProxyAuthenticationCredential>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xks_proxy_connectivity: Option<String>,
}

request!(ConnectCustomKeyStoreRequest {
    custom_key_store_id: String
});
request!(DisconnectCustomKeyStoreRequest {
    custom_key_store_id: String
});
request!(DeleteCustomKeyStoreRequest {
    custom_key_store_id: String
});
request!(DescribeCustomKeyStoresRequest {
    custom_key_store_id: String,
    custom_key_store_name: String,
    limit: i64,
    marker: String,
});
response!(DescribeCustomKeyStoresResponse {
    custom_key_stores: Vec<CustomKeyStoresListEntry>,
    next_marker: String,
    truncated: bool,
});
response!(CustomKeyStoresListEntry {
    custom_key_store_id: String,
    custom_key_store_name: String,
    cloud_hsm_cluster_id: String,
    trust_anchor_certificate: String,
    connection_state: String,
    connection_error_code: String,
    creation_date: f64,
    custom_key_store_type: String,
    xks_proxy_configuration: XksProxyConfiguration,
});
response!(XksProxyConfiguration {
    connectivity: String,
    access_key_id: String,
    uri_endpoint: String,
    uri_path: String,
    vpc_endpoint_service_name: String,
    vpc_endpoint_service_owner: String,
});
