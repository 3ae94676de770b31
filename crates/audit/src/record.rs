//! The CloudTrail event record, field for field as AWS writes it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::context::{CallContext, Principal, PrincipalKind};

/// The record format version we write; 1.08 added `tlsDetails`, which we fill.
pub const EVENT_VERSION: &str = "1.11";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    AwsApiCall,
    AwsServiceEvent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventCategory {
    Management,
    Data,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionContext {
    pub attributes: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_issuer: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserIdentity {
    /// Empty (and absent from the record) for what AWS does on its own ([`AWS_INTERNAL`]).
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub identity_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_context: Option<SessionContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
}

/// Who AWS's own actions are attributed to: a key deleted at the end of its waiting period, a
/// scheduled rotation (`userIdentity: {accountId, invokedBy: "AWS Internal"}`).
pub const AWS_INTERNAL: &str = "AWS Internal";

impl UserIdentity {
    /// The identity of an action AWS takes on its own in `account_id`.
    pub fn aws_internal(account_id: &str) -> Self {
        Self {
            identity_type: String::new(),
            principal_id: None,
            arn: None,
            account_id: Some(account_id.to_string()),
            access_key_id: None,
            user_name: None,
            session_context: None,
            invoked_by: Some(AWS_INTERNAL.into()),
        }
    }

    pub fn is_aws_internal(&self) -> bool {
        self.identity_type.is_empty() && self.invoked_by.as_deref() == Some(AWS_INTERNAL)
    }

    pub fn from_principal(principal: &Principal, invoked_by: Option<&str>) -> Self {
        let mut identity = Self {
            identity_type: String::new(),
            principal_id: Some(principal.principal_id()),
            arn: Some(principal.arn()),
            account_id: Some(principal.account_id.clone()),
            access_key_id: principal.access_key_id.clone(),
            user_name: None,
            session_context: None,
            invoked_by: invoked_by.map(str::to_string),
        };
        match &principal.kind {
            PrincipalKind::Root => identity.identity_type = "Root".into(),
            PrincipalKind::IamUser { user_name, .. } => {
                identity.identity_type = "IAMUser".into();
                identity.user_name = Some(user_name.clone());
            }
            PrincipalKind::AssumedRole {
                role_name,
                role_id,
                session_created,
                ..
            } => {
                identity.identity_type = "AssumedRole".into();
                identity.session_context = Some(SessionContext {
                    attributes: serde_json::json!({
                        "creationDate": format_event_time(*session_created),
                        "mfaAuthenticated": "false",
                    }),
                    session_issuer: Some(serde_json::json!({
                        "type": "Role",
                        "principalId": role_id,
                        "arn": format!("arn:aws:iam::{}:role/{role_name}", principal.account_id),
                        "accountId": principal.account_id,
                        "userName": role_name,
                    })),
                });
            }
            PrincipalKind::AwsService { service } => {
                // AWS shows a service acting on its own as {"type":"AWSService","invokedBy":...}.
                identity = Self {
                    identity_type: "AWSService".into(),
                    principal_id: None,
                    arn: None,
                    account_id: None,
                    access_key_id: None,
                    user_name: None,
                    session_context: None,
                    invoked_by: Some(service.clone()),
                };
            }
        }
        identity
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    #[serde(rename = "accountId", default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(rename = "type")]
    pub resource_type: Cow<'static, str>,
    #[serde(rename = "ARN")]
    pub arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsDetailsRecord {
    pub tls_version: String,
    pub cipher_suite: String,
    pub client_provided_host_header: String,
}

/// One CloudTrail event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    // The constant and per-operation texts are borrowed, not copied into every record.
    pub event_version: Cow<'static, str>,
    pub user_identity: UserIdentity,
    /// `YYYY-MM-DDTHH:MM:SSZ`
    pub event_time: String,
    pub event_source: Cow<'static, str>,
    pub event_name: Cow<'static, str>,
    pub aws_region: String,
    #[serde(rename = "sourceIPAddress")]
    pub source_ip_address: String,
    pub user_agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Serialized as `null` when there is nothing to report, as AWS does.
    pub request_parameters: Option<Value>,
    pub response_elements: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
    #[serde(rename = "requestID")]
    pub request_id: String,
    #[serde(rename = "eventID")]
    pub event_id: String,
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<Resource>,
    pub event_type: EventType,
    pub management_event: bool,
    pub recipient_account_id: String,
    /// What AWS did on its own, for `AwsServiceEvent`s such as KMS's RotateKey or DeleteKey.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_event_details: Option<Value>,
    pub event_category: EventCategory,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_details: Option<TlsDetailsRecord>,
    /// A second record of a call another event already counts (ReplicateKey's CreateKey in
    /// the replica's Region): not a request of its own in usage reports. Not part of the record.
    #[serde(skip)]
    pub billed_elsewhere: bool,
}

/// An event's id: a GUID to every reader, and a UUID v7 stamped with the event's own time, so
/// that the store finds an event by id among the events of that second without an index
/// entry per id.
pub fn event_id_at(time: OffsetDateTime) -> String {
    let nanos = time.unix_timestamp_nanos();
    let stamp = uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(0),
        u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    );
    guid(uuid::Uuid::new_v7(stamp))
}

/// The hyphenated lower-case text of a UUID, as CloudTrail writes event and request ids:
/// encoded straight into its `String` rather than through `Display`'s formatter.
pub fn guid(id: uuid::Uuid) -> String {
    id.hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
}

pub(crate) fn format_event_time(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    // Every event has one: written by position, as `parse_event_time` reads it; the general
    // formatter costs several times as much. Years RFC 3339 cannot hold go to it anyway.
    let year = t.year();
    if !(0..=9999).contains(&year) {
        return t.format(&Rfc3339).unwrap_or_default();
    }
    let mut out = [0u8; 20];
    let mut put = |at: usize, digits: usize, mut n: u32| {
        for i in (at..at + digits).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, u32::from(u8::from(t.month())));
    put(8, 2, u32::from(t.day()));
    put(11, 2, u32::from(t.hour()));
    put(14, 2, u32::from(t.minute()));
    put(17, 2, u32::from(t.second()));
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ] {
        out[at] = separator;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` (what [`format_event_time`] writes) read by position: every event
/// is stored with its time in milliseconds, and the general RFC 3339 parser costs several times
/// as much. `None` for anything else, which the general parser then reads.
fn parse_event_time(text: &str) -> Option<OffsetDateTime> {
    let b = text.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| {
        b[range].iter().try_fold(0u32, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let small = |range: std::ops::Range<usize>| number(range).and_then(|n| u8::try_from(n).ok());
    let date = time::Date::from_calendar_date(
        i32::try_from(number(0..4)?).ok()?,
        time::Month::try_from(small(5..7)?).ok()?,
        small(8..10)?,
    )
    .ok()?;
    let clock = time::Time::from_hms(small(11..13)?, small(14..16)?, small(17..19)?).ok()?;
    Some(time::PrimitiveDateTime::new(date, clock).assume_utc())
}

impl EventRecord {
    /// A record for a call described by `ctx`, successful until [`EventRecord::failed`] says
    /// otherwise. Category and type follow from the call: service-originated calls are
    /// `AwsServiceEvent`s, others `AwsApiCall`s.
    pub fn new(
        ctx: &CallContext,
        event_source: impl Into<Cow<'static, str>>,
        event_name: impl Into<Cow<'static, str>>,
        read_only: bool,
        category: EventCategory,
    ) -> Self {
        let is_service = matches!(ctx.principal.kind, PrincipalKind::AwsService { .. });
        Self {
            event_version: EVENT_VERSION.into(),
            user_identity: UserIdentity::from_principal(&ctx.principal, ctx.invoked_by.as_deref()),
            event_time: format_event_time(ctx.time),
            event_source: event_source.into(),
            event_name: event_name.into(),
            aws_region: ctx.region.clone(),
            source_ip_address: ctx.source_ip.clone(),
            user_agent: ctx.user_agent.clone(),
            error_code: None,
            error_message: None,
            request_parameters: None,
            response_elements: None,
            additional_event_data: None,
            request_id: ctx.request_id.clone(),
            event_id: event_id_at(ctx.time),
            read_only,
            resources: Vec::new(),
            event_type: if is_service {
                EventType::AwsServiceEvent
            } else {
                EventType::AwsApiCall
            },
            management_event: category == EventCategory::Management,
            recipient_account_id: ctx.principal.account_id.clone(),
            service_event_details: None,
            event_category: category,
            tls_details: ctx.tls.as_ref().map(|t| TlsDetailsRecord {
                tls_version: t.tls_version.clone(),
                cipher_suite: t.cipher_suite.clone(),
                client_provided_host_header: t.client_provided_host_header.clone(),
            }),
            billed_elsewhere: false,
        }
    }

    /// A management event for something AWS did on its own in `account_id` and `region`, at
    /// the service clock's now: `AwsServiceEvent` unless told otherwise (KMS records its
    /// multi-Region key synchronisation as an `AwsApiCall`).
    pub fn aws_internal(
        event_source: impl Into<Cow<'static, str>>,
        event_name: impl Into<Cow<'static, str>>,
        region: &str,
        account_id: &str,
        event_type: EventType,
    ) -> Self {
        let now = crate::clock::now();
        Self {
            event_version: EVENT_VERSION.into(),
            user_identity: UserIdentity::aws_internal(account_id),
            event_time: format_event_time(now),
            event_source: event_source.into(),
            event_name: event_name.into(),
            aws_region: region.into(),
            source_ip_address: AWS_INTERNAL.into(),
            user_agent: AWS_INTERNAL.into(),
            error_code: None,
            error_message: None,
            request_parameters: None,
            response_elements: None,
            additional_event_data: None,
            request_id: uuid::Uuid::new_v4().to_string(),
            event_id: event_id_at(now),
            read_only: false,
            resources: Vec::new(),
            event_type,
            management_event: true,
            recipient_account_id: account_id.into(),
            service_event_details: None,
            event_category: EventCategory::Management,
            tls_details: None,
            billed_elsewhere: false,
        }
    }

    pub fn failed(mut self, code: &str, message: &str) -> Self {
        self.error_code = Some(code.to_string());
        self.error_message = Some(message.to_string());
        self
    }

    /// Milliseconds since the epoch of `event_time` (second precision, as the record).
    pub fn event_time_ms(&self) -> i64 {
        parse_event_time(&self.event_time)
            .or_else(|| OffsetDateTime::parse(&self.event_time, &Rfc3339).ok())
            .map(|t| t.unix_timestamp() * 1000)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod event_time_tests {
    use super::*;

    #[test]
    fn the_positional_reader_agrees_with_the_rfc3339_parser() {
        // Every 7,919 s across 1970–2100 crosses every month, leap day and hour.
        let mut secs = 0i64;
        while secs < 4_102_444_800 {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap();
            let text = format_event_time(t);
            assert_eq!(text, t.format(&Rfc3339).unwrap());
            assert_eq!(parse_event_time(&text), Some(t), "{text}");
            assert_eq!(OffsetDateTime::parse(&text, &Rfc3339).ok(), Some(t));
            secs += 7_919;
        }
    }

    #[test]
    fn guids_are_the_hyphenated_lower_case_text() {
        for id in [uuid::Uuid::nil(), uuid::Uuid::max(), uuid::Uuid::now_v7()] {
            assert_eq!(guid(id), id.to_string());
        }
        assert_eq!(
            guid(uuid::Uuid::from_u128(
                0x0123_4567_89AB_CDEF_0123_4567_89AB_CDEF
            )),
            "01234567-89ab-cdef-0123-456789abcdef"
        );
    }

    #[test]
    fn event_ids_are_v7_stamped_with_the_events_time() {
        let t = time::macros::datetime!(2026-12-01 01:02:03.456789 UTC);
        let (a, b) = (event_id_at(t), event_id_at(t));
        assert_ne!(a, b, "random beyond the stamp");
        for id in [a, b] {
            let parsed = uuid::Uuid::parse_str(&id).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
            let (secs, nanos) = parsed.get_timestamp().unwrap().to_unix();
            assert_eq!((secs, nanos), (1_796_086_923, 456_000_000), "{id}");
        }
    }

    #[test]
    fn event_times_are_whole_seconds_in_utc() {
        let t = time::macros::datetime!(2026-11-30 23:59:58.999 -02:00);
        assert_eq!(format_event_time(t), "2026-12-01T01:59:58Z");
        let first = time::macros::datetime!(0000-01-01 00:00:00 UTC);
        assert_eq!(format_event_time(first), "0000-01-01T00:00:00Z");
    }

    #[test]
    fn anything_but_the_record_format_is_left_to_the_general_parser() {
        for other in [
            "2026-02-30T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-29T24:00:00Z",
            "2026-11-29T12:00:00+01:00",
            "2026-11-29T12:00:00.5Z",
            "2026-11-29 12:00:00Z",
            "2026-1a-29T12:00:00Z",
            "",
        ] {
            assert_eq!(parse_event_time(other), None, "{other}");
        }
        let mut record = EventRecord::aws_internal(
            "kms.amazonaws.com",
            "RotateKey",
            "us-east-1",
            "111122223333",
            EventType::AwsServiceEvent,
        );
        record.event_time = "2026-11-29T12:00:00+01:00".into();
        assert_eq!(record.event_time_ms(), 1_795_950_000_000);
    }
}
