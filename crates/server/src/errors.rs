//! AWS-shaped error responses for the JSON and query protocols. S3 errors are rendered by s3s.

use axum::body::Body;
use http::{HeaderName, HeaderValue, Response, StatusCode};

/// An error as the client must see it: code, message and HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub message: String,
    pub status: StatusCode,
}

impl ApiError {
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }

    pub fn internal() -> Self {
        Self::new(
            "InternalFailure",
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request processing has failed because of an unknown error, exception or failure.",
        )
    }
}

pub const AMZ_JSON_1_1: &str = "application/x-amz-json-1.1";
/// Content types as ready header values: `from_str` would copy and check the text on every
/// response.
pub const AMZ_JSON_1_1_VALUE: HeaderValue = HeaderValue::from_static(AMZ_JSON_1_1);
pub const TEXT_XML_VALUE: HeaderValue = HeaderValue::from_static("text/xml");
pub const APPLICATION_JSON_VALUE: HeaderValue = HeaderValue::from_static("application/json");

/// awsJson1.1: `{"__type": code, "message": message}` with `x-amzn-RequestId`.
pub fn json_error(err: &ApiError, request_id: &str) -> Response<Body> {
    let body = serde_json::json!({ "__type": err.code, "message": err.message });
    let mut resp = Response::new(Body::from(body.to_string()));
    *resp.status_mut() = err.status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, AMZ_JSON_1_1_VALUE);
    set_header(&mut resp, crate::errors::X_AMZN_REQUESTID, request_id);
    resp
}

/// The query protocol (STS, IAM): `<ErrorResponse>` XML with `x-amzn-RequestId`.
pub fn query_error(err: &ApiError, request_id: &str, namespace: &str) -> Response<Body> {
    let kind = if err.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let body = format!(
        "<ErrorResponse xmlns=\"{namespace}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        xml_escape(err.code),
        xml_escape(&err.message),
        xml_escape(request_id)
    );
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = err.status;
    resp.headers_mut()
        .insert(http::header::CONTENT_TYPE, TEXT_XML_VALUE);
    set_header(&mut resp, crate::errors::X_AMZN_REQUESTID, request_id);
    resp
}

/// The request id header of the JSON and query protocols (`x-amzn-RequestId`).
pub const X_AMZN_REQUESTID: HeaderName = HeaderName::from_static("x-amzn-requestid");

/// Header names are constants: parsing a name from text on every response is measurable.
pub fn set_header(resp: &mut Response<Body>, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(name, v);
    }
}

pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
