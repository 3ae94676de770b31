//! S3 through s3s: signatures (header, presigned, aws-chunked) are verified by s3s with our
//! secret lookup; this module adds what s3s does not know — virtual hosts under our domains,
//! refusing SigV2, request ids, and one audit event per call.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use keytrail_audit::{EventCategory, Principal, Resource};
use keytrail_iam::{Credential, Identities};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::path::S3Path;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Result, s3_error};

use crate::AppState;
use crate::call::{CallOutcome, call_context, journal, new_s3_host_id, new_s3_request_id};
use crate::errors::xml_escape;

const EVENT_SOURCE: &str = "s3.amazonaws.com";
/// Error bodies are small; anything larger is not an S3 error document.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The request id chosen for an S3 request before s3s sees it, so the operation's own KMS
/// calls carry the same id as the S3 event.
#[derive(Clone)]
struct S3RequestId(String);

struct SecretLookup {
    identities: Arc<Identities>,
}

tokio::task_local! {
    /// The session token of the S3 request being served: s3s asks for secrets by access key
    /// alone, and temporary credentials need their token too.
    static SESSION_TOKEN: Option<String>;
}

/// The credentials of an S3 request, with its session token if it has one.
async fn resolve_s3_credential(
    identities: &Identities,
    access_key: &str,
) -> S3Result<std::sync::Arc<keytrail_iam::ResolvedKey>> {
    let token = SESSION_TOKEN.try_with(Clone::clone).ok().flatten();
    match identities
        .resolve_credential(access_key, token.as_deref())
        .await
    {
        Ok(Credential::Known(key)) if key.active => Ok(key),
        Ok(Credential::Known(_) | Credential::UnknownKey) => Err(s3_error!(
            InvalidAccessKeyId,
            "The AWS Access Key Id you provided does not exist in our records."
        )),
        Ok(Credential::InvalidToken) => Err(s3_error!(
            InvalidToken,
            "The provided token is malformed or otherwise invalid."
        )),
        Ok(Credential::ExpiredToken(_)) => {
            Err(s3_error!(ExpiredToken, "The provided token has expired."))
        }
        Err(e) => {
            tracing::error!(error = %e, "access key lookup failed");
            Err(s3_error!(InternalError))
        }
    }
}

/// The session token of a request: the header, or the presigned URL's query parameter.
fn session_token_of(parts: &Parts) -> Option<String> {
    if let Some(v) = parts.headers.get("x-amz-security-token") {
        return Some(crate::call::header_text(v).into_owned());
    }
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(parts.uri.query()?).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "X-Amz-Security-Token")
        .map(|(_, v)| v)
}

#[async_trait]
impl S3Auth for SecretLookup {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let key = resolve_s3_credential(&self.identities, access_key).await?;
        Ok(SecretKey::from(key.secret.to_string()))
    }
}

/// What s3s learned about a call, handed back to [`handle`] for the event record.
#[derive(Default)]
struct CallSlot(Mutex<Option<S3Call>>);

struct S3Call {
    operation: String,
    principal: Principal,
    bucket: Option<String>,
    key: Option<String>,
}

struct CallRecorder {
    identities: Arc<Identities>,
    authorizer: Arc<keytrail_s3::S3Authorizer>,
}

#[async_trait]
impl S3Access for CallRecorder {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let Some(credentials) = cx.credentials() else {
            // Anonymous access needs a bucket policy allowing it (authorization issue).
            return Err(s3_error!(AccessDenied, "Anonymous access is not allowed"));
        };
        let principal = resolve_s3_credential(&self.identities, &credentials.access_key)
            .await?
            .principal
            .clone();
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        let operation = cx.s3_op().name().to_string();
        let region = claimed_credential_of(cx.headers(), cx.uri())
            .map(|(_, region)| region)
            .unwrap_or_else(|| "us-east-1".to_string());
        let request_id = cx
            .extensions_mut()
            .get::<S3RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let ctx = {
            let (headers, uri) = (cx.headers().clone(), cx.uri().clone());
            let head = crate::call::RequestHead {
                headers: &headers,
                uri: &uri,
                extensions: &*cx.extensions_mut(),
            };
            crate::call::call_context_of(&head, &request_id, region, principal.clone())
        };
        cx.extensions_mut().insert(ctx.clone());
        if let Some(slot) = cx.extensions_mut().get::<Arc<CallSlot>>()
            && let Ok(mut slot) = slot.0.lock()
        {
            *slot = Some(S3Call {
                operation: operation.clone(),
                principal,
                bucket: bucket.clone(),
                key: key.clone(),
            });
        }
        self.authorizer
            .authorize_operation(
                &ctx,
                &operation,
                bucket.as_deref(),
                key.as_deref(),
                cx.headers(),
                cx.uri(),
            )
            .await
    }
}

/// Virtual-hosted style under our domains (`<bucket>.localhost`); any other host — an IP
/// address, a plain name — is path style. Unknown hosts are never taken as bucket names.
struct DomainHosts {
    domains: Vec<String>,
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

fn bucket_from_host<'a>(host: &'a str, domains: &[String]) -> Option<&'a str> {
    let hostname = strip_port(host);
    domains.iter().find_map(|domain| {
        hostname
            .strip_suffix(domain.as_str())
            .and_then(|p| p.strip_suffix('.'))
            .filter(|p| !p.is_empty())
    })
}

impl S3Host for DomainHosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let hostname = strip_port(host);
        Ok(match bucket_from_host(host, &self.domains) {
            Some(bucket) => VirtualHost::new(hostname).with_bucket(bucket),
            None => VirtualHost::new(hostname),
        })
    }
}

pub fn build_service(
    engine: keytrail_s3::S3Engine,
    identities: Arc<Identities>,
    domains: Vec<String>,
) -> S3Service {
    let authorizer = engine.authorizer();
    let mut builder = S3ServiceBuilder::new(engine);
    builder.set_auth(SecretLookup {
        identities: Arc::clone(&identities),
    });
    builder.set_access(CallRecorder {
        identities,
        authorizer,
    });
    builder.set_host(DomainHosts { domains });
    builder.build()
}

pub(crate) fn s3_error_response(
    code: &str,
    message: &str,
    status: StatusCode,
    request_id: &str,
    host_id: &str,
) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>{}</RequestId><HostId>{}</HostId></Error>",
        xml_escape(code),
        xml_escape(message),
        xml_escape(request_id),
        xml_escape(host_id)
    );
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str("application/xml") {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

fn is_sigv2(parts: &Parts) -> bool {
    let header_v2 = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("AWS "));
    let query_v2 = parts
        .uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("AWSAccessKeyId=")));
    header_v2 || query_v2
}

/// The access key and region a request claims, from the header or the presigned query.
fn claimed_credential(parts: &Parts) -> Option<(String, String)> {
    claimed_credential_of(&parts.headers, &parts.uri)
}

fn claimed_credential_of(headers: &http::HeaderMap, uri: &http::Uri) -> Option<(String, String)> {
    if let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| keytrail_sigv4::parse_authorization(v).ok())
    {
        return Some((auth.access_key_id.to_owned(), auth.scope.region.to_owned()));
    }
    let query = uri.query()?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).ok()?;
    let credential = pairs
        .into_iter()
        .find(|(k, _)| k == "X-Amz-Credential")
        .map(|(_, v)| v)?;
    let mut fields = credential.split('/');
    let key = fields.next()?.to_string();
    let region = fields.nth(1)?.to_string();
    Some((key, region))
}

fn has_query_param(parts: &Parts, name: &str) -> bool {
    parts.uri.query().is_some_and(|q| {
        q.split('&')
            .any(|p| p == name || p.starts_with(&format!("{name}=")))
    })
}

/// Names the operation of a request s3s rejected before routing it (a bad signature, say), so
/// the failure can still be journaled under an operation name.
fn guess_operation(parts: &Parts, bucket: Option<&str>, key: Option<&str>) -> &'static str {
    use http::Method;
    let q = |name| has_query_param(parts, name);
    match (bucket, key, &parts.method) {
        (None, _, _) => "ListBuckets",
        (Some(_), None, &Method::PUT) => "CreateBucket",
        (Some(_), None, &Method::DELETE) => "DeleteBucket",
        (Some(_), None, &Method::HEAD) => "HeadBucket",
        (Some(_), None, &Method::POST) if q("delete") => "DeleteObjects",
        (Some(_), None, _) if q("location") => "GetBucketLocation",
        (Some(_), None, _) if q("list-type") => "ListObjectsV2",
        (Some(_), None, _) => "ListObjects",
        (Some(_), Some(_), &Method::PUT) if q("partNumber") && q("uploadId") => "UploadPart",
        (Some(_), Some(_), &Method::PUT) if parts.headers.contains_key("x-amz-copy-source") => {
            "CopyObject"
        }
        (Some(_), Some(_), &Method::PUT) => "PutObject",
        (Some(_), Some(_), &Method::HEAD) => "HeadObject",
        (Some(_), Some(_), &Method::DELETE) if q("uploadId") => "AbortMultipartUpload",
        (Some(_), Some(_), &Method::DELETE) => "DeleteObject",
        (Some(_), Some(_), &Method::POST) if q("uploads") => "CreateMultipartUpload",
        (Some(_), Some(_), &Method::POST) if q("uploadId") => "CompleteMultipartUpload",
        (Some(_), Some(_), _) if q("uploadId") => "ListParts",
        (Some(_), Some(_), _) => "GetObject",
    }
}

/// Object-level operations are data events (§5.8); everything else is management.
fn category(operation: &str) -> EventCategory {
    const DATA: &[&str] = &[
        "AbortMultipartUpload",
        "CompleteMultipartUpload",
        "CopyObject",
        "CreateMultipartUpload",
        "DeleteObject",
        "DeleteObjects",
        "DeleteObjectTagging",
        "GetObject",
        "GetObjectAcl",
        "GetObjectAttributes",
        "GetObjectLegalHold",
        "GetObjectRetention",
        "GetObjectTagging",
        "HeadObject",
        "ListParts",
        "PostObject",
        "PutObject",
        "PutObjectAcl",
        "PutObjectLegalHold",
        "PutObjectRetention",
        "PutObjectTagging",
        "RestoreObject",
        "SelectObjectContent",
        "UploadPart",
        "UploadPartCopy",
        "ListObjectsV2",
        "ListObjectVersions",
        "HeadBucket",
    ];
    if DATA.contains(&operation) {
        EventCategory::Data
    } else {
        EventCategory::Management
    }
}

fn path_bucket_key(parts: &Parts, domains: &[String]) -> (Option<String>, Option<String>) {
    let host = crate::call::host_header(&parts.into());
    let path = parts.uri.path().trim_start_matches('/');
    let decode = percent_decode;
    match bucket_from_host(&host, domains) {
        Some(bucket) => (
            Some(bucket.to_string()),
            (!path.is_empty()).then(|| decode(path)),
        ),
        None => match path.split_once('/') {
            None if path.is_empty() => (None, None),
            None => (Some(decode(path)), None),
            Some((b, "")) => (Some(decode(b)), None),
            Some((b, k)) => (Some(decode(b)), Some(decode(k))),
        },
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn extract_tag(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_string())
}

fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::FORBIDDEN => "AccessDenied",
        StatusCode::NOT_IMPLEMENTED => "NotImplemented",
        StatusCode::PRECONDITION_FAILED => "PreconditionFailed",
        s if s.is_server_error() => "InternalError",
        _ => "BadRequest",
    }
}

pub async fn handle(
    state: &AppState,
    req: Request<Body>,
) -> (&'static str, String, Response<Body>) {
    let request_id = new_s3_request_id();
    let host_id = new_s3_host_id();
    let (mut parts, body) = req.into_parts();
    let domains = &state.config.virtual_host_domains;

    if is_sigv2(&parts) {
        let resp = s3_error_response(
            "InvalidRequest",
            "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.",
            StatusCode::BAD_REQUEST,
            &request_id,
            &host_id,
        );
        return (
            "s3",
            "unknown".into(),
            with_ids(resp, &request_id, &host_id),
        );
    }

    let slot = Arc::new(CallSlot::default());
    parts.extensions.insert(Arc::clone(&slot));
    parts.extensions.insert(S3RequestId(request_id.clone()));
    let head = parts.clone();
    let is_head = parts.method == http::Method::HEAD;
    let request = Request::from_parts(parts, s3s::Body::http_body_unsync(body));
    let session_token = session_token_of(&head);
    let response = match SESSION_TOKEN
        .scope(session_token.clone(), state.s3.call(request))
        .await
    {
        Ok(resp) => resp.map(Body::new),
        Err(e) => {
            tracing::error!(error = ?e, "s3 service failed");
            s3_error_response(
                "InternalError",
                "We encountered an internal error. Please try again.",
                StatusCode::INTERNAL_SERVER_ERROR,
                &request_id,
                &host_id,
            )
        }
    };

    // Learn the outcome: error documents are read (they are small) to name the error.
    let status = response.status();
    let (response, error) = if status.is_client_error() || status.is_server_error() {
        let (resp_parts, body) = response.into_parts();
        let bytes = http_body_util::Limited::new(body, MAX_ERROR_BODY)
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        let code = extract_tag(&text, "Code")
            .filter(|_| !is_head)
            .unwrap_or_else(|| code_for_status(status).to_string());
        let message = extract_tag(&text, "Message").unwrap_or_default();
        (
            Response::from_parts(resp_parts, Body::from(bytes)),
            Some((code, message)),
        )
    } else {
        (response, None)
    };

    let recorded = slot.0.lock().ok().and_then(|mut s| s.take());
    let (operation, principal, bucket, key) = match recorded {
        Some(call) => (call.operation, Some(call.principal), call.bucket, call.key),
        None => {
            let (bucket, key) = path_bucket_key(&head, domains);
            let operation = guess_operation(&head, bucket.as_deref(), key.as_deref()).to_string();
            let principal = match claimed_credential(&head) {
                Some((access_key, _)) => match state
                    .identities
                    .resolve_credential(&access_key, session_token.as_deref())
                    .await
                {
                    Ok(Credential::Known(key)) => Some(key.principal.clone()),
                    Ok(Credential::ExpiredToken(principal)) => Some(principal),
                    _ => None,
                },
                None => None,
            };
            (operation, principal, bucket, key)
        }
    };
    let region = claimed_credential(&head)
        .map(|(_, region)| region)
        .unwrap_or_else(|| "us-east-1".to_string());

    if let Some(principal) = principal {
        let ctx = call_context(&head, &request_id, region, principal);
        let api_error = error
            .as_ref()
            .map(|(code, message)| (code.as_str(), message.as_str()));
        let mut resources = Vec::new();
        if let (Some(b), Some(k)) = (&bucket, &key) {
            resources.push(Resource {
                account_id: None,
                resource_type: "AWS::S3::Object".into(),
                arn: format!("arn:aws:s3:::{b}/{k}"),
            });
        }
        if let Some(b) = &bucket {
            resources.push(Resource {
                account_id: Some(ctx.principal.account_id.clone()),
                resource_type: "AWS::S3::Bucket".into(),
                arn: format!("arn:aws:s3:::{b}"),
            });
        }
        let mut request_parameters = serde_json::Map::new();
        if let Some(b) = &bucket {
            request_parameters.insert("bucketName".into(), b.clone().into());
        }
        if let Some(k) = &key {
            request_parameters.insert("key".into(), k.clone().into());
        }
        request_parameters.insert(
            "Host".into(),
            crate::call::host_header(&(&head).into()).into(),
        );
        let presigned = head
            .uri
            .query()
            .is_some_and(|q| q.contains("X-Amz-Signature="));
        let mut additional = serde_json::json!({
            "SignatureVersion": "SigV4",
            "AuthenticationMethod": if presigned { "QueryString" } else { "AuthHeader" },
            "x-amz-id-2": host_id,
        });
        if let Some(tls) = &ctx.tls {
            additional["CipherSuite"] = tls.cipher_suite.clone().into();
        }
        let read_only = ["Get", "Head", "List"]
            .iter()
            .any(|p| operation.starts_with(p));
        let outcome = CallOutcome {
            event_source: EVENT_SOURCE,
            event_name: &operation,
            read_only,
            category: category(&operation),
            request_parameters: Some(request_parameters.into()),
            response_elements: None,
            additional_event_data: Some(additional),
            resources,
            error: api_error,
        };
        if let Err(e) = journal(state, &ctx, outcome).await {
            let resp =
                s3_error_response("InternalError", &e.message, e.status, &request_id, &host_id);
            return ("s3", operation, with_ids(resp, &request_id, &host_id));
        }
    }
    ("s3", operation, with_ids(response, &request_id, &host_id))
}

fn with_ids(mut resp: Response<Body>, request_id: &str, host_id: &str) -> Response<Body> {
    let headers = resp.headers_mut();
    if !headers.contains_key("x-amz-request-id")
        && let Ok(v) = http::HeaderValue::from_str(request_id)
    {
        headers.insert("x-amz-request-id", v);
    }
    if !headers.contains_key("x-amz-id-2")
        && let Ok(v) = http::HeaderValue::from_str(host_id)
    {
        headers.insert("x-amz-id-2", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, uri: &str, host: &str) -> Parts {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("host", host)
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[test]
    fn virtual_hosts_only_under_our_domains() {
        let domains = vec!["localhost".to_string()];
        assert_eq!(
            bucket_from_host("logs.localhost:4566", &domains),
            Some("logs")
        );
        assert_eq!(bucket_from_host("localhost:4566", &domains), None);
        assert_eq!(bucket_from_host("127.0.0.1:4566", &domains), None);
        assert_eq!(bucket_from_host("evil.example.com", &domains), None);
        assert_eq!(strip_port("[::1]:4566"), "[::1]");
    }

    #[test]
    fn bucket_and_key_from_either_style() {
        let domains = vec!["localhost".to_string()];
        let p = parts("GET", "/b/a%20b/c", "127.0.0.1:4566");
        assert_eq!(
            path_bucket_key(&p, &domains),
            (Some("b".into()), Some("a b/c".into()))
        );
        let p = parts("GET", "/k", "b.localhost:4566");
        assert_eq!(
            path_bucket_key(&p, &domains),
            (Some("b".into()), Some("k".into()))
        );
        let p = parts("GET", "/", "127.0.0.1");
        assert_eq!(path_bucket_key(&p, &domains), (None, None));
    }

    #[test]
    fn operations_are_named_and_classified() {
        let p = parts("PUT", "/b/k?partNumber=1&uploadId=x", "h");
        assert_eq!(guess_operation(&p, Some("b"), Some("k")), "UploadPart");
        let p = parts("GET", "/b?list-type=2", "h");
        assert_eq!(guess_operation(&p, Some("b"), None), "ListObjectsV2");
        assert_eq!(category("PutObject"), EventCategory::Data);
        assert_eq!(category("CreateBucket"), EventCategory::Management);
        assert!(is_sigv2(&{
            let mut p = parts("GET", "/", "h");
            p.headers
                .insert("authorization", "AWS AKID:sig".parse().unwrap());
            p
        }));
    }
}
