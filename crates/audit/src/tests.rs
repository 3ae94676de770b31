use std::sync::Arc;

use keytrail_store::sqlite::SqliteStore;
use time::macros::datetime;

use super::*;

fn ctx(principal: Principal) -> CallContext {
    CallContext {
        request_id: "req-1".into(),
        time: datetime!(2026-11-28 12:34:56.789 UTC),
        region: "us-west-2".into(),
        principal,
        source_ip: "127.0.0.1".into(),
        user_agent: "aws-cli/2".into(),
        invoked_by: None,
        source_arn: None,
        source_account: None,
        tls: None,
    }
}

#[test]
fn iam_user_record_has_aws_field_names() {
    let principal = Principal {
        account_id: "111122223333".into(),
        kind: PrincipalKind::IamUser {
            user_name: "alice".into(),
            user_id: "AIDAEXAMPLE".into(),
        },
        access_key_id: Some("AKIAEXAMPLE".into()),
    };
    let record = EventRecord::new(
        &ctx(principal),
        "sts.amazonaws.com",
        "GetCallerIdentity",
        true,
        EventCategory::Management,
    );
    let v = serde_json::to_value(&record).unwrap();
    assert_eq!(v["eventVersion"], "1.11");
    assert_eq!(v["eventTime"], "2026-11-28T12:34:56Z");
    assert_eq!(v["userIdentity"]["type"], "IAMUser");
    assert_eq!(
        v["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/alice"
    );
    assert_eq!(v["userIdentity"]["principalId"], "AIDAEXAMPLE");
    assert_eq!(v["userIdentity"]["userName"], "alice");
    assert_eq!(v["sourceIPAddress"], "127.0.0.1");
    assert_eq!(v["requestID"], "req-1");
    assert!(v["eventID"].as_str().unwrap().len() == 36);
    assert_eq!(v["requestParameters"], serde_json::Value::Null);
    assert!(v.as_object().unwrap().contains_key("responseElements"));
    assert!(!v.as_object().unwrap().contains_key("errorCode"));
    assert_eq!(v["eventType"], "AwsApiCall");
    assert_eq!(v["eventCategory"], "Management");
    assert_eq!(v["managementEvent"], true);
    assert_eq!(v["recipientAccountId"], "111122223333");
}

#[test]
fn service_and_role_identities() {
    let record = EventRecord::new(
        &ctx(Principal::service(
            "111122223333",
            "cloudtrail.amazonaws.com",
        )),
        "kms.amazonaws.com",
        "GenerateDataKey",
        true,
        EventCategory::Management,
    );
    let v = serde_json::to_value(&record).unwrap();
    assert_eq!(v["userIdentity"]["type"], "AWSService");
    assert_eq!(v["userIdentity"]["invokedBy"], "cloudtrail.amazonaws.com");
    assert_eq!(v["eventType"], "AwsServiceEvent");

    let role = Principal {
        account_id: "111122223333".into(),
        kind: PrincipalKind::AssumedRole {
            role_name: "Admin".into(),
            role_id: "AROAEXAMPLE".into(),
            session_name: "s1".into(),
            session_created: datetime!(2026-11-28 12:00 UTC),
        },
        access_key_id: Some("ASIAEXAMPLE".into()),
    };
    let v = serde_json::to_value(EventRecord::new(
        &ctx(role),
        "kms.amazonaws.com",
        "Decrypt",
        true,
        EventCategory::Management,
    ))
    .unwrap();
    assert_eq!(v["userIdentity"]["type"], "AssumedRole");
    assert_eq!(v["userIdentity"]["principalId"], "AROAEXAMPLE:s1");
    assert_eq!(
        v["userIdentity"]["arn"],
        "arn:aws:sts::111122223333:assumed-role/Admin/s1"
    );
    assert_eq!(
        v["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"],
        "arn:aws:iam::111122223333:role/Admin"
    );
}

#[tokio::test]
async fn journal_round_trips_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("j.db")).unwrap());
    let journal = Journal::new(store.clone());
    let record = EventRecord::new(
        &ctx(Principal::root("111122223333", Some("AKIAROOT".into()))),
        "sts.amazonaws.com",
        "GetCallerIdentity",
        true,
        EventCategory::Management,
    )
    .failed("InvalidClientTokenId", "bad");
    journal.record(record.clone()).await.unwrap();
    let back = journal.recent(10).await.unwrap();
    assert_eq!(back, vec![record.clone()]);
    let rows = store.recent_events(1).await.unwrap();
    assert_eq!(rows[0].event_time_ms, 1_795_869_296_000);
    assert_eq!(rows[0].access_key_id.as_deref(), Some("AKIAROOT"));
    assert_eq!(rows[0].account_id, "111122223333");
}

#[test]
fn what_kms_does_on_its_own_is_recorded_but_not_billed() {
    let key = Resource {
        account_id: Some("111122223333".into()),
        resource_type: "AWS::KMS::Key".into(),
        arn: "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab".into(),
    };
    let mut rotated = EventRecord::aws_internal(
        "kms.amazonaws.com",
        "RotateKey",
        "us-west-2",
        "111122223333",
        EventType::AwsServiceEvent,
    );
    rotated.resources.push(key.clone());
    rotated.service_event_details = Some(serde_json::json!({ "rotationType": "AUTOMATIC" }));
    let v = serde_json::to_value(&rotated).unwrap();
    assert_eq!(
        v["userIdentity"],
        serde_json::json!({ "accountId": "111122223333", "invokedBy": "AWS Internal" })
    );
    assert_eq!(v["sourceIPAddress"], "AWS Internal");
    assert_eq!(v["userAgent"], "AWS Internal");
    assert_eq!(v["eventType"], "AwsServiceEvent");
    assert_eq!(v["readOnly"], false);
    assert_eq!(v["serviceEventDetails"]["rotationType"], "AUTOMATIC");
    assert_eq!(v["recipientAccountId"], "111122223333");
    assert!(to_row(rotated.clone()).unwrap().kms_usage.is_none());

    let principal = Principal {
        account_id: "111122223333".into(),
        kind: PrincipalKind::Root,
        access_key_id: Some("AKIAEXAMPLE".into()),
    };
    let mut call = EventRecord::new(
        &ctx(principal),
        "kms.amazonaws.com",
        "Decrypt",
        true,
        EventCategory::Management,
    );
    call.resources.push(key);
    assert!(
        !serde_json::to_value(&call)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("serviceEventDetails")
    );
    assert!(to_row(call.clone()).unwrap().kms_usage.is_some());
    call.billed_elsewhere = true;
    assert!(to_row(call.clone()).unwrap().kms_usage.is_none());
    // The flag is not part of the record: a record read back is billable like any other.
    let read_back: EventRecord =
        serde_json::from_value(serde_json::to_value(&call).unwrap()).unwrap();
    assert!(!read_back.billed_elsewhere);
}
