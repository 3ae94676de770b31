//! Integrity of uploaded bodies: the checksums a request announces (headers or aws-chunked
//! trailers), the hashing that runs while the body is written, and the verdict before the
//! object becomes visible.

use std::collections::BTreeMap;

use bytes::Bytes;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::internal;

/// Checksums a request announces as trailers (`x-amz-trailer: x-amz-checksum-crc32`).
pub(crate) fn announced_trailers(headers: &http::HeaderMap) -> Vec<String> {
    headers
        .get_all("x-amz-trailer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

pub(crate) const CHECKSUM_NAMES: &[(&str, &str)] = &[
    ("CRC32", "x-amz-checksum-crc32"),
    ("CRC32C", "x-amz-checksum-crc32c"),
    ("CRC64NVME", "x-amz-checksum-crc64nvme"),
    ("SHA1", "x-amz-checksum-sha1"),
    ("SHA256", "x-amz-checksum-sha256"),
];

pub(crate) fn checksum_value<'a>(c: &'a Checksum, name: &str) -> Option<&'a String> {
    match name {
        "CRC32" => c.checksum_crc32.as_ref(),
        "CRC32C" => c.checksum_crc32c.as_ref(),
        "CRC64NVME" => c.checksum_crc64nvme.as_ref(),
        "SHA1" => c.checksum_sha1.as_ref(),
        "SHA256" => c.checksum_sha256.as_ref(),
        _ => None,
    }
}

/// The checksums a PutObject states in headers; trailers are read after the body.
pub(crate) struct ExpectedChecksums {
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl ExpectedChecksums {
    /// From the CRC32, CRC32C, CRC64NVME, SHA1 and SHA256 members of an upload, in that order.
    pub(crate) fn new(values: [&Option<String>; 5]) -> Self {
        let headers = CHECKSUM_NAMES
            .iter()
            .zip(values)
            .filter_map(|((name, _), value)| value.as_ref().map(|v| (*name, v.clone())))
            .collect();
        Self { headers }
    }

    /// A hasher for every algorithm stated in a header or announced as a trailer.
    pub(crate) fn hasher(&self, trailers: &[String]) -> s3s::checksum::ChecksumHasher {
        use s3s::crypto::Checksum as _;
        let wanted = |name: &str| {
            self.headers.iter().any(|(n, _)| *n == name)
                || CHECKSUM_NAMES
                    .iter()
                    .any(|(n, h)| *n == name && trailers.iter().any(|t| t == h))
        };
        s3s::checksum::ChecksumHasher {
            crc32: wanted("CRC32").then(s3s::crypto::Crc32::new),
            crc32c: wanted("CRC32C").then(s3s::crypto::Crc32c::new),
            sha1: wanted("SHA1").then(s3s::crypto::Sha1::new),
            sha256: wanted("SHA256").then(s3s::crypto::Sha256::new),
            crc64nvme: wanted("CRC64NVME").then(s3s::crypto::Crc64Nvme::new),
        }
    }

    /// Every stated checksum must match what was received, before the object becomes visible.
    pub(crate) fn verify(
        &self,
        computed: &Checksum,
        trailers: Option<&http::HeaderMap>,
    ) -> S3Result<()> {
        let mut stated: Vec<(&str, String)> = self.headers.clone();
        if let Some(trailers) = trailers {
            for (name, header) in CHECKSUM_NAMES {
                if let Some(v) = trailers.get(*header).and_then(|v| v.to_str().ok()) {
                    stated.push((name, v.trim().to_string()));
                }
            }
        }
        for (name, value) in stated {
            if checksum_value(computed, name) != Some(&value) {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    format!("The {name} you specified did not match the calculated checksum."),
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn stored_checksums(computed: &Checksum) -> BTreeMap<String, String> {
    CHECKSUM_NAMES
        .iter()
        .filter_map(|(name, _)| {
            checksum_value(computed, name).map(|v| (name.to_string(), v.clone()))
        })
        .collect()
}

pub(crate) fn md5_hex(digest: &[u8]) -> String {
    hex::encode(digest)
}

/// S3's multipart ETag: MD5 of the concatenated part MD5s, then `-<part count>`.
pub(crate) fn multipart_etag(part_md5s: &[Vec<u8>]) -> String {
    let mut ctx = md5::Context::new();
    for digest in part_md5s {
        ctx.consume(digest);
    }
    format!("{}-{}", hex::encode(ctx.compute().0), part_md5s.len())
}

pub(crate) struct BodyInput {
    pub(crate) body: Option<StreamingBlob>,
    pub(crate) expected: ExpectedChecksums,
    pub(crate) hasher: s3s::checksum::ChecksumHasher,
    pub(crate) trailing: Option<s3s::TrailingHeaders>,
    pub(crate) content_md5: Option<String>,
    /// Large bodies are hashed on another thread while this one encrypts and writes.
    pub(crate) large: bool,
    /// Whether the body's MD5 is needed: for the ETag (not for SSE-KMS objects, whose ETag AWS
    /// documents as not an MD5) or to check a Content-MD5.
    pub(crate) md5: bool,
}

/// Bodies at least this large are hashed on a blocking thread beside the encryption.
pub(crate) const PARALLEL_HASHING_FROM: i64 = 1024 * 1024;

pub(crate) fn is_large(content_length: Option<i64>) -> bool {
    content_length.is_some_and(|n| n >= PARALLEL_HASHING_FROM)
}

/// MD5 (when needed) and the requested checksums of a body, computed inline for small
/// bodies and on a blocking thread for large ones (MD5 alone runs at ~600 MB/s on one core).
pub(crate) enum Digester {
    Inline(Box<(Option<md5::Context>, s3s::checksum::ChecksumHasher)>),
    Threaded(
        tokio::sync::mpsc::Sender<Bytes>,
        tokio::task::JoinHandle<(Option<Vec<u8>>, Checksum)>,
    ),
}

impl Digester {
    pub(crate) fn new(hasher: s3s::checksum::ChecksumHasher, large: bool, md5: bool) -> Self {
        let md5 = md5.then(md5::Context::new);
        if !large {
            return Digester::Inline(Box::new((md5, hasher)));
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let handle = tokio::task::spawn_blocking(move || {
            let mut md5 = md5;
            let mut hasher = hasher;
            while let Some(chunk) = rx.blocking_recv() {
                if let Some(md5) = &mut md5 {
                    md5.consume(&chunk);
                }
                hasher.update(&chunk);
            }
            (md5.map(|m| m.compute().to_vec()), hasher.finalize())
        });
        Digester::Threaded(tx, handle)
    }

    pub(crate) async fn update(&mut self, chunk: &Bytes) {
        match self {
            Digester::Inline(state) => {
                if let Some(md5) = &mut state.0 {
                    md5.consume(chunk);
                }
                state.1.update(chunk);
            }
            Digester::Threaded(tx, _) => {
                let _ = tx.send(chunk.clone()).await;
            }
        }
    }

    pub(crate) async fn finish(self) -> S3Result<(Option<Vec<u8>>, Checksum)> {
        match self {
            Digester::Inline(state) => {
                let (md5, hasher) = *state;
                Ok((md5.map(|m| m.compute().to_vec()), hasher.finalize()))
            }
            Digester::Threaded(tx, handle) => {
                drop(tx);
                handle.await.map_err(internal)
            }
        }
    }
}
