//! S3 authorization through the AWS SDK for Rust: bucket policies and identity policies
//! combined as AWS combines them, within an account and across accounts, with conditions on the
//! request's headers; SSE-KMS puts that also need the key; copies that need to read their source;
//! DeleteObjects deciding key by key; and denials that are journaled.

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier, ServerSideEncryption};
use common::*;

const BUCKET: &str = "shared-111";

async fn put(
    s3: &aws_sdk_s3::Client,
    key: &str,
    sse: Option<ServerSideEncryption>,
) -> Result<(), (String, String)> {
    s3.put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from_static(b"payload"))
        .set_server_side_encryption(sse)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            (
                e.code().unwrap_or("<no code>").to_string(),
                e.message().unwrap_or_default().to_string(),
            )
        })
}

async fn get(s3: &aws_sdk_s3::Client, key: &str) -> Result<Vec<u8>, String> {
    match s3.get_object().bucket(BUCKET).key(key).send().await {
        Ok(out) => Ok(out.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => Err(e.code().unwrap_or("<no code>").to_string()),
    }
}

#[tokio::test]
async fn bucket_policies_and_identity_policies_decide_s3_requests() {
    let server = TestServer::start_with(&format!("{DECLARED_CREDENTIALS}{ROOT_111}"), &[]);
    let url = server.url.clone();
    let owner = s3_client(&url, ROOT_111_KEY, ROOT_111_SECRET);
    let alice = s3_client(&url, ALICE_KEY, ALICE_SECRET);
    owner.create_bucket().bucket(BUCKET).send().await.unwrap();
    owner
        .put_object()
        .bucket(BUCKET)
        .key("public/readme")
        .body(ByteStream::from_static(b"hello"))
        .send()
        .await
        .unwrap();

    // Alice, a user of the owner's account without policies, may do nothing.
    let (denied, message) = error_code_and_message(alice.list_buckets().send().await);
    assert_eq!(denied, "AccessDenied");
    assert!(
        message.contains("arn:aws:iam::111122223333:user/alice")
            && message.contains("s3:ListAllMyBuckets"),
        "{message}"
    );
    assert_eq!(
        put(&alice, "alice/a", None).await.unwrap_err().0,
        "AccessDenied"
    );
    assert_eq!(
        get(&alice, "public/readme").await.unwrap_err(),
        "AccessDenied"
    );

    // A bucket policy naming her lets her write under her prefix, only with SSE-KMS, and read
    // the public prefix; nothing else.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Sid":"AliceWritesEncrypted","Effect":"Allow",
            "Principal":{{"AWS":"arn:aws:iam::111122223333:user/alice"}},
            "Action":"s3:PutObject","Resource":"arn:aws:s3:::{BUCKET}/alice/*",
            "Condition":{{"StringEquals":{{"s3:x-amz-server-side-encryption":"aws:kms"}}}}}},
          {{"Sid":"OtherAccountReads","Effect":"Allow",
            "Principal":{{"AWS":["arn:aws:iam::111122223333:user/alice","arn:aws:iam::000000000000:root"]}},
            "Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/public/*"}},
          {{"Sid":"NoDeletesOfPublic","Effect":"Deny","Principal":"*",
            "Action":"s3:DeleteObject","Resource":"arn:aws:s3:::{BUCKET}/public/*"}}]}}"#
    );
    owner
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(&policy)
        .send()
        .await
        .unwrap();
    assert_eq!(
        put(&alice, "alice/plain", None).await.unwrap_err().0,
        "AccessDenied"
    );
    assert_eq!(
        put(
            &alice,
            "alice/s3-managed",
            Some(ServerSideEncryption::Aes256)
        )
        .await
        .unwrap_err()
        .0,
        "AccessDenied"
    );
    // With SSE-KMS she also needs the key: the AWS managed key lets the account use it
    // through S3 (kms:ViaService), so the put succeeds.
    put(
        &alice,
        "alice/encrypted",
        Some(ServerSideEncryption::AwsKms),
    )
    .await
    .unwrap();
    assert_eq!(
        put(&alice, "elsewhere/x", Some(ServerSideEncryption::AwsKms))
            .await
            .unwrap_err()
            .0,
        "AccessDenied"
    );
    assert_eq!(get(&alice, "public/readme").await.unwrap(), b"hello");
    // Reading back what she wrote is not in the policy.
    assert_eq!(
        get(&alice, "alice/encrypted").await.unwrap_err(),
        "AccessDenied"
    );

    // A copy needs s3:GetObject on its source as well as s3:PutObject on its target.
    let copy = |source: &str| {
        alice
            .copy_object()
            .bucket(BUCKET)
            .key("alice/copy")
            .copy_source(format!("{BUCKET}/{source}"))
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .send()
    };
    copy("public/readme").await.unwrap();
    assert_eq!(
        error_code_and_message(copy("alice/encrypted").await).0,
        "AccessDenied"
    );

    // Another account: the bucket policy trusts account 000000000000, whose IAM must then
    // allow its user too.
    let iam_000 = iam_client(&url, ROOT_KEY, ROOT_SECRET);
    let carol = s3_client_with(&url, create_user_with_key(&iam_000, "carol").await);
    assert_eq!(
        get(&carol, "public/readme").await.unwrap_err(),
        "AccessDenied"
    );
    iam_000
        .put_user_policy()
        .user_name("carol")
        .policy_name("read-shared")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(get(&carol, "public/readme").await.unwrap(), b"hello");
    // Her identity policy covers the whole bucket; the bucket policy only public/.
    assert_eq!(
        get(&carol, "alice/encrypted").await.unwrap_err(),
        "AccessDenied"
    );
    // The root user of another account is no owner here either.
    let root_000 = s3_client(&url, ROOT_KEY, ROOT_SECRET);
    assert_eq!(
        error_code_and_message(root_000.delete_bucket().bucket(BUCKET).send().await).0,
        "AccessDenied"
    );

    // DeleteObjects decides key by key: the owner's explicit Deny on public/ wins even for the
    // account root; the other key is deleted.
    let deleted = owner
        .delete_objects()
        .bucket(BUCKET)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("public/readme")
                        .build()
                        .unwrap(),
                )
                .objects(
                    ObjectIdentifier::builder()
                        .key("alice/copy")
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.deleted().len(), 1);
    assert_eq!(deleted.deleted()[0].key(), Some("alice/copy"));
    assert_eq!(deleted.errors().len(), 1);
    assert_eq!(deleted.errors()[0].key(), Some("public/readme"));
    assert_eq!(deleted.errors()[0].code(), Some("AccessDenied"));
    assert_eq!(
        error_code_and_message(
            owner
                .delete_object()
                .bucket(BUCKET)
                .key("public/readme")
                .send()
                .await
        )
        .0,
        "AccessDenied"
    );

    // Denials are journaled with the caller and the error code.
    let events = server.events();
    let denied = events
        .iter()
        .find(|e| e["eventName"] == "ListBuckets" && e["errorCode"] == "AccessDenied")
        .unwrap();
    assert_eq!(denied["userIdentity"]["userName"], "alice");
    assert!(
        denied["errorMessage"]
            .as_str()
            .unwrap()
            .contains("s3:ListAllMyBuckets")
    );
}

#[tokio::test]
async fn tagging_a_new_object_needs_put_object_tagging_too() {
    let server = TestServer::start_with(&format!("{DECLARED_CREDENTIALS}{ROOT_111}"), &[]);
    let url = server.url.clone();
    let owner = s3_client(&url, ROOT_111_KEY, ROOT_111_SECRET);
    owner.create_bucket().bucket(BUCKET).send().await.unwrap();
    let iam = iam_client(&url, ROOT_111_KEY, ROOT_111_SECRET);
    let writer = s3_client_with(&url, create_user_with_key(&iam, "writer").await);
    let allow = |actions: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":{actions},"Resource":"arn:aws:s3:::{BUCKET}/*"}}]}}"#
        )
    };
    let policy = |document: String| {
        iam.put_user_policy()
            .user_name("writer")
            .policy_name("write")
            .policy_document(document)
            .send()
    };
    policy(allow(r#""s3:PutObject""#)).await.unwrap();
    let tagged_put = |key: &'static str| {
        writer
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .tagging("team=audit")
            .body(ByteStream::from_static(b"payload"))
            .send()
    };
    put(&writer, "plain", None).await.unwrap();
    let (denied, message) = error_code_and_message(tagged_put("tagged").await);
    assert_eq!(denied, "AccessDenied");
    assert!(message.contains("s3:PutObjectTagging"), "{message}");
    assert_eq!(get(&owner, "tagged").await.unwrap_err(), "NoSuchKey");

    policy(allow(r#"["s3:PutObject","s3:PutObjectTagging"]"#))
        .await
        .unwrap();
    tagged_put("tagged").await.unwrap();
    let tags = owner
        .get_object_tagging()
        .bucket(BUCKET)
        .key("tagged")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tag_set()[0].key(), "team");
}
