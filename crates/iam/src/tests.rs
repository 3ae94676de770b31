use keytrail_store::sqlite::SqliteStore;

use super::*;

fn identities(dir: &std::path::Path) -> Identities {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&dir.join("k.db")).unwrap());
    let root = Arc::new(RootKey::load_or_create(&dir.join("root.key")).unwrap());
    Identities::new(store, root)
}

fn declared(id: &str, secret: &str, account: &str, user: Option<&str>) -> DeclaredCredential {
    DeclaredCredential {
        access_key_id: id.into(),
        secret_access_key: Zeroizing::new(secret.into()),
        account_id: account.into(),
        user_name: user.map(str::to_string),
    }
}

#[tokio::test]
async fn bootstrap_creates_one_root_key_only_once() {
    let dir = tempfile::tempdir().unwrap();
    let ids = identities(dir.path());
    let key = ids.bootstrap(&[], "000000000000").await.unwrap().unwrap();
    assert!(key.access_key_id.starts_with("AKIA") && key.access_key_id.len() == 20);
    assert_eq!(key.secret_access_key.len(), 40);
    assert!(!format!("{key:?}").contains(key.secret_access_key.as_str()));
    let resolved = ids.resolve(&key.access_key_id).await.unwrap().unwrap();
    assert_eq!(resolved.secret.as_str(), key.secret_access_key.as_str());
    assert_eq!(resolved.principal.kind, PrincipalKind::Root);
    assert_eq!(resolved.principal.arn(), "arn:aws:iam::000000000000:root");
    assert!(ids.bootstrap(&[], "000000000000").await.unwrap().is_none());
}

#[tokio::test]
async fn declared_credentials_are_imported_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let ids = identities(dir.path());
    let test = declared("test", "test", "000000000000", None);
    assert!(
        ids.bootstrap(std::slice::from_ref(&test), "000000000000")
            .await
            .unwrap()
            .is_none()
    );
    ids.bootstrap(std::slice::from_ref(&test), "000000000000")
        .await
        .unwrap();
    assert_eq!(ids.list_access_keys().await.unwrap().len(), 1);
    let changed = declared("test", "other", "111111111111", Some("bob"));
    ids.import(&changed).await.unwrap();
    let resolved = ids.resolve("test").await.unwrap().unwrap();
    assert_eq!(resolved.secret.as_str(), "other");
    assert_eq!(resolved.principal.account_id, "111111111111");
    let identity = get_caller_identity(&resolved.principal);
    assert_eq!(identity.arn, "arn:aws:iam::111111111111:user/bob");
    assert!(identity.user_id.starts_with("AIDA"));
    assert!(
        ids.import(&declared("test", "x", "123", None))
            .await
            .is_err()
    );
    assert!(
        ids.import(&declared("te st", "x", "111111111111", None))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn deleted_keys_stop_resolving_and_secrets_are_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let ids = identities(dir.path());
    let key = ids
        .create_access_key("222222222222", Some("alice"))
        .await
        .unwrap();
    let record = ids.list_access_keys().await.unwrap().remove(0);
    assert!(
        !record
            .wrapped_secret
            .windows(40)
            .any(|w| w == key.secret_access_key.as_bytes())
    );
    assert!(ids.resolve(&key.access_key_id).await.unwrap().is_some());
    assert!(ids.delete_access_key(&key.access_key_id).await.unwrap());
    assert!(ids.resolve(&key.access_key_id).await.unwrap().is_none());
    assert!(ids.resolve("AKIANOSUCHKEY").await.unwrap().is_none());
}
