//! Starting the real keytrail binary and talking to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

pub const ROOT_KEY: &str = "test";
pub const ROOT_SECRET: &str = "test";
pub const ROOT_ACCOUNT: &str = "000000000000";
pub const ALICE_KEY: &str = "AKIAALICEEXAMPLE0001";
pub const ALICE_SECRET: &str = "alice/Secret+Key0000000000000000000000000";
pub const ALICE_ACCOUNT: &str = "111122223333";

/// The root user of alice's account, which manages her account's IAM users and roles.
#[allow(dead_code)]
pub const ROOT_111: &str = r#"
[[credentials]]
access_key_id = "AKIAROOT111122223333"
secret_access_key = "root/Secret+Key11112222333300000000000000"
account_id = "111122223333"
"#;
#[allow(dead_code)]
pub const ROOT_111_KEY: &str = "AKIAROOT111122223333";
#[allow(dead_code)]
pub const ROOT_111_SECRET: &str = "root/Secret+Key11112222333300000000000000";

pub const DECLARED_CREDENTIALS: &str = r#"
[[credentials]]
access_key_id = "test"
secret_access_key = "test"
account_id = "000000000000"

[[credentials]]
access_key_id = "AKIAALICEEXAMPLE0001"
secret_access_key = "alice/Secret+Key0000000000000000000000000"
account_id = "111122223333"
user_name = "alice"
"#;

/// The keytrail binary built by `cargo build -p keytrail` in the same target directory.
/// The error code of a call expected to fail, from any of the SDK's service clients.
pub fn error_code<E, R>(
    result: Result<
        R,
        aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
    >,
) -> String
where
    E: aws_sdk_kms::error::ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => aws_sdk_kms::error::ProvideErrorMetadata::code(&e)
            .unwrap_or("<no code>")
            .to_string(),
    }
}

/// Creates user `name` in the account of `iam` with one access key: the key's credentials.
#[allow(dead_code)]
pub async fn create_user_with_key(
    iam: &aws_sdk_iam::Client,
    name: &str,
) -> aws_credential_types::Credentials {
    iam.create_user()
        .user_name(name)
        .send()
        .await
        .expect("create user");
    let key = iam
        .create_access_key()
        .user_name(name)
        .send()
        .await
        .expect("create access key");
    let key = key.access_key().expect("access key");
    long_term(key.access_key_id(), key.secret_access_key())
}

/// The error code and message of a call expected to fail, from any of the SDK's clients.
#[allow(dead_code)]
pub fn error_code_and_message<E, R>(
    result: Result<
        R,
        aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
    >,
) -> (String, String)
where
    E: aws_sdk_kms::error::ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    use aws_sdk_kms::error::ProvideErrorMetadata;
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => (
            e.code().unwrap_or("<no code>").to_string(),
            e.message().unwrap_or_default().to_string(),
        ),
    }
}

/// The request id of a failed call, to find its event.
pub fn failed_request_id<E, R>(
    result: &Result<
        R,
        aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
    >,
) -> String
where
    E: aws_sdk_kms::operation::RequestId,
{
    use aws_sdk_kms::operation::RequestId;
    result
        .as_ref()
        .err()
        .and_then(|e| e.request_id())
        .expect("a request id on the error")
        .to_string()
}

pub fn keytrail_bin() -> PathBuf {
    if let Ok(path) = std::env::var("KEYTRAIL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("keytrail");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p keytrail` before the integration tests",
        bin.display()
    );
    bin
}

/// Runs `keytrail <args> serve --listen 127.0.0.1:0` with `envs` added, which must refuse to
/// start; returns what it wrote to stderr.
pub fn refused_start(args: &[&std::ffi::OsStr], envs: &[(&str, &str)]) -> String {
    let out = Command::new(keytrail_bin())
        .envs(envs.iter().copied())
        .args(args)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .output()
        .expect("run keytrail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "keytrail must refuse to start: {stderr}"
    );
    stderr
}

pub struct TestServer {
    pub child: Option<Child>,
    pub url: String,
    pub stdout: String,
    pub data: tempfile::TempDir,
    config: PathBuf,
    extra_args: Vec<String>,
}

impl TestServer {
    /// A server with `test`/`test` (root of 000000000000) and alice (IAM user of 111122223333).
    pub fn start() -> Self {
        Self::start_with(DECLARED_CREDENTIALS, &[])
    }

    pub fn start_with(config_toml: &str, extra_args: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let config = data.path().join("keytrail.toml");
        std::fs::write(&config, config_toml).expect("write config");
        let mut server = Self {
            child: None,
            url: String::new(),
            stdout: String::new(),
            data,
            config,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn();
        server
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data.path().join("data")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("server.log"))
            .expect("log file");
        let mut child = Command::new(keytrail_bin())
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.extra_args)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start keytrail");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let mut seen = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read stdout");
            assert!(
                n > 0 && std::time::Instant::now() < deadline,
                "keytrail exited before listening; stdout: {seen}; log: {}",
                std::fs::read_to_string(self.data.path().join("server.log")).unwrap_or_default()
            );
            seen.push_str(&line);
            if let Some(url) = line.trim().strip_prefix("keytrail listening on ") {
                self.url = url.to_string();
                break;
            }
        }
        self.stdout = seen;
        self.child = Some(child);
    }

    /// SIGTERM, wait for a clean exit, start again on the same data directory.
    /// Stops the server cleanly (unless it was killed already) and starts it again.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.terminate();
            assert!(status.success(), "keytrail exited with {status}");
        }
        self.spawn();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running server");
        let pid = child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        child.wait().expect("wait for keytrail")
    }

    pub fn sigkill(&mut self) {
        let mut child = self.child.take().expect("running server");
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }

    /// The journal as `keytrail events tail` prints it (works while the server runs).
    pub fn events(&self) -> Vec<serde_json::Value> {
        let out = Command::new(keytrail_bin())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["events", "tail", "-n", "100000"])
            .stderr(Stdio::null())
            .output()
            .expect("keytrail events tail");
        assert!(out.status.success(), "events tail failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("event JSON line"))
            .collect()
    }

    pub fn event_for_request(&self, request_id: &str) -> serde_json::Value {
        let matching: Vec<_> = self
            .events()
            .into_iter()
            .filter(|e| e["requestID"] == request_id)
            .collect();
        assert_eq!(matching.len(), 1, "one event for request {request_id}");
        matching.into_iter().next().unwrap_or_default()
    }

    pub fn assert_journaled_error(&self, request_id: &str, code: &str) {
        let event = self.event_for_request(request_id);
        assert_eq!(event["errorCode"], code, "{event}");
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn long_term(key: &str, secret: &str) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(key, secret, None, None, "test")
}

/// The temporary credentials an AssumeRole returned, for another client.
pub fn session(credentials: &aws_sdk_sts::types::Credentials) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        credentials.access_key_id(),
        credentials.secret_access_key(),
        Some(credentials.session_token().to_string()),
        None,
        "session",
    )
}

pub fn kms_client(url: &str, key: &str, secret: &str) -> aws_sdk_kms::Client {
    kms_client_with(url, long_term(key, secret))
}

pub fn kms_client_with(
    url: &str,
    credentials: aws_credential_types::Credentials,
) -> aws_sdk_kms::Client {
    kms_client_in(url, credentials, "us-east-1")
}

pub fn kms_client_in(
    url: &str,
    credentials: aws_credential_types::Credentials,
    region: &str,
) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::new()
        .behavior_version(aws_sdk_kms::config::BehaviorVersion::latest())
        .region(aws_sdk_kms::config::Region::new(region.to_string()))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

pub fn iam_client(url: &str, key: &str, secret: &str) -> aws_sdk_iam::Client {
    iam_client_with(url, long_term(key, secret))
}

pub fn iam_client_with(
    url: &str,
    credentials: aws_credential_types::Credentials,
) -> aws_sdk_iam::Client {
    let config = aws_sdk_iam::config::Builder::new()
        .behavior_version(aws_sdk_iam::config::BehaviorVersion::latest())
        .region(aws_sdk_iam::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_iam::Client::from_conf(config)
}

pub fn cloudtrail_client(url: &str, key: &str, secret: &str) -> aws_sdk_cloudtrail::Client {
    cloudtrail_client_in(url, long_term(key, secret), "us-east-1")
}

pub fn cloudtrail_client_in(
    url: &str,
    credentials: aws_credential_types::Credentials,
    region: &str,
) -> aws_sdk_cloudtrail::Client {
    let config = aws_sdk_cloudtrail::config::Builder::new()
        .behavior_version(aws_sdk_cloudtrail::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudtrail::config::Region::new(region.to_string()))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .retry_config(aws_sdk_cloudtrail::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_cloudtrail::Client::from_conf(config)
}

pub fn s3_client(url: &str, key: &str, secret: &str) -> aws_sdk_s3::Client {
    s3_client_with(url, long_term(key, secret))
}

pub fn s3_client_with(
    url: &str,
    credentials: aws_credential_types::Credentials,
) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .endpoint_url(url)
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

pub async fn sts_client(url: &str, key: &str, secret: &str) -> aws_sdk_sts::Client {
    sts_client_at(url, key, secret, None).await
}

/// An STS client whose clock is off by `skew` (to test the signature time window).
pub async fn sts_client_at(
    url: &str,
    key: &str,
    secret: &str,
    skew: Option<Duration>,
) -> aws_sdk_sts::Client {
    sts_client_with_at(url, long_term(key, secret), skew)
}

pub fn sts_client_with(
    url: &str,
    credentials: aws_credential_types::Credentials,
) -> aws_sdk_sts::Client {
    sts_client_with_at(url, credentials, None)
}

fn sts_client_with_at(
    url: &str,
    credentials: aws_credential_types::Credentials,
    skew: Option<Duration>,
) -> aws_sdk_sts::Client {
    let mut builder = aws_sdk_sts::config::Builder::new()
        .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
        .region(aws_sdk_sts::config::Region::new("eu-west-1"))
        .credentials_provider(credentials)
        .endpoint_url(url);
    if let Some(skew) = skew {
        let time = aws_smithy_async::time::StaticTimeSource::new(SystemTime::now() - skew);
        builder = builder.time_source(time);
    }
    aws_sdk_sts::Client::from_conf(builder.build())
}

/// A raw request signed by aws-sigv4, for what the SDK will not send (wrong scopes, tampering).
pub struct Signed {
    pub headers: Vec<(String, String)>,
}

#[derive(Clone, Copy)]
pub struct Creds<'a> {
    pub key: &'a str,
    pub secret: &'a str,
}

pub struct Scope<'a> {
    pub region: &'a str,
    pub service: &'a str,
    pub time: SystemTime,
}

pub fn root() -> Creds<'static> {
    Creds {
        key: ROOT_KEY,
        secret: ROOT_SECRET,
    }
}

/// Region us-east-1, signed now.
pub fn scope(service: &str) -> Scope<'_> {
    Scope {
        region: "us-east-1",
        service,
        time: SystemTime::now(),
    }
}

pub fn sign(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    creds: Creds<'_>,
    scope: Scope<'_>,
) -> Signed {
    let Creds { key, secret } = creds;
    let Scope {
        region,
        service,
        time,
    } = scope;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity = aws_credential_types::Credentials::new(key, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        settings.payload_checksum_kind = aws_sigv4::http_request::PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
        settings.uri_path_normalization_mode =
            aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let host = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("host in url");
    let mut all: Vec<(String, String)> = vec![("host".into(), host.into())];
    all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    let signable = SignableRequest::new(
        method,
        url,
        all.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    for (name, value) in instructions.headers() {
        all.push((name.to_string(), value.to_string()));
    }
    Signed { headers: all }
}

pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl RawResponse {
    /// The request id header of either protocol family.
    pub fn request_id(&self) -> String {
        ["x-amzn-requestid", "x-amz-request-id"]
            .iter()
            .find_map(|h| self.headers.get(*h))
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

pub async fn send(
    client: &reqwest::Client,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> RawResponse {
    let mut req = client.request(method.parse().expect("method"), url);
    for (n, v) in headers {
        if n != "host" {
            req = req.header(n, v);
        }
    }
    let resp = req.body(body).send().await.expect("send request");
    RawResponse {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.unwrap_or_default(),
    }
}

pub fn json_type(resp: &RawResponse) -> String {
    let v: serde_json::Value = serde_json::from_str(&resp.body).expect("JSON error body");
    v["__type"].as_str().unwrap_or_default().to_string()
}

pub fn xml_code(body: &str) -> String {
    let start = body.find("<Code>").map(|i| i + 6).unwrap_or(0);
    let end = body[start..]
        .find("</Code>")
        .map(|i| i + start)
        .unwrap_or(start);
    body[start..end].to_string()
}

/// `GET /_keytrail/usage?<query>` signed with `creds`: the status and the JSON body.
pub async fn usage(url: &str, creds: Creds<'_>, query: &str) -> (u16, serde_json::Value) {
    let endpoint = format!("{url}/_keytrail/usage?{query}");
    let signed = sign("GET", &endpoint, &[], b"", creds, scope("keytrail"));
    let resp = send(
        &reqwest::Client::new(),
        "GET",
        &endpoint,
        &signed.headers,
        Vec::new(),
    )
    .await;
    (
        resp.status,
        serde_json::from_str(&resp.body).unwrap_or(serde_json::Value::String(resp.body.clone())),
    )
}

/// The bucket policy CloudTrail's documentation gives for a trail's bucket (§5.11).
pub fn cloudtrail_bucket_policy(bucket: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
          {{"Sid":"AWSCloudTrailAclCheck20150319","Effect":"Allow","Principal":{{"Service":"cloudtrail.amazonaws.com"}},
            "Action":"s3:GetBucketAcl","Resource":"arn:aws:s3:::{bucket}"}},
          {{"Sid":"AWSCloudTrailWrite20150319","Effect":"Allow","Principal":{{"Service":"cloudtrail.amazonaws.com"}},
            "Action":"s3:PutObject","Resource":"arn:aws:s3:::{bucket}/*",
            "Condition":{{"StringEquals":{{"s3:x-amz-acl":"bucket-owner-full-control"}}}}}}]}}"#
    )
}

/// A key policy for `account` that lets CloudTrail encrypt the account's trails' logs (§5.12).
pub fn cloudtrail_key_policy(account: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[
  {{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"kms:*","Resource":"*"}},
  {{"Sid":"Allow CloudTrail to encrypt logs","Effect":"Allow","Principal":{{"Service":"cloudtrail.amazonaws.com"}},
   "Action":"kms:GenerateDataKey*","Resource":"*",
   "Condition":{{"StringLike":{{"kms:EncryptionContext:aws:cloudtrail:arn":"arn:aws:cloudtrail:*:{account}:trail/*"}}}}}}]}}"#
    )
}

/// An object's bytes, read with the SDK.
pub async fn read_object(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let got = s3.get_object().bucket(bucket).key(key).send().await;
    let got = got.unwrap_or_else(|e| panic!("GetObject {bucket}/{key}: {e:?}"));
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

/// A bucket default encryption rule: SSE-KMS under `key_id`, with or without a Bucket Key.
pub fn sse_kms_default(
    key_id: &str,
    bucket_key: bool,
) -> aws_sdk_s3::types::ServerSideEncryptionConfiguration {
    use aws_sdk_s3::types::{
        ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
        ServerSideEncryptionRule,
    };
    ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(
                    ServerSideEncryptionByDefault::builder()
                        .sse_algorithm(ServerSideEncryption::AwsKms)
                        .kms_master_key_id(key_id)
                        .build()
                        .expect("a complete default"),
                )
                .set_bucket_key_enabled(bucket_key.then_some(true))
                .build(),
        )
        .build()
        .expect("a complete configuration")
}
