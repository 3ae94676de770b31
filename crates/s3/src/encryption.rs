//! Server-side encryption for S3: how a request's SSE headers become an object's data key —
//! SSE-S3 keys wrapped under the root key, SSE-KMS keys from GenerateDataKey (called through
//! the KMS dispatcher as the caller, so it is authorized and journaled), and Bucket Keys that
//! let one KMS call serve many objects.

use std::collections::BTreeMap;

use base64::Engine;
use keytrail_audit::CallContext;
use keytrail_kms::KmsError;
use keytrail_kms::model::{Blob, DecryptRequest, GenerateDataKeyRequest};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Result, s3_error};
use zeroize::Zeroizing;

use crate::body::BodyKey;
use crate::record::{ContentHeaders, DefaultEncryption, ObjectRecord, Sse, UploadRecord};
use crate::{AWS_MANAGED_S3_KEY, S3Engine, internal, object_arn};

/// How long a Bucket Key is reused (AWS does not document its lifetime).
pub(crate) const BUCKET_KEY_LIFETIME: std::time::Duration = std::time::Duration::from_secs(300);

/// A Bucket Key is issued per caller, KMS key and (bucket) context, as AWS scopes them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct BucketKeyId {
    pub(crate) principal: String,
    pub(crate) key_id: String,
    pub(crate) context: BTreeMap<String, String>,
}

/// When a bucket key was made or opened (service-clock milliseconds), and the key.
type Issued = (i64, Zeroizing<Vec<u8>>, String, Vec<u8>);
type Opened = (i64, Zeroizing<Vec<u8>>);

/// Whether a bucket key made or opened at `at_ms` may still be used: its lifetime runs on the
/// service clock, like everything else S3 decides by time.
fn live(at_ms: i64) -> bool {
    let lifetime = i64::try_from(BUCKET_KEY_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    keytrail_audit::clock::now_ms().saturating_sub(at_ms) < lifetime
}

/// S3 Bucket Keys: a KMS data key reused for a few minutes, from which each object's data key
/// is derived, so thousands of uploads cost one GenerateDataKey (and reads one Decrypt).
#[derive(Default)]
pub(crate) struct BucketKeyCache {
    /// Held while a missing key is fetched from KMS, so concurrent callers wait for it.
    pub(crate) issuing: tokio::sync::Mutex<()>,
    pub(crate) issued: std::sync::Mutex<std::collections::HashMap<BucketKeyId, Issued>>,
    pub(crate) opened: std::sync::Mutex<std::collections::HashMap<(String, Vec<u8>), Opened>>,
}

impl BucketKeyCache {
    /// A live bucket key: (plaintext, key ARN, KMS ciphertext blob).
    pub(crate) fn issued(&self, id: &BucketKeyId) -> Option<(Zeroizing<Vec<u8>>, String, Vec<u8>)> {
        let map = self.issued.lock().ok()?;
        let (at, key, arn, blob) = map.get(id)?;
        live(*at).then(|| (key.clone(), arn.clone(), blob.clone()))
    }

    pub(crate) fn remember(
        &self,
        id: BucketKeyId,
        key: Zeroizing<Vec<u8>>,
        arn: String,
        blob: Vec<u8>,
    ) {
        if let Ok(mut map) = self.issued.lock() {
            map.retain(|_, (at, ..)| live(*at));
            map.insert(id, (keytrail_audit::clock::now_ms(), key, arn, blob));
        }
    }

    pub(crate) fn opened(&self, id: &(String, Vec<u8>)) -> Option<Zeroizing<Vec<u8>>> {
        let map = self.opened.lock().ok()?;
        let (at, key) = map.get(id)?;
        live(*at).then(|| key.clone())
    }

    pub(crate) fn remember_opened(&self, id: (String, Vec<u8>), key: Zeroizing<Vec<u8>>) {
        if let Ok(mut map) = self.opened.lock() {
            map.retain(|_, (at, _)| live(*at));
            map.insert(id, (keytrail_audit::clock::now_ms(), key));
        }
    }
}

/// An object's data key under a Bucket Key: HKDF-SHA256 keyed by the bucket key, salted with
/// the object version.
pub(crate) fn derive_object_key(bucket_key: &[u8], version: &str) -> S3Result<Zeroizing<Vec<u8>>> {
    use aws_lc_rs::hkdf::{HKDF_SHA256, Salt};
    struct Len32;
    impl aws_lc_rs::hkdf::KeyType for Len32 {
        fn len(&self) -> usize {
            32
        }
    }
    let prk = Salt::new(HKDF_SHA256, version.as_bytes()).extract(bucket_key);
    let okm = prk
        .expand(&[b"keytrail-s3-bucket-key-object"], Len32)
        .map_err(internal)?;
    let mut out = Zeroizing::new(vec![0u8; 32]);
    okm.fill(&mut out).map_err(internal)?;
    Ok(out)
}

/// A KMS failure as S3 reports it (§3.4): `KMS.<code>`, 400 unless KMS itself failed.
pub(crate) fn kms_error(e: KmsError) -> S3Error {
    let code = S3ErrorCode::Custom(format!("KMS.{}", e.code()).into());
    let mut err = S3Error::with_message(code, e.message());
    if e.status() >= 500 {
        err.set_status_code(http::StatusCode::INTERNAL_SERVER_ERROR);
    } else {
        err.set_status_code(http::StatusCode::BAD_REQUEST);
    }
    err
}

pub(crate) fn sse_s3_aad(bucket: &str, key: &str, version: &str) -> String {
    format!("s3:{bucket}/{key}#{version}")
}

pub(crate) fn version_bytes(version: &str) -> S3Result<[u8; 16]> {
    uuid::Uuid::parse_str(version)
        .map(|u| *u.as_bytes())
        .map_err(internal)
}

pub(crate) enum SseRequest {
    S3,
    Kms {
        key_id: String,
        context: BTreeMap<String, String>,
        /// Use an S3 Bucket Key: one KMS data key per bucket, key and caller, reused for a
        /// while, from which each object's key is derived.
        bucket_key: bool,
    },
}

/// The SSE headers of an upload (PutObject, CreateMultipartUpload).
pub(crate) struct SseHeaders<'a> {
    pub(crate) server_side_encryption: &'a Option<ServerSideEncryption>,
    pub(crate) ssekms_key_id: &'a Option<String>,
    pub(crate) ssekms_encryption_context: &'a Option<String>,
    pub(crate) bucket_key_enabled: Option<bool>,
}

/// The encryption an upload asks for, or the bucket's default when it names none.
pub(crate) fn parse_sse(
    input: SseHeaders<'_>,
    bucket_default: Option<&DefaultEncryption>,
) -> S3Result<SseRequest> {
    if input.server_side_encryption.is_none()
        && input.ssekms_key_id.is_none()
        && let Some(default) = bucket_default
        && default.algorithm == ServerSideEncryption::AWS_KMS
    {
        let key_id = default
            .kms_key_id
            .clone()
            .unwrap_or_else(|| AWS_MANAGED_S3_KEY.to_string());
        return Ok(SseRequest::Kms {
            key_id,
            context: BTreeMap::new(),
            bucket_key: input
                .bucket_key_enabled
                .unwrap_or(default.bucket_key_enabled),
        });
    }
    let algorithm = input
        .server_side_encryption
        .as_ref()
        .map(|s| s.as_str().to_string());
    match algorithm.as_deref() {
        None | Some(ServerSideEncryption::AES256) => {
            if input.ssekms_key_id.is_some() || input.ssekms_encryption_context.is_some() {
                return Err(s3_error!(
                    InvalidArgument,
                    "Server Side Encryption with KMS managed key requires HTTP header x-amz-server-side-encryption : aws:kms"
                ));
            }
            Ok(SseRequest::S3)
        }
        Some(ServerSideEncryption::AWS_KMS) => {
            let key_id = input
                .ssekms_key_id
                .clone()
                .unwrap_or_else(|| AWS_MANAGED_S3_KEY.to_string());
            let context = match &input.ssekms_encryption_context {
                None => BTreeMap::new(),
                Some(encoded) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .map_err(|_| {
                            s3_error!(InvalidArgument, "The encryption context is not base64.")
                        })?;
                    serde_json::from_slice(&bytes).map_err(|_| {
                        s3_error!(
                            InvalidArgument,
                            "The encryption context is not a JSON object of strings."
                        )
                    })?
                }
            };
            let bucket_key = input.bucket_key_enabled.unwrap_or_else(|| {
                bucket_default.is_some_and(|d| {
                    d.algorithm == ServerSideEncryption::AWS_KMS && d.bucket_key_enabled
                })
            });
            Ok(SseRequest::Kms {
                key_id,
                context,
                bucket_key,
            })
        }
        Some(other) => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            format!("Server side encryption {other} is not supported by this keytrail version."),
        )),
    }
}

pub(crate) fn context_header(sse: &Sse) -> S3Result<Option<String>> {
    match sse {
        Sse::Kms { context, .. } => {
            let json = serde_json::to_vec(context).map_err(internal)?;
            Ok(Some(base64::engine::general_purpose::STANDARD.encode(json)))
        }
        Sse::S3 { .. } => Ok(None),
    }
}

/// The body key of one piece: the object's data key bound to the piece's version.
pub(crate) fn piece_key(data_key: &[u8], version_id: &str) -> S3Result<BodyKey> {
    BodyKey::new(data_key, version_bytes(version_id)?).map_err(internal)
}

pub(crate) fn set_sse_output(
    sse: &Sse,
    algorithm: &mut Option<ServerSideEncryption>,
    key_id: &mut Option<String>,
) {
    match sse {
        Sse::S3 { .. } => {
            *algorithm = Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AES256,
            ));
        }
        Sse::Kms { key_arn, .. } => {
            *algorithm = Some(ServerSideEncryption::from_static(
                ServerSideEncryption::AWS_KMS,
            ));
            *key_id = Some(key_arn.clone());
        }
    }
}

/// `x-amz-server-side-encryption-bucket-key-enabled: true` only when a Bucket Key was used.
pub(crate) fn bucket_key_header(sse: &Sse) -> Option<bool> {
    matches!(
        sse,
        Sse::Kms {
            bucket_key: true,
            ..
        }
    )
    .then_some(true)
}

impl S3Engine {
    /// GenerateDataKey as the caller, through the KMS dispatcher: (plaintext, key ARN, blob).
    pub(crate) async fn kms_data_key(
        &self,
        ctx: &CallContext,
        key_id: &str,
        context: &BTreeMap<String, String>,
    ) -> S3Result<(Zeroizing<Vec<u8>>, String, Vec<u8>)> {
        let generated = self
            .kms
            .execute(
                ctx,
                &GenerateDataKeyRequest {
                    key_id: Some(key_id.to_string()),
                    encryption_context: Some(context.clone()),
                    key_spec: Some("AES_256".into()),
                    ..Default::default()
                },
            )
            .await
            .map_err(kms_error)?;
        let plaintext = generated
            .plaintext
            .ok_or_else(|| internal("GenerateDataKey returned no plaintext"))?;
        let blob = generated
            .ciphertext_blob
            .ok_or_else(|| internal("GenerateDataKey returned no ciphertext"))?;
        Ok((plaintext.0, generated.key_id.unwrap_or_default(), blob.0))
    }

    /// Decrypt as the caller, through the KMS dispatcher.
    pub(crate) async fn kms_decrypt(
        &self,
        ctx: &CallContext,
        blob: Vec<u8>,
        context: &BTreeMap<String, String>,
    ) -> S3Result<Zeroizing<Vec<u8>>> {
        let decrypted = self
            .kms
            .execute(
                ctx,
                &DecryptRequest {
                    ciphertext_blob: Some(Blob(blob)),
                    encryption_context: Some(context.clone()),
                    ..Default::default()
                },
            )
            .await
            .map_err(kms_error)?;
        decrypted
            .plaintext
            .map(|p| p.0)
            .ok_or_else(|| internal("Decrypt returned no plaintext"))
    }

    /// Creates the account's `aws/s3` key on first use (journaled as the CreateKey it is).
    pub(crate) async fn ensure_managed_key(&self, ctx: &CallContext, key_id: &str) -> S3Result<()> {
        if key_id != AWS_MANAGED_S3_KEY || self.kms.symmetric_key_arn(ctx, key_id).await.is_ok() {
            return Ok(());
        }
        self.kms
            .execute(
                ctx,
                &keytrail_kms::CreateAwsManagedKey {
                    service: "s3".into(),
                },
            )
            .await
            .map(|_| ())
            .map_err(kms_error)
    }

    /// A fresh data key for a new object version, and how it is kept.
    pub(crate) async fn new_data_key(
        &self,
        ctx: &CallContext,
        bucket: &str,
        key: &str,
        version: &str,
        sse: &SseRequest,
    ) -> S3Result<(Zeroizing<Vec<u8>>, Sse)> {
        if let SseRequest::Kms { key_id, .. } = sse {
            self.ensure_managed_key(ctx, key_id).await?;
        }
        match sse {
            SseRequest::S3 => {
                let data_key = Zeroizing::new(keytrail_crypto::random_bytes(32).map_err(internal)?);
                let wrapped = self
                    .root_key
                    .wrap(&data_key, sse_s3_aad(bucket, key, version).as_bytes())
                    .map_err(internal)?;
                Ok((
                    data_key,
                    Sse::S3 {
                        wrapped_key: base64::engine::general_purpose::STANDARD.encode(wrapped),
                    },
                ))
            }
            SseRequest::Kms {
                key_id,
                context,
                bucket_key: true,
            } => {
                let mut bucket_context = context.clone();
                bucket_context.insert("aws:s3:arn".into(), format!("arn:aws:s3:::{bucket}"));
                let cache_key = BucketKeyId {
                    principal: ctx.principal.arn(),
                    key_id: key_id.clone(),
                    context: bucket_context.clone(),
                };
                // One caller issues the key while the others wait for it: without this, a burst
                // of uploads would each miss the cache and call KMS.
                let _issuing = match self.bucket_keys.issued(&cache_key) {
                    Some(_) => None,
                    None => Some(self.bucket_keys.issuing.lock().await),
                };
                let cached = self.bucket_keys.issued(&cache_key);
                let (bucket_key, key_arn, blob) = match cached {
                    Some(entry) => entry,
                    None => {
                        let (plaintext, key_arn, blob) =
                            self.kms_data_key(ctx, key_id, &bucket_context).await?;
                        self.bucket_keys.remember(
                            cache_key,
                            plaintext.clone(),
                            key_arn.clone(),
                            blob.clone(),
                        );
                        (plaintext, key_arn, blob)
                    }
                };
                let data_key = derive_object_key(&bucket_key, version)?;
                Ok((
                    data_key,
                    Sse::Kms {
                        key_arn,
                        ciphertext_blob: base64::engine::general_purpose::STANDARD.encode(blob),
                        context: bucket_context,
                        bucket_key: true,
                    },
                ))
            }
            SseRequest::Kms {
                key_id, context, ..
            } => {
                let mut full = context.clone();
                full.insert("aws:s3:arn".into(), object_arn(bucket, key));
                let (plaintext, key_arn, blob) = self.kms_data_key(ctx, key_id, &full).await?;
                Ok((
                    plaintext,
                    Sse::Kms {
                        key_arn,
                        ciphertext_blob: base64::engine::general_purpose::STANDARD.encode(blob),
                        context: full,
                        bucket_key: false,
                    },
                ))
            }
        }
    }

    /// The data key of a stored object version.
    pub(crate) async fn data_key(
        &self,
        ctx: &CallContext,
        bucket: &str,
        key: &str,
        record: &ObjectRecord,
    ) -> S3Result<Zeroizing<Vec<u8>>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        match &record.sse {
            Sse::S3 { wrapped_key } => {
                let wrapped = b64.decode(wrapped_key).map_err(internal)?;
                self.root_key
                    .unwrap(
                        &wrapped,
                        sse_s3_aad(bucket, key, &record.version_id).as_bytes(),
                    )
                    .map_err(internal)
            }
            Sse::Kms {
                ciphertext_blob,
                context,
                bucket_key: true,
                ..
            } => {
                let blob = b64.decode(ciphertext_blob).map_err(internal)?;
                let cache_key = (ctx.principal.arn(), blob.clone());
                let _opening = match self.bucket_keys.opened(&cache_key) {
                    Some(_) => None,
                    None => Some(self.bucket_keys.issuing.lock().await),
                };
                let bucket_key = match self.bucket_keys.opened(&cache_key) {
                    Some(k) => k,
                    None => {
                        let plaintext = self.kms_decrypt(ctx, blob, context).await?;
                        self.bucket_keys
                            .remember_opened(cache_key, plaintext.clone());
                        plaintext
                    }
                };
                derive_object_key(&bucket_key, &record.version_id)
            }
            Sse::Kms {
                ciphertext_blob,
                context,
                ..
            } => {
                let blob = b64.decode(ciphertext_blob).map_err(internal)?;
                self.kms_decrypt(ctx, blob, context).await
            }
        }
    }

    /// The plaintext data key of a multipart upload.
    pub(crate) async fn upload_data_key(
        &self,
        ctx: &CallContext,
        bucket: &str,
        key: &str,
        upload: &UploadRecord,
    ) -> S3Result<Zeroizing<Vec<u8>>> {
        let object = ObjectRecord {
            version_id: upload.version_id.clone(),
            file: String::new(),
            size: 0,
            content_type: None,
            metadata: BTreeMap::new(),
            sse: upload.sse.clone(),
            checksums: BTreeMap::new(),
            parts: Vec::new(),
            headers: ContentHeaders::default(),
            tags: Vec::new(),
            inline: false,
        };
        self.data_key(ctx, bucket, key, &object).await
    }
}
