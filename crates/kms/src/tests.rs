//! Service-level tests that need to move a key through time, which clients cannot do.

use std::sync::Arc;

use keytrail_audit::{CallContext, Journal, Principal};
use keytrail_crypto::RootKey;
use keytrail_store::Store;
use keytrail_store::sqlite::SqliteStore;

use crate::model::*;
use crate::service::now_ms;
use crate::{Kms, KmsError};

fn ctx() -> CallContext {
    CallContext {
        request_id: "r".into(),
        time: time::OffsetDateTime::now_utc(),
        region: "us-east-1".into(),
        principal: Principal::root("111122223333", None),
        source_ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        invoked_by: None,
        source_arn: None,
        source_account: None,
        tls: None,
    }
}

fn kms(dir: &std::path::Path) -> (Kms, Arc<dyn Store>) {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("k.db")).unwrap());
    let root_key = Arc::new(RootKey::ephemeral().unwrap());
    let identities = Arc::new(keytrail_iam::Identities::new(
        Arc::clone(&store),
        Arc::clone(&root_key),
    ));
    let kms = Kms::new(
        Arc::clone(&store),
        root_key,
        identities,
        Journal::new(Arc::clone(&store)),
    );
    (kms, store)
}

async fn scheduled_key(kms: &Kms, alias: &str) -> String {
    let created = kms
        .execute(&ctx(), &CreateKeyRequest::default())
        .await
        .unwrap();
    let id = created.key_metadata.unwrap().key_id.unwrap();
    kms.execute(
        &ctx(),
        &CreateAliasRequest {
            alias_name: Some(alias.into()),
            target_key_id: Some(id.clone()),
        },
    )
    .await
    .unwrap();
    kms.execute(
        &ctx(),
        &ScheduleKeyDeletionRequest {
            key_id: Some(id.clone()),
            pending_window_in_days: Some(7),
        },
    )
    .await
    .unwrap();
    id
}

/// Moves the key's deletion date into the past, as if its waiting period had run out.
async fn expire(kms: &Kms, id: &str) {
    let key = kms.lookup(&ctx(), id, false).await.unwrap();
    kms.update_key(&key, |r, _| {
        r.deletion_ms = Some(now_ms() - 1);
        Ok(())
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn the_sweeper_deletes_keys_whose_window_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let (kms, store) = kms(dir.path());
    let expired = scheduled_key(&kms, "alias/old").await;
    let waiting = scheduled_key(&kms, "alias/waiting").await;
    expire(&kms, &expired).await;
    kms.sweep().await.unwrap();
    assert!(
        store
            .get_kms_key("111122223333", "us-east-1", &expired)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_kms_key("111122223333", "us-east-1", &waiting)
            .await
            .unwrap()
            .is_some()
    );
    let aliases = store.list_aliases(None).await.unwrap();
    assert_eq!(aliases.len(), 1, "the deleted key's alias goes with it");
    let err = kms
        .execute(
            &ctx(),
            &DescribeKeyRequest {
                key_id: Some(expired),
                grant_tokens: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::NotFound(_)));
}

#[tokio::test]
async fn an_expired_key_is_gone_even_before_the_sweeper_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (kms, store) = kms(dir.path());
    let id = scheduled_key(&kms, "alias/x").await;
    expire(&kms, &id).await;
    let err = kms
        .execute(
            &ctx(),
            &DescribeKeyRequest {
                key_id: Some("alias/x".into()),
                grant_tokens: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::NotFound(_)), "{err:?}");
    let err = kms
        .execute(
            &ctx(),
            &DescribeKeyRequest {
                key_id: Some(id.clone()),
                grant_tokens: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, KmsError::NotFound(_)));
    assert!(store.list_kms_keys(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn due_automatic_rotation_runs_in_the_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let (kms, _store) = kms(dir.path());
    let created = kms
        .execute(&ctx(), &CreateKeyRequest::default())
        .await
        .unwrap();
    let id = created.key_metadata.unwrap().key_id.unwrap();
    kms.execute(
        &ctx(),
        &EnableKeyRotationRequest {
            key_id: Some(id.clone()),
            rotation_period_in_days: Some(90),
        },
    )
    .await
    .unwrap();
    let key = kms.lookup(&ctx(), &id, false).await.unwrap();
    let before = key.record.current_material_id.clone();
    kms.update_key(&key, |r, _| {
        r.next_rotation_ms = Some(now_ms() - 1);
        Ok(())
    })
    .await
    .unwrap();
    kms.sweep().await.unwrap();
    let key = kms.lookup(&ctx(), &id, false).await.unwrap();
    assert_ne!(key.record.current_material_id, before);
    assert_eq!(key.materials.len(), 2);
    assert_eq!(key.materials[1].rotation_type.as_deref(), Some("AUTOMATIC"));
    assert!(key.record.next_rotation_ms.is_some_and(|t| t > now_ms()));
}

/// The key policy CloudTrail's documentation gives for log-file encryption (§5.12), verbatim.
const CLOUDTRAIL_KEY_POLICY: &str = r#"{
    "Version": "2012-10-17",
    "Id": "Key policy created by CloudTrail",
    "Statement": [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": ["arn:aws:iam::111122223333:root"]},
            "Action": "kms:*",
            "Resource": "*"
        },
        {
            "Sid": "Allow CloudTrail to encrypt logs",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": {
                "StringEquals": {
                    "aws:SourceArn": "arn:aws:cloudtrail:us-east-1:111122223333:trail/management"
                },
                "StringLike": {
                    "kms:EncryptionContext:aws:cloudtrail:arn": "arn:aws:cloudtrail:*:111122223333:trail/*"
                }
            }
        },
        {
            "Sid": "Allow CloudTrail to describe key",
            "Effect": "Allow",
            "Principal": {"Service": "cloudtrail.amazonaws.com"},
            "Action": "kms:DescribeKey",
            "Resource": "*"
        },
        {
            "Sid": "Allow principals in the account to decrypt log files",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": ["kms:Decrypt", "kms:ReEncryptFrom"],
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": "111122223333"},
                "StringLike": {
                    "kms:EncryptionContext:aws:cloudtrail:arn": "arn:aws:cloudtrail:*:111122223333:trail/*"
                }
            }
        }
    ]
}"#;

const TRAIL: &str = "arn:aws:cloudtrail:us-east-1:111122223333:trail/management";

fn denied<T>(result: Result<T, KmsError>) -> bool {
    matches!(result, Err(KmsError::AccessDenied(_)))
}

fn as_cloudtrail(source_arn: Option<&str>) -> CallContext {
    CallContext {
        principal: Principal::service("111122223333", "cloudtrail.amazonaws.com"),
        source_arn: source_arn.map(str::to_string),
        source_account: source_arn.map(|_| "111122223333".to_string()),
        ..ctx()
    }
}

fn trail_context(trail: &str) -> Option<EncryptionContextMap> {
    Some(
        [
            ("aws:cloudtrail:arn".to_string(), trail.to_string()),
            (
                "aws:s3:arn".to_string(),
                "arn:aws:s3:::logs/AWSLogs/111122223333/".to_string(),
            ),
        ]
        .into_iter()
        .collect(),
    )
}

#[tokio::test]
async fn the_cloudtrail_key_policy_admits_the_service_for_its_trail_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (kms, _store) = kms(dir.path());
    let created = kms
        .execute(
            &ctx(),
            &CreateKeyRequest {
                policy: Some(CLOUDTRAIL_KEY_POLICY.into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let key_id = created.key_metadata.unwrap().key_id.unwrap();
    let generate = |context: Option<EncryptionContextMap>| GenerateDataKeyRequest {
        key_id: Some(key_id.clone()),
        encryption_context: context,
        key_spec: Some("AES_256".into()),
        ..Default::default()
    };

    // CloudTrail, for its trail, with the trail in the encryption context.
    let data_key = kms
        .execute(&as_cloudtrail(Some(TRAIL)), &generate(trail_context(TRAIL)))
        .await
        .unwrap();
    kms.execute(
        &as_cloudtrail(None),
        &DescribeKeyRequest {
            key_id: Some(key_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Not for another trail's source, not without the context, not another account's trail.
    let other = "arn:aws:cloudtrail:us-east-1:111122223333:trail/other";
    assert!(denied(
        kms.execute(&as_cloudtrail(Some(other)), &generate(trail_context(TRAIL)))
            .await
    ));
    assert!(denied(
        kms.execute(&as_cloudtrail(Some(TRAIL)), &generate(None))
            .await
    ));
    assert!(denied(
        kms.execute(
            &as_cloudtrail(Some(TRAIL)),
            &generate(trail_context(
                "arn:aws:cloudtrail:us-east-1:999999999999:trail/management"
            ))
        )
        .await
    ));
    // Another service is not CloudTrail.
    let s3 = CallContext {
        principal: Principal::service("111122223333", "s3.amazonaws.com"),
        ..as_cloudtrail(Some(TRAIL))
    };
    assert!(denied(
        kms.execute(&s3, &generate(trail_context(TRAIL))).await
    ));

    // Readers in the account decrypt log files without any IAM policy; the service may not,
    // and neither may another account.
    let decrypt = |context| DecryptRequest {
        ciphertext_blob: data_key.ciphertext_blob.clone(),
        encryption_context: context,
        ..Default::default()
    };
    let reader = CallContext {
        principal: Principal {
            account_id: "111122223333".into(),
            kind: keytrail_audit::PrincipalKind::IamUser {
                user_name: "reader".into(),
                user_id: "AIDAREADER".into(),
            },
            access_key_id: None,
        },
        ..ctx()
    };
    kms.execute(&reader, &decrypt(trail_context(TRAIL)))
        .await
        .unwrap();
    assert!(denied(
        kms.execute(&as_cloudtrail(Some(TRAIL)), &decrypt(trail_context(TRAIL)))
            .await
    ));
    let outsider = CallContext {
        principal: Principal::root("999999999999", None),
        ..ctx()
    };
    assert!(
        kms.execute(&outsider, &decrypt(trail_context(TRAIL)))
            .await
            .is_err()
    );
}
