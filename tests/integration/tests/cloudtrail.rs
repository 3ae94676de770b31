//! CloudTrail through the AWS SDK for Rust: the trail API and its errors, event selectors, tags,
//! LookupEvents, delivery that fails visibly while the trail's key is disabled and loses nothing,
//! and a crash during a burst of calls that leaves every answered call in exactly one log file.

mod common;

use std::collections::HashMap;
use std::io::Read;

use aws_sdk_cloudtrail::error::ProvideErrorMetadata;
use aws_sdk_cloudtrail::types::{
    AdvancedEventSelector, AdvancedFieldSelector, DataResource, EventSelector, LookupAttribute,
    LookupAttributeKey, ReadWriteType, Tag,
};
use common::*;

const ACCOUNT: &str = "000000000000";
const BUCKET: &str = "trail-logs";

fn trail_arn(name: &str) -> String {
    format!("arn:aws:cloudtrail:us-east-1:{ACCOUNT}:trail/{name}")
}

fn code<T: std::fmt::Debug, E: ProvideErrorMetadata>(
    result: Result<T, aws_sdk_cloudtrail::error::SdkError<E>>,
) -> String {
    match result {
        Ok(r) => panic!("expected an error, got {r:?}"),
        Err(e) => e.code().unwrap_or("<no code>").to_string(),
    }
}

struct Fixture {
    server: TestServer,
    ct: aws_sdk_cloudtrail::Client,
    kms: aws_sdk_kms::Client,
    s3: aws_sdk_s3::Client,
}

/// A server delivering every second, a bucket with CloudTrail's policy and a key CloudTrail may
/// use.
async fn fixture() -> (Fixture, String) {
    let server = TestServer::start_with(
        DECLARED_CREDENTIALS,
        &["--cloudtrail-delivery-seconds", "1"],
    );
    let url = server.url.clone();
    let fixture = Fixture {
        ct: cloudtrail_client(&url, ROOT_KEY, ROOT_SECRET),
        kms: kms_client(&url, ROOT_KEY, ROOT_SECRET),
        s3: s3_client(&url, ROOT_KEY, ROOT_SECRET),
        server,
    };
    fixture
        .s3
        .create_bucket()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    fixture
        .s3
        .put_bucket_policy()
        .bucket(BUCKET)
        .policy(cloudtrail_bucket_policy(BUCKET))
        .send()
        .await
        .unwrap();
    let key = fixture
        .kms
        .create_key()
        .policy(cloudtrail_key_policy(ACCOUNT))
        .send()
        .await
        .unwrap();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    (fixture, key_arn)
}

/// Every record of every log file in the bucket.
async fn delivered(s3: &aws_sdk_s3::Client) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    let listed = s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("AWSLogs/{ACCOUNT}/CloudTrail/"))
        .send()
        .await
        .unwrap();
    for object in listed.contents() {
        let body = read_object(s3, BUCKET, object.key().unwrap()).await;
        let mut json = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut json)
            .unwrap();
        let file: serde_json::Value = serde_json::from_str(&json).unwrap();
        records.extend(file["Records"].as_array().unwrap().iter().cloned());
    }
    records
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..60 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_trail_api_and_its_errors() {
    let (f, key_arn) = fixture().await;
    let ct = &f.ct;
    let create = |name: &str| ct.create_trail().name(name).s3_bucket_name(BUCKET);

    assert_eq!(
        code(create("a--b").send().await),
        "InvalidTrailNameException"
    );
    assert_eq!(
        code(
            ct.create_trail()
                .name("tr1")
                .s3_bucket_name("missing-bucket")
                .send()
                .await
        ),
        "S3BucketDoesNotExistException"
    );
    f.s3.create_bucket().bucket("bare").send().await.unwrap();
    assert_eq!(
        code(
            ct.create_trail()
                .name("tr1")
                .s3_bucket_name("bare")
                .send()
                .await
        ),
        "InsufficientS3BucketPolicyException"
    );
    assert_eq!(
        code(create("tr1").kms_key_id("alias/none").send().await),
        "KmsKeyNotFoundException"
    );
    let default_policy_key = f.kms.create_key().send().await.unwrap();
    assert_eq!(
        code(
            create("tr1")
                .kms_key_id(default_policy_key.key_metadata().unwrap().key_id())
                .send()
                .await
        ),
        "InsufficientEncryptionPolicyException"
    );
    let hmac = f
        .kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::Hmac256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::GenerateVerifyMac)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            create("tr1")
                .kms_key_id(hmac.key_metadata().unwrap().arn().unwrap())
                .send()
                .await
        ),
        "InvalidKmsKeyIdException"
    );
    assert_eq!(
        code(create("tr1").s3_key_prefix("/bad/").send().await),
        "InvalidS3PrefixException"
    );

    let made = create("tr1")
        .kms_key_id(&key_arn)
        .s3_key_prefix("audit")
        .tags_list(Tag::builder().key("team").value("sec").build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(made.trail_arn(), Some(trail_arn("tr1").as_str()));
    assert_eq!(made.kms_key_id(), Some(key_arn.as_str()));
    assert_eq!(made.s3_key_prefix(), Some("audit"));
    assert_eq!(made.include_global_service_events(), Some(true));
    assert_eq!(
        code(create("tr1").send().await),
        "TrailAlreadyExistsException"
    );
    for i in 2..=5 {
        create(&format!("tr{i}")).send().await.unwrap();
    }
    assert_eq!(
        code(create("tr6").send().await),
        "MaximumNumberOfTrailsExceededException"
    );

    // Reading trails: by name, by ARN, all of the region; unknown ones.
    let trail = ct.get_trail().name("tr1").send().await.unwrap();
    let trail = trail.trail().unwrap();
    assert_eq!(trail.home_region(), Some("us-east-1"));
    assert_eq!(trail.has_custom_event_selectors(), Some(false));
    assert_eq!(
        ct.get_trail()
            .name(trail_arn("tr2"))
            .send()
            .await
            .unwrap()
            .trail()
            .unwrap()
            .name(),
        Some("tr2")
    );
    assert_eq!(
        code(ct.get_trail().name("nope").send().await),
        "TrailNotFoundException"
    );
    let all = ct.describe_trails().send().await.unwrap();
    assert_eq!(all.trail_list().len(), 5);
    let some = ct
        .describe_trails()
        .trail_name_list("tr1")
        .trail_name_list("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(some.trail_list().len(), 1);
    assert_eq!(ct.list_trails().send().await.unwrap().trails().len(), 5);

    // Updating: the prefix, and the key off (an empty KmsKeyId).
    let updated = ct
        .update_trail()
        .name("tr1")
        .s3_key_prefix("audit2")
        .kms_key_id("")
        .enable_log_file_validation(true)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.s3_key_prefix(), Some("audit2"));
    assert_eq!(updated.kms_key_id(), None);
    assert_eq!(updated.log_file_validation_enabled(), Some(true));
    assert_eq!(
        code(
            ct.update_trail()
                .name("tr1")
                .s3_bucket_name("bare")
                .send()
                .await
        ),
        "InsufficientS3BucketPolicyException"
    );

    // Logging state, and the home-region rule.
    let eu = cloudtrail_client_in(&f.server.url, long_term(ROOT_KEY, ROOT_SECRET), "eu-west-1");
    assert_eq!(
        code(eu.start_logging().name(trail_arn("tr1")).send().await),
        "InvalidHomeRegionException"
    );
    assert_eq!(
        code(eu.get_trail().name("tr1").send().await),
        "TrailNotFoundException"
    );
    ct.start_logging().name("tr1").send().await.unwrap();
    let status = ct.get_trail_status().name("tr1").send().await.unwrap();
    assert_eq!(status.is_logging(), Some(true));
    assert!(status.start_logging_time().is_some());
    ct.stop_logging().name("tr1").send().await.unwrap();
    let status = ct.get_trail_status().name("tr1").send().await.unwrap();
    assert_eq!(status.is_logging(), Some(false));
    assert!(status.stop_logging_time().is_some());

    // Event selectors: the default, basic, advanced, and refusals.
    let default = ct
        .get_event_selectors()
        .trail_name("tr2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        default.event_selectors()[0].read_write_type(),
        Some(&ReadWriteType::All)
    );
    let basic = EventSelector::builder()
        .read_write_type(ReadWriteType::WriteOnly)
        .include_management_events(true)
        .exclude_management_event_sources("kms.amazonaws.com")
        .data_resources(
            DataResource::builder()
                .r#type("AWS::S3::Object")
                .values(format!("arn:aws:s3:::{BUCKET}/"))
                .build(),
        )
        .build();
    let put = ct
        .put_event_selectors()
        .trail_name("tr2")
        .event_selectors(basic.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.trail_arn(), Some(trail_arn("tr2").as_str()));
    assert_eq!(
        ct.get_trail()
            .name("tr2")
            .send()
            .await
            .unwrap()
            .trail()
            .unwrap()
            .has_custom_event_selectors(),
        Some(true)
    );
    let advanced = AdvancedEventSelector::builder()
        .name("management writes")
        .field_selectors(
            AdvancedFieldSelector::builder()
                .field("eventCategory")
                .equals("Management")
                .build()
                .unwrap(),
        )
        .field_selectors(
            AdvancedFieldSelector::builder()
                .field("readOnly")
                .equals("false")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let got = ct
        .put_event_selectors()
        .trail_name("tr3")
        .advanced_event_selectors(advanced.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(got.advanced_event_selectors().len(), 1);
    assert_eq!(
        code(
            ct.put_event_selectors()
                .trail_name("tr3")
                .event_selectors(basic)
                .advanced_event_selectors(advanced)
                .send()
                .await
        ),
        "InvalidParameterCombinationException"
    );
    let no_category = AdvancedEventSelector::builder()
        .field_selectors(
            AdvancedFieldSelector::builder()
                .field("eventName")
                .equals("PutObject")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    assert_eq!(
        code(
            ct.put_event_selectors()
                .trail_name("tr3")
                .advanced_event_selectors(no_category)
                .send()
                .await
        ),
        "InvalidEventSelectorsException"
    );

    // Tags.
    ct.add_tags()
        .resource_id(trail_arn("tr1"))
        .tags_list(Tag::builder().key("env").value("test").build().unwrap())
        .send()
        .await
        .unwrap();
    ct.remove_tags()
        .resource_id(trail_arn("tr1"))
        .tags_list(Tag::builder().key("team").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = ct
        .list_tags()
        .resource_id_list(trail_arn("tr1"))
        .send()
        .await
        .unwrap();
    let tags: HashMap<_, _> = tags.resource_tag_list()[0]
        .tags_list()
        .iter()
        .map(|t| {
            (
                t.key().to_string(),
                t.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        HashMap::from([("env".to_string(), "test".to_string())])
    );
    assert_eq!(
        code(
            ct.add_tags()
                .resource_id("tr1")
                .tags_list(Tag::builder().key("k").build().unwrap())
                .send()
                .await
        ),
        "CloudTrailARNInvalidException"
    );

    // A user without a policy may not touch trails.
    let alice = cloudtrail_client(&f.server.url, ALICE_KEY, ALICE_SECRET);
    assert_eq!(
        code(alice.describe_trails().send().await),
        "AccessDeniedException"
    );

    // LookupEvents: by each kind of attribute, paged, and its refusals.
    let by = |key: LookupAttributeKey, value: &str| {
        ct.lookup_events().lookup_attributes(
            LookupAttribute::builder()
                .attribute_key(key)
                .attribute_value(value)
                .build()
                .unwrap(),
        )
    };
    let created = by(LookupAttributeKey::EventName, "CreateTrail")
        .send()
        .await
        .unwrap();
    assert!(created.events().len() >= 6, "{}", created.events().len());
    let newest = &created.events()[0];
    assert_eq!(newest.username(), Some("root"));
    assert_eq!(newest.read_only(), Some("false"));
    let record: serde_json::Value =
        serde_json::from_str(newest.cloud_trail_event().unwrap()).unwrap();
    // The newest is the refused sixth trail, with its error.
    assert_eq!(record["requestParameters"]["name"], "tr6");
    assert_eq!(
        record["errorCode"],
        "MaximumNumberOfTrailsExceededException"
    );
    let event_id = newest.event_id().unwrap();
    assert_eq!(
        by(LookupAttributeKey::EventId, event_id)
            .send()
            .await
            .unwrap()
            .events()
            .len(),
        1
    );
    let by_resource = by(LookupAttributeKey::ResourceName, &trail_arn("tr1"))
        .send()
        .await
        .unwrap();
    assert!(by_resource.events().iter().all(|e| {
        e.resources()
            .iter()
            .any(|r| r.resource_name() == Some(trail_arn("tr1").as_str()))
    }));
    assert!(!by_resource.events().is_empty());
    for (key, value) in [
        (LookupAttributeKey::EventSource, "cloudtrail.amazonaws.com"),
        (LookupAttributeKey::ReadOnly, "true"),
        (LookupAttributeKey::Username, "root"),
        (LookupAttributeKey::ResourceType, "AWS::CloudTrail::Trail"),
        (LookupAttributeKey::AccessKeyId, ROOT_KEY),
    ] {
        let found = by(key.clone(), value).send().await.unwrap();
        assert!(!found.events().is_empty(), "{key:?}={value}");
    }
    let page = ct.lookup_events().max_results(3).send().await.unwrap();
    assert_eq!(page.events().len(), 3);
    let next = ct
        .lookup_events()
        .max_results(3)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(next.events().len(), 3);
    assert!(
        page.events()
            .iter()
            .all(|a| next.events().iter().all(|b| a.event_id() != b.event_id()))
    );
    assert_eq!(
        code(
            ct.lookup_events()
                .lookup_attributes(
                    LookupAttribute::builder()
                        .attribute_key(LookupAttributeKey::EventName)
                        .attribute_value("A")
                        .build()
                        .unwrap()
                )
                .lookup_attributes(
                    LookupAttribute::builder()
                        .attribute_key(LookupAttributeKey::EventName)
                        .attribute_value("B")
                        .build()
                        .unwrap()
                )
                .send()
                .await
        ),
        "InvalidLookupAttributesException"
    );
    let now = aws_sdk_cloudtrail::primitives::DateTime::from_secs(2_000_000_000);
    let earlier = aws_sdk_cloudtrail::primitives::DateTime::from_secs(1_000_000_000);
    assert_eq!(
        code(
            ct.lookup_events()
                .start_time(now)
                .end_time(earlier)
                .send()
                .await
        ),
        "InvalidTimeRangeException"
    );
    assert_eq!(
        code(ct.lookup_events().max_results(51).send().await),
        "InvalidMaxResultsException"
    );

    // Deleting; the trail is gone everywhere.
    ct.delete_trail().name("tr5").send().await.unwrap();
    assert_eq!(
        code(ct.get_trail_status().name("tr5").send().await),
        "TrailNotFoundException"
    );
    assert_eq!(
        ct.describe_trails()
            .send()
            .await
            .unwrap()
            .trail_list()
            .len(),
        4
    );
}

#[tokio::test]
async fn a_disabled_key_stops_delivery_visibly_and_resumes_losing_nothing() {
    let (f, key_arn) = fixture().await;
    f.ct.create_trail()
        .name("main")
        .s3_bucket_name(BUCKET)
        .kms_key_id(&key_arn)
        .send()
        .await
        .unwrap();
    f.ct.start_logging().name("main").send().await.unwrap();
    for _ in 0..3 {
        let out = f.kms.list_aliases().send().await;
        assert!(out.is_ok());
    }
    f.kms.disable_key().key_id(&key_arn).send().await.unwrap();
    // Calls made while the key is disabled wait for it.
    for i in 0..5 {
        f.ct.add_tags()
            .resource_id(trail_arn("main"))
            .tags_list(
                Tag::builder()
                    .key(format!("k{i}"))
                    .value("v")
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
    }
    let ct = f.ct.clone();
    wait_until("a delivery error", || {
        let ct = ct.clone();
        async move {
            let status = ct.get_trail_status().name("main").send().await.unwrap();
            status.latest_delivery_error() == Some("KMS.DisabledException")
        }
    })
    .await;
    f.kms.enable_key().key_id(&key_arn).send().await.unwrap();
    let s3 = f.s3.clone();
    wait_until("the tagging calls in log files", || {
        let s3 = s3.clone();
        async move {
            delivered(&s3)
                .await
                .iter()
                .filter(|r| r["eventName"] == "AddTags")
                .count()
                == 5
        }
    })
    .await;
    let records = delivered(&f.s3).await;
    let ids: Vec<&str> = records
        .iter()
        .filter_map(|r| r["eventID"].as_str())
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "an event was delivered twice");
    let status = f.ct.get_trail_status().name("main").send().await.unwrap();
    assert_eq!(status.latest_delivery_error(), None);
    // The failed attempts were S3 PutObject calls by CloudTrail, journaled with S3's error.
    let failed_puts = f
        .server
        .events()
        .into_iter()
        .filter(|e| e["eventName"] == "PutObject" && e["errorCode"] == "KMS.DisabledException")
        .count();
    assert!(failed_puts >= 1);

    // StopLogging still delivers what was recorded up to it, the StopLogging call included.
    f.ct.stop_logging().name("main").send().await.unwrap();
    let s3 = f.s3.clone();
    wait_until("the StopLogging call in a log file", || {
        let s3 = s3.clone();
        async move {
            delivered(&s3)
                .await
                .iter()
                .any(|r| r["eventName"] == "StopLogging")
        }
    })
    .await;
}

#[tokio::test]
async fn a_crash_during_a_burst_leaves_every_answered_call_in_exactly_one_log_file() {
    let (mut f, _key) = fixture().await;
    f.ct.create_trail()
        .name("main")
        .s3_bucket_name(BUCKET)
        .send()
        .await
        .unwrap();
    f.ct.start_logging().name("main").send().await.unwrap();

    // Callers hammer KMS; the server is killed under them.
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let kms = f.kms.clone();
        let answered = std::sync::Arc::clone(&answered);
        workers.push(tokio::spawn(async move {
            loop {
                match kms.generate_random().number_of_bytes(8).send().await {
                    Ok(out) => {
                        use aws_sdk_kms::operation::RequestId;
                        if let Some(id) = out.request_id() {
                            answered.lock().unwrap().push(id.to_string());
                        }
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    f.server.sigkill();
    for w in workers {
        let _ = w.await;
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() > 50,
        "only {} calls answered",
        answered.len()
    );

    f.server.restart();
    let s3 = s3_client(&f.server.url, ROOT_KEY, ROOT_SECRET);
    let expected = answered.len();
    let want: std::collections::HashSet<String> = answered.into_iter().collect();
    let mut records = Vec::new();
    for _ in 0..60 {
        records = delivered(&s3).await;
        let found = records
            .iter()
            .filter(|r| r["requestID"].as_str().is_some_and(|id| want.contains(id)))
            .count();
        if found >= expected {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for r in &records {
        *seen
            .entry(r["eventID"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "an event is in two log files"
    );
    let delivered_ids: std::collections::HashSet<&str> = records
        .iter()
        .filter_map(|r| r["requestID"].as_str())
        .collect();
    let missing: Vec<_> = want
        .iter()
        .filter(|id| !delivered_ids.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} answered calls not delivered",
        missing.len()
    );
}
