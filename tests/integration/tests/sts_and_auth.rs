//! STS GetCallerIdentity and SigV4 verification, from the AWS SDK for Rust and raw signed
//! requests, with the journal checked after each call.

mod common;

use std::time::Duration;

use aws_sdk_sts::error::ProvideErrorMetadata;
use aws_sdk_sts::operation::RequestId;
use common::*;

const STS_FORM: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
const FORM: (&str, &str) = (
    "content-type",
    "application/x-www-form-urlencoded; charset=utf-8",
);

#[tokio::test]
async fn root_and_iam_user_get_their_identity_and_each_call_is_journaled() {
    let server = TestServer::start();

    let root = sts_client(&server.url, ROOT_KEY, ROOT_SECRET).await;
    let out = root.get_caller_identity().send().await.expect("root call");
    assert_eq!(out.account(), Some(ROOT_ACCOUNT));
    assert_eq!(out.arn(), Some("arn:aws:iam::000000000000:root"));
    assert_eq!(out.user_id(), Some(ROOT_ACCOUNT));
    let root_request = out.request_id().expect("request id header").to_string();

    let alice = sts_client(&server.url, ALICE_KEY, ALICE_SECRET).await;
    let out = alice
        .get_caller_identity()
        .send()
        .await
        .expect("alice call");
    assert_eq!(out.account(), Some(ALICE_ACCOUNT));
    assert_eq!(out.arn(), Some("arn:aws:iam::111122223333:user/alice"));
    let alice_id = out.user_id().expect("user id").to_string();
    assert!(
        alice_id.starts_with("AIDA") && alice_id.len() == 21,
        "{alice_id}"
    );
    let alice_request = out.request_id().expect("request id header").to_string();

    let event = server.event_for_request(&root_request);
    assert_eq!(event["eventSource"], "sts.amazonaws.com");
    assert_eq!(event["eventName"], "GetCallerIdentity");
    assert_eq!(event["awsRegion"], "eu-west-1");
    assert_eq!(event["userIdentity"]["type"], "Root");
    assert_eq!(event["userIdentity"]["accessKeyId"], ROOT_KEY);
    assert_eq!(event["recipientAccountId"], ROOT_ACCOUNT);
    assert_eq!(event["sourceIPAddress"], "127.0.0.1");
    assert_eq!(event["readOnly"], true);
    assert_eq!(event["eventType"], "AwsApiCall");
    assert!(event.get("errorCode").is_none());
    assert!(
        event["userAgent"]
            .as_str()
            .is_some_and(|ua| ua.contains("aws-sdk-rust"))
    );

    let event = server.event_for_request(&alice_request);
    assert_eq!(event["userIdentity"]["type"], "IAMUser");
    assert_eq!(event["userIdentity"]["userName"], "alice");
    assert_eq!(event["userIdentity"]["principalId"], alice_id.as_str());
    assert_eq!(event["recipientAccountId"], ALICE_ACCOUNT);
}

#[tokio::test]
async fn sdk_rejections_carry_aws_error_codes_and_are_journaled_when_the_key_is_known() {
    let server = TestServer::start();

    let wrong_secret = sts_client(&server.url, ROOT_KEY, "not-the-secret").await;
    let err = wrong_secret
        .get_caller_identity()
        .send()
        .await
        .expect_err("wrong secret must fail");
    let err = err.into_service_error();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    let failed_request = err.meta().request_id().expect("request id").to_string();
    let event = server.event_for_request(&failed_request);
    assert_eq!(event["errorCode"], "SignatureDoesNotMatch");
    assert_eq!(event["userIdentity"]["accessKeyId"], ROOT_KEY);

    let unknown = sts_client(&server.url, "AKIANOSUCHKEY0000000", "x").await;
    let err = unknown
        .get_caller_identity()
        .send()
        .await
        .expect_err("unknown key must fail")
        .into_service_error();
    assert_eq!(err.code(), Some("InvalidClientTokenId"));
    let unknown_request = err.meta().request_id().expect("request id").to_string();
    assert!(
        server
            .events()
            .iter()
            .all(|e| e["requestID"] != unknown_request.as_str()),
        "an unknown key belongs to no account: nothing to journal"
    );

    // A clock 20 minutes slow: the first attempt is refused as AWS refuses it ...
    let skewed = sts_client_at(
        &server.url,
        ROOT_KEY,
        ROOT_SECRET,
        Some(Duration::from_secs(20 * 60)),
    )
    .await;
    let no_retry = aws_sdk_sts::Client::from_conf(
        skewed
            .config()
            .to_builder()
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::disabled())
            .build(),
    );
    let err = no_retry
        .get_caller_identity()
        .send()
        .await
        .expect_err("a clock 20 minutes slow must fail")
        .into_service_error();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    assert!(
        err.message()
            .is_some_and(|m| m.contains("Signature expired")),
        "{:?}",
        err.message()
    );
    let skew_request = err.meta().request_id().expect("request id").to_string();
    server.assert_journaled_error(&skew_request, "SignatureDoesNotMatch");
    // ... and, as against AWS, the SDK corrects its clock from our `Date` header and retries.
    skewed
        .get_caller_identity()
        .send()
        .await
        .expect("the SDK's clock-skew correction succeeds on retry");

    let within_window = sts_client_at(
        &server.url,
        ROOT_KEY,
        ROOT_SECRET,
        Some(Duration::from_secs(5 * 60)),
    )
    .await;
    within_window
        .get_caller_identity()
        .send()
        .await
        .expect("5 minutes of skew is within the window");
}

#[tokio::test]
async fn raw_requests_wrong_scope_tampering_and_missing_auth() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let url = format!("{}/", server.url);

    // A correct raw request works (the baseline for the negative cases below).
    let ok = sign("POST", &url, &[FORM], STS_FORM, root(), scope("sts"));
    let resp = send(&http, "POST", &url, &ok.headers, STS_FORM.to_vec()).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("<Account>000000000000</Account>"));
    assert!(resp.headers.contains_key("x-amzn-requestid"));

    // The credential scope names another service.
    let kms_scoped = sign("POST", &url, &[FORM], STS_FORM, root(), scope("kms"));
    let resp = send(&http, "POST", &url, &kms_scoped.headers, STS_FORM.to_vec()).await;
    assert_eq!(resp.status, 403);
    assert_eq!(xml_code(&resp.body), "SignatureDoesNotMatch");
    assert!(
        resp.body
            .contains("Credential should be scoped to correct service")
    );

    // The body is changed after signing.
    let resp = send(
        &http,
        "POST",
        &url,
        &ok.headers,
        b"Action=GetCallerIdentity&Version=2011-06-16".to_vec(),
    )
    .await;
    assert_eq!(resp.status, 403);
    assert_eq!(xml_code(&resp.body), "SignatureDoesNotMatch");
    server.assert_journaled_error(&resp.request_id(), "SignatureDoesNotMatch");

    // No Authorization header at all.
    let resp = send(
        &http,
        "POST",
        &url,
        &[(FORM.0.into(), FORM.1.into())],
        STS_FORM.to_vec(),
    )
    .await;
    assert_eq!(resp.status, 403);
    assert_eq!(xml_code(&resp.body), "MissingAuthenticationToken");

    // A half-written Authorization header.
    let resp = send(
        &http,
        "POST",
        &url,
        &[
            (FORM.0.into(), FORM.1.into()),
            (
                "authorization".into(),
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/sts/aws4_request".into(),
            ),
        ],
        STS_FORM.to_vec(),
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(xml_code(&resp.body), "IncompleteSignature");

    // An action STS does not have.
    let body = b"Action=NoSuchAction&Version=2011-06-15";
    let signed = sign("POST", &url, &[FORM], body, root(), scope("sts"));
    let resp = send(&http, "POST", &url, &signed.headers, body.to_vec()).await;
    assert_eq!(resp.status, 400);
    assert_eq!(xml_code(&resp.body), "InvalidAction");
}

/// Signs `body` for `target` with `creds`/`scope` and sends it as awsJson 1.1.
async fn json_call(
    server: &TestServer,
    target: &str,
    body: &[u8],
    creds: Creds<'_>,
    scope: Scope<'_>,
) -> RawResponse {
    let url = format!("{}/", server.url);
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let signed = sign("POST", &url, &headers, body, creds, scope);
    send(
        &reqwest::Client::new(),
        "POST",
        &url,
        &signed.headers,
        body.to_vec(),
    )
    .await
}

#[tokio::test]
async fn json_services_answer_with_aws_json_errors() {
    let server = TestServer::start();
    const LIST_KEYS: &str = "TrentService.ListKeys";

    let resp = json_call(&server, LIST_KEYS, b"{}", root(), scope("kms")).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    let event = server.event_for_request(&resp.request_id());
    assert_eq!(event["eventSource"], "kms.amazonaws.com");
    assert_eq!(event["eventName"], "ListKeys");
    assert_eq!(event["readOnly"], true);
    assert!(event.get("errorCode").is_none());

    // An operation KMS does not have (keytrail serves every operation of the KMS model).
    let resp = json_call(
        &server,
        "TrentService.DescribeKeyHistory",
        b"{}",
        root(),
        scope("kms"),
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(json_type(&resp), "UnknownOperationException");
    server.assert_journaled_error(&resp.request_id(), "UnknownOperationException");

    let unknown = Creds {
        key: "AKIANOSUCHKEY0000000",
        secret: "x",
    };
    let resp = json_call(&server, LIST_KEYS, b"{}", unknown, scope("kms")).await;
    assert_eq!(resp.status, 400);
    assert_eq!(json_type(&resp), "UnrecognizedClientException");

    let wrong_secret = Creds {
        key: ROOT_KEY,
        secret: "wrong",
    };
    let resp = json_call(&server, LIST_KEYS, b"{}", wrong_secret, scope("kms")).await;
    assert_eq!(json_type(&resp), "InvalidSignatureException");
    server.assert_journaled_error(&resp.request_id(), "InvalidSignatureException");

    let resp = json_call(&server, LIST_KEYS, b"{}", root(), scope("cloudtrail")).await;
    assert_eq!(json_type(&resp), "InvalidSignatureException");
    assert!(resp.body.contains("scoped to correct service: 'kms'"));

    let mut old = scope("kms");
    old.time -= Duration::from_secs(16 * 60);
    let resp = json_call(&server, LIST_KEYS, b"{}", root(), old).await;
    assert_eq!(json_type(&resp), "InvalidSignatureException");
    assert!(resp.body.contains("Signature expired"));

    let resp = json_call(&server, LIST_KEYS, b"{not json", root(), scope("kms")).await;
    assert_eq!(json_type(&resp), "SerializationException");

    let resp = json_call(
        &server,
        "DynamoDB_20120810.ListTables",
        b"{}",
        root(),
        scope("dynamodb"),
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(json_type(&resp), "UnknownOperationException");

    let mut eu = scope("cloudtrail");
    eu.region = "eu-west-3";
    let resp = json_call(
        &server,
        "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.DescribeTrails",
        b"{}",
        root(),
        eu,
    )
    .await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(resp.body.contains("\"trailList\":[]"), "{}", resp.body);
    let event = server.event_for_request(&resp.request_id());
    assert_eq!(event["eventSource"], "cloudtrail.amazonaws.com");
    assert_eq!(event["awsRegion"], "eu-west-3");

    // Larger than the 1 MiB limit for JSON bodies: refused before it is read.
    let big = vec![b' '; 2 * 1024 * 1024];
    let resp = json_call(&server, LIST_KEYS, &big, root(), scope("kms")).await;
    assert_eq!(resp.status, 413);
    assert_eq!(json_type(&resp), "RequestEntityTooLarge");

    // No signature at all.
    let url = format!("{}/", server.url);
    let headers = [
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("x-amz-target".to_string(), LIST_KEYS.to_string()),
    ];
    let resp = send(
        &reqwest::Client::new(),
        "POST",
        &url,
        &headers,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(resp.status, 403);
    assert_eq!(json_type(&resp), "MissingAuthenticationTokenException");
}

#[tokio::test]
async fn s3_requests_are_verified_by_signature() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let url = format!("{}/", server.url);

    let signed = sign("GET", &url, &[], b"", root(), scope("s3"));
    let resp = send(&http, "GET", &url, &signed.headers, vec![]).await;
    assert_eq!(resp.status, 200, "{}", resp.body);
    assert!(
        resp.body.contains("<ListAllMyBucketsResult"),
        "{}",
        resp.body
    );
    let request_id = resp.request_id();
    assert_eq!(request_id.len(), 16);
    assert!(resp.headers.contains_key("x-amz-id-2"));
    let event = server.event_for_request(&request_id);
    assert_eq!(event["eventSource"], "s3.amazonaws.com");
    assert_eq!(event["eventName"], "ListBuckets");
    assert!(event.get("errorCode").is_none());

    let wrong = sign(
        "GET",
        &url,
        &[],
        b"",
        Creds {
            key: ROOT_KEY,
            secret: "wrong",
        },
        scope("s3"),
    );
    let resp = send(&http, "GET", &url, &wrong.headers, vec![]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(xml_code(&resp.body), "SignatureDoesNotMatch");
    server.assert_journaled_error(&resp.request_id(), "SignatureDoesNotMatch");

    let unknown = sign(
        "GET",
        &url,
        &[],
        b"",
        Creds {
            key: "AKIANOSUCHKEY0000000",
            secret: "x",
        },
        scope("s3"),
    );
    let resp = send(&http, "GET", &url, &unknown.headers, vec![]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(xml_code(&resp.body), "InvalidAccessKeyId");

    let resp = send(&http, "GET", &url, &[], vec![]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(xml_code(&resp.body), "AccessDenied");

    let v2 = vec![(
        "authorization".to_string(),
        "AWS test:c2lnbmF0dXJl".to_string(),
    )];
    let resp = send(&http, "GET", &url, &v2, vec![]).await;
    assert_eq!(resp.status, 400);
    assert_eq!(xml_code(&resp.body), "InvalidRequest");

    let mut stale = scope("s3");
    stale.time -= Duration::from_secs(20 * 60);
    let signed = sign("GET", &url, &[], b"", root(), stale);
    let resp = send(&http, "GET", &url, &signed.headers, vec![]).await;
    assert_eq!(resp.status, 403);
    assert_eq!(xml_code(&resp.body), "RequestTimeTooSkewed");
}

#[tokio::test]
async fn s3_virtual_hosted_style_names_the_bucket() {
    let server = TestServer::start();
    let addr: std::net::SocketAddr = server
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("server address");
    let http = reqwest::Client::builder()
        .resolve("logs-bucket.localhost", addr)
        .build()
        .unwrap();
    let url = format!(
        "http://logs-bucket.localhost:{}/AWSLogs/a.json.gz",
        addr.port()
    );
    let signed = sign("GET", &url, &[], b"", root(), scope("s3"));
    let resp = send(&http, "GET", &url, &signed.headers, vec![]).await;
    assert_eq!(resp.status, 404, "{}", resp.body);
    assert_eq!(xml_code(&resp.body), "NoSuchBucket");
    let event = server.event_for_request(&resp.request_id());
    assert_eq!(event["eventName"], "GetObject");
    assert_eq!(event["errorCode"], "NoSuchBucket");
    assert_eq!(event["requestParameters"]["bucketName"], "logs-bucket");
    assert_eq!(event["requestParameters"]["key"], "AWSLogs/a.json.gz");
    assert_eq!(event["managementEvent"], false);
    assert_eq!(event["eventCategory"], "Data");
    assert_eq!(
        event["resources"][0]["ARN"],
        "arn:aws:s3:::logs-bucket/AWSLogs/a.json.gz"
    );
}

/// Sends the head of a POST to `/` with `headers`, declaring a two-byte body it never sends, and
/// returns the status and body of the server's answer (which must come within 5 s).
async fn held_back_body(server: &TestServer, headers: &[(&str, &str)]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = server.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut head = format!("POST / HTTP/1.1\r\nhost: {address}\r\ncontent-length: 2\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = async {
        let mut received = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            received.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap();
                if body.len() >= length || n == 0 {
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    return (status, body.to_string());
                }
            }
            assert!(n > 0, "connection closed before an answer: {text}");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("an answer without the body")
}

/// The server's Prometheus metrics as text.
async fn metrics_text(http: &reqwest::Client, server: &TestServer) -> String {
    http.get(format!("{}/_keytrail/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_and_metrics() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let resp = http
        .get(format!("{}/_keytrail/health", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let client = sts_client(&server.url, ROOT_KEY, ROOT_SECRET).await;
    client.get_caller_identity().send().await.unwrap();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = kms.create_key().send().await.unwrap();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    let text = metrics_text(&http, &server).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("keytrail_requests_total")
                && l.contains("operation=\"GetCallerIdentity\"")
                && l.contains("status=\"200\"")),
        "{text}"
    );
    assert!(text.contains("keytrail_request_duration_seconds_bucket"));
    assert!(text.contains("keytrail_journal_commit_batch_size"));
    // KMS requests per key and operation.
    assert!(
        text.lines()
            .any(|l| l.starts_with("keytrail_kms_requests_total")
                && l.contains(&format!("key=\"{key_arn}\""))
                && l.contains("operation=\"CreateKey\"")),
        "{text}"
    );
}

/// Size and time limits answer in each protocol's own error shape, before any handling (and so
/// before authentication), and the refused requests are counted in the metrics.
#[tokio::test]
async fn limits_answer_in_each_protocols_shape_and_are_counted() {
    const LIST_KEYS: &str = "TrentService.ListKeys";
    // No time at all for JSON and query calls: any call that waits (every call waits for its
    // event to be durable) runs out.
    let server = TestServer::start_with(
        &format!(
            "max_api_body_bytes = 1024\nmax_s3_body_bytes = 2048\napi_timeout_seconds = 0\n\
             {DECLARED_CREDENTIALS}"
        ),
        &[],
    );
    let http = reqwest::Client::new();
    let url = format!("{}/", server.url);

    // A query body over the API limit: refused in the query protocol's XML.
    let mut big_form = STS_FORM.to_vec();
    big_form.extend(std::iter::repeat_n(b'&', 2000));
    let signed = sign("POST", &url, &[FORM], &big_form, root(), scope("sts"));
    let resp = send(&http, "POST", &url, &signed.headers, big_form.clone()).await;
    assert_eq!(resp.status, 413, "{}", resp.body);
    assert_eq!(xml_code(&resp.body), "RequestEntityTooLarge");

    // A JSON body over it: refused as awsJson.
    let resp = json_call(&server, LIST_KEYS, &[b' '; 1500], root(), scope("kms")).await;
    assert_eq!(resp.status, 413, "{}", resp.body);
    assert_eq!(json_type(&resp), "RequestEntityTooLarge");

    // An S3 upload over the S3 limit, unsigned: refused as S3 XML before its signature is
    // looked at.
    let resp = send(
        &http,
        "PUT",
        &format!("{}/bucket/object", server.url),
        &[],
        vec![b'x'; 4096],
    )
    .await;
    assert_eq!(resp.status, 400, "{}", resp.body);
    assert_eq!(xml_code(&resp.body), "EntityTooLarge");

    // Within the size limits but out of time: the body is held back longer than the deadline
    // (which covers reading it), so the call cannot finish in time whatever the machine's pace.
    let (status, body) = held_back_body(&server, &[("x-amz-target", LIST_KEYS)]).await;
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("RequestTimeoutException"), "{body}");
    let (status, body) = held_back_body(&server, &[FORM]).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(xml_code(&body), "RequestTimeoutException");

    let metrics = metrics_text(&http, &server).await;
    let counted = |service: &str, status: &str| {
        metrics.lines().any(|l| {
            l.starts_with("keytrail_requests_total")
                && l.contains(&format!("service=\"{service}\""))
                && l.contains("operation=\"unknown\"")
                && l.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(counted("sts", "413"), "{metrics}");
    assert!(counted("unknown", "413"), "{metrics}");
    assert!(counted("s3", "400"), "{metrics}");
    assert!(counted("unknown", "408"), "{metrics}");
    assert!(counted("sts", "408"), "{metrics}");
}

/// A call runs out once it has taken the configured deadline (give or take the watch's look,
/// a sixteenth of it), not before; calls that finish in time are answered as usual, on the same
/// server, before and after.
#[tokio::test]
async fn a_call_runs_out_at_its_deadline_and_not_before() {
    const LIST_KEYS: &str = "TrentService.ListKeys";
    let server = TestServer::start_with(
        &format!("api_timeout_seconds = 1\n{DECLARED_CREDENTIALS}"),
        &[],
    );
    let in_time = json_call(&server, LIST_KEYS, b"{}", root(), scope("kms")).await;
    assert_eq!(in_time.status, 200, "{}", in_time.body);

    let started = std::time::Instant::now();
    let (status, body) = held_back_body(&server, &[("x-amz-target", LIST_KEYS)]).await;
    let took = started.elapsed();
    assert_eq!(status, 408, "{body}");
    assert!(body.contains("RequestTimeoutException"), "{body}");
    assert!(took >= Duration::from_secs(1), "ran out after {took:?}");
    assert!(took < Duration::from_secs(3), "ran out only after {took:?}");

    let in_time = json_call(&server, LIST_KEYS, b"{}", root(), scope("kms")).await;
    assert_eq!(in_time.status, 200, "{}", in_time.body);
}

/// Connections are served on the configured number of connection threads, many at once; zero
/// threads is refused at start with a message naming the setting.
#[tokio::test]
async fn connections_are_served_on_the_configured_connection_threads() {
    let server = TestServer::start_with(
        &format!("connection_threads = 3\n{DECLARED_CREDENTIALS}"),
        &[],
    );

    // Twelve clients, each on connections of its own, all answered.
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let kms = kms_client(&server.url, "test", "test");
        calls.spawn(async move {
            for _ in 0..5 {
                let random = kms.generate_random().number_of_bytes(16).send().await;
                let bytes = random
                    .expect("GenerateRandom")
                    .plaintext()
                    .map(|p| p.as_ref().len());
                assert_eq!(bytes, Some(16));
            }
        });
    }
    while let Some(done) = calls.join_next().await {
        done.expect("a client's calls");
    }
    // Counted once the server has answered (they start after it prints its address).
    let pid = server.child.as_ref().expect("running server").id();
    let connection_threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("keytrail-conn-"))
        .count();
    assert_eq!(connection_threads, 3);

    let config = server.data.path().join("no-threads.toml");
    std::fs::write(&config, "connection_threads = 0\n").expect("write config");
    let other_data = server.data.path().join("other-data");
    let stderr = refused_start(
        &[
            "--config".as_ref(),
            config.as_os_str(),
            "--data-dir".as_ref(),
            other_data.as_os_str(),
        ],
        &[],
    );
    assert!(
        stderr.contains("connection_threads must be at least 1"),
        "{stderr}"
    );
}
