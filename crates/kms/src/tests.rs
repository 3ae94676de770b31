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
