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

fn call_as(principal: Principal, time: time::OffsetDateTime) -> keytrail_audit::CallContext {
    keytrail_audit::CallContext {
        request_id: "r".into(),
        time,
        region: "us-east-1".into(),
        principal,
        source_ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        invoked_by: None,
        source_arn: None,
        source_account: None,
        tls: None,
    }
}

const TRUST_ALICE: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Principal":{"AWS":"arn:aws:iam::222222222222:user/alice"},"Action":"sts:AssumeRole"}]}"#;

#[tokio::test]
async fn session_tokens_prove_themselves_expire_and_end_with_their_role() {
    let dir = tempfile::tempdir().unwrap();
    let ids = identities(dir.path());
    let alice = ids
        .create_access_key("222222222222", Some("alice"))
        .await
        .unwrap();
    let alice = ids.resolve(&alice.access_key_id).await.unwrap().unwrap();
    let now = time::OffsetDateTime::now_utc();
    let root = call_as(Principal::root("222222222222", None), now);
    ids.api_create_role(&root, "reader", TRUST_ALICE, None, None)
        .await
        .unwrap();
    let role_arn = "arn:aws:iam::222222222222:role/reader";

    // The root user may not assume roles; alice, named by the trust policy, may.
    assert!(matches!(
        ids.api_assume_role(&root, role_arn, "s1", None).await,
        Err(IamApiError::AccessDenied(_))
    ));
    let as_alice = call_as(alice.principal.clone(), now);
    let session = ids
        .api_assume_role(&as_alice, role_arn, "s1", None)
        .await
        .unwrap();
    assert!(session.access_key_id.starts_with("ASIA"));
    assert!(!format!("{session:?}").contains(session.secret_access_key.as_str()));
    assert!(
        !session
            .session_token
            .contains(session.secret_access_key.as_str())
    );
    let resolved = |token: String| {
        let ids = &ids;
        let id = session.access_key_id.clone();
        async move { ids.resolve_credential(&id, Some(&token)).await.unwrap() }
    };
    match resolved(session.session_token.clone()).await {
        Credential::Known(key) => {
            assert_eq!(key.secret.as_str(), session.secret_access_key.as_str());
            assert_eq!(
                key.principal.arn(),
                "arn:aws:sts::222222222222:assumed-role/reader/s1"
            );
        }
        other => panic!("{other:?}"),
    }
    // Without its token a session key is unknown; a token altered anywhere is invalid, and so
    // is a genuine token presented with another access key.
    assert!(matches!(
        ids.resolve_credential(&session.access_key_id, None)
            .await
            .unwrap(),
        Credential::UnknownKey
    ));
    let mut tampered = session.session_token.clone().into_bytes();
    let middle = tampered.len() / 2;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    assert!(matches!(
        resolved(String::from_utf8(tampered).unwrap()).await,
        Credential::InvalidToken
    ));
    assert!(matches!(
        ids.resolve_credential("ASIAOTHERKEY0000000", Some(&session.session_token))
            .await
            .unwrap(),
        Credential::InvalidToken
    ));

    // A session issued two hours ago for 15 minutes has expired.
    let earlier = call_as(alice.principal.clone(), now - time::Duration::hours(2));
    let old = ids
        .api_assume_role(&earlier, role_arn, "s2", Some(900))
        .await
        .unwrap();
    assert!(matches!(
        ids.resolve_credential(&old.access_key_id, Some(&old.session_token))
            .await
            .unwrap(),
        Credential::ExpiredToken(_)
    ));
    assert!(matches!(
        ids.api_assume_role(&as_alice, role_arn, "s3", Some(7200))
            .await,
        Err(IamApiError::Validation(_))
    ));

    // Deleting the role ends its sessions, even when a role of the same name is created again.
    ids.api_delete_role(&root, "reader").await.unwrap();
    ids.api_create_role(&root, "reader", TRUST_ALICE, None, None)
        .await
        .unwrap();
    assert!(matches!(
        resolved(session.session_token.clone()).await,
        Credential::InvalidToken
    ));
}
