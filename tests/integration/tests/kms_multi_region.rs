//! Multi-Region keys through the AWS SDK for Rust: CreateKey with MultiRegion, ReplicateKey,
//! ciphertexts that open in every Region of the set, rotation that follows the primary,
//! UpdatePrimaryRegion, the events in both Regions, a restart, and deletion of a primary that
//! waits for its replicas.

mod common;

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeyMetadata, KeyState, MultiRegionKeyType, Tag};
use common::*;

use error_code as code;

const US: &str = "us-east-1";
const EU: &str = "eu-west-1";
const AP: &str = "ap-southeast-2";

fn client(server: &TestServer, region: &str) -> Client {
    kms_client_in(&server.url, long_term(ROOT_KEY, ROOT_SECRET), region)
}

fn arn(region: &str, key_id: &str) -> String {
    format!("arn:aws:kms:{region}:000000000000:key/{key_id}")
}

async fn describe(kms: &Client, key_id: &str) -> KeyMetadata {
    kms.describe_key()
        .key_id(key_id)
        .send()
        .await
        .expect("describe key")
        .key_metadata()
        .expect("metadata")
        .clone()
}

/// The key's type, its primary's Region and its replicas' Regions, as DescribeKey shows them.
fn configuration(meta: &KeyMetadata) -> (MultiRegionKeyType, String, Vec<String>) {
    let config = meta
        .multi_region_configuration()
        .expect("multi-Region configuration");
    let primary = config.primary_key().expect("primary key");
    assert_eq!(
        primary.arn(),
        Some(arn(primary.region().unwrap(), meta.key_id()).as_str())
    );
    let replicas = config
        .replica_keys()
        .iter()
        .map(|r| {
            assert_eq!(
                r.arn(),
                Some(arn(r.region().unwrap(), meta.key_id()).as_str())
            );
            r.region().unwrap().to_string()
        })
        .collect();
    (
        config.multi_region_key_type().unwrap().clone(),
        primary.region().unwrap().to_string(),
        replicas,
    )
}

async fn encrypt(kms: &Client, key_id: &str, plaintext: &[u8]) -> Vec<u8> {
    kms.encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(plaintext))
        .encryption_context("purpose", "multi-region")
        .send()
        .await
        .expect("encrypt")
        .ciphertext_blob()
        .unwrap()
        .as_ref()
        .to_vec()
}

async fn decrypt(kms: &Client, ciphertext: &[u8]) -> Vec<u8> {
    kms.decrypt()
        .ciphertext_blob(Blob::new(ciphertext))
        .encryption_context("purpose", "multi-region")
        .send()
        .await
        .expect("decrypt")
        .plaintext()
        .unwrap()
        .as_ref()
        .to_vec()
}

/// The key material ids ListKeyRotations shows.
async fn rotated_materials(kms: &Client, key_id: &str) -> Vec<String> {
    kms.list_key_rotations()
        .key_id(key_id)
        .send()
        .await
        .expect("list key rotations")
        .rotations()
        .iter()
        .map(|r| r.key_material_id().unwrap().to_string())
        .collect()
}

async fn create_primary(us: &Client) -> String {
    us.create_key()
        .multi_region(true)
        .description("primary")
        .send()
        .await
        .expect("create multi-Region key")
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string()
}

#[tokio::test]
async fn replicas_share_key_material_and_follow_their_primary() {
    let mut server = TestServer::start();
    let (us, eu, ap) = (
        client(&server, US),
        client(&server, EU),
        client(&server, AP),
    );

    let created = us
        .create_key()
        .multi_region(true)
        .description("primary")
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().unwrap();
    let id = meta.key_id().to_string();
    assert!(
        id.starts_with("mrk-") && id.len() == 36 && id[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(meta.multi_region(), Some(true));
    assert_eq!(
        configuration(meta),
        (MultiRegionKeyType::Primary, US.into(), vec![])
    );
    let from_us = encrypt(&us, &id, b"sealed in us-east-1").await;

    // The replica: the same key id and material in another Region, its own description and tags.
    let replicated = us
        .replicate_key()
        .key_id(&id)
        .replica_region(EU)
        .description("replica")
        .tags(
            Tag::builder()
                .tag_key("copy")
                .tag_value("eu")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("replicate key");
    let replica = replicated.replica_key_metadata().unwrap();
    assert_eq!(replica.key_id(), id);
    assert_eq!(replica.arn(), Some(arn(EU, &id).as_str()));
    assert_eq!(replica.key_state(), Some(&KeyState::Enabled));
    assert_eq!(replica.description(), Some("replica"));
    assert_eq!(replica.multi_region(), Some(true));
    assert_eq!(
        configuration(replica),
        (MultiRegionKeyType::Replica, US.into(), vec![EU.to_string()])
    );
    assert!(
        replicated
            .replica_policy()
            .unwrap()
            .contains("arn:aws:iam::000000000000:root")
    );
    assert_eq!(replicated.replica_tags()[0].tag_value(), "eu");
    let replicate_request = replicated.request_id().unwrap().to_string();
    assert_eq!(
        configuration(&describe(&us, &id).await),
        (MultiRegionKeyType::Primary, US.into(), vec![EU.to_string()])
    );
    assert_eq!(describe(&us, &id).await.description(), Some("primary"));

    // Ciphertexts open in every Region of the set, with or without the KeyId.
    assert_eq!(decrypt(&eu, &from_us).await, b"sealed in us-east-1");
    let named = eu
        .decrypt()
        .key_id(arn(EU, &id))
        .ciphertext_blob(Blob::new(from_us.clone()))
        .encryption_context("purpose", "multi-region")
        .send()
        .await
        .unwrap();
    assert_eq!(named.key_id(), Some(arn(EU, &id).as_str()));
    let from_eu = encrypt(&eu, &id, b"sealed in eu-west-1").await;
    assert_eq!(decrypt(&us, &from_eu).await, b"sealed in eu-west-1");
    // ... but not in a Region without a related key, and the context still binds.
    assert_eq!(
        code(
            ap.decrypt()
                .ciphertext_blob(Blob::new(from_us.clone()))
                .encryption_context("purpose", "multi-region")
                .send()
                .await
        ),
        "InvalidCiphertextException"
    );
    assert_eq!(
        code(
            eu.decrypt()
                .ciphertext_blob(Blob::new(from_us.clone()))
                .encryption_context("purpose", "other")
                .send()
                .await
        ),
        "InvalidCiphertextException"
    );

    // What ReplicateKey refuses.
    let again = us
        .replicate_key()
        .key_id(&id)
        .replica_region(EU)
        .send()
        .await;
    assert_eq!(code(again), "AlreadyExistsException");
    let from_replica = eu
        .replicate_key()
        .key_id(&id)
        .replica_region(AP)
        .send()
        .await;
    assert_eq!(code(from_replica), "UnsupportedOperationException");
    let single = us
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    assert_eq!(describe(&us, &single).await.multi_region(), Some(false));
    let not_multi = us
        .replicate_key()
        .key_id(&single)
        .replica_region(EU)
        .send()
        .await;
    assert_eq!(code(not_multi), "UnsupportedOperationException");
    let same_region = us
        .replicate_key()
        .key_id(&id)
        .replica_region(US)
        .send()
        .await;
    assert_eq!(code(same_region), "ValidationException");
    let bad_region = us
        .replicate_key()
        .key_id(&id)
        .replica_region("Europe")
        .send()
        .await;
    assert_eq!(code(bad_region), "ValidationException");
    let by_alias = us
        .replicate_key()
        .key_id("alias/none")
        .replica_region(AP)
        .send()
        .await;
    assert_eq!(code(by_alias), "NotFoundException");

    // Rotation is set and done on the primary; the replicas follow, with the same material.
    let on_replica = eu.enable_key_rotation().key_id(&id).send().await;
    assert_eq!(code(on_replica), "UnsupportedOperationException");
    let on_demand_on_replica = eu.rotate_key_on_demand().key_id(&id).send().await;
    assert_eq!(code(on_demand_on_replica), "UnsupportedOperationException");
    us.enable_key_rotation()
        .key_id(&id)
        .rotation_period_in_days(120)
        .send()
        .await
        .unwrap();
    let status = eu
        .get_key_rotation_status()
        .key_id(&id)
        .send()
        .await
        .unwrap();
    assert!(status.key_rotation_enabled());
    assert_eq!(status.rotation_period_in_days(), Some(120));
    us.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    let in_us = rotated_materials(&us, &id).await;
    let in_eu = rotated_materials(&eu, &id).await;
    assert_eq!(in_us.len(), 1);
    assert_eq!(in_us, in_eu);
    assert_eq!(
        describe(&eu, &id).await.current_key_material_id(),
        describe(&us, &id).await.current_key_material_id()
    );
    let rotated_in_eu = encrypt(&eu, &id, b"after rotation").await;
    assert_eq!(decrypt(&us, &rotated_in_eu).await, b"after rotation");
    assert_eq!(decrypt(&eu, &from_us).await, b"sealed in us-east-1");

    // A replica made after the rotation gets every backing key.
    us.replicate_key()
        .key_id(arn(US, &id))
        .replica_region(AP)
        .send()
        .await
        .unwrap();
    assert_eq!(decrypt(&ap, &from_us).await, b"sealed in us-east-1");
    assert_eq!(decrypt(&ap, &rotated_in_eu).await, b"after rotation");
    assert!(
        ap.get_key_rotation_status()
            .key_id(&id)
            .send()
            .await
            .unwrap()
            .key_rotation_enabled()
    );

    // Key state is not shared; aliases are per Region.
    eu.disable_key().key_id(&id).send().await.unwrap();
    assert_eq!(
        describe(&eu, &id).await.key_state(),
        Some(&KeyState::Disabled)
    );
    assert_eq!(
        describe(&us, &id).await.key_state(),
        Some(&KeyState::Enabled)
    );
    let disabled = eu
        .decrypt()
        .ciphertext_blob(Blob::new(from_us.clone()))
        .encryption_context("purpose", "multi-region")
        .send()
        .await;
    assert_eq!(code(disabled), "DisabledException");
    eu.enable_key().key_id(&id).send().await.unwrap();
    eu.create_alias()
        .alias_name("alias/eu-copy")
        .target_key_id(&id)
        .send()
        .await
        .unwrap();
    assert_eq!(decrypt(&eu, &from_us).await, b"sealed in us-east-1");

    // UpdatePrimaryRegion: eu-west-1 becomes the primary, us-east-1 a replica.
    let no_replica = us
        .update_primary_region()
        .key_id(&id)
        .primary_region("ca-central-1")
        .send()
        .await;
    assert_eq!(code(no_replica), "NotFoundException");
    let from_a_replica = eu
        .update_primary_region()
        .key_id(&id)
        .primary_region(AP)
        .send()
        .await;
    assert_eq!(code(from_a_replica), "UnsupportedOperationException");
    us.update_primary_region()
        .key_id(&id)
        .primary_region(EU)
        .send()
        .await
        .expect("update primary region");
    assert_eq!(
        configuration(&describe(&eu, &id).await),
        (
            MultiRegionKeyType::Primary,
            EU.into(),
            vec![AP.to_string(), US.to_string()]
        )
    );
    assert_eq!(
        configuration(&describe(&us, &id).await),
        (
            MultiRegionKeyType::Replica,
            EU.into(),
            vec![AP.to_string(), US.to_string()]
        )
    );
    let from_old_primary = us
        .replicate_key()
        .key_id(&id)
        .replica_region("ca-central-1")
        .send()
        .await;
    assert_eq!(code(from_old_primary), "UnsupportedOperationException");
    eu.rotate_key_on_demand().key_id(&id).send().await.unwrap();
    assert_eq!(
        describe(&us, &id).await.current_key_material_id(),
        describe(&eu, &id).await.current_key_material_id()
    );

    // Events: ReplicateKey in the primary's Region, CreateKey in the replica's.
    let events = server.events();
    let of_request: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["requestID"] == replicate_request)
        .collect();
    assert_eq!(of_request.len(), 2, "{of_request:?}");
    let replicate_event = of_request
        .iter()
        .find(|e| e["eventName"] == "ReplicateKey")
        .expect("ReplicateKey event");
    assert_eq!(replicate_event["awsRegion"], US);
    assert_eq!(replicate_event["requestParameters"]["replicaRegion"], EU);
    assert_eq!(replicate_event["resources"][0]["ARN"], arn(US, &id));
    let create_event = of_request
        .iter()
        .find(|e| e["eventName"] == "CreateKey")
        .expect("CreateKey event in the replica's Region");
    assert_eq!(create_event["awsRegion"], EU);
    assert_eq!(create_event["requestParameters"]["multiRegion"], true);
    assert_eq!(create_event["resources"][0]["ARN"], arn(EU, &id));
    assert_eq!(
        create_event["responseElements"]["keyMetadata"]["multiRegionConfiguration"]["multiRegionKeyType"],
        "REPLICA"
    );
    assert_ne!(create_event["eventID"], replicate_event["eventID"]);
    // UpdatePrimaryRegion: one record in each Region whose key changed role.
    let updates: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["eventName"] == "UpdatePrimaryRegion" && e["errorCode"].is_null())
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert_eq!(updates[0]["requestID"], updates[1]["requestID"]);
    for (region, update) in [(EU, updates[0]), (US, updates[1])] {
        assert_eq!(update["awsRegion"], region);
        assert_eq!(update["responseElements"]["keyId"], arn(region, &id));
        assert_eq!(update["resources"][0]["ARN"], arn(region, &id));
        assert_eq!(update["requestParameters"]["primaryRegion"], EU);
    }
    // What KMS did on its own: each on-demand rotation is also a RotateKey service event, and
    // bringing the replicas along a SynchronizeMultiRegionKey in the primary's Region.
    let internal = |name: &str| -> Vec<&serde_json::Value> {
        events.iter().filter(|e| e["eventName"] == name).collect()
    };
    let rotations = internal("RotateKey");
    assert_eq!(rotations.len(), 2, "{rotations:?}");
    assert_eq!(rotations[0]["eventType"], "AwsServiceEvent");
    assert_eq!(rotations[0]["userIdentity"]["invokedBy"], "AWS Internal");
    assert!(rotations[0]["userIdentity"]["type"].is_null());
    assert_eq!(
        rotations[0]["serviceEventDetails"]["rotationType"],
        "ON_DEMAND"
    );
    assert_eq!(rotations[0]["serviceEventDetails"]["keyId"], id.as_str());
    assert_eq!(rotations[0]["awsRegion"], US);
    assert_eq!(rotations[1]["awsRegion"], EU);
    let synchronized = internal("SynchronizeMultiRegionKey");
    // Enabling rotation, the two on-demand rotations.
    assert_eq!(synchronized.len(), 3, "{synchronized:?}");
    assert_eq!(synchronized[0]["eventType"], "AwsApiCall");
    assert_eq!(synchronized[0]["resources"][0]["ARN"], arn(US, &id));
    assert_eq!(synchronized[2]["resources"][0]["ARN"], arn(EU, &id));

    // Everything survives a restart.
    server.restart();
    let (us, eu, ap) = (
        client(&server, US),
        client(&server, EU),
        client(&server, AP),
    );
    assert_eq!(configuration(&describe(&ap, &id).await).1, EU.to_string());
    assert_eq!(decrypt(&ap, &from_eu).await, b"sealed in eu-west-1");
    assert_eq!(decrypt(&us, &rotated_in_eu).await, b"after rotation");
    let latest = encrypt(&eu, &id, b"newest material").await;
    assert_eq!(decrypt(&us, &latest).await, b"newest material");
}

async fn schedule_deletion_in_7_days(
    kms: &Client,
    key_id: &str,
) -> aws_sdk_kms::operation::schedule_key_deletion::ScheduleKeyDeletionOutput {
    kms.schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(7)
        .send()
        .await
        .expect("schedule key deletion")
}

#[tokio::test]
async fn a_primary_key_is_deleted_after_its_replicas() {
    // The service clock runs 100,000 times as fast: a 7-day waiting period lasts ~6 s.
    let server = TestServer::start_with(DECLARED_CREDENTIALS, &["--clock-rate", "100000"]);
    let (us, eu) = (client(&server, US), client(&server, EU));
    let id = create_primary(&us).await;
    us.replicate_key()
        .key_id(&id)
        .replica_region(EU)
        .send()
        .await
        .unwrap();

    let scheduled = schedule_deletion_in_7_days(&us, &id).await;
    assert_eq!(
        scheduled.key_state(),
        Some(&KeyState::PendingReplicaDeletion)
    );
    assert!(scheduled.deletion_date().is_none());
    let meta = describe(&us, &id).await;
    assert_eq!(meta.key_state(), Some(&KeyState::PendingReplicaDeletion));
    assert_eq!(meta.pending_deletion_window_in_days(), Some(7));
    assert!(meta.deletion_date().is_none());
    let unusable = us
        .encrypt()
        .key_id(&id)
        .plaintext(Blob::new(b"x".to_vec()))
        .send()
        .await;
    assert_eq!(code(unusable), "KMSInvalidStateException");
    let replicate = us
        .replicate_key()
        .key_id(&id)
        .replica_region(AP)
        .send()
        .await;
    assert_eq!(code(replicate), "KMSInvalidStateException");
    // Cancelling works as for any key, and the replica is untouched throughout.
    us.cancel_key_deletion().key_id(&id).send().await.unwrap();
    assert_eq!(
        describe(&us, &id).await.key_state(),
        Some(&KeyState::Disabled)
    );
    schedule_deletion_in_7_days(&us, &id).await;
    assert_eq!(
        describe(&eu, &id).await.key_state(),
        Some(&KeyState::Enabled)
    );

    let replica_deletion = schedule_deletion_in_7_days(&eu, &id).await;
    assert_eq!(
        replica_deletion.key_state(),
        Some(&KeyState::PendingDeletion)
    );
    assert!(replica_deletion.deletion_date().is_some());

    tokio::time::sleep(std::time::Duration::from_millis(6_800)).await;
    let gone = eu.describe_key().key_id(&id).send().await;
    assert_eq!(code(gone), "NotFoundException");
    let meta = describe(&us, &id).await;
    assert_eq!(meta.key_state(), Some(&KeyState::PendingDeletion));
    assert!(meta.deletion_date().is_some());
    assert_eq!(
        configuration(&meta),
        (MultiRegionKeyType::Primary, US.into(), vec![])
    );

    tokio::time::sleep(std::time::Duration::from_millis(6_800)).await;
    let gone = us.describe_key().key_id(&id).send().await;
    assert_eq!(code(gone), "NotFoundException");

    // Each deletion is a DeleteKey service event in the key's Region, the replica's first.
    let deletions: Vec<serde_json::Value> = server
        .events()
        .into_iter()
        .filter(|e| e["eventName"] == "DeleteKey")
        .collect();
    assert_eq!(deletions.len(), 2, "{deletions:?}");
    for (region, deletion) in [EU, US].into_iter().zip(&deletions) {
        assert_eq!(deletion["awsRegion"], region);
        assert_eq!(deletion["eventType"], "AwsServiceEvent");
        assert_eq!(deletion["readOnly"], false);
        assert_eq!(deletion["serviceEventDetails"]["keyId"], id.as_str());
        assert_eq!(deletion["resources"][0]["ARN"], arn(region, &id));
        assert_eq!(deletion["userIdentity"]["accountId"], ROOT_ACCOUNT);
    }
}
