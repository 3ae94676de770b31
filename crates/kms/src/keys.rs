//! A KMS key as stored (the JSON document of its `kms_keys` row), its identifiers, and the
//! states it can be in.

use serde::{Deserialize, Serialize};

use crate::error::{KmsError, KmsResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyState {
    Enabled,
    Disabled,
    PendingDeletion,
    /// A key of origin `EXTERNAL` without key material: never imported, deleted, or expired.
    PendingImport,
    /// A multi-Region primary key scheduled for deletion while replicas remain: its waiting
    /// period starts when the last replica is gone.
    PendingReplicaDeletion,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Enabled => "Enabled",
            KeyState::Disabled => "Disabled",
            KeyState::PendingDeletion => "PendingDeletion",
            KeyState::PendingImport => "PendingImport",
            KeyState::PendingReplicaDeletion => "PendingReplicaDeletion",
        }
    }

    /// Scheduled for deletion, with or without replicas left to delete first.
    pub fn is_pending_deletion(self) -> bool {
        matches!(
            self,
            KeyState::PendingDeletion | KeyState::PendingReplicaDeletion
        )
    }
}

/// Everything about a key but its backing keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyRecord {
    pub key_id: String,
    pub account_id: String,
    pub region: String,
    pub created_ms: i64,
    pub description: String,
    pub key_usage: String,
    pub key_spec: String,
    pub origin: String,
    pub state: KeyState,
    pub deletion_ms: Option<i64>,
    pub pending_window_days: Option<i64>,
    pub policy: String,
    /// In the order they were first set, as AWS lists them.
    pub tags: Vec<(String, String)>,
    pub rotation_enabled: bool,
    pub rotation_period_days: Option<i64>,
    pub next_rotation_ms: Option<i64>,
    /// Rotation reads as disabled while deletion is pending and comes back on cancel.
    #[serde(default)]
    pub rotation_enabled_before_deletion: bool,
    pub on_demand_rotations: u32,
    pub current_material_id: String,
    /// `AWS` for the AWS managed keys services create (`alias/aws/s3`), else `CUSTOMER`.
    #[serde(default)]
    pub aws_managed: bool,
    /// Keys of origin `EXTERNAL`: how the current import expires (`KEY_MATERIAL_EXPIRES` with
    /// `valid_to_ms`, or `KEY_MATERIAL_DOES_NOT_EXPIRE`), and the id of every material ever
    /// imported — a reimport after deletion or expiry must bring one of them back.
    #[serde(default)]
    pub expiration_model: Option<String>,
    #[serde(default)]
    pub valid_to_ms: Option<i64>,
    #[serde(default)]
    pub imported_material_ids: Vec<String>,
    /// Multi-Region keys: the Regions of the primary and of its replicas, the same on every key
    /// of the set (they share key id, key material, key spec, usage, origin and rotation).
    #[serde(default)]
    pub multi_region: Option<MultiRegionSet>,
    /// Keys of origin `EXTERNAL_KEY_STORE`: their key store and the external key's id there.
    #[serde(default)]
    pub custom_key_store_id: Option<String>,
    #[serde(default)]
    pub xks_key_id: Option<String>,
}

/// Where the keys of one multi-Region key live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MultiRegionSet {
    pub primary_region: String,
    /// In the order they were replicated.
    pub replica_regions: Vec<String>,
}

impl MultiRegionSet {
    /// Every Region of the set, the primary's first.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.primary_region.as_str())
            .chain(self.replica_regions.iter().map(String::as_str))
    }
}

impl KeyRecord {
    /// A key created now: customer managed, a symmetric encryption key of origin AWS_KMS,
    /// enabled, without material, rotation, description, policy or tags yet — the defaults each
    /// way of creating a key (CreateKey, ReplicateKey, an AWS managed key) starts from.
    pub fn new(key_id: String, account_id: String, region: String) -> Self {
        Self {
            key_id,
            account_id,
            region,
            created_ms: keytrail_audit::clock::now_ms(),
            description: String::new(),
            key_usage: "ENCRYPT_DECRYPT".into(),
            key_spec: crate::asymmetric::SYMMETRIC_DEFAULT.into(),
            origin: "AWS_KMS".into(),
            state: KeyState::Enabled,
            deletion_ms: None,
            pending_window_days: None,
            policy: String::new(),
            tags: Vec::new(),
            rotation_enabled: false,
            rotation_period_days: None,
            next_rotation_ms: None,
            rotation_enabled_before_deletion: false,
            on_demand_rotations: 0,
            current_material_id: String::new(),
            aws_managed: false,
            expiration_model: None,
            valid_to_ms: None,
            imported_material_ids: Vec::new(),
            multi_region: None,
            custom_key_store_id: None,
            xks_key_id: None,
        }
    }

    pub fn is_external(&self) -> bool {
        self.origin == ORIGIN_EXTERNAL
    }

    /// A key whose cryptography also needs its external key store's proxy.
    pub fn in_external_key_store(&self) -> bool {
        self.origin == ORIGIN_EXTERNAL_KEY_STORE
    }

    /// A multi-Region key that is not the primary of its set.
    pub fn is_replica(&self) -> bool {
        self.multi_region
            .as_ref()
            .is_some_and(|set| set.primary_region != self.region)
    }

    /// The keys of the same multi-Region key in other Regions.
    pub fn related_regions(&self) -> Vec<String> {
        self.multi_region
            .iter()
            .flat_map(MultiRegionSet::regions)
            .filter(|r| *r != self.region)
            .map(str::to_string)
            .collect()
    }
}

/// What the keys of a multi-Region key share besides their id and key material, which KMS
/// keeps in step from the primary: the automatic rotation setting and schedule. (Key spec,
/// usage and origin never change.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedProperties {
    /// As configured: a key pending deletion reads as not rotating but keeps its setting.
    rotation_enabled: bool,
    rotation_period_days: Option<i64>,
    next_rotation_ms: Option<i64>,
    on_demand_rotations: u32,
}

impl SharedProperties {
    pub fn of(record: &KeyRecord) -> Self {
        Self {
            rotation_enabled: if record.state.is_pending_deletion() {
                record.rotation_enabled_before_deletion
            } else {
                record.rotation_enabled
            },
            rotation_period_days: record.rotation_period_days,
            next_rotation_ms: record.next_rotation_ms,
            on_demand_rotations: record.on_demand_rotations,
        }
    }

    pub fn apply_to(&self, record: &mut KeyRecord) {
        if record.state.is_pending_deletion() {
            record.rotation_enabled_before_deletion = self.rotation_enabled;
        } else {
            record.rotation_enabled = self.rotation_enabled;
        }
        record.rotation_period_days = self.rotation_period_days;
        record.next_rotation_ms = self.next_rotation_ms;
        record.on_demand_rotations = self.on_demand_rotations;
    }
}

/// The prefix of multi-Region key ids (`mrk-` and 32 hex digits).
pub const MULTI_REGION_PREFIX: &str = "mrk-";

/// A fresh key id: a UUID, or for a multi-Region key `mrk-` and 32 hex digits.
pub fn new_key_id(multi_region: bool) -> String {
    let id = uuid::Uuid::new_v4();
    if multi_region {
        format!("{MULTI_REGION_PREFIX}{}", id.simple())
    } else {
        id.to_string()
    }
}

/// The canonical form of a key id (lower case), or `None` when it is neither a UUID nor a
/// multi-Region key id.
pub fn canonical_key_id(input: &str) -> Option<String> {
    if let Some(hex) = input.strip_prefix(MULTI_REGION_PREFIX) {
        return (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| format!("{MULTI_REGION_PREFIX}{}", hex.to_ascii_lowercase()));
    }
    match uuid::Uuid::parse_str(input) {
        // Ids come lower-case from every SDK: then the input is already the canonical text.
        Ok(_) if input.len() == 36 && !input.bytes().any(|b| b.is_ascii_uppercase()) => {
            Some(input.to_owned())
        }
        Ok(id) if input.len() == 36 => Some(id.to_string()),
        _ => None,
    }
}

/// The 16 bytes a ciphertext blob carries for a key id, and whether it is a multi-Region id.
pub fn key_id_bytes(key_id: &str) -> Option<([u8; 16], bool)> {
    if let Some(hex) = key_id.strip_prefix(MULTI_REGION_PREFIX) {
        let mut out = [0u8; 16];
        hex::decode_to_slice(hex, &mut out).ok()?;
        return Some((out, true));
    }
    uuid::Uuid::parse_str(key_id)
        .ok()
        .map(|id| (*id.as_bytes(), false))
}

/// The key id a blob's 16 bytes stand for.
pub fn key_id_from_bytes(bytes: &[u8; 16], multi_region: bool) -> String {
    if multi_region {
        format!("{MULTI_REGION_PREFIX}{}", hex::encode(bytes))
    } else {
        uuid::Uuid::from_bytes(*bytes).to_string()
    }
}

pub const ORIGIN_EXTERNAL: &str = "EXTERNAL";
pub const ORIGIN_EXTERNAL_KEY_STORE: &str = "EXTERNAL_KEY_STORE";

impl KeyRecord {
    pub fn arn(&self) -> String {
        key_arn(&self.region, &self.account_id, &self.key_id)
    }
}

pub fn key_arn(region: &str, account_id: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:{account_id}:key/{key_id}")
}

pub fn alias_arn(region: &str, account_id: &str, alias_name: &str) -> String {
    format!("arn:aws:kms:{region}:{account_id}:{alias_name}")
}

/// The forms a `KeyId` member can take (§2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyIdentifier {
    KeyId(String),
    KeyArn {
        region: String,
        account_id: String,
        key_id: String,
    },
    AliasName(String),
    AliasArn {
        region: String,
        account_id: String,
        alias_name: String,
    },
}

impl KeyIdentifier {
    pub fn is_alias(&self) -> bool {
        matches!(
            self,
            KeyIdentifier::AliasName(_) | KeyIdentifier::AliasArn { .. }
        )
    }
}

fn invalid(input: &str) -> KmsError {
    KmsError::NotFound(format!("Invalid keyId '{input}'"))
}

pub fn parse_key_identifier(input: &str) -> KmsResult<KeyIdentifier> {
    if input.starts_with("arn:") {
        let Some(["arn", partition, service, region, account_id, resource]) =
            keytrail_policy::arn_fields(input)
        else {
            return Err(KmsError::InvalidArn(format!("Invalid arn {input}")));
        };
        if !partition.starts_with("aws") || service != "kms" || region.is_empty() {
            return Err(KmsError::InvalidArn(format!("Invalid arn {input}")));
        }
        if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(KmsError::InvalidArn(format!("Invalid arn {input}")));
        }
        if let Some(key_id) = resource.strip_prefix("key/") {
            return Ok(KeyIdentifier::KeyArn {
                region: region.to_string(),
                account_id: account_id.to_string(),
                key_id: canonical_key_id(key_id).ok_or_else(|| invalid(input))?,
            });
        }
        if resource.starts_with("alias/") {
            return Ok(KeyIdentifier::AliasArn {
                region: region.to_string(),
                account_id: account_id.to_string(),
                alias_name: resource.to_string(),
            });
        }
        return Err(KmsError::InvalidArn(format!("Invalid arn {input}")));
    }
    if input.starts_with("alias/") {
        return Ok(KeyIdentifier::AliasName(input.to_string()));
    }
    canonical_key_id(input)
        .map(KeyIdentifier::KeyId)
        .ok_or_else(|| invalid(input))
}

/// AWS's rules for alias names: `alias/` + 1..250 of `[a-zA-Z0-9:/_-]`, `alias/aws/` reserved.
pub fn validate_alias_name(name: &str) -> KmsResult<()> {
    if name.is_empty() || name.len() > 256 {
        return Err(KmsError::constraint(
            "aliasName",
            name,
            "Member must have length between 1 and 256",
        ));
    }
    let pattern_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b":/_-".contains(&b));
    if !pattern_ok {
        return Err(KmsError::constraint(
            "aliasName",
            name,
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        ));
    }
    let Some(rest) = name.strip_prefix("alias/") else {
        return Err(KmsError::InvalidAliasName(format!(
            "Alias must start with the prefix \"alias/\". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html: {name}"
        )));
    };
    if rest.is_empty() {
        return Err(KmsError::InvalidAliasName(format!(
            "Alias name must have characters after the prefix \"alias/\": {name}"
        )));
    }
    if name.starts_with("alias/aws/") {
        return Err(KmsError::InvalidAliasName(format!(
            "Alias names starting with \"alias/aws/\" are reserved for AWS managed keys: {name}"
        )));
    }
    Ok(())
}

/// The policy KMS attaches when CreateKey is given none, in KMS's own pretty-printing.
pub fn default_policy(account_id: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"key-default-1\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Enable IAM User Permissions\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account_id}:root\"\n    }},\n    \"Action\" : \"kms:*\",\n    \"Resource\" : \"*\"\n  }} ]\n}}"
    )
}

/// The documented key-policy quota; the model allows longer strings.
pub const MAX_POLICY_BYTES: usize = 32 * 1024;

/// Parses a key policy with the policy language's write-time rules (every statement needs a
/// Principal and a Resource; operators, principals and ARNs are checked).
pub fn validate_policy(policy: &str) -> KmsResult<keytrail_policy::Policy> {
    if policy.is_empty() {
        return Err(KmsError::constraint(
            "policy",
            policy,
            "Member must have length greater than or equal to 1",
        ));
    }
    if policy.len() > MAX_POLICY_BYTES {
        return Err(KmsError::LimitExceeded(format!(
            "The key policy exceeds the maximum size of {MAX_POLICY_BYTES} bytes."
        )));
    }
    keytrail_policy::Policy::parse(policy, keytrail_policy::PolicyKind::Resource)
        .map_err(|e| KmsError::MalformedPolicyDocument(e.message().to_string()))
}

/// The policy AWS gives an AWS managed key of a service: any principal of the account may use
/// it through that service, and the account may read its metadata.
pub fn aws_managed_policy(account_id: &str, region: &str, service: &str) -> String {
    format!(
        "{{\n  \"Version\" : \"2012-10-17\",\n  \"Id\" : \"auto-{service}-2\",\n  \"Statement\" : [ {{\n    \"Sid\" : \"Allow access through {upper} for all principals in the account that are authorized to use {upper}\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"*\"\n    }},\n    \"Action\" : [ \"kms:Encrypt\", \"kms:Decrypt\", \"kms:ReEncrypt*\", \"kms:GenerateDataKey*\", \"kms:DescribeKey\" ],\n    \"Resource\" : \"*\",\n    \"Condition\" : {{\n      \"StringEquals\" : {{\n        \"kms:CallerAccount\" : \"{account_id}\",\n        \"kms:ViaService\" : \"{service}.{region}.amazonaws.com\"\n      }}\n    }}\n  }}, {{\n    \"Sid\" : \"Allow direct access to key metadata to the account\",\n    \"Effect\" : \"Allow\",\n    \"Principal\" : {{\n      \"AWS\" : \"arn:aws:iam::{account_id}:root\"\n    }},\n    \"Action\" : [ \"kms:Describe*\", \"kms:Get*\", \"kms:List*\" ],\n    \"Resource\" : \"*\"\n  }} ]\n}}",
        upper = service.to_uppercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_in_every_form() {
        let id = "1234abcd-12ab-34cd-56ef-1234567890ab";
        assert_eq!(
            parse_key_identifier(id).unwrap(),
            KeyIdentifier::KeyId(id.into())
        );
        assert_eq!(
            parse_key_identifier(&format!("arn:aws:kms:us-west-2:111122223333:key/{id}")).unwrap(),
            KeyIdentifier::KeyArn {
                region: "us-west-2".into(),
                account_id: "111122223333".into(),
                key_id: id.into()
            }
        );
        assert_eq!(
            parse_key_identifier("alias/logs").unwrap(),
            KeyIdentifier::AliasName("alias/logs".into())
        );
        assert!(matches!(
            parse_key_identifier("arn:aws:kms:us-west-2:111122223333:alias/logs").unwrap(),
            KeyIdentifier::AliasArn { .. }
        ));
        assert!(matches!(
            parse_key_identifier("not-a-key"),
            Err(KmsError::NotFound(_))
        ));
        assert!(matches!(
            parse_key_identifier("arn:aws:s3:::bucket"),
            Err(KmsError::InvalidArn(_))
        ));
        for short in ["arn:aws:kms:us-west-2:111122223333", "arn:aws:kms"] {
            assert!(
                matches!(parse_key_identifier(short), Err(KmsError::InvalidArn(_))),
                "{short}"
            );
        }
        // Upper-case ids name the same key; a 32-digit id without hyphens names none.
        assert_eq!(
            parse_key_identifier("1234ABCD-12AB-34CD-56EF-1234567890AB").unwrap(),
            KeyIdentifier::KeyId(id.into())
        );
        assert!(matches!(
            parse_key_identifier("1234abcd12ab34cd56ef1234567890ab"),
            Err(KmsError::NotFound(_))
        ));
    }

    #[test]
    fn multi_region_key_ids() {
        let id = new_key_id(true);
        assert!(id.starts_with("mrk-") && id.len() == 36, "{id}");
        assert_eq!(
            parse_key_identifier("mrk-1234ABCD12ab34cd56ef1234567890ab").unwrap(),
            KeyIdentifier::KeyId("mrk-1234abcd12ab34cd56ef1234567890ab".into())
        );
        assert_eq!(
            parse_key_identifier(&format!("arn:aws:kms:eu-west-1:111122223333:key/{id}")).unwrap(),
            KeyIdentifier::KeyArn {
                region: "eu-west-1".into(),
                account_id: "111122223333".into(),
                key_id: id.clone()
            }
        );
        for bad in ["mrk-1234", "mrk-1234abcd12ab34cd56ef1234567890ag", "mrk-"] {
            assert!(
                matches!(parse_key_identifier(bad), Err(KmsError::NotFound(_))),
                "{bad}"
            );
        }
        let (bytes, multi) = key_id_bytes(&id).unwrap();
        assert!(multi);
        assert_eq!(key_id_from_bytes(&bytes, multi), id);
        let uuid = new_key_id(false);
        let (bytes, multi) = key_id_bytes(&uuid).unwrap();
        assert!(!multi);
        assert_eq!(key_id_from_bytes(&bytes, multi), uuid);
    }

    #[test]
    fn alias_rules() {
        assert!(validate_alias_name("alias/ok_name-1:x/y").is_ok());
        assert!(matches!(
            validate_alias_name("alias/aws/s3"),
            Err(KmsError::InvalidAliasName(_))
        ));
        assert!(matches!(
            validate_alias_name("logs"),
            Err(KmsError::InvalidAliasName(_))
        ));
        assert!(matches!(
            validate_alias_name("alias/"),
            Err(KmsError::InvalidAliasName(_))
        ));
        assert!(matches!(
            validate_alias_name("alias/has space"),
            Err(KmsError::Validation(_))
        ));
    }

    #[test]
    fn default_policy_is_a_valid_policy() {
        let p = default_policy("111122223333");
        validate_policy(&p).unwrap();
        let v: serde_json::Value = serde_json::from_str(&p).unwrap();
        assert_eq!(
            v["Statement"][0]["Principal"]["AWS"],
            "arn:aws:iam::111122223333:root"
        );
        assert!(p.contains("\"Version\" : \"2012-10-17\""));
    }

    #[test]
    fn policies_are_validated() {
        assert!(matches!(
            validate_policy("{"),
            Err(KmsError::MalformedPolicyDocument(_))
        ));
        assert!(matches!(
            validate_policy(
                r#"{"Statement":[{"Effect":"Maybe","Action":"kms:*","Principal":"*"}]}"#
            ),
            Err(KmsError::MalformedPolicyDocument(_))
        ));
        assert!(matches!(
            validate_policy(&"x".repeat(MAX_POLICY_BYTES + 1)),
            Err(KmsError::LimitExceeded(_))
        ));
        // A key policy's Resource is required (and is "*").
        assert!(matches!(
            validate_policy(r#"{"Statement":{"Effect":"Deny","Action":"kms:*","Principal":"*"}}"#),
            Err(KmsError::MalformedPolicyDocument(_))
        ));
        assert!(
            validate_policy(
                r#"{"Statement":{"Effect":"Deny","Action":"kms:*","Principal":"*","Resource":"*"}}"#
            )
            .is_ok()
        );
    }
}
