//! How a KMS request appears in its event: member names in camelCase, secrets never present
//! (the request types do not serialize plaintext or ciphertext), encryption-context keys kept
//! exactly as given because they are data, not member names.

use serde::Serialize;
use serde_json::Value;

/// `requestParameters` of a request's event; `None` (JSON null) when it has no members.
pub fn request_parameters<R: Serialize>(request: &R) -> Option<Value> {
    keytrail_audit::request_parameters(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EncryptRequest, SecretBlob, Tag, TagResourceRequest};

    #[test]
    fn members_are_camel_cased_and_secrets_absent() {
        let request = EncryptRequest {
            key_id: Some("alias/x".into()),
            plaintext: Some(SecretBlob(zeroize::Zeroizing::new(b"top secret".to_vec()))),
            encryption_context: Some(
                [("Department".to_string(), "Finance".to_string())]
                    .into_iter()
                    .collect(),
            ),
            ..Default::default()
        };
        let v = request_parameters(&request).unwrap();
        assert_eq!(v["keyId"], "alias/x");
        assert_eq!(v["encryptionContext"]["Department"], "Finance");
        let text = v.to_string();
        assert!(!text.contains("plaintext") && !text.contains("dG9w"));

        let tags = TagResourceRequest {
            key_id: Some("k".into()),
            tags: Some(vec![Tag {
                tag_key: Some("Owner".into()),
                tag_value: Some("Me".into()),
            }]),
        };
        let v = request_parameters(&tags).unwrap();
        assert_eq!(v["tags"][0]["tagKey"], "Owner");
    }
}
