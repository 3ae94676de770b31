//! An object's metadata as stored (the JSON document of its `s3_objects` row).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRecord {
    /// A UUID naming this version of the object; bound into every body segment.
    pub version_id: String,
    /// The body file in the bucket's directory.
    pub file: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub sse: Sse,
    /// Full-object checksums by algorithm (`CRC32`, `SHA256`, …), base64, as computed on upload.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
}

/// How the object's data key is kept. The plaintext data key is never stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Sse {
    /// SSE-S3: the data key wrapped under the root key, bound to bucket, key and version.
    S3 { wrapped_key: String },
    /// SSE-KMS: the data key encrypted by KMS under `key_arn` with `context`.
    Kms {
        key_arn: String,
        ciphertext_blob: String,
        context: BTreeMap<String, String>,
    },
}
