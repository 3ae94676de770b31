//! Per-request facts: the connection a request came on, request ids, and the step shared by every
//! protocol — building the [`CallContext`] and journaling the outcome before answering.

use std::net::SocketAddr;
use std::sync::Arc;

use http::request::Parts;
use keytrail_audit::{CallContext, EventCategory, EventRecord, Principal, TlsDetails};

use crate::AppState;
use crate::errors::ApiError;

/// Attached to every request by the accept loop, shared by the requests of one connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: SocketAddr,
    /// The remote address's IP as events name it (`sourceIPAddress`), formatted once per
    /// connection rather than once per request.
    pub remote_ip: String,
    /// `(protocol version, cipher suite)` when the connection is TLS.
    pub tls: Option<(String, String)>,
}

pub fn new_json_request_id() -> String {
    keytrail_audit::guid(uuid::Uuid::new_v4())
}

/// S3 request ids are 16 upper-case hex characters.
pub fn new_s3_request_id() -> String {
    let id = uuid::Uuid::new_v4();
    hex::encode_upper(&id.as_bytes()[..8])
}

/// The extended request id S3 returns in `x-amz-id-2`: base64 of 32 random bytes.
pub fn new_s3_host_id() -> String {
    use base64::Engine;
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The parts of a request a call context is made from.
pub struct RequestHead<'a> {
    pub headers: &'a http::HeaderMap,
    pub uri: &'a http::Uri,
    pub extensions: &'a http::Extensions,
}

impl<'a> From<&'a Parts> for RequestHead<'a> {
    fn from(parts: &'a Parts) -> Self {
        Self {
            headers: &parts.headers,
            uri: &parts.uri,
            extensions: &parts.extensions,
        }
    }
}

/// A header's text. Headers are almost always ASCII, which the standard validator checks a word
/// at a time (`String::from_utf8_lossy` walks every byte even when nothing needs replacing);
/// anything else is replaced as `from_utf8_lossy` would.
pub fn header_text(value: &http::HeaderValue) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(value.as_bytes()),
    }
}

/// The `User-Agent` as events record it: its first 1,024 characters.
pub fn user_agent(head: &RequestHead<'_>) -> String {
    head.headers
        .get(http::header::USER_AGENT)
        .map(|v| first_chars(header_text(v), 1024))
        .unwrap_or_default()
}

fn first_chars(text: std::borrow::Cow<'_, str>, max: usize) -> String {
    // No more bytes than the limit means no more characters either: copied whole.
    if text.len() <= max {
        return text.into_owned();
    }
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_string(),
        None => text.into_owned(),
    }
}

pub fn host_header(head: &RequestHead<'_>) -> String {
    head.headers
        .get(http::header::HOST)
        .map(|v| header_text(v).into_owned())
        .or_else(|| head.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

pub fn call_context(
    parts: &Parts,
    request_id: &str,
    region: String,
    principal: Principal,
) -> CallContext {
    call_context_of(&RequestHead::from(parts), request_id, region, principal)
}

pub fn call_context_of(
    head: &RequestHead<'_>,
    request_id: &str,
    region: String,
    principal: Principal,
) -> CallContext {
    let conn = head.extensions.get::<Arc<ConnInfo>>();
    CallContext {
        request_id: request_id.to_string(),
        time: keytrail_audit::clock::now(),
        region,
        principal,
        source_ip: conn.map(|c| c.remote_ip.clone()).unwrap_or_default(),
        user_agent: user_agent(head),
        invoked_by: None,
        source_arn: None,
        source_account: None,
        tls: conn
            .and_then(|c| c.tls.clone())
            .map(|(version, cipher)| TlsDetails {
                tls_version: version,
                cipher_suite: cipher,
                client_provided_host_header: host_header(head),
            }),
    }
}

/// What one call did, for its event record.
pub struct CallOutcome<'a> {
    pub event_source: &'static str,
    pub event_name: &'a str,
    pub read_only: bool,
    pub category: EventCategory,
    pub request_parameters: Option<serde_json::Value>,
    pub response_elements: Option<serde_json::Value>,
    pub additional_event_data: Option<serde_json::Value>,
    pub resources: Vec<keytrail_audit::Resource>,
    pub error: Option<(&'a str, &'a str)>,
}

impl<'a> CallOutcome<'a> {
    pub fn management(event_source: &'static str, event_name: &'a str, read_only: bool) -> Self {
        Self {
            event_source,
            event_name,
            read_only,
            category: EventCategory::Management,
            request_parameters: None,
            response_elements: None,
            additional_event_data: None,
            resources: Vec::new(),
            error: None,
        }
    }

    pub fn with_error(mut self, error: Option<&'a ApiError>) -> Self {
        self.error = error.map(|e| (e.code, e.message.as_str()));
        self
    }
}

/// Journals the call; `Err` means the event is not durable and the caller must not report
/// success.
pub async fn journal(
    state: &AppState,
    ctx: &CallContext,
    outcome: CallOutcome<'_>,
) -> Result<(), ApiError> {
    let mut record = EventRecord::new(
        ctx,
        outcome.event_source,
        outcome.event_name.to_owned(),
        outcome.read_only,
        outcome.category,
    );
    record.request_parameters = outcome.request_parameters;
    record.response_elements = outcome.response_elements;
    record.additional_event_data = outcome.additional_event_data;
    record.resources = outcome.resources;
    if let Some((code, message)) = outcome.error {
        record = record.failed(code, message);
    }
    state.journal.record(record).await.map_err(|e| {
        tracing::error!(error = %e, request_id = %ctx.request_id, "journal append failed");
        ApiError::internal()
    })
}

#[cfg(test)]
mod tests {
    use super::first_chars;

    #[test]
    fn user_agents_keep_their_first_characters() {
        assert_eq!(first_chars("aws-cli/2".into(), 1024), "aws-cli/2");
        assert_eq!(first_chars("abcdef".into(), 6), "abcdef");
        assert_eq!(first_chars("abcdef".into(), 4), "abcd");
        // Characters, not bytes: four 2-byte characters are 8 bytes.
        assert_eq!(first_chars("ééééé".into(), 4), "éééé");
        assert_eq!(first_chars("éé".into(), 3), "éé");
        let long = "ü".repeat(2000);
        assert_eq!(
            first_chars(long.as_str().into(), 1024).chars().count(),
            1024
        );
    }
}
