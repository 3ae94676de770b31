//! S3 through the AWS SDK for Rust (with its default flexible checksums, for every algorithm),
//! plus hand-made aws-chunked uploads with a checksum trailer — one honest, one lying.

mod common;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use common::*;

fn code<E: ProvideErrorMetadata, R: std::fmt::Debug>(
    result: Result<R, aws_sdk_s3::error::SdkError<E>>,
) -> String {
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e.code().unwrap_or("<no code>").to_string(),
    }
}

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
