//! S3 authorization: each operation is an `s3:` action on a bucket or object ARN, decided by the
//! caller's identity policies and the bucket's policy as AWS combines them (within the bucket
//! owner's account either may allow; across accounts both must; a service principal only
//! through the bucket policy). Request headers become the S3 condition keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use keytrail_audit::CallContext;
use keytrail_iam::{Identities, denial_message, request_context};
use keytrail_policy::{Decision, Policy, PolicyKind, ResourceAuthority};
use keytrail_store::Store;
use s3s::{S3Error, S3ErrorCode, S3Result};

use crate::{bucket_record, internal, store_err};

/// Bucket owners and parsed policies are cached this long; this process forgets a bucket at
/// once when it changes, the TTL bounds what other processes of a cluster see.
const BUCKET_CACHE_TTL: Duration = Duration::from_secs(5);

/// What authorization needs to know about a bucket.
struct BucketAccess {
    account_id: String,
    policy: Option<Policy>,
}

/// What an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// `arn:aws:s3:::*` — the account's bucket list.
    Service,
    Bucket,
    Object,
    /// Several objects, each authorized by the operation itself (DeleteObjects).
    EachObject,
}

/// The IAM action and target of an S3 operation, as AWS's service authorization reference
/// names them.
fn action_of(operation: &str) -> (String, Target) {
    let fixed = |action: &str, target| (format!("s3:{action}"), target);
    match operation {
        "ListBuckets" => fixed("ListAllMyBuckets", Target::Service),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => fixed("ListBucket", Target::Bucket),
        "ListObjectVersions" => fixed("ListBucketVersions", Target::Bucket),
        "ListMultipartUploads" => fixed("ListBucketMultipartUploads", Target::Bucket),
        "GetBucketEncryption" => fixed("GetEncryptionConfiguration", Target::Bucket),
        "PutBucketEncryption" | "DeleteBucketEncryption" => {
            fixed("PutEncryptionConfiguration", Target::Bucket)
        }
        "DeleteBucketTagging" => fixed("PutBucketTagging", Target::Bucket),
        "PutObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => fixed("PutObject", Target::Object),
        "GetObject" | "HeadObject" => fixed("GetObject", Target::Object),
        "DeleteObjects" => fixed("DeleteObject", Target::EachObject),
        "ListParts" => fixed("ListMultipartUploadParts", Target::Object),
        "AbortMultipartUpload"
        | "DeleteObject"
        | "GetObjectAcl"
        | "PutObjectAcl"
        | "GetObjectTagging"
        | "PutObjectTagging"
        | "DeleteObjectTagging"
        | "GetObjectAttributes" => (format!("s3:{operation}"), Target::Object),
        // Bucket operations whose action is the operation's name (CreateBucket, DeleteBucket,
        // Get/PutBucketPolicy, GetBucketAcl, GetBucketLocation, …).
        other => (format!("s3:{other}"), Target::Bucket),
    }
}

/// The S3 condition keys a request's headers and query set.
fn condition_keys(
    operation: &str,
    headers: &http::HeaderMap,
    uri: &http::Uri,
) -> Vec<(&'static str, String)> {
    let mut keys = Vec::new();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    for (key, name) in [
        ("s3:x-amz-acl", "x-amz-acl"),
        (
            "s3:x-amz-server-side-encryption",
            "x-amz-server-side-encryption",
        ),
        (
            "s3:x-amz-server-side-encryption-aws-kms-key-id",
            "x-amz-server-side-encryption-aws-kms-key-id",
        ),
        ("s3:x-amz-copy-source", "x-amz-copy-source"),
        ("s3:x-amz-storage-class", "x-amz-storage-class"),
    ] {
        if let Some(value) = header(name) {
            keys.push((key, value));
        }
    }
    if matches!(
        operation,
        "ListObjects" | "ListObjectsV2" | "ListObjectVersions"
    ) && let Some(query) = uri.query()
    {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
        for (name, value) in pairs {
            let key = match name.as_str() {
                "prefix" => "s3:prefix",
                "delimiter" => "s3:delimiter",
                "max-keys" => "s3:max-keys",
                _ => continue,
            };
            keys.push((key, value));
        }
    }
    keys
}

/// Decides S3 requests; shared by the access check in front of every operation and by the
/// operations that act on more than one resource (DeleteObjects, the source of a copy).
pub struct S3Authorizer {
    store: Arc<dyn Store>,
    identities: Arc<Identities>,
    buckets: RwLock<HashMap<String, (Instant, Arc<BucketAccess>)>>,
}

impl std::fmt::Debug for S3Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Authorizer")
    }
}

impl S3Authorizer {
    pub fn new(store: Arc<dyn Store>, identities: Arc<Identities>) -> Self {
        Self {
            store,
            identities,
            buckets: RwLock::new(HashMap::new()),
        }
    }

    /// Authorizes one S3 operation before it runs.
    pub async fn authorize_operation(
        &self,
        ctx: &CallContext,
        operation: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        headers: &http::HeaderMap,
        uri: &http::Uri,
    ) -> S3Result<()> {
        let (action, target) = action_of(operation);
        let conditions = condition_keys(operation, headers, uri);
        let (bucket, key) = match (target, bucket, key) {
            (Target::EachObject, _, _) => return Ok(()),
            (Target::Service, _, _) | (_, None, _) => (None, None),
            (Target::Bucket, Some(b), _) => (Some(b), None),
            (Target::Object, Some(b), k) => (Some(b), Some(k.unwrap_or_default())),
        };
        self.authorize(ctx, &action, bucket, key, &conditions).await
    }

    /// Authorizes `action` on a bucket (`key` `None`), an object, or the service (no bucket).
    pub async fn authorize(
        &self,
        ctx: &CallContext,
        action: &str,
        bucket: Option<&str>,
        key: Option<&str>,
        conditions: &[(&'static str, String)],
    ) -> S3Result<()> {
        let resource = match (bucket, key) {
            (None, _) => "arn:aws:s3:::*".to_string(),
            (Some(b), None) => format!("arn:aws:s3:::{b}"),
            (Some(b), Some(k)) => format!("arn:aws:s3:::{b}/{k}"),
        };
        let mut request = request_context(ctx, action, &resource);
        for (name, value) in conditions {
            request.set(*name, value.clone());
        }
        let access = match bucket {
            Some(b) => self.bucket_access(b).await?,
            None => None,
        };
        // A bucket that does not exist is the caller's own business: its identity policies
        // decide, and the operation then reports NoSuchBucket.
        let (policy, owner) = match &access {
            Some(access) => (access.policy.as_ref(), access.account_id.as_str()),
            None => (None, ctx.principal.account_id.as_str()),
        };
        let decision = self
            .identities
            .decide(
                ctx,
                &request,
                policy,
                owner,
                ResourceAuthority::Optional,
                false,
            )
            .await
            .map_err(internal)?;
        match decision {
            Decision::Allow => Ok(()),
            denied => {
                // Which side was missing: across accounts it can be either; AWS names the
                // resource policy when there is one that did not allow.
                let resource_side = policy.is_some() && owner != ctx.principal.account_id;
                Err(S3Error::with_message(
                    S3ErrorCode::AccessDenied,
                    denial_message(&request, &denied, resource_side),
                ))
            }
        }
    }

    async fn bucket_access(&self, bucket: &str) -> S3Result<Option<Arc<BucketAccess>>> {
        if let Ok(cache) = self.buckets.read()
            && let Some((at, access)) = cache.get(bucket)
            && at.elapsed() < BUCKET_CACHE_TTL
        {
            return Ok(Some(Arc::clone(access)));
        }
        let Some(row) = self.store.get_bucket(bucket).await.map_err(store_err)? else {
            return Ok(None);
        };
        let record = bucket_record(&row)?;
        // Policies were validated when put; one that no longer parses allows nothing.
        let policy = record.policy.as_deref().and_then(|document| {
            Policy::parse(document, PolicyKind::Resource)
                .inspect_err(|e| tracing::warn!(bucket, error = %e, "stored bucket policy ignored"))
                .ok()
        });
        let access = Arc::new(BucketAccess {
            account_id: row.account_id,
            policy,
        });
        if let Ok(mut cache) = self.buckets.write() {
            if cache.len() > 100_000 {
                cache.clear();
            }
            cache.insert(bucket.to_string(), (Instant::now(), Arc::clone(&access)));
        }
        Ok(Some(access))
    }

    /// Called whenever a bucket's owner or policy changes.
    pub fn forget(&self, bucket: &str) {
        if let Ok(mut cache) = self.buckets.write() {
            cache.remove(bucket);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_map_to_the_actions_aws_checks() {
        assert_eq!(
            action_of("ListBuckets"),
            ("s3:ListAllMyBuckets".into(), Target::Service)
        );
        assert_eq!(
            action_of("HeadBucket"),
            ("s3:ListBucket".into(), Target::Bucket)
        );
        assert_eq!(
            action_of("UploadPart"),
            ("s3:PutObject".into(), Target::Object)
        );
        assert_eq!(
            action_of("HeadObject"),
            ("s3:GetObject".into(), Target::Object)
        );
        assert_eq!(
            action_of("DeleteBucketEncryption"),
            ("s3:PutEncryptionConfiguration".into(), Target::Bucket)
        );
        assert_eq!(
            action_of("GetBucketAcl"),
            ("s3:GetBucketAcl".into(), Target::Bucket)
        );
        assert_eq!(
            action_of("AbortMultipartUpload"),
            ("s3:AbortMultipartUpload".into(), Target::Object)
        );
    }

    #[test]
    fn headers_and_list_parameters_become_condition_keys() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-amz-acl", "bucket-owner-full-control".parse().unwrap());
        headers.insert("x-amz-server-side-encryption", "aws:kms".parse().unwrap());
        let uri: http::Uri = "/b?prefix=AWSLogs%2F&max-keys=10".parse().unwrap();
        let keys = condition_keys("PutObject", &headers, &uri);
        assert!(keys.contains(&("s3:x-amz-acl", "bucket-owner-full-control".into())));
        assert!(keys.contains(&("s3:x-amz-server-side-encryption", "aws:kms".into())));
        assert!(!keys.iter().any(|(k, _)| *k == "s3:prefix"));
        let keys = condition_keys("ListObjectsV2", &http::HeaderMap::new(), &uri);
        assert_eq!(
            keys,
            vec![
                ("s3:prefix", "AWSLogs/".into()),
                ("s3:max-keys", "10".into())
            ]
        );
    }

    /// CloudTrail's documented bucket policy (§5.11), verbatim but for the names.
    const CLOUDTRAIL_BUCKET_POLICY: &str = r#"{
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AWSCloudTrailAclCheck20150319",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:GetBucketAcl",
                "Resource": "arn:aws:s3:::ct-logs",
                "Condition": {
                    "StringEquals": {
                        "aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/management"
                    }
                }
            },
            {
                "Sid": "AWSCloudTrailWrite20150319",
                "Effect": "Allow",
                "Principal": {"Service": "cloudtrail.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": "arn:aws:s3:::ct-logs/AWSLogs/111122223333/*",
                "Condition": {
                    "StringEquals": {
                        "s3:x-amz-acl": "bucket-owner-full-control",
                        "aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/management"
                    }
                }
            }
        ]
    }"#;

    const TRAIL: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/management";

    fn call(principal: keytrail_audit::Principal, source_arn: Option<&str>) -> CallContext {
        CallContext {
            request_id: "r".into(),
            time: keytrail_audit::clock::now(),
            region: "us-east-1".into(),
            principal,
            source_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            invoked_by: None,
            source_arn: source_arn.map(str::to_string),
            source_account: source_arn.map(|_| "111122223333".to_string()),
            tls: None,
        }
    }

    #[tokio::test]
    async fn the_cloudtrail_bucket_policy_admits_the_service_for_its_trail_and_nothing_else() {
        use keytrail_audit::Principal;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(keytrail_store::sqlite::SqliteStore::open(&dir.path().join("k.db")).unwrap());
        let root_key = Arc::new(keytrail_crypto::RootKey::ephemeral().unwrap());
        let identities = Arc::new(Identities::new(Arc::clone(&store), root_key));
        let record = serde_json::json!({ "policy": CLOUDTRAIL_BUCKET_POLICY }).to_string();
        store
            .create_bucket(keytrail_store::BucketRow {
                name: "ct-logs".into(),
                account_id: "111122223333".into(),
                region: "us-east-1".into(),
                created_at_ms: 0,
                record_json: record,
            })
            .await
            .unwrap();
        let authorizer = S3Authorizer::new(store, identities);
        let cloudtrail = Principal::service("111122223333", "cloudtrail.amazonaws.com");
        let acl = {
            let mut h = http::HeaderMap::new();
            h.insert("x-amz-acl", "bucket-owner-full-control".parse().unwrap());
            h
        };
        let none = http::HeaderMap::new();
        let uri: http::Uri = "/".parse().unwrap();
        let log_key = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/28/f.json.gz";
        let check = |principal: &Principal,
                     source: Option<&str>,
                     op: &str,
                     key: Option<&str>,
                     headers: &http::HeaderMap| {
            let ctx = call(principal.clone(), source);
            let (authorizer, headers, uri) = (&authorizer, headers.clone(), uri.clone());
            let (op, key) = (op.to_string(), key.map(str::to_string));
            async move {
                authorizer
                    .authorize_operation(&ctx, &op, Some("ct-logs"), key.as_deref(), &headers, &uri)
                    .await
                    .is_ok()
            }
        };

        assert!(check(&cloudtrail, Some(TRAIL), "GetBucketAcl", None, &none).await);
        assert!(check(&cloudtrail, Some(TRAIL), "PutObject", Some(log_key), &acl).await);
        // Without the ACL header, outside the account's prefix, for another trail, or reading:
        // denied.
        assert!(!check(&cloudtrail, Some(TRAIL), "PutObject", Some(log_key), &none).await);
        assert!(
            !check(
                &cloudtrail,
                Some(TRAIL),
                "PutObject",
                Some("AWSLogs/999999999999/x"),
                &acl
            )
            .await
        );
        let other = "arn:aws:cloudtrail:us-east-1:111122223333:trail/other";
        assert!(!check(&cloudtrail, Some(other), "PutObject", Some(log_key), &acl).await);
        assert!(!check(&cloudtrail, None, "GetBucketAcl", None, &none).await);
        assert!(!check(&cloudtrail, Some(TRAIL), "GetObject", Some(log_key), &none).await);
        // Other principals: another service, another account's root. The owner's root is the
        // owner and needs no policy.
        let s3 = Principal::service("111122223333", "s3.amazonaws.com");
        assert!(!check(&s3, Some(TRAIL), "PutObject", Some(log_key), &acl).await);
        let outsider = Principal::root("999999999999", None);
        assert!(!check(&outsider, None, "PutObject", Some(log_key), &acl).await);
        let owner = Principal::root("111122223333", None);
        assert!(check(&owner, None, "GetObject", Some(log_key), &none).await);
    }
}
