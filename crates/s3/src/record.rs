//! Objects and multipart uploads as stored (the JSON documents of their rows).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRecord {
    /// A UUID naming this version of the object; bound into every body segment.
    pub version_id: String,
    /// The body file in the bucket's directory (single-part objects).
    pub file: String,
    pub size: u64,
    pub content_type: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub sse: Sse,
    /// Full-object checksums by algorithm (`CRC32`, `SHA256`, …), base64, as computed on upload.
    #[serde(default)]
    pub checksums: BTreeMap<String, String>,
    /// The parts of an object made by a multipart upload, in order; empty otherwise.
    #[serde(default)]
    pub parts: Vec<Piece>,
    #[serde(default)]
    pub headers: ContentHeaders,
    /// Object tags, in the order they were set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
    /// The sealed body is in the object's row (`inline_body`), not in `file`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inline: bool,
}

/// The representation headers S3 stores with an object and returns on GET and HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentHeaders {
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
}

/// One stored body: a file of sealed segments under the object's data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Piece {
    pub file: String,
    pub size: u64,
    /// Bound into the piece's segments, so pieces cannot be swapped.
    pub version_id: String,
}

impl ObjectRecord {
    /// The bodies that make up the object, in order.
    pub fn pieces(&self) -> Vec<Piece> {
        if self.parts.is_empty() {
            vec![Piece {
                file: self.file.clone(),
                size: self.size,
                version_id: self.version_id.clone(),
            }]
        } else {
            self.parts.clone()
        }
    }
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
        /// The blob is a Bucket Key's; the object's data key is derived from it and the version.
        #[serde(default)]
        bucket_key: bool,
    },
}

/// A multipart upload in progress: the object-to-be's settings and data key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadRecord {
    /// The version the completed object will have (SSE-S3 keys are bound to it).
    pub version_id: String,
    pub content_type: Option<String>,
    #[serde(default)]
    pub headers: ContentHeaders,
    pub metadata: BTreeMap<String, String>,
    pub sse: Sse,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(String, String)>,
}

/// One uploaded part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartRecord {
    pub piece: Piece,
    /// Hex MD5 of the part's plaintext.
    pub etag: String,
    pub modified_ms: i64,
}

/// A bucket's configuration (the JSON document of its `s3_buckets` row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketRecord {
    #[serde(default)]
    pub encryption: Option<DefaultEncryption>,
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub tags: Option<Vec<(String, String)>>,
}

/// PutBucketEncryption's default rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefaultEncryption {
    /// `AES256` or `aws:kms`.
    pub algorithm: String,
    pub kms_key_id: Option<String>,
    pub bucket_key_enabled: bool,
}
