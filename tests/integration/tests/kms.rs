//! KMS through the AWS SDK for Rust: every operation keytrail implements, its error paths, the
//! encryption-context binding, the events, and what survives a restart.

mod common;

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{DataKeySpec, KeyState, Tag};
use common::*;

use error_code as code;

fn ctx(pairs: &[(&str, &str)]) -> Option<std::collections::HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

async fn new_key(kms: &Client, description: &str) -> String {
    kms.create_key()
        .description(description)
        .send()
        .await
        .expect("create key")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_string()
}

#[tokio::test]
async fn key_lifecycle_and_metadata() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let created = kms
        .create_key()
        .description("logs")
        .tags(
            Tag::builder()
                .tag_key("team")
                .tag_value("audit")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().unwrap();
    let id = meta.key_id().to_string();
    assert_eq!(
        meta.arn(),
        Some(format!("arn:aws:kms:us-east-1:000000000000:key/{id}").as_str())
    );
    assert_eq!(meta.aws_account_id(), Some("000000000000"));
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.description(), Some("logs"));
    assert_eq!(
        meta.key_spec().map(|s| s.as_str()),
        Some("SYMMETRIC_DEFAULT")
    );
    assert_eq!(
        meta.key_usage().map(|s| s.as_str()),
        Some("ENCRYPT_DECRYPT")
    );
    assert_eq!(meta.current_key_material_id().map(str::len), Some(64));

    let policy = kms.get_key_policy().key_id(&id).send().await.unwrap();
    let doc: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    assert_eq!(
        doc["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::000000000000:root"
    );
    assert_eq!(
        kms.list_key_policies()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .policy_names(),
        ["default".to_string()]
    );
    let new_policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"}]}"#;
    kms.put_key_policy()
        .key_id(&id)
        .policy(new_policy)
        .send()
        .await
        .unwrap();
    assert_eq!(
        kms.get_key_policy()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .policy(),
        Some(new_policy)
    );
    assert_eq!(
        code(
            kms.put_key_policy()
                .key_id(&id)
                .policy("{not json")
                .send()
                .await
        ),
        "MalformedPolicyDocumentException"
    );

    kms.update_key_description()
        .key_id(&id)
        .description("renamed")
        .send()
        .await
        .unwrap();
    kms.disable_key().key_id(&id).send().await.unwrap();
    let described = kms.describe_key().key_id(&id).send().await.unwrap();
    let meta = described.key_metadata().unwrap();
    assert_eq!(meta.description(), Some("renamed"));
    assert_eq!(meta.key_state(), Some(&KeyState::Disabled));
    assert!(!meta.enabled());
    kms.enable_key().key_id(&id).send().await.unwrap();

    assert_eq!(
        code(
            kms.schedule_key_deletion()
                .key_id(&id)
                .pending_window_in_days(5)
                .send()
                .await
        ),
        "ValidationException"
    );
    let scheduled = kms
        .schedule_key_deletion()
        .key_id(&id)
        .pending_window_in_days(7)
        .send()
        .await
        .unwrap();
    assert_eq!(scheduled.key_state(), Some(&KeyState::PendingDeletion));
    assert_eq!(scheduled.pending_window_in_days(), Some(7));
    let deletion = scheduled.deletion_date().unwrap().secs();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!(
        (deletion - now - 7 * 86_400).abs() < 60,
        "{deletion} vs {now}"
    );
    assert_eq!(
        code(
            kms.encrypt()
                .key_id(&id)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(kms.enable_key().key_id(&id).send().await),
        "KMSInvalidStateException"
    );
    kms.cancel_key_deletion().key_id(&id).send().await.unwrap();
    let meta = kms.describe_key().key_id(&id).send().await.unwrap();
    assert_eq!(
        meta.key_metadata().unwrap().key_state(),
        Some(&KeyState::Disabled),
        "a cancelled deletion leaves the key disabled"
    );
    assert_eq!(
        code(kms.cancel_key_deletion().key_id(&id).send().await),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(
            kms.encrypt()
                .key_id(&id)
                .plaintext(Blob::new(b"x".to_vec()))
                .send()
                .await
        ),
        "DisabledException"
    );

    assert_eq!(
        code(
            kms.describe_key()
                .key_id("1234abcd-12ab-34cd-56ef-1234567890ab")
                .send()
                .await
        ),
        "NotFoundException"
    );
    assert_eq!(
        code(kms.describe_key().key_id("not-a-key").send().await),
        "NotFoundException"
    );
    assert_eq!(
        code(
            kms.create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::Sm2)
                .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                .send()
                .await
        ),
        "UnsupportedOperationException",
        "SM2 keys (China Regions) are not implemented"
    );
    assert_eq!(
        code(
            kms.create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::MlDsa65)
                .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
                .send()
                .await
        ),
        "ValidationException",
        "ML-DSA keys only sign"
    );
    assert_eq!(
        code(
            kms.create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
                .key_usage(aws_sdk_kms::types::KeyUsageType::EncapsulateDecapsulate)
                .send()
                .await
        ),
        "ValidationException",
        "ECC keys do not encapsulate"
    );
    assert_eq!(
        code(
            kms.create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::EccSecgP256K1)
                .key_usage(aws_sdk_kms::types::KeyUsageType::KeyAgreement)
                .send()
                .await
        ),
        "ValidationException",
        "secp256k1 keys only sign"
    );
    assert_eq!(
        code(
            kms.create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
                .key_usage(aws_sdk_kms::types::KeyUsageType::EncryptDecrypt)
                .send()
                .await
        ),
        "ValidationException",
        "ECC keys cannot encrypt"
    );
}

#[tokio::test]
async fn pagination_of_keys_aliases_and_tags() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(new_key(&kms, &format!("k{i}")).await);
    }
    ids.sort();
    let first = kms.list_keys().limit(2).send().await.unwrap();
    assert_eq!(first.keys().len(), 2);
    assert!(first.truncated());
    let second = kms
        .list_keys()
        .limit(2)
        .marker(first.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(second.keys().len(), 1);
    assert!(!second.truncated());
    let listed: Vec<String> = first
        .keys()
        .iter()
        .chain(second.keys())
        .map(|k| k.key_id().unwrap().to_string())
        .collect();
    assert_eq!(listed, ids);
    assert_eq!(
        code(kms.list_keys().marker("bogus").send().await),
        "InvalidMarkerException"
    );
    assert_eq!(
        code(kms.list_keys().limit(0).send().await),
        "ValidationException"
    );
    // A user of another account without policies may not even list keys, and by key id the
    // keys of this account do not exist for her.
    let alice = kms_client(&server.url, ALICE_KEY, ALICE_SECRET);
    assert_eq!(
        code(alice.list_keys().send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        code(alice.describe_key().key_id(&ids[0]).send().await),
        "NotFoundException"
    );

    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        kms.tag_resource()
            .key_id(&ids[0])
            .tags(Tag::builder().tag_key(k).tag_value(v).build().unwrap())
            .send()
            .await
            .unwrap();
    }
    kms.tag_resource()
        .key_id(&ids[0])
        .tags(
            Tag::builder()
                .tag_key("b")
                .tag_value("two")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    kms.untag_resource()
        .key_id(&ids[0])
        .tag_keys("a")
        .send()
        .await
        .unwrap();
    let tags = kms
        .list_resource_tags()
        .key_id(&ids[0])
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = tags
        .tags()
        .iter()
        .map(|t| (t.tag_key(), t.tag_value()))
        .collect();
    assert_eq!(tags, vec![("b", "two"), ("c", "3")]);
    assert_eq!(
        code(
            kms.tag_resource()
                .key_id(&ids[0])
                .tags(
                    Tag::builder()
                        .tag_key("aws:x")
                        .tag_value("1")
                        .build()
                        .unwrap()
                )
                .send()
                .await
        ),
        "TagException"
    );
}

#[tokio::test]
async fn aliases() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let a = new_key(&kms, "a").await;
    let b = new_key(&kms, "b").await;
    kms.create_alias()
        .alias_name("alias/logs")
        .target_key_id(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            kms.create_alias()
                .alias_name("alias/logs")
                .target_key_id(&b)
                .send()
                .await
        ),
        "AlreadyExistsException"
    );
    assert_eq!(
        code(
            kms.create_alias()
                .alias_name("alias/aws/s3")
                .target_key_id(&b)
                .send()
                .await
        ),
        "InvalidAliasNameException"
    );
    assert_eq!(
        code(
            kms.create_alias()
                .alias_name("logs")
                .target_key_id(&b)
                .send()
                .await
        ),
        "InvalidAliasNameException"
    );
    assert_eq!(
        code(
            kms.create_alias()
                .alias_name("alias/x")
                .target_key_id("alias/logs")
                .send()
                .await
        ),
        "NotFoundException",
        "an alias cannot point at an alias"
    );
    let described = kms
        .describe_key()
        .key_id("alias/logs")
        .send()
        .await
        .unwrap();
    assert_eq!(described.key_metadata().unwrap().key_id(), a);
    let alias_arn = "arn:aws:kms:us-east-1:000000000000:alias/logs";
    let described = kms.describe_key().key_id(alias_arn).send().await.unwrap();
    assert_eq!(described.key_metadata().unwrap().key_id(), a);

    kms.update_alias()
        .alias_name("alias/logs")
        .target_key_id(&b)
        .send()
        .await
        .unwrap();
    let listed = kms.list_aliases().key_id(&b).send().await.unwrap();
    assert_eq!(listed.aliases().len(), 1);
    assert_eq!(listed.aliases()[0].alias_arn(), Some(alias_arn));
    assert_eq!(listed.aliases()[0].target_key_id(), Some(b.as_str()));
    assert!(
        kms.list_aliases()
            .key_id(&a)
            .send()
            .await
            .unwrap()
            .aliases()
            .is_empty()
    );
    kms.delete_alias()
        .alias_name("alias/logs")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(kms.delete_alias().alias_name("alias/logs").send().await),
        "NotFoundException"
    );
    assert_eq!(
        code(kms.describe_key().key_id("alias/logs").send().await),
        "NotFoundException"
    );
}

#[tokio::test]
async fn encryption_context_is_bound() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = new_key(&kms, "ctx").await;
    let encrypt = |pairs: &[(&str, &str)]| {
        kms.encrypt()
            .key_id(&key)
            .plaintext(Blob::new(b"attack at dawn".to_vec()))
            .set_encryption_context(ctx(pairs))
            .send()
    };
    let decrypt = |blob: Blob, pairs: &[(&str, &str)]| {
        kms.decrypt()
            .ciphertext_blob(blob)
            .set_encryption_context(ctx(pairs))
            .send()
    };

    let without = encrypt(&[]).await.unwrap();
    let plain = decrypt(without.ciphertext_blob().unwrap().clone(), &[])
        .await
        .unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), b"attack at dawn");
    assert_eq!(plain.key_id(), without.key_id());
    assert_eq!(
        code(decrypt(without.ciphertext_blob().unwrap().clone(), &[("a", "1")]).await),
        "InvalidCiphertextException"
    );

    let with = encrypt(&[("a", "1"), ("b", "2")]).await.unwrap();
    let blob = with.ciphertext_blob().unwrap().clone();
    let reordered = decrypt(blob.clone(), &[("b", "2"), ("a", "1")])
        .await
        .unwrap();
    assert_eq!(reordered.plaintext().unwrap().as_ref(), b"attack at dawn");
    for wrong in [
        vec![],
        vec![("a", "1")],
        vec![("a", "1"), ("b", "2"), ("c", "3")],
        vec![("a", "1"), ("b", "3")],
        vec![("A", "1"), ("b", "2")],
    ] {
        assert_eq!(
            code(decrypt(blob.clone(), &wrong).await),
            "InvalidCiphertextException",
            "{wrong:?}"
        );
    }
    let shifted = encrypt(&[("ab", "c")]).await.unwrap();
    assert_eq!(
        code(decrypt(shifted.ciphertext_blob().unwrap().clone(), &[("a", "bc")]).await),
        "InvalidCiphertextException",
        "{{\"ab\":\"c\"}} and {{\"a\":\"bc\"}} must differ"
    );
    let mut tampered = blob.clone().into_inner();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        code(decrypt(Blob::new(tampered), &[("a", "1"), ("b", "2")]).await),
        "InvalidCiphertextException"
    );
    assert_eq!(
        code(decrypt(Blob::new(b"garbage".to_vec()), &[]).await),
        "InvalidCiphertextException"
    );

    let other = new_key(&kms, "other").await;
    assert_eq!(
        code(
            kms.decrypt()
                .ciphertext_blob(blob.clone())
                .set_encryption_context(ctx(&[("a", "1"), ("b", "2")]))
                .key_id(&other)
                .send()
                .await
        ),
        "IncorrectKeyException"
    );
    let named = kms
        .decrypt()
        .ciphertext_blob(blob.clone())
        .set_encryption_context(ctx(&[("a", "1"), ("b", "2")]))
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(named.plaintext().unwrap().as_ref(), b"attack at dawn");

    // ReEncrypt to another key and another context.
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(blob.clone())
        .set_source_encryption_context(ctx(&[("a", "1"), ("b", "2")]))
        .destination_key_id(&other)
        .set_destination_encryption_context(ctx(&[("new", "ctx")]))
        .send()
        .await
        .unwrap();
    assert!(moved.key_id().unwrap().ends_with(&other));
    assert!(moved.source_key_id().unwrap().ends_with(&key));
    let back = decrypt(moved.ciphertext_blob().unwrap().clone(), &[("new", "ctx")])
        .await
        .unwrap();
    assert_eq!(back.plaintext().unwrap().as_ref(), b"attack at dawn");
    assert!(back.key_id().unwrap().ends_with(&other));

    assert_eq!(
        code(
            kms.encrypt()
                .key_id(&key)
                .plaintext(Blob::new(vec![0; 4097]))
                .send()
                .await
        ),
        "ValidationException"
    );
}

#[tokio::test]
async fn data_keys_random_and_their_events() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = new_key(&kms, "dk").await;
    kms.create_alias()
        .alias_name("alias/trail")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let context = ctx(&[
        (
            "aws:cloudtrail:arn",
            "arn:aws:cloudtrail:us-east-1:000000000000:trail/t",
        ),
        ("aws:s3:arn", "arn:aws:s3:::bucket/AWSLogs/000000000000/"),
    ]);
    let generated = kms
        .generate_data_key()
        .key_id("alias/trail")
        .key_spec(DataKeySpec::Aes256)
        .set_encryption_context(context.clone())
        .send()
        .await
        .unwrap();
    let plaintext = generated.plaintext().unwrap().as_ref().to_vec();
    assert_eq!(plaintext.len(), 32);
    assert!(
        generated.key_id().unwrap().ends_with(&key),
        "the key ARN, not the alias"
    );
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(generated.ciphertext_blob().unwrap().clone())
        .set_encryption_context(context.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        decrypted.plaintext().unwrap().as_ref(),
        plaintext.as_slice()
    );

    let event = server.event_for_request(generated.request_id().unwrap());
    assert_eq!(event["eventName"], "GenerateDataKey");
    assert_eq!(event["eventSource"], "kms.amazonaws.com");
    assert_eq!(event["readOnly"], true);
    assert_eq!(event["requestParameters"]["keyId"], "alias/trail");
    assert_eq!(event["requestParameters"]["keySpec"], "AES_256");
    assert_eq!(
        event["requestParameters"]["encryptionContext"]["aws:cloudtrail:arn"],
        "arn:aws:cloudtrail:us-east-1:000000000000:trail/t"
    );
    assert_eq!(event["responseElements"], serde_json::Value::Null);
    assert_eq!(event["resources"][0]["type"], "AWS::KMS::Key");
    assert_eq!(event["resources"][0]["ARN"], generated.key_id().unwrap());
    assert_eq!(
        event["additionalEventData"]["keyMaterialId"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&plaintext);
    let all_events = serde_json::to_string(&server.events()).unwrap();
    assert!(
        !all_events.contains(&b64),
        "a data key must never reach the journal"
    );

    let without = kms
        .generate_data_key_without_plaintext()
        .key_id(&key)
        .number_of_bytes(64)
        .send()
        .await
        .unwrap();
    let decrypted = kms
        .decrypt()
        .ciphertext_blob(without.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(decrypted.plaintext().unwrap().as_ref().len(), 64);

    assert_eq!(
        code(kms.generate_data_key().key_id(&key).send().await),
        "ValidationException",
        "neither KeySpec nor NumberOfBytes"
    );
    assert_eq!(
        code(
            kms.generate_data_key()
                .key_id(&key)
                .key_spec(DataKeySpec::Aes128)
                .number_of_bytes(16)
                .send()
                .await
        ),
        "ValidationException",
        "both KeySpec and NumberOfBytes"
    );
    assert_eq!(
        code(
            kms.generate_data_key()
                .key_id(&key)
                .number_of_bytes(1025)
                .send()
                .await
        ),
        "ValidationException"
    );
    let random = kms
        .generate_random()
        .number_of_bytes(100)
        .send()
        .await
        .unwrap();
    assert_eq!(random.plaintext().unwrap().as_ref().len(), 100);
    assert_eq!(
        code(kms.generate_random().number_of_bytes(0).send().await),
        "ValidationException"
    );
    let created = server
        .events()
        .into_iter()
        .find(|e| e["eventName"] == "CreateKey")
        .unwrap();
    assert_eq!(
        created["responseElements"]["keyMetadata"]["keyId"],
        key.as_str()
    );
    assert_eq!(created["readOnly"], false);
}

#[tokio::test]
async fn rotation_keeps_old_ciphertexts_readable() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = new_key(&kms, "rot").await;
    let status = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert!(!status.key_rotation_enabled());
    kms.enable_key_rotation()
        .key_id(&key)
        .rotation_period_in_days(90)
        .send()
        .await
        .unwrap();
    let status = kms
        .get_key_rotation_status()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(90));
    assert!(status.next_rotation_date().is_some());
    assert_eq!(
        code(
            kms.enable_key_rotation()
                .key_id(&key)
                .rotation_period_in_days(30)
                .send()
                .await
        ),
        "ValidationException"
    );

    let before = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"old".to_vec()))
        .send()
        .await
        .unwrap();
    let material_before = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .current_key_material_id()
        .unwrap()
        .to_string();
    kms.rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let material_after = kms
        .describe_key()
        .key_id(&key)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .current_key_material_id()
        .unwrap()
        .to_string();
    assert_ne!(material_before, material_after);
    let rotations = kms.list_key_rotations().key_id(&key).send().await.unwrap();
    assert_eq!(rotations.rotations().len(), 1);
    assert_eq!(
        rotations.rotations()[0].key_material_id(),
        Some(material_after.as_str())
    );
    assert_eq!(
        rotations.rotations()[0].rotation_type().map(|t| t.as_str()),
        Some("ON_DEMAND")
    );
    let old = kms
        .decrypt()
        .ciphertext_blob(before.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(old.plaintext().unwrap().as_ref(), b"old");
    assert_eq!(old.key_material_id(), Some(material_before.as_str()));
    let after = kms
        .generate_data_key()
        .key_id(&key)
        .key_spec(DataKeySpec::Aes256)
        .send()
        .await
        .unwrap();
    assert_eq!(after.key_material_id(), Some(material_after.as_str()));

    kms.disable_key_rotation()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert!(
        !kms.get_key_rotation_status()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .key_rotation_enabled()
    );
    kms.disable_key().key_id(&key).send().await.unwrap();
    assert_eq!(
        code(kms.rotate_key_on_demand().key_id(&key).send().await),
        "DisabledException"
    );
}

#[tokio::test]
async fn keys_survive_a_restart_and_a_wrong_root_key_is_refused() {
    let mut server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = new_key(&kms, "persistent").await;
    kms.create_alias()
        .alias_name("alias/keep")
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    kms.tag_resource()
        .key_id(&key)
        .tags(Tag::builder().tag_key("k").tag_value("v").build().unwrap())
        .send()
        .await
        .unwrap();
    let first = kms
        .encrypt()
        .key_id("alias/keep")
        .plaintext(Blob::new(b"before".to_vec()))
        .set_encryption_context(ctx(&[("x", "y")]))
        .send()
        .await
        .unwrap();
    kms.rotate_key_on_demand()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    let second = kms
        .encrypt()
        .key_id("alias/keep")
        .plaintext(Blob::new(b"after rotation".to_vec()))
        .send()
        .await
        .unwrap();

    server.restart();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let described = kms
        .describe_key()
        .key_id("alias/keep")
        .send()
        .await
        .unwrap();
    assert_eq!(described.key_metadata().unwrap().key_id(), key);
    let tags = kms.list_resource_tags().key_id(&key).send().await.unwrap();
    assert_eq!(tags.tags().len(), 1);
    assert_eq!(
        kms.list_key_rotations()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .rotations()
            .len(),
        1
    );
    let a = kms
        .decrypt()
        .ciphertext_blob(first.ciphertext_blob().unwrap().clone())
        .set_encryption_context(ctx(&[("x", "y")]))
        .send()
        .await
        .unwrap();
    assert_eq!(a.plaintext().unwrap().as_ref(), b"before");
    let b = kms
        .decrypt()
        .ciphertext_blob(second.ciphertext_blob().unwrap().clone())
        .send()
        .await
        .unwrap();
    assert_eq!(b.plaintext().unwrap().as_ref(), b"after rotation");

    // The same data directory with another root key: the server must refuse to start.
    let status = server.terminate();
    assert!(status.success());
    let data_dir = server.data_dir();
    let stderr = refused_start(
        &["--data-dir".as_ref(), data_dir.as_os_str()],
        &[("KEYTRAIL_ROOT_KEY", &"11".repeat(32))],
    );
    assert!(stderr.contains("root key"), "{stderr}");
}

#[tokio::test]
async fn last_usage_is_the_newest_successful_cryptographic_call_in_the_journal() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let source = new_key(&kms, "source").await;
    let destination = new_key(&kms, "destination").await;
    let last_usage = |key: String| {
        let kms = kms.clone();
        async move { kms.get_key_last_usage().key_id(key).send().await.unwrap() }
    };

    let unused = last_usage(source.clone()).await;
    assert_eq!(unused.key_id(), Some(source.as_str()));
    let usage = unused.key_last_usage().expect("an empty KeyLastUsage");
    assert_eq!(usage.operation(), None);
    assert_eq!(usage.cloud_trail_event_id(), None);
    let created = kms
        .describe_key()
        .key_id(&source)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .creation_date()
        .copied()
        .unwrap();
    assert_eq!(unused.key_creation_date(), Some(&created));
    assert_eq!(
        unused.tracking_start_date(),
        Some(&created),
        "the journal holds everything since the key was created"
    );

    let context = ctx(&[("purpose", "last-usage")]);
    let generated = kms
        .generate_data_key()
        .key_id(&source)
        .key_spec(DataKeySpec::Aes256)
        .set_encryption_context(context.clone())
        .send()
        .await
        .unwrap();
    let request_id = generated.request_id().unwrap().to_string();
    let used = last_usage(source.clone()).await;
    let usage = used.key_last_usage().unwrap();
    assert_eq!(
        usage.operation().map(|o| o.as_str()),
        Some("GenerateDataKey")
    );
    assert_eq!(usage.kms_request_id(), Some(request_id.as_str()));
    let event = server.event_for_request(&request_id);
    assert_eq!(
        usage.cloud_trail_event_id(),
        event["eventID"].as_str(),
        "the event id of that call's CloudTrail record"
    );
    assert!(usage.timestamp().is_some());

    // A call that fails is not a use of the key; neither are management calls.
    let wrong_context = kms
        .decrypt()
        .ciphertext_blob(generated.ciphertext_blob().unwrap().clone())
        .set_encryption_context(ctx(&[("purpose", "something else")]))
        .send()
        .await;
    assert_eq!(code(wrong_context), "InvalidCiphertextException");
    kms.describe_key().key_id(&source).send().await.unwrap();
    let still = last_usage(source.clone()).await;
    assert_eq!(
        still.key_last_usage().unwrap().kms_request_id(),
        Some(request_id.as_str())
    );

    // ReEncrypt uses both keys.
    let moved = kms
        .re_encrypt()
        .ciphertext_blob(generated.ciphertext_blob().unwrap().clone())
        .set_source_encryption_context(context.clone())
        .destination_key_id(&destination)
        .send()
        .await
        .unwrap();
    let moved_id = moved.request_id().unwrap().to_string();
    for key in [&source, &destination] {
        let usage = last_usage(key.clone()).await;
        let usage = usage.key_last_usage().unwrap();
        assert_eq!(usage.operation().map(|o| o.as_str()), Some("ReEncrypt"));
        assert_eq!(usage.kms_request_id(), Some(moved_id.as_str()));
    }

    // Key id or key ARN only, as the model says; an unknown key is not found.
    let by_alias = kms
        .get_key_last_usage()
        .key_id("alias/anything")
        .send()
        .await;
    assert_eq!(code(by_alias), "NotFoundException");
    let unknown = kms
        .get_key_last_usage()
        .key_id("00000000-0000-4000-8000-000000000000")
        .send()
        .await;
    assert_eq!(code(unknown), "NotFoundException");
    let asked = server.events();
    assert!(
        asked
            .iter()
            .any(|e| e["eventName"] == "GetKeyLastUsage" && e["readOnly"] == true),
        "GetKeyLastUsage is journaled as a read-only call"
    );
}
