//! The event record written as JSON without serde's machinery: every call of every service
//! writes one record (~1.2 KiB) before it is answered, and `serde_json` spent more
//! instructions escaping its strings (a table lookup per byte, field names included) than the
//! KMS operation itself took. Field names here are literals, and strings go through
//! `keytrail_json::write_str`. (The derived `Serialize` through `keytrail_json::to_writer`
//! costs 1.6 times as many instructions as this: serde visits every field and `Value` through
//! its generic machinery.)
//!
//! The output is byte for byte what `serde_json` writes for the derived `Serialize` of
//! [`EventRecord`] (the tests compare the two); reading records back still goes through serde.

use keytrail_json::write_str;
use serde_json::{Map, Value};

use crate::record::{
    EventCategory, EventRecord, EventType, Resource, SessionContext, TlsDetailsRecord, UserIdentity,
};

/// Appends `record` as one JSON object.
pub(crate) fn write_record(out: &mut Vec<u8>, record: &EventRecord) {
    // Destructured in full so that a field added to the record cannot be left out here.
    let EventRecord {
        event_version,
        user_identity,
        event_time,
        event_source,
        event_name,
        aws_region,
        source_ip_address,
        user_agent,
        error_code,
        error_message,
        request_parameters,
        response_elements,
        additional_event_data,
        request_id,
        event_id,
        read_only,
        resources,
        event_type,
        management_event,
        recipient_account_id,
        service_event_details,
        event_category,
        tls_details,
        billed_elsewhere: _,
    } = record;
    str_member(out, b"{\"eventVersion\":", event_version);
    out.extend_from_slice(b",\"userIdentity\":");
    write_identity(out, user_identity);
    str_member(out, b",\"eventTime\":", event_time);
    str_member(out, b",\"eventSource\":", event_source);
    str_member(out, b",\"eventName\":", event_name);
    str_member(out, b",\"awsRegion\":", aws_region);
    str_member(out, b",\"sourceIPAddress\":", source_ip_address);
    str_member(out, b",\"userAgent\":", user_agent);
    if let Some(code) = error_code {
        str_member(out, b",\"errorCode\":", code);
    }
    if let Some(message) = error_message {
        str_member(out, b",\"errorMessage\":", message);
    }
    out.extend_from_slice(b",\"requestParameters\":");
    write_optional_value(out, request_parameters.as_ref());
    out.extend_from_slice(b",\"responseElements\":");
    write_optional_value(out, response_elements.as_ref());
    if let Some(data) = additional_event_data {
        out.extend_from_slice(b",\"additionalEventData\":");
        write_value(out, data);
    }
    str_member(out, b",\"requestID\":", request_id);
    str_member(out, b",\"eventID\":", event_id);
    out.extend_from_slice(b",\"readOnly\":");
    write_bool(out, *read_only);
    if !resources.is_empty() {
        out.extend_from_slice(b",\"resources\":");
        write_array(out, resources, write_resource);
    }
    out.extend_from_slice(match event_type {
        EventType::AwsApiCall => b",\"eventType\":\"AwsApiCall\"".as_slice(),
        EventType::AwsServiceEvent => b",\"eventType\":\"AwsServiceEvent\"",
    });
    out.extend_from_slice(b",\"managementEvent\":");
    write_bool(out, *management_event);
    str_member(out, b",\"recipientAccountId\":", recipient_account_id);
    if let Some(details) = service_event_details {
        out.extend_from_slice(b",\"serviceEventDetails\":");
        write_value(out, details);
    }
    out.extend_from_slice(match event_category {
        EventCategory::Management => b",\"eventCategory\":\"Management\"".as_slice(),
        EventCategory::Data => b",\"eventCategory\":\"Data\"",
    });
    if let Some(tls) = tls_details {
        out.extend_from_slice(b",\"tlsDetails\":");
        write_tls(out, tls);
    }
    out.push(b'}');
}

/// Writes `{`, then the members handed to [`Members::field`] with commas between them: an
/// object whose members are all optional may not begin with a comma.
struct Members<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Members<'a> {
    fn open(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, empty: true }
    }

    /// The member's `"name":`; the caller writes its value next.
    fn name(&mut self, quoted_name_and_colon: &[u8]) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.extend_from_slice(quoted_name_and_colon);
        self.out
    }

    fn optional_str(&mut self, quoted_name_and_colon: &[u8], value: Option<&String>) {
        if let Some(value) = value {
            write_str(self.name(quoted_name_and_colon), value);
        }
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

fn write_identity(out: &mut Vec<u8>, identity: &UserIdentity) {
    let UserIdentity {
        identity_type,
        principal_id,
        arn,
        account_id,
        access_key_id,
        user_name,
        session_context,
        invoked_by,
    } = identity;
    let mut members = Members::open(out);
    if !identity_type.is_empty() {
        write_str(members.name(b"\"type\":"), identity_type);
    }
    members.optional_str(b"\"principalId\":", principal_id.as_ref());
    members.optional_str(b"\"arn\":", arn.as_ref());
    members.optional_str(b"\"accountId\":", account_id.as_ref());
    members.optional_str(b"\"accessKeyId\":", access_key_id.as_ref());
    members.optional_str(b"\"userName\":", user_name.as_ref());
    if let Some(SessionContext {
        attributes,
        session_issuer,
    }) = session_context
    {
        let out = members.name(b"\"sessionContext\":{\"attributes\":");
        write_value(out, attributes);
        if let Some(issuer) = session_issuer {
            out.extend_from_slice(b",\"sessionIssuer\":");
            write_value(out, issuer);
        }
        out.push(b'}');
    }
    members.optional_str(b"\"invokedBy\":", invoked_by.as_ref());
    members.close();
}

fn write_resource(out: &mut Vec<u8>, resource: &Resource) {
    let Resource {
        account_id,
        resource_type,
        arn,
    } = resource;
    out.push(b'{');
    if let Some(account_id) = account_id {
        str_member(out, b"\"accountId\":", account_id);
        out.push(b',');
    }
    str_member(out, b"\"type\":", resource_type);
    str_member(out, b",\"ARN\":", arn);
    out.push(b'}');
}

fn write_tls(out: &mut Vec<u8>, tls: &TlsDetailsRecord) {
    let TlsDetailsRecord {
        tls_version,
        cipher_suite,
        client_provided_host_header,
    } = tls;
    str_member(out, b"{\"tlsVersion\":", tls_version);
    str_member(out, b",\"cipherSuite\":", cipher_suite);
    str_member(
        out,
        b",\"clientProvidedHostHeader\":",
        client_provided_host_header,
    );
    out.push(b'}');
}

/// A member whose value is a string; `name_and_colon` is its literal `"name":`, with whatever
/// punctuation precedes it.
fn str_member(out: &mut Vec<u8>, name_and_colon: &[u8], value: &str) {
    out.extend_from_slice(name_and_colon);
    write_str(out, value);
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

fn write_optional_value(out: &mut Vec<u8>, value: Option<&Value>) {
    match value {
        Some(value) => write_value(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

/// Any JSON value, in the order serde_json's own serializer visits it.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => write_bool(out, *b),
        // Numbers are rare in records; serde_json's text for them is the reference.
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => write_array(out, items, write_value),
        Value::Object(map) => write_object(out, map),
    }
}

fn write_array<T>(out: &mut Vec<u8>, items: &[T], write_item: fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_item(out, item);
    }
    out.push(b']');
}

fn write_object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    for (i, (key, value)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::record::{EVENT_VERSION, TlsDetailsRecord};

    fn by_hand(record: &EventRecord) -> String {
        let mut out = Vec::new();
        write_record(&mut out, record);
        String::from_utf8(out).unwrap()
    }

    fn identity(text: &str) -> UserIdentity {
        UserIdentity {
            identity_type: text.into(),
            principal_id: Some(format!("{text}-principal")),
            arn: Some(format!("arn:{text}")),
            account_id: Some("111122223333".into()),
            access_key_id: Some(format!("AKIA{text}")),
            user_name: Some(text.into()),
            session_context: Some(SessionContext {
                attributes: json!({"creationDate": text, "mfaAuthenticated": "false"}),
                session_issuer: Some(json!({"type": "Role", "arn": text, "n": [1, 2.5, -3]})),
            }),
            invoked_by: Some(text.into()),
        }
    }

    /// A record with every optional member present and `text` in each string.
    fn full_record(text: &str) -> EventRecord {
        EventRecord {
            event_version: EVENT_VERSION.into(),
            user_identity: identity(text),
            event_time: "2026-11-30T06:00:00Z".into(),
            event_source: format!("{text}.amazonaws.com").into(),
            event_name: text.to_owned().into(),
            aws_region: "eu-west-1".into(),
            source_ip_address: "127.0.0.1".into(),
            user_agent: text.into(),
            error_code: Some(text.into()),
            error_message: Some(format!("message: {text}")),
            request_parameters: Some(json!({
                "keyId": text,
                "encryptionContext": {text: text, "b": "c"},
                "numberOfBytes": 32,
                "grantTokens": [text, null, true, false],
                "ratio": 0.1,
                "big": u64::MAX,
                "negative": i64::MIN,
            })),
            response_elements: Some(json!({"keyMetadata": {"keyId": text}})),
            additional_event_data: Some(json!({"keyMaterialId": text})),
            request_id: text.into(),
            event_id: "0193a1b2-0000-7000-8000-000000000000".into(),
            read_only: true,
            resources: vec![
                Resource {
                    account_id: Some("111122223333".into()),
                    resource_type: "AWS::KMS::Key".into(),
                    arn: format!("arn:aws:kms:eu-west-1:111122223333:key/{text}"),
                },
                Resource {
                    account_id: None,
                    resource_type: text.to_owned().into(),
                    arn: text.into(),
                },
            ],
            event_type: EventType::AwsServiceEvent,
            management_event: false,
            recipient_account_id: "111122223333".into(),
            service_event_details: Some(json!({"x": text})),
            event_category: EventCategory::Data,
            tls_details: Some(TlsDetailsRecord {
                tls_version: "TLSv1.3".into(),
                cipher_suite: text.into(),
                client_provided_host_header: text.into(),
            }),
            billed_elsewhere: true,
        }
    }

    /// The same record with every optional member absent.
    fn bare_record(text: &str) -> EventRecord {
        EventRecord {
            user_identity: UserIdentity {
                account_id: None,
                invoked_by: None,
                ..UserIdentity::aws_internal("")
            },
            error_code: None,
            error_message: None,
            request_parameters: None,
            response_elements: None,
            additional_event_data: None,
            resources: Vec::new(),
            event_type: EventType::AwsApiCall,
            management_event: true,
            service_event_details: None,
            event_category: EventCategory::Management,
            tls_details: None,
            ..full_record(text)
        }
    }

    #[test]
    fn records_are_written_as_serde_json_writes_them() {
        for text in [
            "alice",
            "",
            "quote \" backslash \\ slash /",
            "tab\tnew\nline\u{1}\u{1f}\u{7f}",
            "üñí©ødé 🗝️ ключ",
        ] {
            for record in [full_record(text), bare_record(text)] {
                assert_eq!(
                    by_hand(&record),
                    serde_json::to_string(&record).unwrap(),
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn an_identity_that_only_names_its_service_has_no_leading_comma() {
        let mut record = bare_record("x");
        record.user_identity.invoked_by = Some("AWS Internal".into());
        record.user_identity.account_id = Some("111122223333".into());
        let written = by_hand(&record);
        assert!(
            written.contains(
                r#""userIdentity":{"accountId":"111122223333","invokedBy":"AWS Internal"}"#
            ),
            "{written}"
        );
        assert_eq!(written, serde_json::to_string(&record).unwrap());
    }

    proptest! {
        #[test]
        fn strings_of_json_s_special_bytes_are_escaped_as_serde_json_escapes_them(
            text in "[\\x00-\\x22\\x5c\\x7f-\\u{10ffff}a-z]{0,40}"
        ) {
            let record = full_record(&text);
            prop_assert_eq!(by_hand(&record), serde_json::to_string(&record).unwrap());
        }
    }
}
