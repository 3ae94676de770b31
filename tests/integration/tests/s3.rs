//! S3 through the AWS SDK for Rust (with its default flexible checksums, for every algorithm),
//! plus hand-made aws-chunked uploads with a checksum trailer — one honest, one lying.

mod common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use common::*;

use error_code as code;

#[tokio::test]
async fn sdk_uploads_with_signed_chunks_and_trailers() {
    let server = TestServer::start();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    s3.create_bucket().bucket("sdk").send().await.unwrap();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    for algorithm in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Sha256,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let key = format!("obj-{}", algorithm.as_str());
        let put = s3
            .put_object()
            .bucket("sdk")
            .key(&key)
            .checksum_algorithm(algorithm.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{algorithm:?}: {e:?}"));
        assert_eq!(
            put.server_side_encryption(),
            Some(&ServerSideEncryption::Aes256)
        );
        let got = s3
            .get_object()
            .bucket("sdk")
            .key(&key)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(bytes.as_ref(), body.as_slice(), "{algorithm:?}");
    }

    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = kms.create_key().send().await.unwrap();
    let arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    let upload = s3
        .create_multipart_upload()
        .bucket("sdk")
        .key("multi")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&arn)
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    let part1 = vec![1u8; 5 * 1024 * 1024];
    let part2 = vec![2u8; 1234];
    let mut parts = Vec::new();
    for (number, data) in [(1, part1.clone()), (2, part2.clone())] {
        let out = s3
            .upload_part()
            .bucket("sdk")
            .key("multi")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("sdk")
        .key("multi")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket("sdk")
        .key("multi")
        .send()
        .await
        .unwrap();
    assert_eq!(got.ssekms_key_id(), Some(arn.as_str()));
    let bytes = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(bytes.len(), part1.len() + part2.len());
    assert_eq!(&bytes[part1.len()..], part2.as_slice());

    assert_eq!(
        code(s3.get_object().bucket("sdk").key("missing").send().await),
        "NoSuchKey"
    );
    assert_eq!(
        code(s3.delete_bucket().bucket("sdk").send().await),
        "BucketNotEmpty"
    );
}

/// An unsigned aws-chunked upload (what SDKs send over HTTPS) with a CRC32 trailer.
fn chunked_body(data: &[u8], trailer_crc32: &str) -> Vec<u8> {
    let mut body = format!("{:x}\r\n", data.len()).into_bytes();
    body.extend_from_slice(data);
    body.extend_from_slice(b"\r\n0\r\n");
    body.extend_from_slice(format!("x-amz-checksum-crc32:{trailer_crc32}\r\n\r\n").as_bytes());
    body
}

#[tokio::test]
async fn a_trailer_that_lies_is_refused_and_stores_nothing() {
    let server = TestServer::start();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    s3.create_bucket().bucket("trailers").send().await.unwrap();
    let http = reqwest::Client::new();
    let data = b"the payload whose checksum travels after it";
    let right = {
        use base64::Engine;
        let crc = {
            // CRC-32/ISO-HDLC, as S3's x-amz-checksum-crc32.
            let mut c: u32 = 0xffff_ffff;
            for &b in data.iter() {
                c ^= u32::from(b);
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        (c >> 1) ^ 0xedb8_8320
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        };
        base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes())
    };
    for (key, crc, expected) in [("good", right.as_str(), 200), ("bad", "AAAAAA==", 400)] {
        let url = format!("{}/trailers/{key}", server.url);
        let body = chunked_body(data, crc);
        let decoded = data.len().to_string();
        let headers = [
            ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", decoded.as_str()),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ];
        // The signed payload hash is the streaming literal, not the body's hash.
        let signed = sign_streaming(&url, &headers);
        let resp = send(&http, "PUT", &url, &signed, body).await;
        assert_eq!(resp.status, expected, "{key}: {}", resp.body);
        if expected == 400 {
            assert_eq!(xml_code(&resp.body), "BadDigest");
        }
    }
    let listed = s3
        .list_objects_v2()
        .bucket("trailers")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, vec!["good"], "the lying upload stored nothing");
}

/// Signs a streaming upload whose payload hash is `STREAMING-UNSIGNED-PAYLOAD-TRAILER`.
fn sign_streaming(url: &str, headers: &[(&str, &str)]) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;
    let identity =
        aws_credential_types::Credentials::new(ROOT_KEY, ROOT_SECRET, None, None, "test").into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(settings)
        .build()
        .unwrap()
        .into();
    let host = url
        .split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap();
    let mut all: Vec<(String, String)> = vec![("host".into(), host.into())];
    all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let signable = SignableRequest::new(
        "PUT",
        url,
        all.iter()
            .filter(|(n, _)| n != "x-amz-content-sha256")
            .map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Precomputed("STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (name, value) in instructions.headers() {
        all.retain(|(n, _)| n != name);
        all.push((name.to_string(), value.to_string()));
    }
    all
}

/// Buckets, listings, copies, conditionals and the error of each, as the Rust SDK sees them.
#[tokio::test]
async fn sdk_bucket_and_object_paths_and_their_errors() {
    let server = TestServer::start();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    s3.create_bucket().bucket("paths").send().await.unwrap();
    assert_eq!(
        code(s3.create_bucket().bucket("paths").send().await),
        "BucketAlreadyOwnedByYou"
    );
    assert_eq!(
        code(s3.create_bucket().bucket("Not_Valid").send().await),
        "InvalidBucketName"
    );
    assert_eq!(
        code(s3.head_bucket().bucket("nowhere").send().await),
        "NotFound",
        "HEAD has no body, so the SDK sees the status"
    );
    assert_eq!(
        code(s3.put_object().bucket("nowhere").key("k").send().await),
        "NoSuchBucket"
    );
    let names: Vec<String> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_string))
        .collect();
    assert_eq!(names, ["paths"]);

    for key in ["a/1", "a/2", "a/3", "b/1", "top"] {
        s3.put_object()
            .bucket("paths")
            .key(key)
            .body(ByteStream::from(key.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
    }
    let folders = s3
        .list_objects_v2()
        .bucket("paths")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<&str> = folders
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, ["a/", "b/"]);
    let top: Vec<&str> = folders.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(top, ["top"]);
    // Two keys a page: the continuation token carries the listing to its end, once each.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let page = s3
            .list_objects_v2()
            .bucket("paths")
            .prefix("a/")
            .max_keys(2)
            .set_continuation_token(token)
            .send()
            .await
            .unwrap();
        seen.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if !page.is_truncated().unwrap_or(false) {
            break;
        }
    }
    assert_eq!(seen, ["a/1", "a/2", "a/3"]);

    let head = s3
        .head_object()
        .bucket("paths")
        .key("top")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap().to_string();
    assert_eq!(head.content_length(), Some(3));
    let not_modified = s3
        .get_object()
        .bucket("paths")
        .key("top")
        .if_none_match(&etag)
        .send()
        .await;
    let status = not_modified
        .err()
        .and_then(|e| e.raw_response().map(|r| r.status().as_u16()));
    assert_eq!(status, Some(304), "304 carries no body, so no code either");
    let wrong_etag = s3
        .get_object()
        .bucket("paths")
        .key("top")
        .if_match("\"00000000000000000000000000000000\"")
        .send()
        .await;
    assert_eq!(code(wrong_etag), "PreconditionFailed");
    let ranged = s3
        .get_object()
        .bucket("paths")
        .key("top")
        .range("bytes=1-")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.content_range(), Some("bytes 1-2/3"));
    assert_eq!(
        ranged.body.collect().await.unwrap().into_bytes().as_ref(),
        b"op"
    );
    let beyond = s3
        .get_object()
        .bucket("paths")
        .key("top")
        .range("bytes=10-20")
        .send()
        .await;
    assert_eq!(code(beyond), "InvalidRange");

    let copied = s3
        .copy_object()
        .bucket("paths")
        .key("copied")
        .copy_source("paths/a/2")
        .send()
        .await
        .unwrap();
    assert!(
        copied
            .copy_object_result()
            .and_then(|r| r.e_tag())
            .is_some()
    );
    assert_eq!(read_object(&s3, "paths", "copied").await, b"a/2");
    assert_eq!(
        code(
            s3.copy_object()
                .bucket("paths")
                .key("x")
                .copy_source("paths/missing")
                .send()
                .await
        ),
        "NoSuchKey"
    );

    let batch = aws_sdk_s3::types::Delete::builder()
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("a/1")
                .build()
                .unwrap(),
        )
        .objects(
            aws_sdk_s3::types::ObjectIdentifier::builder()
                .key("never-was")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let deleted = s3
        .delete_objects()
        .bucket("paths")
        .delete(batch)
        .send()
        .await
        .unwrap();
    let mut gone: Vec<&str> = deleted.deleted().iter().filter_map(|d| d.key()).collect();
    gone.sort();
    assert_eq!(
        gone,
        ["a/1", "never-was"],
        "deleting a missing key succeeds"
    );
    assert_eq!(
        code(s3.head_object().bucket("paths").key("a/1").send().await),
        "NotFound"
    );
}

/// SSE-KMS refusals come back as `KMS.<code>`, and a refused upload stores nothing.
#[tokio::test]
async fn sdk_sse_kms_refusals_and_multipart_errors() {
    let server = TestServer::start();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    s3.create_bucket().bucket("refusals").send().await.unwrap();
    let disabled = kms.create_key().send().await.unwrap();
    let disabled_id = disabled.key_metadata().unwrap().key_id().to_string();
    kms.disable_key().key_id(&disabled_id).send().await.unwrap();
    let signing = kms
        .create_key()
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .send()
        .await
        .unwrap();
    let signing_id = signing.key_metadata().unwrap().key_id().to_string();
    for (key_id, expected) in [
        (disabled_id.as_str(), "KMS.DisabledException"),
        (signing_id.as_str(), "KMS.InvalidKeyUsageException"),
        ("alias/none", "KMS.NotFoundException"),
    ] {
        let refused = s3
            .put_object()
            .bucket("refusals")
            .key("secret")
            .server_side_encryption(ServerSideEncryption::AwsKms)
            .ssekms_key_id(key_id)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await;
        assert_eq!(code(refused), expected, "{key_id}");
    }
    assert_eq!(
        code(
            s3.head_object()
                .bucket("refusals")
                .key("secret")
                .send()
                .await
        ),
        "NotFound"
    );

    // An object readable now is unreadable once its key is disabled: S3 must call Decrypt.
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    s3.put_object()
        .bucket("refusals")
        .key("sealed")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .body(ByteStream::from_static(b"sealed data"))
        .send()
        .await
        .unwrap();
    kms.disable_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(
        code(
            s3.get_object()
                .bucket("refusals")
                .key("sealed")
                .send()
                .await
        ),
        "KMS.DisabledException"
    );
    kms.enable_key().key_id(&key_id).send().await.unwrap();
    assert_eq!(read_object(&s3, "refusals", "sealed").await, b"sealed data");

    let upload = s3
        .create_multipart_upload()
        .bucket("refusals")
        .key("multi")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap().to_string();
    let mut parts = Vec::new();
    for number in [1, 2] {
        let out = s3
            .upload_part()
            .bucket("refusals")
            .key("multi")
            .upload_id(&upload_id)
            .part_number(number)
            .body(ByteStream::from(vec![number as u8; 1024]))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let complete = |parts: Vec<CompletedPart>| {
        s3.complete_multipart_upload()
            .bucket("refusals")
            .key("multi")
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
    };
    assert_eq!(
        code(complete(parts.clone()).await),
        "EntityTooSmall",
        "every part but the last must be at least 5 MiB"
    );
    let wrong_etag = vec![
        CompletedPart::builder()
            .part_number(1)
            .e_tag("\"00000000000000000000000000000000\"")
            .build(),
    ];
    assert_eq!(code(complete(wrong_etag).await), "InvalidPart");
    s3.abort_multipart_upload()
        .bucket("refusals")
        .key("multi")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(code(complete(parts).await), "NoSuchUpload");
    assert_eq!(
        code(
            s3.head_object()
                .bucket("refusals")
                .key("multi")
                .send()
                .await
        ),
        "NotFound"
    );
}

/// Default encryption, policy, tagging and ACL of a bucket, and the multipart listings.
#[tokio::test]
async fn sdk_bucket_configuration_and_multipart_listings() {
    use aws_sdk_s3::types::{Tag, Tagging};
    let server = TestServer::start();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    s3.create_bucket().bucket("config").send().await.unwrap();
    let default_rule = |s3: &aws_sdk_s3::Client| {
        let s3 = s3.clone();
        async move {
            let got = s3.get_bucket_encryption().bucket("config").send().await;
            let got = got.unwrap();
            let rules = got.server_side_encryption_configuration().unwrap().rules();
            rules[0]
                .apply_server_side_encryption_by_default()
                .unwrap()
                .clone()
        }
    };
    assert_eq!(
        default_rule(&s3).await.sse_algorithm(),
        &ServerSideEncryption::Aes256,
        "a new bucket encrypts with SSE-S3"
    );
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    let kms_default = |key_id: &str| sse_kms_default(key_id, false);
    s3.put_bucket_encryption()
        .bucket("config")
        .server_side_encryption_configuration(kms_default(&key_id))
        .send()
        .await
        .unwrap();
    assert_eq!(
        default_rule(&s3).await.kms_master_key_id(),
        Some(key_arn.as_str()),
        "the key is stored as its ARN"
    );
    let put = s3
        .put_object()
        .bucket("config")
        .key("by-default")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.ssekms_key_id(), Some(key_arn.as_str()));
    assert_eq!(
        code(
            s3.put_bucket_encryption()
                .bucket("config")
                .server_side_encryption_configuration(kms_default("alias/none"))
                .send()
                .await
        ),
        "KMS.NotFoundException"
    );
    s3.delete_bucket_encryption()
        .bucket("config")
        .send()
        .await
        .unwrap();
    assert_eq!(
        default_rule(&s3).await.sse_algorithm(),
        &ServerSideEncryption::Aes256
    );

    assert_eq!(
        code(s3.get_bucket_policy().bucket("config").send().await),
        "NoSuchBucketPolicy"
    );
    assert_eq!(
        code(
            s3.put_bucket_policy()
                .bucket("config")
                .policy("not json")
                .send()
                .await
        ),
        "MalformedPolicy"
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"cloudtrail.amazonaws.com"},"Action":"s3:PutObject","Resource":"arn:aws:s3:::config/*"}]}"#;
    s3.put_bucket_policy()
        .bucket("config")
        .policy(policy)
        .send()
        .await
        .unwrap();
    let stored = s3
        .get_bucket_policy()
        .bucket("config")
        .send()
        .await
        .unwrap();
    assert_eq!(stored.policy(), Some(policy));

    let tagging = Tagging::builder()
        .tag_set(Tag::builder().key("team").value("audit").build().unwrap())
        .build()
        .unwrap();
    s3.put_bucket_tagging()
        .bucket("config")
        .tagging(tagging)
        .send()
        .await
        .unwrap();
    let tags = s3
        .get_bucket_tagging()
        .bucket("config")
        .send()
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = tags
        .tag_set()
        .iter()
        .map(|t| (t.key(), t.value()))
        .collect();
    assert_eq!(pairs, [("team", "audit")]);
    s3.delete_bucket_tagging()
        .bucket("config")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(s3.get_bucket_tagging().bucket("config").send().await),
        "NoSuchTagSet"
    );
    let acl = s3.get_bucket_acl().bucket("config").send().await.unwrap();
    assert_eq!(
        acl.grants()[0].permission(),
        Some(&aws_sdk_s3::types::Permission::FullControl)
    );

    let first = s3
        .create_multipart_upload()
        .bucket("config")
        .key("listed")
        .send()
        .await
        .unwrap();
    let first_id = first.upload_id().unwrap().to_string();
    s3.create_multipart_upload()
        .bucket("config")
        .key("other")
        .send()
        .await
        .unwrap();
    let uploads = s3
        .list_multipart_uploads()
        .bucket("config")
        .send()
        .await
        .unwrap();
    let mut keys: Vec<&str> = uploads.uploads().iter().filter_map(|u| u.key()).collect();
    keys.sort();
    assert_eq!(keys, ["listed", "other"]);
    s3.upload_part_copy()
        .bucket("config")
        .key("listed")
        .upload_id(&first_id)
        .part_number(1)
        .copy_source("config/by-default")
        .send()
        .await
        .unwrap();
    s3.upload_part()
        .bucket("config")
        .key("listed")
        .upload_id(&first_id)
        .part_number(3)
        .body(ByteStream::from_static(b"third"))
        .send()
        .await
        .unwrap();
    let parts = s3
        .list_parts()
        .bucket("config")
        .key("listed")
        .upload_id(&first_id)
        .send()
        .await
        .unwrap();
    let listed: Vec<(Option<i32>, Option<i64>)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number(), p.size()))
        .collect();
    assert_eq!(listed, [(Some(1), Some(1)), (Some(3), Some(5))]);
    assert_eq!(
        code(
            s3.list_parts()
                .bucket("config")
                .key("listed")
                .upload_id("no-such-upload")
                .send()
                .await
        ),
        "NoSuchUpload"
    );
}

#[tokio::test]
async fn object_tags_on_put_copy_multipart_and_their_own_operations() {
    use aws_sdk_s3::types::{Tag, Tagging, TaggingDirective};
    let server = TestServer::start();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    s3.create_bucket().bucket("tags").send().await.unwrap();
    let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
    let tags_of = |key: &'static str| {
        let s3 = s3.clone();
        async move {
            let out = s3
                .get_object_tagging()
                .bucket("tags")
                .key(key)
                .send()
                .await
                .unwrap();
            out.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect::<Vec<_>>()
        }
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());

    // x-amz-tagging on PutObject (URL-encoded), counted on GET.
    s3.put_object()
        .bucket("tags")
        .key("a")
        .tagging("project=key%20trail&team=a%2Bb")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of("a").await,
        vec![pair("project", "key trail"), pair("team", "a+b")]
    );
    let got = s3
        .get_object()
        .bucket("tags")
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(2));

    // PutObjectTagging replaces the set, leaving body and ETag alone; DeleteObjectTagging
    // empties it.
    let etag = got.e_tag().unwrap().to_string();
    s3.put_object_tagging()
        .bucket("tags")
        .key("a")
        .tagging(
            Tagging::builder()
                .tag_set(tag("stage", "prod"))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of("a").await, vec![pair("stage", "prod")]);
    let got = s3
        .get_object()
        .bucket("tags")
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.e_tag(), Some(etag.as_str()));
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"tagged"
    );

    // CopyObject copies tags by default and replaces them with REPLACE.
    s3.copy_object()
        .bucket("tags")
        .key("copied")
        .copy_source("tags/a")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of("copied").await, vec![pair("stage", "prod")]);
    s3.copy_object()
        .bucket("tags")
        .key("replaced")
        .copy_source("tags/a")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("fresh=yes")
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of("replaced").await, vec![pair("fresh", "yes")]);

    // A multipart upload's tags arrive with the completed object.
    let upload = s3
        .create_multipart_upload()
        .bucket("tags")
        .key("multi")
        .tagging("parts=1")
        .send()
        .await
        .unwrap();
    let part = s3
        .upload_part()
        .bucket("tags")
        .key("multi")
        .upload_id(upload.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from_static(b"only part"))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("tags")
        .key("multi")
        .upload_id(upload.upload_id().unwrap())
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of("multi").await, vec![pair("parts", "1")]);

    s3.delete_object_tagging()
        .bucket("tags")
        .key("a")
        .send()
        .await
        .unwrap();
    assert!(tags_of("a").await.is_empty());
    let got = s3
        .get_object()
        .bucket("tags")
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), None);

    // Refusals: too many, duplicate keys, the aws: prefix, a missing object, a version of an
    // unversioned bucket. None of them changes the tags.
    let put_tags = |tags: Vec<Tag>| {
        s3.put_object_tagging()
            .bucket("tags")
            .key("copied")
            .tagging(Tagging::builder().set_tag_set(Some(tags)).build().unwrap())
            .send()
    };
    let eleven = (0..11).map(|i| tag(&format!("k{i}"), "v")).collect();
    assert_eq!(code(put_tags(eleven).await), "BadRequest");
    let duplicate = vec![tag("k", "1"), tag("k", "2")];
    assert_eq!(code(put_tags(duplicate).await), "InvalidTag");
    let result = s3
        .put_object()
        .bucket("tags")
        .key("reserved")
        .tagging("aws%3Aowner=me")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await;
    assert_eq!(code(result), "InvalidTag");
    let result = s3.get_object().bucket("tags").key("reserved").send().await;
    assert_eq!(code(result), "NoSuchKey", "a refused put stores nothing");
    let result = s3
        .get_object_tagging()
        .bucket("tags")
        .key("missing")
        .send()
        .await;
    assert_eq!(code(result), "NoSuchKey");
    let result = s3
        .get_object_tagging()
        .bucket("tags")
        .key("copied")
        .version_id("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")
        .send()
        .await;
    assert_eq!(code(result), "InvalidArgument");
    assert_eq!(tags_of("copied").await, vec![pair("stage", "prod")]);

    // Tagging calls are S3 data events.
    let events = server.events();
    for name in [
        "PutObjectTagging",
        "GetObjectTagging",
        "DeleteObjectTagging",
    ] {
        assert!(
            events.iter().any(|e| e["eventName"] == name
                && e["eventCategory"] == "Data"
                && e["resources"][0]["ARN"] == "arn:aws:s3:::tags/a"),
            "{name} journaled"
        );
    }
}

/// Files under the bucket's body directory.
fn body_files(server: &TestServer, bucket: &str) -> usize {
    std::fs::read_dir(server.data_dir().join("objects").join(bucket))
        .map(|dir| dir.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn small_bodies_live_in_their_row_and_sse_kms_etags_are_not_md5s() {
    let mut server = TestServer::start();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    s3.create_bucket().bucket("rows").send().await.unwrap();
    let one_segment: Vec<u8> = (0..65_536u32).map(|i| (i % 253) as u8).collect();
    let two_segments: Vec<u8> = (0..65_537u32).map(|i| (i % 241) as u8).collect();
    for (key, body) in [("one", &one_segment), ("two", &two_segments)] {
        s3.put_object()
            .bucket("rows")
            .key(key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
    }
    // 64 KiB is one segment, kept in the row; one byte more needs a file.
    assert_eq!(body_files(&server, "rows"), 1);
    // Overwriting the file-backed object with a small body removes its file.
    s3.put_object()
        .bucket("rows")
        .key("two")
        .body(ByteStream::from_static(b"small now"))
        .send()
        .await
        .unwrap();
    assert_eq!(body_files(&server, "rows"), 0);
    let ranged = s3
        .get_object()
        .bucket("rows")
        .key("one")
        .range("bytes=65000-65535")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.body.collect().await.unwrap().into_bytes().as_ref(),
        &one_segment[65_000..]
    );
    // A small copy is kept in its row as well, re-encrypted.
    s3.copy_object()
        .bucket("rows")
        .key("one-copy")
        .copy_source("rows/one")
        .send()
        .await
        .unwrap();
    assert_eq!(body_files(&server, "rows"), 0);
    // A part copied from a row-kept object is a part file like any other.
    let upload = s3
        .create_multipart_upload()
        .bucket("rows")
        .key("assembled")
        .send()
        .await
        .unwrap();
    let upload_id = upload.upload_id().unwrap();
    let part = s3
        .upload_part_copy()
        .bucket("rows")
        .key("assembled")
        .upload_id(upload_id)
        .part_number(1)
        .copy_source("rows/one")
        .copy_source_range("bytes=100-199")
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket("rows")
        .key("assembled")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.copy_part_result().unwrap().e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_object(&s3, "rows", "assembled").await,
        &one_segment[100..200]
    );
    assert_eq!(body_files(&server, "rows"), 1);

    // SSE-S3 ETags are the body's MD5; SSE-KMS ETags are not (as on AWS), yet they identify
    // the object for conditional requests. A Content-MD5 is still checked.
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    let plain = s3
        .put_object()
        .bucket("rows")
        .key("md5")
        .body(ByteStream::from_static(b"etag body"))
        .send()
        .await
        .unwrap();
    let md5 = format!("\"{}\"", hex_md5(b"etag body"));
    assert_eq!(plain.e_tag(), Some(md5.as_str()));
    let kms_put = s3
        .put_object()
        .bucket("rows")
        .key("kms")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .body(ByteStream::from_static(b"etag body"))
        .send()
        .await
        .unwrap();
    let kms_etag = kms_put.e_tag().unwrap().to_string();
    assert_ne!(kms_etag, md5);
    assert_eq!(kms_etag.trim_matches('"').len(), 32);
    let head = s3
        .head_object()
        .bucket("rows")
        .key("kms")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(kms_etag.as_str()));
    let matched = s3
        .get_object()
        .bucket("rows")
        .key("kms")
        .if_match(&kms_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        matched.body.collect().await.unwrap().into_bytes().as_ref(),
        b"etag body"
    );
    let wrong_md5 = s3
        .put_object()
        .bucket("rows")
        .key("kms-checked")
        .server_side_encryption(ServerSideEncryption::AwsKms)
        .ssekms_key_id(&key_id)
        .content_md5("AAAAAAAAAAAAAAAAAAAAAA==")
        .body(ByteStream::from_static(b"etag body"))
        .send()
        .await;
    assert_eq!(code(wrong_md5), "BadDigest");

    // Everything reads back the same after a restart.
    server.restart();
    let s3 = s3_client(&server.url, ROOT_KEY, ROOT_SECRET);
    assert_eq!(read_object(&s3, "rows", "one").await, one_segment);
    assert_eq!(read_object(&s3, "rows", "one-copy").await, one_segment);
    assert_eq!(
        read_object(&s3, "rows", "assembled").await,
        &one_segment[100..200]
    );
    assert_eq!(read_object(&s3, "rows", "two").await, b"small now");
    assert_eq!(read_object(&s3, "rows", "kms").await, b"etag body");
    assert_eq!(
        code(
            s3.get_object()
                .bucket("rows")
                .key("kms-checked")
                .send()
                .await
        ),
        "NoSuchKey"
    );
}

fn hex_md5(data: &[u8]) -> String {
    format!("{:x}", md5::compute(data))
}
