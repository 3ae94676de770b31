//! Amazon S3 for keytrail: buckets and objects, every object encrypted at rest.
//!
//! [`S3Engine`] implements the s3s `S3` trait (s3s turns HTTP into typed inputs and verifies
//! signatures). Each object version gets its own AES-256 data key: for SSE-S3 the key is wrapped
//! under the root key; for SSE-KMS it comes from KMS GenerateDataKey — called through the KMS
//! dispatcher as the caller, `invokedBy: s3.amazonaws.com`, so the call is authorized and
//! journaled like any other — with the object ARN in the encryption context, and GET calls
//! Decrypt the same way. Bodies are written to a temporary file, fsynced and renamed before the
//! metadata commits, so a crash leaves the old object or the new one, never a torn one.

mod access;
pub mod body;
mod checksums;
mod encryption;
mod reading;
mod record;
mod storing;
mod tagging;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pub use access::S3Authorizer;
use base64::Engine;
use bytes::Bytes;
use keytrail_audit::CallContext;
use keytrail_crypto::RootKey;
use keytrail_kms::Kms;
use keytrail_store::{
    BucketRow, DeleteBucketOutcome, ObjectRow, PartRow, Store, StoreError, UploadRow,
};
use s3s::dto::*;
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::body::BodyKey;
use crate::checksums::{
    BodyInput, ExpectedChecksums, announced_trailers, is_large, md5_hex, multipart_etag,
    stored_checksums,
};
use crate::encryption::{
    BucketKeyCache, SseHeaders, bucket_key_header, context_header, kms_error, parse_sse, piece_key,
    set_sse_output,
};
use crate::reading::{Conditions, parse_copy_range};
use crate::record::{
    BucketRecord, ContentHeaders, DefaultEncryption, ObjectRecord, PartRecord, Piece, UploadRecord,
};
use crate::storing::StoredBody;

const S3_SERVICE: &str = "s3.amazonaws.com";

/// An object a service writes for itself (see [`S3Engine::put_object_for_service`]).
#[derive(Debug, Clone)]
pub struct ServicePut {
    pub bucket: String,
    pub key: String,
    pub body: Bytes,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    /// A canned ACL (`bucket-owner-full-control` for CloudTrail), checked by the bucket policy.
    pub acl: Option<String>,
    /// SSE-KMS under this key (id, ARN or alias); `None`: the bucket's default encryption.
    pub kms_key_id: Option<String>,
    pub encryption_context: Option<BTreeMap<String, String>>,
    /// User metadata (`x-amz-meta-<name>`), e.g. a digest file's signature.
    pub metadata: Vec<(String, String)>,
}
/// The key SSE-KMS uses when the request and the bucket name none, as on AWS.
const AWS_MANAGED_S3_KEY: &str = "alias/aws/s3";
const DEFAULT_MAX_KEYS: i32 = 1000;

/// Cheap to clone: the server's S3 service and CloudTrail's delivery share one engine.
#[derive(Clone)]
pub struct S3Engine {
    store: Arc<dyn Store>,
    kms: Arc<Kms>,
    root_key: Arc<RootKey>,
    objects_dir: PathBuf,
    bucket_keys: Arc<BucketKeyCache>,
    authorizer: Arc<S3Authorizer>,
}

impl std::fmt::Debug for S3Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Engine")
            .field("objects_dir", &self.objects_dir)
            .finish_non_exhaustive()
    }
}

fn internal(what: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %what, "S3 internal error");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "We encountered an internal error. Please try again.",
    )
}

fn store_err(e: StoreError) -> S3Error {
    internal(e)
}

fn now_ms() -> i64 {
    keytrail_audit::clock::now_ms()
}

fn timestamp(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

fn object_arn(bucket: &str, key: &str) -> String {
    format!("arn:aws:s3:::{bucket}/{key}")
}

impl S3Engine {
    /// Opens the engine over `data_dir/objects`, removing temporary files an interrupted upload
    /// left behind (they were never committed, so no object refers to them).
    pub fn open(
        store: Arc<dyn Store>,
        kms: Arc<Kms>,
        root_key: Arc<RootKey>,
        identities: Arc<keytrail_iam::Identities>,
        data_dir: &std::path::Path,
    ) -> std::io::Result<Self> {
        let objects_dir = data_dir.join("objects");
        let tmp = objects_dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(Self {
            authorizer: Arc::new(S3Authorizer::new(Arc::clone(&store), identities)),
            store,
            kms,
            root_key,
            objects_dir,
            bucket_keys: Arc::new(BucketKeyCache::default()),
        })
    }

    /// A PutObject a service makes for itself (CloudTrail delivering a log file): authorized
    /// against the bucket policy as the service principal in `ctx` with the request's headers
    /// (`x-amz-acl`, SSE), then stored exactly like a client's PutObject — SSE-KMS with
    /// `encryption_context` merged with the object ARN, or the bucket's default encryption.
    pub async fn put_object_for_service(
        &self,
        ctx: &CallContext,
        object: ServicePut,
    ) -> S3Result<PutObjectOutput> {
        let mut headers = http::HeaderMap::new();
        let header = |v: &str| {
            http::HeaderValue::from_str(v).map_err(|_| s3_error!(InvalidArgument, "bad header"))
        };
        if let Some(acl) = &object.acl {
            headers.insert("x-amz-acl", header(acl)?);
        }
        if let Some(key_id) = &object.kms_key_id {
            headers.insert("x-amz-server-side-encryption", header("aws:kms")?);
            headers.insert(
                "x-amz-server-side-encryption-aws-kms-key-id",
                header(key_id)?,
            );
        }
        let uri: http::Uri = format!("/{}/{}", object.bucket, object.key)
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        self.authorizer
            .authorize_operation(
                ctx,
                "PutObject",
                Some(&object.bucket),
                Some(&object.key),
                &headers,
                &uri,
            )
            .await?;
        let context = match &object.encryption_context {
            Some(pairs) => Some(
                base64::engine::general_purpose::STANDARD
                    .encode(serde_json::to_vec(pairs).map_err(internal)?),
            ),
            None => None,
        };
        let length = i64::try_from(object.body.len()).unwrap_or(i64::MAX);
        let input = PutObjectInput::builder()
            .bucket(object.bucket)
            .key(object.key)
            .body(Some(StreamingBlob::from(s3s::Body::from(object.body))))
            .content_length(Some(length))
            .content_type(object.content_type)
            .content_encoding(object.content_encoding)
            .acl(object.acl.map(ObjectCannedACL::from))
            .server_side_encryption(
                object
                    .kms_key_id
                    .as_ref()
                    .map(|_| ServerSideEncryption::from_static(ServerSideEncryption::AWS_KMS)),
            )
            .ssekms_key_id(object.kms_key_id)
            .ssekms_encryption_context(context)
            .metadata((!object.metadata.is_empty()).then(|| object.metadata.into_iter().collect()))
            .build()
            .map_err(internal)?;
        let mut extensions = http::Extensions::new();
        extensions.insert(ctx.clone());
        let request = S3Request {
            input,
            method: http::Method::PUT,
            uri,
            headers,
            extensions,
            credentials: None,
            region: None,
            service: None,
            trailing_headers: None,
        };
        Ok(self.put_object(request).await?.output)
    }

    /// The authorizer the access check in front of every operation uses.
    pub fn authorizer(&self) -> Arc<S3Authorizer> {
        Arc::clone(&self.authorizer)
    }

    /// The caller as S3 authorization sees it (the context KMS calls get says "via S3").
    fn caller(ctx: &CallContext) -> CallContext {
        CallContext {
            invoked_by: None,
            ..ctx.clone()
        }
    }

    fn ctx<T>(req: &S3Request<T>) -> S3Result<CallContext> {
        let mut ctx = req
            .extensions
            .get::<CallContext>()
            .cloned()
            .ok_or_else(|| internal("the request carries no call context"))?;
        ctx.invoked_by = Some(S3_SERVICE.to_string());
        Ok(ctx)
    }

    /// The bucket, if it exists. Whether the caller may act on it was decided before the
    /// operation ran (by its bucket policy and the caller's identity policies).
    async fn existing_bucket(&self, name: &str) -> S3Result<BucketRow> {
        match self.store.get_bucket(name).await.map_err(store_err)? {
            None => Err(S3Error::with_message(
                S3ErrorCode::NoSuchBucket,
                "The specified bucket does not exist",
            )),
            Some(b) => Ok(b),
        }
    }

    fn body_path(&self, bucket: &str, file: &str) -> PathBuf {
        self.objects_dir.join(bucket).join(file)
    }

    async fn remove_body(&self, bucket: &str, record_json: &str) {
        if let Ok(record) = serde_json::from_str::<ObjectRecord>(record_json)
            && !record.inline
        {
            for piece in record.pieces() {
                let _ = tokio::fs::remove_file(self.body_path(bucket, &piece.file)).await;
            }
        }
    }
}

/// AWS's documented size limit for a bucket policy.
const MAX_BUCKET_POLICY_BYTES: usize = 20 * 1024;

/// A bucket policy is a resource policy: Principal and Resource in every statement.
fn validate_bucket_policy(policy: &str) -> S3Result<()> {
    if policy.len() > MAX_BUCKET_POLICY_BYTES {
        return Err(s3_error!(
            MalformedPolicy,
            "Policies must be smaller than 20 KB."
        ));
    }
    keytrail_policy::Policy::parse(policy, keytrail_policy::PolicyKind::Resource)
        .map(|_| ())
        .map_err(|e| S3Error::with_message(S3ErrorCode::MalformedPolicy, e.message().to_string()))
}

/// The bucket and key a copy reads; access points and Outposts do not exist here.
fn bucket_copy_source(source: &CopySource) -> S3Result<(&str, &str)> {
    match source {
        CopySource::Bucket { bucket, key, .. } => Ok((bucket, key)),
        _ => Err(s3_error!(
            NotImplemented,
            "Copying from an access point or Outpost is not supported."
        )),
    }
}

/// A record that does not parse is an error, never a default: an edit saved on top of a
/// default would silently drop the bucket's policy, encryption and tags.
fn bucket_record(bucket: &BucketRow) -> S3Result<BucketRecord> {
    serde_json::from_str(&bucket.record_json).map_err(internal)
}

#[async_trait::async_trait]
impl S3 for S3Engine {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let ctx = Self::ctx(&req)?;
        let name = req.input.bucket.clone();
        let region = req
            .input
            .create_bucket_configuration
            .as_ref()
            .and_then(|c| c.location_constraint.as_ref())
            .map(|l| l.as_str().to_string())
            .filter(|l| !l.is_empty())
            .unwrap_or_else(|| ctx.region.clone());
        let row = BucketRow {
            name: name.clone(),
            account_id: ctx.principal.account_id.clone(),
            region,
            created_at_ms: now_ms(),
            record_json: "{}".into(),
        };
        match self.store.create_bucket(row).await {
            Ok(()) => self.authorizer.forget(&name),
            Err(StoreError::AlreadyExists { .. }) => {
                let existing = self.store.get_bucket(&name).await.map_err(store_err)?;
                return Err(match existing {
                    Some(b) if b.account_id == ctx.principal.account_id => S3Error::with_message(
                        S3ErrorCode::BucketAlreadyOwnedByYou,
                        "Your previous request to create the named bucket succeeded and you already own it.",
                    ),
                    _ => S3Error::with_message(
                        S3ErrorCode::BucketAlreadyExists,
                        "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again.",
                    ),
                });
            }
            Err(e) => return Err(store_err(e)),
        }
        tokio::fs::create_dir_all(self.objects_dir.join(&name))
            .await
            .map_err(internal)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{name}")),
        }))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(bucket.region),
            ..Default::default()
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        self.existing_bucket(&req.input.bucket).await?;
        match self
            .store
            .delete_bucket(&req.input.bucket)
            .await
            .map_err(store_err)?
        {
            DeleteBucketOutcome::Deleted => {
                self.authorizer.forget(&req.input.bucket);
                let _ = tokio::fs::remove_dir_all(self.objects_dir.join(&req.input.bucket)).await;
                Ok(S3Response::new(DeleteBucketOutput::default()))
            }
            DeleteBucketOutcome::NotEmpty => Err(S3Error::with_message(
                S3ErrorCode::BucketNotEmpty,
                "The bucket you tried to delete is not empty",
            )),
            DeleteBucketOutcome::NotFound => Err(S3Error::with_message(
                S3ErrorCode::NoSuchBucket,
                "The specified bucket does not exist",
            )),
        }
    }

    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let ctx = Self::ctx(&req)?;
        let rows = self
            .store
            .list_buckets(&ctx.principal.account_id)
            .await
            .map_err(store_err)?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                rows.into_iter()
                    .map(|b| Bucket {
                        bucket_region: Some(b.region),
                        creation_date: Some(timestamp(b.created_at_ms)),
                        name: Some(b.name),
                    })
                    .collect(),
            ),
            owner: Some(Owner {
                display_name: None,
                id: Some(ctx.principal.account_id.clone()),
            }),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        // us-east-1 is reported as an empty location constraint, as AWS does.
        let location =
            (bucket.region != "us-east-1").then(|| BucketLocationConstraint::from(bucket.region));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint: location,
        }))
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let ctx = Self::ctx(&req)?;
        let trailer_names = announced_trailers(&req.headers);
        let trailing = req.trailing_headers.clone();
        let input = req.input;
        let bucket = self.existing_bucket(&input.bucket).await?;
        let sse = parse_sse(
            SseHeaders {
                server_side_encryption: &input.server_side_encryption,
                ssekms_key_id: &input.ssekms_key_id,
                ssekms_encryption_context: &input.ssekms_encryption_context,
                bucket_key_enabled: input.bucket_key_enabled,
            },
            bucket_record(&bucket)?.encryption.as_ref(),
        )?;
        let expected = ExpectedChecksums::new([
            &input.checksum_crc32,
            &input.checksum_crc32c,
            &input.checksum_crc64nvme,
            &input.checksum_sha1,
            &input.checksum_sha256,
        ]);
        let hasher = expected.hasher(&trailer_names);
        let tags = self
            .tags_from_header(&ctx, &input.bucket, &input.key, input.tagging.as_deref())
            .await?;
        let version = uuid::Uuid::new_v4();
        let version_id = version.to_string();
        let (data_key, sse_record) = self
            .new_data_key(&ctx, &input.bucket, &input.key, &version_id, &sse)
            .await?;
        let body_key = BodyKey::new(&data_key, *version.as_bytes()).map_err(internal)?;
        drop(data_key);

        let file_name = format!("{version_id}.obj");
        let mut stored = self
            .store_body(
                &input.bucket,
                &file_name,
                &body_key,
                BodyInput {
                    large: is_large(input.content_length),
                    body: input.body,
                    expected,
                    hasher,
                    trailing,
                    content_md5: input.content_md5.clone(),
                    md5: !matches!(sse_record, record::Sse::Kms { .. }),
                },
                true,
            )
            .await?;
        let (size, computed) = (stored.size, stored.computed.clone());
        // An SSE-KMS object's ETag is not an MD5 of its data on AWS either; the version id is
        // unique to this upload.
        let etag = stored
            .md5
            .as_deref()
            .map_or_else(|| version.simple().to_string(), md5_hex);
        let record = ObjectRecord {
            headers: ContentHeaders {
                cache_control: input.cache_control.clone(),
                content_disposition: input.content_disposition.clone(),
                content_encoding: input.content_encoding.clone(),
                content_language: input.content_language.clone(),
            },
            version_id: version_id.clone(),
            file: file_name,
            size,
            content_type: input.content_type.map(|c| c.to_string()),
            metadata: input
                .metadata
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
            sse: sse_record,
            checksums: stored_checksums(&computed),
            parts: Vec::new(),
            tags,
            inline: stored.is_inline(),
        };
        let row = ObjectRow {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            etag: etag.clone(),
            modified_at_ms: now_ms(),
            record_json: serde_json::to_string(&record).map_err(internal)?,
            inline_body: stored.take_inline_body(),
        };
        let replaced = match self.store.put_object(row).await {
            Ok(r) => r,
            Err(e) => {
                stored.discard().await;
                return Err(store_err(e));
            }
        };
        if let Some(old) = replaced {
            self.remove_body(&old.bucket, &old.record_json).await;
        }
        let mut output = PutObjectOutput {
            checksum_crc32: computed.checksum_crc32.clone(),
            checksum_crc32c: computed.checksum_crc32c.clone(),
            checksum_crc64nvme: computed.checksum_crc64nvme.clone(),
            checksum_sha1: computed.checksum_sha1.clone(),
            checksum_sha256: computed.checksum_sha256.clone(),
            e_tag: Some(ETag::Strong(etag)),
            size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
            bucket_key_enabled: bucket_key_header(&record.sse),
            ..Default::default()
        };
        set_sse_output(
            &record.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        output.ssekms_encryption_context = context_header(&record.sse)?;
        Ok(S3Response::new(output))
    }

    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        let ctx = Self::ctx(&req)?;
        let input = req.input;
        let bucket = self.existing_bucket(&input.bucket).await?;
        let rule = input
            .server_side_encryption_configuration
            .rules
            .first()
            .cloned()
            .ok_or_else(|| s3_error!(MalformedXML, "The configuration names no rule."))?;
        let by_default = rule
            .apply_server_side_encryption_by_default
            .ok_or_else(|| s3_error!(MalformedXML, "The rule names no default encryption."))?;
        let algorithm = by_default.sse_algorithm.as_str().to_string();
        let kms_key_id = match algorithm.as_str() {
            ServerSideEncryption::AES256 => None,
            ServerSideEncryption::AWS_KMS => match &by_default.kms_master_key_id {
                None => None,
                Some(key) => Some(
                    self.kms
                        .symmetric_key_arn(&ctx, key)
                        .await
                        .map_err(kms_error)?,
                ),
            },
            other => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    format!(
                        "Server side encryption {other} is not supported by this keytrail version."
                    ),
                ));
            }
        };
        self.edit_bucket(&bucket, |record| {
            record.encryption = Some(DefaultEncryption {
                algorithm,
                kms_key_id,
                bucket_key_enabled: rule.bucket_key_enabled.unwrap_or(false),
            });
        })
        .await?;
        Ok(S3Response::new(PutBucketEncryptionOutput::default()))
    }

    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        // Every bucket encrypts with SSE-S3 unless told otherwise, as AWS since 2023.
        let default = bucket_record(&bucket)?
            .encryption
            .unwrap_or(DefaultEncryption {
                algorithm: ServerSideEncryption::AES256.into(),
                kms_key_id: None,
                bucket_key_enabled: false,
            });
        Ok(S3Response::new(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(ServerSideEncryptionConfiguration {
                rules: vec![ServerSideEncryptionRule {
                    apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                        kms_master_key_id: default.kms_key_id,
                        sse_algorithm: ServerSideEncryption::from(default.algorithm),
                    }),
                    bucket_key_enabled: Some(default.bucket_key_enabled),
                }],
            }),
        }))
    }

    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        self.edit_bucket(&bucket, |record| {
            record.encryption = None;
        })
        .await?;
        Ok(S3Response::new(DeleteBucketEncryptionOutput::default()))
    }

    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        validate_bucket_policy(&req.input.policy)?;
        self.edit_bucket(&bucket, |record| {
            record.policy = Some(req.input.policy);
        })
        .await?;
        Ok(S3Response::new(PutBucketPolicyOutput::default()))
    }

    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        let policy = bucket_record(&bucket)?
            .policy
            .ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))?;
        Ok(S3Response::new(GetBucketPolicyOutput {
            policy: Some(policy),
        }))
    }

    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        self.edit_bucket(&bucket, |record| {
            record.policy = None;
        })
        .await?;
        Ok(S3Response::new(DeleteBucketPolicyOutput::default()))
    }

    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        let mut tags = Vec::new();
        for tag in req.input.tagging.tag_set {
            let (Some(key), Some(value)) = (tag.key, tag.value) else {
                return Err(s3_error!(InvalidTag, "A tag needs a key and a value."));
            };
            if key.is_empty() || key.len() > 128 || value.len() > 256 || key.starts_with("aws:") {
                return Err(s3_error!(
                    InvalidTag,
                    "The TagKey or TagValue is not valid."
                ));
            }
            if tags.iter().any(|(k, _): &(String, String)| *k == key) {
                return Err(s3_error!(
                    InvalidTag,
                    "Cannot provide multiple Tags with the same key"
                ));
            }
            tags.push((key, value));
        }
        if tags.len() > 50 {
            return Err(s3_error!(
                InvalidTag,
                "Bucket tag count cannot be greater than 50"
            ));
        }
        self.edit_bucket(&bucket, |record| {
            record.tags = Some(tags);
        })
        .await?;
        Ok(S3Response::new(PutBucketTaggingOutput::default()))
    }

    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        let tags = bucket_record(&bucket)?
            .tags
            .ok_or_else(|| s3_error!(NoSuchTagSet, "The TagSet does not exist"))?;
        Ok(S3Response::new(GetBucketTaggingOutput {
            tag_set: tags
                .into_iter()
                .map(|(k, v)| Tag {
                    key: Some(k),
                    value: Some(v),
                })
                .collect(),
        }))
    }

    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        self.edit_bucket(&bucket, |record| {
            record.tags = None;
        })
        .await?;
        Ok(S3Response::new(DeleteBucketTaggingOutput::default()))
    }

    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        let input = req.input;
        only_the_null_version(input.version_id.as_deref())?;
        let tags = tagging::from_tag_set(input.tagging.tag_set)?;
        self.edit_object(&input.bucket, &input.key, |record| {
            record.tags = tags.clone()
        })
        .await?;
        Ok(S3Response::new(PutObjectTaggingOutput::default()))
    }

    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        let input = req.input;
        only_the_null_version(input.version_id.as_deref())?;
        let (_, record) = self.find_object(&input.bucket, &input.key).await?;
        Ok(S3Response::new(GetObjectTaggingOutput {
            tag_set: tagging::to_tag_set(&record.tags),
            version_id: None,
        }))
    }

    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        let input = req.input;
        only_the_null_version(input.version_id.as_deref())?;
        self.edit_object(&input.bucket, &input.key, |record| record.tags.clear())
            .await?;
        Ok(S3Response::new(DeleteObjectTaggingOutput::default()))
    }

    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        let bucket = self.existing_bucket(&req.input.bucket).await?;
        // Object ownership "bucket owner enforced": the owner has full control, nobody else.
        Ok(S3Response::new(GetBucketAclOutput {
            owner: Some(Owner {
                display_name: None,
                id: Some(bucket.account_id.clone()),
            }),
            grants: Some(vec![Grant {
                grantee: Some(Grantee {
                    display_name: None,
                    email_address: None,
                    id: Some(bucket.account_id),
                    type_: Type::from_static(Type::CANONICAL_USER),
                    uri: None,
                }),
                permission: Some(Permission::from_static(Permission::FULL_CONTROL)),
            }]),
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let ctx = Self::ctx(&req)?;
        let input = req.input;
        self.existing_bucket(&input.bucket).await?;
        if input.delete.objects.len() > 1000 {
            return Err(s3_error!(
                MalformedXML,
                "A delete request names at most 1000 keys."
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        let caller = Self::caller(&ctx);
        for object in input.delete.objects {
            // Each key is its own s3:DeleteObject decision; a denied key is reported, not fatal.
            if let Err(denied) = self
                .authorizer
                .authorize(
                    &caller,
                    "s3:DeleteObject",
                    Some(&input.bucket),
                    Some(&object.key),
                    &[],
                )
                .await
            {
                errors.push(Error {
                    key: Some(object.key),
                    code: Some("AccessDenied".into()),
                    message: denied.message().map(str::to_string),
                    ..Default::default()
                });
                continue;
            }
            if let Some(old) = self
                .store
                .delete_object(&input.bucket, &object.key)
                .await
                .map_err(store_err)?
            {
                self.remove_body(&old.bucket, &old.record_json).await;
            }
            if !quiet {
                deleted.push(DeletedObject {
                    key: Some(object.key),
                    ..Default::default()
                });
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let ctx = Self::ctx(&req)?;
        let input = req.input;
        let (source_bucket, source_key) = bucket_copy_source(&input.copy_source)?;
        let (mut source_row, source) = self.copy_source(&ctx, &input.copy_source).await?;
        let bucket = self.existing_bucket(&input.bucket).await?;
        let sse = parse_sse(
            SseHeaders {
                server_side_encryption: &input.server_side_encryption,
                ssekms_key_id: &input.ssekms_key_id,
                ssekms_encryption_context: &input.ssekms_encryption_context,
                bucket_key_enabled: input.bucket_key_enabled,
            },
            bucket_record(&bucket)?.encryption.as_ref(),
        )?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let tags = match input.tagging_directive.as_ref().map(|d| d.as_str()) {
            Some(TaggingDirective::REPLACE) => {
                self.tags_from_header(&ctx, &input.bucket, &input.key, input.tagging.as_deref())
                    .await?
            }
            Some(TaggingDirective::COPY) | None => source.tags.clone(),
            Some(other) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "Unknown tagging directive: {other}"
                ));
            }
        };
        if !replace
            && source_bucket == input.bucket
            && source_key == input.key
            && input.server_side_encryption.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        // Read the source as its reader (KMS Decrypt for SSE-KMS), write it re-encrypted under
        // the destination's encryption.
        let source_key_bytes = self
            .data_key(&ctx, source_bucket, source_key, &source)
            .await?;
        let body =
            self.range_stream(&mut source_row, &source, &source_key_bytes, 0..source.size)?;
        drop(source_key_bytes);
        let version = uuid::Uuid::new_v4();
        let version_id = version.to_string();
        let (data_key, sse_record) = self
            .new_data_key(&ctx, &input.bucket, &input.key, &version_id, &sse)
            .await?;
        let body_key = BodyKey::new(&data_key, *version.as_bytes()).map_err(internal)?;
        drop(data_key);
        let file_name = format!("{version_id}.obj");
        let no_checksums = ExpectedChecksums {
            headers: Vec::new(),
        };
        let hasher = no_checksums.hasher(&[]);
        let mut stored = self
            .store_body(
                &input.bucket,
                &file_name,
                &body_key,
                BodyInput {
                    large: is_large(i64::try_from(source.size).ok()),
                    body: Some(body),
                    expected: no_checksums,
                    hasher,
                    trailing: None,
                    content_md5: None,
                    md5: true,
                },
                true,
            )
            .await?;
        let (content_type, metadata) = if replace {
            (
                input.content_type.map(|c| c.to_string()),
                input
                    .metadata
                    .map(|m| m.into_iter().collect())
                    .unwrap_or_default(),
            )
        } else {
            (source.content_type.clone(), source.metadata.clone())
        };
        let etag = if source.parts.is_empty() {
            source_row.etag.clone()
        } else {
            md5_hex(stored.md5.as_deref().unwrap_or_default())
        };
        let headers = if replace {
            ContentHeaders {
                cache_control: input.cache_control.clone(),
                content_disposition: input.content_disposition.clone(),
                content_encoding: input.content_encoding.clone(),
                content_language: input.content_language.clone(),
            }
        } else {
            source.headers.clone()
        };
        let record = ObjectRecord {
            version_id,
            file: file_name,
            size: stored.size,
            content_type,
            metadata,
            sse: sse_record,
            checksums: source.checksums.clone(),
            parts: Vec::new(),
            headers,
            tags,
            inline: stored.is_inline(),
        };
        let modified = now_ms();
        let row = ObjectRow {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            size: i64::try_from(stored.size).unwrap_or(i64::MAX),
            etag: etag.clone(),
            modified_at_ms: modified,
            record_json: serde_json::to_string(&record).map_err(internal)?,
            inline_body: stored.take_inline_body(),
        };
        let replaced = match self.store.put_object(row).await {
            Ok(r) => r,
            Err(e) => {
                stored.discard().await;
                return Err(store_err(e));
            }
        };
        if let Some(old) = replaced {
            self.remove_body(&old.bucket, &old.record_json).await;
        }
        let mut output = CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(modified)),
                ..Default::default()
            }),
            ssekms_encryption_context: context_header(&record.sse)?,
            ..Default::default()
        };
        set_sse_output(
            &record.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        Ok(S3Response::new(output))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let ctx = Self::ctx(&req)?;
        let input = req.input;
        let bucket = self.existing_bucket(&input.bucket).await?;
        let tags = self
            .tags_from_header(&ctx, &input.bucket, &input.key, input.tagging.as_deref())
            .await?;
        let sse = parse_sse(
            SseHeaders {
                server_side_encryption: &input.server_side_encryption,
                ssekms_key_id: &input.ssekms_key_id,
                ssekms_encryption_context: &input.ssekms_encryption_context,
                bucket_key_enabled: input.bucket_key_enabled,
            },
            bucket_record(&bucket)?.encryption.as_ref(),
        )?;
        let version_id = uuid::Uuid::new_v4().to_string();
        let (data_key, sse_record) = self
            .new_data_key(&ctx, &input.bucket, &input.key, &version_id, &sse)
            .await?;
        drop(data_key);
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let record = UploadRecord {
            version_id,
            headers: ContentHeaders {
                cache_control: input.cache_control.clone(),
                content_disposition: input.content_disposition.clone(),
                content_encoding: input.content_encoding.clone(),
                content_language: input.content_language.clone(),
            },
            content_type: input.content_type.map(|c| c.to_string()),
            metadata: input
                .metadata
                .map(|m| m.into_iter().collect())
                .unwrap_or_default(),
            sse: sse_record,
            tags,
        };
        self.store
            .create_upload(UploadRow {
                upload_id: upload_id.clone(),
                bucket: input.bucket.clone(),
                key: input.key.clone(),
                created_at_ms: now_ms(),
                record_json: serde_json::to_string(&record).map_err(internal)?,
            })
            .await
            .map_err(store_err)?;
        let mut output = CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ssekms_encryption_context: context_header(&record.sse)?,
            ..Default::default()
        };
        set_sse_output(
            &record.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        Ok(S3Response::new(output))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let ctx = Self::ctx(&req)?;
        let trailer_names = announced_trailers(&req.headers);
        let trailing = req.trailing_headers.clone();
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let (_, upload) = self
            .find_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let data_key = self
            .upload_data_key(&ctx, &input.bucket, &input.key, &upload)
            .await?;
        let piece_version = uuid::Uuid::new_v4().to_string();
        let body_key = piece_key(&data_key, &piece_version)?;
        drop(data_key);
        let expected = ExpectedChecksums::new([
            &input.checksum_crc32,
            &input.checksum_crc32c,
            &input.checksum_crc64nvme,
            &input.checksum_sha1,
            &input.checksum_sha256,
        ]);
        let hasher = expected.hasher(&trailer_names);
        let file_name = format!("{piece_version}.part");
        let stored = self
            .store_body(
                &input.bucket,
                &file_name,
                &body_key,
                BodyInput {
                    large: is_large(input.content_length),
                    body: input.body,
                    expected,
                    hasher,
                    trailing,
                    content_md5: input.content_md5,
                    md5: true,
                },
                false,
            )
            .await?;
        let etag = self
            .save_part(
                &input.bucket,
                &input.upload_id,
                input.part_number,
                &stored,
                Piece {
                    file: file_name,
                    size: stored.size,
                    version_id: piece_version,
                },
            )
            .await?;
        let mut output = UploadPartOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: stored.computed.checksum_crc32.clone(),
            checksum_crc32c: stored.computed.checksum_crc32c.clone(),
            checksum_crc64nvme: stored.computed.checksum_crc64nvme.clone(),
            checksum_sha1: stored.computed.checksum_sha1.clone(),
            checksum_sha256: stored.computed.checksum_sha256.clone(),
            ..Default::default()
        };
        set_sse_output(
            &upload.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        Ok(S3Response::new(output))
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let ctx = Self::ctx(&req)?;
        let input = req.input;
        if !(1..=10_000).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        let (source_bucket, source_key) = bucket_copy_source(&input.copy_source)?;
        let (mut source_row, source) = self.copy_source(&ctx, &input.copy_source).await?;
        let range = match &input.copy_source_range {
            None => 0..source.size,
            Some(text) => parse_copy_range(text, source.size)?,
        };
        let (_, upload) = self
            .find_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let source_key_bytes = self
            .data_key(&ctx, source_bucket, source_key, &source)
            .await?;
        let body = self.range_stream(&mut source_row, &source, &source_key_bytes, range.clone())?;
        drop(source_key_bytes);
        let data_key = self
            .upload_data_key(&ctx, &input.bucket, &input.key, &upload)
            .await?;
        let piece_version = uuid::Uuid::new_v4().to_string();
        let body_key = piece_key(&data_key, &piece_version)?;
        drop(data_key);
        let no_checksums = ExpectedChecksums {
            headers: Vec::new(),
        };
        let hasher = no_checksums.hasher(&[]);
        let file_name = format!("{piece_version}.part");
        let stored = self
            .store_body(
                &input.bucket,
                &file_name,
                &body_key,
                BodyInput {
                    large: is_large(i64::try_from(range.end - range.start).ok()),
                    body: Some(body),
                    expected: no_checksums,
                    hasher,
                    trailing: None,
                    content_md5: None,
                    md5: true,
                },
                false,
            )
            .await?;
        let etag = self
            .save_part(
                &input.bucket,
                &input.upload_id,
                input.part_number,
                &stored,
                Piece {
                    file: file_name,
                    size: stored.size,
                    version_id: piece_version,
                },
            )
            .await?;
        let mut output = UploadPartCopyOutput {
            copy_part_result: Some(CopyPartResult {
                e_tag: Some(ETag::Strong(etag)),
                last_modified: Some(timestamp(now_ms())),
                ..Default::default()
            }),
            bucket_key_enabled: bucket_key_header(&upload.sse),
            ..Default::default()
        };
        set_sse_output(
            &upload.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        Ok(S3Response::new(output))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let (_, upload) = self
            .find_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let requested = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema."
            ));
        }
        let stored: BTreeMap<i64, PartRecord> = self
            .store
            .list_parts(&input.upload_id)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter_map(|p| {
                serde_json::from_str::<PartRecord>(&p.record_json)
                    .ok()
                    .map(|r| (p.part_number, r))
            })
            .collect();
        let mut previous = 0i64;
        let mut chosen: Vec<(i64, PartRecord)> = Vec::with_capacity(requested.len());
        for part in &requested {
            let number = i64::from(part.part_number.unwrap_or(0));
            if number <= previous {
                return Err(s3_error!(
                    InvalidPartOrder,
                    "The list of parts was not in ascending order. Parts must be ordered by part number."
                ));
            }
            previous = number;
            let record = stored.get(&number).cloned().ok_or_else(|| {
                s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag."
                )
            })?;
            let given = part.e_tag.as_ref().map(|e| match e {
                ETag::Strong(v) | ETag::Weak(v) => v.trim_matches('"').to_string(),
            });
            if given.as_deref().is_some_and(|g| g != record.etag) {
                return Err(s3_error!(
                    InvalidPart,
                    "One or more of the specified parts could not be found. The part might not have been uploaded, or the specified entity tag might not have matched the part's entity tag."
                ));
            }
            chosen.push((number, record));
        }
        for (_, part) in &chosen[..chosen.len() - 1] {
            if part.piece.size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed object size."
                ));
            }
        }
        let md5s: Vec<Vec<u8>> = chosen
            .iter()
            .map(|(_, p)| hex::decode(&p.etag).unwrap_or_default())
            .collect();
        let etag = multipart_etag(&md5s);
        let size: u64 = chosen.iter().map(|(_, p)| p.piece.size).sum();
        let record = ObjectRecord {
            version_id: upload.version_id.clone(),
            file: String::new(),
            size,
            content_type: upload.content_type.clone(),
            metadata: upload.metadata.clone(),
            sse: upload.sse.clone(),
            checksums: BTreeMap::new(),
            parts: chosen.iter().map(|(_, p)| p.piece.clone()).collect(),
            headers: upload.headers.clone(),
            tags: upload.tags.clone(),
            inline: false,
        };
        let row = ObjectRow {
            bucket: input.bucket.clone(),
            key: input.key.clone(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            etag: etag.clone(),
            modified_at_ms: now_ms(),
            record_json: serde_json::to_string(&record).map_err(internal)?,
            inline_body: None,
        };
        let replaced = self
            .store
            .finish_upload(&input.upload_id, Some(row))
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => no_such_upload(),
                other => store_err(other),
            })?;
        if let Some(old) = replaced {
            self.remove_body(&old.bucket, &old.record_json).await;
        }
        let used: std::collections::HashSet<i64> = chosen.iter().map(|(n, _)| *n).collect();
        for (number, part) in &stored {
            if !used.contains(number) {
                let _ =
                    tokio::fs::remove_file(self.body_path(&input.bucket, &part.piece.file)).await;
            }
        }
        let mut output = CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(ETag::Strong(etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            ..Default::default()
        };
        set_sse_output(
            &record.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        Ok(S3Response::new(output))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.find_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let parts = self
            .store
            .list_parts(&input.upload_id)
            .await
            .map_err(store_err)?;
        self.store
            .finish_upload(&input.upload_id, None)
            .await
            .map_err(|e| match e {
                StoreError::NotFound { .. } => no_such_upload(),
                other => store_err(other),
            })?;
        for part in parts {
            if let Ok(part) = serde_json::from_str::<PartRecord>(&part.record_json) {
                let _ =
                    tokio::fs::remove_file(self.body_path(&input.bucket, &part.piece.file)).await;
            }
        }
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        self.find_upload(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let max = i64::from(input.max_parts.unwrap_or(1000).clamp(0, 1000));
        let after = i64::from(input.part_number_marker.unwrap_or(0));
        let rows: Vec<_> = self
            .store
            .list_parts(&input.upload_id)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|p| p.part_number > after)
            .collect();
        let truncated = i64::try_from(rows.len()).unwrap_or(i64::MAX) > max;
        let page: Vec<_> = rows
            .into_iter()
            .take(usize::try_from(max).unwrap_or(0))
            .collect();
        let next = page
            .last()
            .map(|p| i32::try_from(p.part_number).unwrap_or(i32::MAX));
        let parts = page
            .iter()
            .filter_map(|p| {
                let record = serde_json::from_str::<PartRecord>(&p.record_json).ok()?;
                Some(Part {
                    e_tag: Some(ETag::Strong(record.etag)),
                    last_modified: Some(timestamp(record.modified_ms)),
                    part_number: i32::try_from(p.part_number).ok(),
                    size: i64::try_from(record.piece.size).ok(),
                    ..Default::default()
                })
            })
            .collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: i32::try_from(max).ok(),
            is_truncated: Some(truncated),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: next.filter(|_| truncated),
            parts: Some(parts),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        self.existing_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let uploads = self
            .store
            .list_uploads(&input.bucket)
            .await
            .map_err(store_err)?
            .into_iter()
            .filter(|u| u.key.starts_with(&prefix))
            .map(|u| MultipartUpload {
                initiated: Some(timestamp(u.created_at_ms)),
                key: Some(u.key),
                upload_id: Some(u.upload_id),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            is_truncated: Some(false),
            uploads: Some(uploads),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let ctx = Self::ctx(&req)?;
        let input = req.input;
        let (mut row, record) = self.find_object(&input.bucket, &input.key).await?;
        Conditions {
            if_match: &input.if_match,
            if_none_match: &input.if_none_match,
            if_modified_since: &input.if_modified_since,
            if_unmodified_since: &input.if_unmodified_since,
        }
        .check(&row)?;
        let (range, partial) = match &input.range {
            None => (0..record.size, false),
            Some(r) => (
                r.check(record.size).map_err(|_| {
                    s3_error!(InvalidRange, "The requested range is not satisfiable")
                })?,
                true,
            ),
        };
        let data_key = self
            .data_key(&ctx, &input.bucket, &input.key, &record)
            .await?;
        let len = range.end - range.start;
        let body = self.range_stream(&mut row, &record, &data_key, range.clone())?;
        drop(data_key);
        let mut output = GetObjectOutput {
            body: Some(body),
            content_length: Some(i64::try_from(len).unwrap_or(i64::MAX)),
            content_type: record.content_type.clone(),
            cache_control: record.headers.cache_control.clone(),
            content_disposition: record.headers.content_disposition.clone(),
            content_encoding: record.headers.content_encoding.clone(),
            content_language: record.headers.content_language.clone(),
            e_tag: Some(ETag::Strong(row.etag.clone())),
            last_modified: Some(timestamp(row.modified_at_ms)),
            metadata: (!record.metadata.is_empty())
                .then(|| record.metadata.clone().into_iter().collect()),
            accept_ranges: Some("bytes".into()),
            bucket_key_enabled: bucket_key_header(&record.sse),
            tag_count: (!record.tags.is_empty())
                .then(|| i32::try_from(record.tags.len()).unwrap_or(i32::MAX)),
            ..Default::default()
        };
        let checksum_mode = input
            .checksum_mode
            .as_ref()
            .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
        if checksum_mode && !partial {
            // Never on a range: the client would hash only the partial body (§1.3).
            let c = &record.checksums;
            output.checksum_crc32 = c.get("CRC32").cloned();
            output.checksum_crc32c = c.get("CRC32C").cloned();
            output.checksum_crc64nvme = c.get("CRC64NVME").cloned();
            output.checksum_sha1 = c.get("SHA1").cloned();
            output.checksum_sha256 = c.get("SHA256").cloned();
            if !c.is_empty() {
                output.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
            }
        }
        if partial {
            output.content_range = Some(format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                record.size
            ));
        }
        set_sse_output(
            &record.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        let mut response = S3Response::new(output);
        if partial {
            response.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(response)
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (row, record) = self.find_object(&req.input.bucket, &req.input.key).await?;
        Conditions {
            if_match: &req.input.if_match,
            if_none_match: &req.input.if_none_match,
            if_modified_since: &req.input.if_modified_since,
            if_unmodified_since: &req.input.if_unmodified_since,
        }
        .check(&row)?;
        let mut output = HeadObjectOutput {
            content_length: Some(row.size),
            content_type: record.content_type.clone(),
            cache_control: record.headers.cache_control.clone(),
            content_disposition: record.headers.content_disposition.clone(),
            content_encoding: record.headers.content_encoding.clone(),
            content_language: record.headers.content_language.clone(),
            e_tag: Some(ETag::Strong(row.etag.clone())),
            last_modified: Some(timestamp(row.modified_at_ms)),
            metadata: (!record.metadata.is_empty())
                .then(|| record.metadata.clone().into_iter().collect()),
            accept_ranges: Some("bytes".into()),
            ..Default::default()
        };
        set_sse_output(
            &record.sse,
            &mut output.server_side_encryption,
            &mut output.ssekms_key_id,
        );
        Ok(S3Response::new(output))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.existing_bucket(&req.input.bucket).await?;
        if let Some(old) = self
            .store
            .delete_object(&req.input.bucket, &req.input.key)
            .await
            .map_err(store_err)?
        {
            self.remove_body(&old.bucket, &old.record_json).await;
        }
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        self.existing_bucket(&input.bucket).await?;
        let max_keys = input.max_keys.unwrap_or(DEFAULT_MAX_KEYS).clamp(0, 1000);
        let page = self
            .list(
                &input.bucket,
                input.prefix.as_deref().unwrap_or(""),
                input.delimiter.as_deref(),
                input.marker.as_deref(),
                max_keys,
            )
            .await?;
        let next_marker = if page.truncated && input.delimiter.is_some() {
            page.last_key.clone()
        } else {
            None
        };
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: input.prefix,
            marker: input.marker,
            max_keys: Some(max_keys),
            delimiter: input.delimiter,
            is_truncated: Some(page.truncated),
            next_marker,
            contents: Some(page.objects),
            common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        self.existing_bucket(&input.bucket).await?;
        let max_keys = input.max_keys.unwrap_or(DEFAULT_MAX_KEYS).clamp(0, 1000);
        let after = match &input.continuation_token {
            Some(token) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(token)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or_else(|| {
                        s3_error!(
                            InvalidArgument,
                            "The continuation token provided is incorrect"
                        )
                    })?,
            ),
            None => input.start_after.clone(),
        };
        let page = self
            .list(
                &input.bucket,
                input.prefix.as_deref().unwrap_or(""),
                input.delimiter.as_deref(),
                after.as_deref(),
                max_keys,
            )
            .await?;
        let key_count = page.objects.len() + page.prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: input.prefix,
            max_keys: Some(max_keys),
            key_count: Some(i32::try_from(key_count).unwrap_or(i32::MAX)),
            continuation_token: input.continuation_token,
            next_continuation_token: page
                .last_key
                .filter(|_| page.truncated)
                .map(|k| base64::engine::general_purpose::STANDARD.encode(k)),
            is_truncated: Some(page.truncated),
            contents: Some(page.objects),
            common_prefixes: (!page.prefixes.is_empty()).then_some(page.prefixes),
            delimiter: input.delimiter,
            start_after: input.start_after,
            ..Default::default()
        }))
    }
}

struct ListPage {
    objects: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    truncated: bool,
    /// The last key or common prefix returned, where the next page starts after.
    last_key: Option<String>,
}

impl S3Engine {
    /// Records an uploaded part (replacing an earlier upload of the same number) and returns
    /// its ETag; the body file is removed if the record cannot be written.
    async fn save_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part_number: i32,
        stored: &StoredBody,
        piece: Piece,
    ) -> S3Result<String> {
        let etag = md5_hex(stored.md5.as_deref().unwrap_or_default());
        let part = PartRecord {
            piece,
            etag: etag.clone(),
            modified_ms: now_ms(),
        };
        let replaced = self
            .store
            .put_part(PartRow {
                upload_id: upload_id.to_string(),
                part_number: i64::from(part_number),
                record_json: serde_json::to_string(&part).map_err(internal)?,
            })
            .await;
        let replaced = match replaced {
            Ok(r) => r,
            Err(e) => {
                stored.discard().await;
                return Err(store_err(e));
            }
        };
        if let Some(old) = replaced
            && let Ok(old) = serde_json::from_str::<PartRecord>(&old.record_json)
        {
            let _ = tokio::fs::remove_file(self.body_path(bucket, &old.piece.file)).await;
        }
        Ok(etag)
    }

    /// Read-modify-write of a bucket's record (default encryption, policy, tags).
    /// The tags an `x-amz-tagging` header sets on a new object; setting them needs
    /// `s3:PutObjectTagging` as well as `s3:PutObject`, as on AWS.
    async fn tags_from_header(
        &self,
        ctx: &CallContext,
        bucket: &str,
        key: &str,
        header: Option<&str>,
    ) -> S3Result<Vec<(String, String)>> {
        let Some(header) = header else {
            return Ok(Vec::new());
        };
        let tags = tagging::from_header(header)?;
        self.authorizer
            .authorize(
                &Self::caller(ctx),
                "s3:PutObjectTagging",
                Some(bucket),
                Some(key),
                &[],
            )
            .await?;
        Ok(tags)
    }

    /// Changes an object's record but not its body; retried if the object is replaced
    /// meanwhile, so the edit always lands on the object current when it commits.
    async fn edit_object(
        &self,
        bucket: &str,
        key: &str,
        edit: impl Fn(&mut ObjectRecord),
    ) -> S3Result<()> {
        loop {
            let (row, mut record) = self.find_object(bucket, key).await?;
            edit(&mut record);
            let json = serde_json::to_string(&record).map_err(internal)?;
            if self
                .store
                .replace_object_record(bucket, key, &row.record_json, json)
                .await
                .map_err(store_err)?
            {
                return Ok(());
            }
        }
    }

    async fn edit_bucket(
        &self,
        bucket: &BucketRow,
        edit: impl FnOnce(&mut BucketRecord),
    ) -> S3Result<()> {
        let mut record = bucket_record(bucket)?;
        edit(&mut record);
        let json = serde_json::to_string(&record).map_err(internal)?;
        let updated = self
            .store
            .update_bucket_record(&bucket.name, json)
            .await
            .map_err(store_err)?;
        self.authorizer.forget(&bucket.name);
        if updated {
            Ok(())
        } else {
            Err(S3Error::with_message(
                S3ErrorCode::NoSuchBucket,
                "The specified bucket does not exist",
            ))
        }
    }
}

/// Buckets are unversioned: the only version a request may name is `null`.
fn only_the_null_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

fn no_such_upload() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
    )
}

impl S3Engine {
    async fn find_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
    ) -> S3Result<(UploadRow, UploadRecord)> {
        self.existing_bucket(bucket).await?;
        let row = self
            .store
            .get_upload(upload_id)
            .await
            .map_err(store_err)?
            .filter(|u| u.bucket == bucket && u.key == key)
            .ok_or_else(no_such_upload)?;
        let record = serde_json::from_str(&row.record_json).map_err(internal)?;
        Ok((row, record))
    }

    /// The object a copy reads, which the caller must be allowed to get (s3:GetObject), as
    /// well as to put the copy.
    async fn copy_source(
        &self,
        ctx: &CallContext,
        copy_source: &CopySource,
    ) -> S3Result<(ObjectRow, ObjectRecord)> {
        let (bucket, key) = bucket_copy_source(copy_source)?;
        self.authorizer
            .authorize(
                &Self::caller(ctx),
                "s3:GetObject",
                Some(bucket),
                Some(key),
                &[],
            )
            .await?;
        self.find_object(bucket, key).await
    }

    async fn find_object(&self, bucket: &str, key: &str) -> S3Result<(ObjectRow, ObjectRecord)> {
        self.existing_bucket(bucket).await?;
        let row = self
            .store
            .get_object(bucket, key)
            .await
            .map_err(store_err)?
            .ok_or_else(|| s3_error!(NoSuchKey, "The specified key does not exist."))?;
        let record: ObjectRecord = serde_json::from_str(&row.record_json).map_err(internal)?;
        Ok((row, record))
    }

    /// Keys in byte order after `after`, folding keys that contain `delimiter` after the prefix
    /// into common prefixes, at most `max_keys` entries in all.
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        after: Option<&str>,
        max_keys: i32,
    ) -> S3Result<ListPage> {
        let max = usize::try_from(max_keys).unwrap_or(0);
        let mut page = ListPage {
            objects: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            last_key: None,
        };
        let mut cursor = after.map(str::to_string);
        loop {
            let batch = self
                .store
                .list_objects(bucket, prefix, cursor.as_deref(), 1000)
                .await
                .map_err(store_err)?;
            if batch.is_empty() {
                return Ok(page);
            }
            for row in batch {
                cursor = Some(row.key.clone());
                let common = delimiter.filter(|d| !d.is_empty()).and_then(|d| {
                    row.key[prefix.len()..]
                        .find(d)
                        .map(|i| row.key[..prefix.len() + i + d.len()].to_string())
                });
                if let Some(common) = &common {
                    if page.prefixes.last().and_then(|p| p.prefix.as_ref()) == Some(common) {
                        continue;
                    }
                    if page.objects.len() + page.prefixes.len() >= max {
                        page.truncated = true;
                        return Ok(page);
                    }
                    // Skip past every key under this prefix next time.
                    page.last_key = Some(common.clone());
                    page.prefixes.push(CommonPrefix {
                        prefix: Some(common.clone()),
                    });
                    continue;
                }
                if page.objects.len() + page.prefixes.len() >= max {
                    page.truncated = true;
                    return Ok(page);
                }
                page.last_key = Some(row.key.clone());
                page.objects.push(Object {
                    e_tag: Some(ETag::Strong(row.etag.clone())),
                    key: Some(row.key.clone()),
                    last_modified: Some(timestamp(row.modified_at_ms)),
                    size: Some(row.size),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                });
            }
        }
    }
}

/// Parts other than the last must be at least this large, as AWS requires.
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
