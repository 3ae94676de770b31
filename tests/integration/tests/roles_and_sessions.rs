//! Roles, managed policies and STS sessions through the AWS SDK for Rust: trust policies that
//! name a user or delegate to an account (within and across accounts), temporary credentials
//! used with KMS and S3, what a session may do coming from its role's policies, and tokens that
//! are tampered with or outlive their role.

mod common;

use aws_sdk_kms::error::ProvideErrorMetadata;
use common::*;
use error_code as code;

const ROLE: &str = "arn:aws:iam::111122223333:role/key-admin";

/// Trusts alice by name, and account 000000000000 as a whole (whose IAM then decides).
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"sts:AssumeRole"},
  {"Sid":"OtherAccount","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"sts:AssumeRole"}]}"#;

const KMS_ADMIN: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":["kms:CreateKey","kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"*"}]}"#;

async fn assume(
    sts: &aws_sdk_sts::Client,
    session_name: &str,
) -> Result<
    aws_sdk_sts::operation::assume_role::AssumeRoleOutput,
    aws_sdk_sts::error::SdkError<aws_sdk_sts::operation::assume_role::AssumeRoleError>,
> {
    sts.assume_role()
        .role_arn(ROLE)
        .role_session_name(session_name)
        .send()
        .await
}

#[tokio::test]
async fn roles_are_assumed_as_their_trust_policy_says_and_sessions_act_with_the_role_policies() {
    let server = TestServer::start_with(&format!("{DECLARED_CREDENTIALS}{ROOT_111}"), &[]);
    let url = server.url.clone();
    let iam = iam_client(&url, ROOT_111_KEY, ROOT_111_SECRET);

    // The role and a managed policy for it.
    let role = iam
        .create_role()
        .role_name("key-admin")
        .assume_role_policy_document(TRUST)
        .description("manages keys")
        .send()
        .await
        .unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.arn(), ROLE);
    assert!(role.role_id().starts_with("AROA"));
    assert_eq!(
        error_code(
            iam.create_role()
                .role_name("key-admin")
                .assume_role_policy_document(TRUST)
                .send()
                .await
        ),
        "EntityAlreadyExists"
    );
    // A trust policy must name who is trusted, and has no Resource.
    assert_eq!(
        error_code(
            iam.create_role()
                .role_name("bad")
                .assume_role_policy_document(KMS_ADMIN)
                .send()
                .await
        ),
        "MalformedPolicyDocument"
    );
    let fetched = iam.get_role().role_name("key-admin").send().await.unwrap();
    let trust = fetched
        .role()
        .unwrap()
        .assume_role_policy_document()
        .unwrap();
    assert!(trust.contains("OtherAccount"));
    let policy = iam
        .create_policy()
        .policy_name("kms-admin")
        .policy_document(KMS_ADMIN)
        .send()
        .await
        .unwrap();
    let policy_arn = policy.policy().unwrap().arn().unwrap().to_string();
    assert_eq!(policy_arn, "arn:aws:iam::111122223333:policy/kms-admin");

    // Alice is trusted by name: she needs no IAM policy of her own to assume the role.
    let alice_sts = sts_client(&url, ALICE_KEY, ALICE_SECRET).await;
    let assumed = assume(&alice_sts, "alice-session").await.unwrap();
    let user = assumed.assumed_role_user().unwrap();
    assert_eq!(
        user.arn(),
        "arn:aws:sts::111122223333:assumed-role/key-admin/alice-session"
    );
    assert!(user.assumed_role_id().ends_with(":alice-session"));
    let credentials = session(assumed.credentials().unwrap());
    let caller = sts_client_with(&url, credentials.clone())
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(caller.arn(), Some(user.arn()));
    assert_eq!(caller.user_id(), Some(user.assumed_role_id()));

    // The session can do what the role's policies allow: nothing yet, then KMS administration.
    let kms = kms_client_with(&url, credentials.clone());
    assert_eq!(code(kms.create_key().send().await), "AccessDeniedException");
    iam.attach_role_policy()
        .role_name("key-admin")
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    let key = kms.create_key().send().await.unwrap();
    let key_id = key.key_metadata().unwrap().key_id().to_string();
    kms.encrypt()
        .key_id(&key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(b"x".to_vec()))
        .send()
        .await
        .unwrap();
    let attached = iam
        .list_attached_role_policies()
        .role_name("key-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(attached.attached_policies().len(), 1);
    assert_eq!(
        iam.get_policy()
            .policy_arn(&policy_arn)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap()
            .attachment_count(),
        Some(1)
    );
    // A managed policy in use, and a role with policies, cannot be deleted.
    assert_eq!(
        error_code(iam.delete_policy().policy_arn(&policy_arn).send().await),
        "DeleteConflict"
    );
    assert_eq!(
        error_code(iam.delete_role().role_name("key-admin").send().await),
        "DeleteConflict"
    );

    // The session's calls are journaled as the assumed role, with the role as session issuer.
    let events = server.events();
    let create_key = events
        .iter()
        .rev()
        .find(|e| e["eventName"] == "CreateKey" && e["errorCode"].is_null())
        .unwrap();
    let identity = &create_key["userIdentity"];
    assert_eq!(identity["type"], "AssumedRole");
    assert_eq!(identity["arn"], user.arn());
    assert_eq!(identity["sessionContext"]["sessionIssuer"]["arn"], ROLE);
    assert_eq!(
        identity["accessKeyId"],
        assumed.credentials().unwrap().access_key_id()
    );
    let assume_event = events
        .iter()
        .find(|e| e["eventName"] == "AssumeRole" && e["errorCode"].is_null())
        .unwrap();
    assert_eq!(assume_event["requestParameters"]["roleArn"], ROLE);
    let recorded = assume_event.to_string();
    assert!(!recorded.contains(assumed.credentials().unwrap().secret_access_key()));
    assert!(!recorded.contains(assumed.credentials().unwrap().session_token()));

    // S3 authenticates the session too (header-signed, with the token) and authorizes it as
    // the role, whose policies say nothing of S3.
    let s3 = s3_client_with(&url, credentials.clone());
    let listed = s3.list_buckets().send().await.unwrap_err();
    assert_eq!(listed.code(), Some("AccessDenied"));
    assert!(
        listed
            .message()
            .unwrap_or_default()
            .contains("assumed-role/key-admin/alice-session")
    );

    // A token altered in one character is refused by every protocol.
    let mut token = assumed
        .credentials()
        .unwrap()
        .session_token()
        .to_string()
        .into_bytes();
    let middle = token.len() / 2;
    token[middle] = if token[middle] == b'A' { b'B' } else { b'A' };
    let forged = aws_credential_types::Credentials::new(
        assumed.credentials().unwrap().access_key_id(),
        assumed.credentials().unwrap().secret_access_key(),
        Some(String::from_utf8(token).unwrap()),
        None,
        "forged",
    );
    assert_eq!(
        code(
            kms_client_with(&url, forged.clone())
                .list_keys()
                .send()
                .await
        ),
        "UnrecognizedClientException"
    );
    assert_eq!(
        error_code_and_message(
            sts_client_with(&url, forged.clone())
                .get_caller_identity()
                .send()
                .await
        )
        .0,
        "InvalidClientTokenId"
    );
    let s3_forged = s3_client_with(&url, forged).list_buckets().send().await;
    assert_eq!(
        s3_forged
            .err()
            .and_then(|e| e.code().map(str::to_string))
            .as_deref(),
        Some("InvalidToken")
    );
    // The session key without its token is unknown.
    let tokenless = long_term(
        assumed.credentials().unwrap().access_key_id(),
        assumed.credentials().unwrap().secret_access_key(),
    );
    assert_eq!(
        code(kms_client_with(&url, tokenless).list_keys().send().await),
        "UnrecognizedClientException"
    );

    // Another account's user: the trust policy delegates to her account, so her own IAM
    // policy must allow sts:AssumeRole on the role too.
    let iam_000 = iam_client(&url, ROOT_KEY, ROOT_SECRET);
    let carol_sts = sts_client_with(&url, create_user_with_key(&iam_000, "carol").await);
    let (denied, message) = error_code_and_message(assume(&carol_sts, "carol").await);
    assert_eq!(denied, "AccessDenied");
    assert!(
        message.contains("arn:aws:iam::000000000000:user/carol")
            && message.contains("sts:AssumeRole")
            && message.contains(ROLE),
        "{message}"
    );
    iam_000
        .put_user_policy()
        .user_name("carol")
        .policy_name("assume")
        .policy_document(format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{ROLE}"}}]}}"#
        ))
        .send()
        .await
        .unwrap();
    let carol_session = assume(&carol_sts, "carol").await.unwrap();
    assert!(
        carol_session
            .assumed_role_user()
            .unwrap()
            .arn()
            .starts_with("arn:aws:sts::111122223333:assumed-role/key-admin/")
    );

    // The root user cannot assume roles; a role that does not exist is simply denied.
    let root_sts = sts_client(&url, ROOT_111_KEY, ROOT_111_SECRET).await;
    assert_eq!(
        error_code_and_message(assume(&root_sts, "root").await).0,
        "AccessDenied"
    );
    let (missing, _) = error_code_and_message(
        alice_sts
            .assume_role()
            .role_arn("arn:aws:iam::111122223333:role/nobody")
            .role_session_name("session-x")
            .send()
            .await,
    );
    assert_eq!(missing, "AccessDenied");
    // Longer than the role allows.
    let (too_long, _) = error_code_and_message(
        alice_sts
            .assume_role()
            .role_arn(ROLE)
            .role_session_name("session-x")
            .duration_seconds(7200)
            .send()
            .await,
    );
    assert_eq!(too_long, "ValidationError");

    // Detached and deleted, the role takes its sessions with it.
    iam.detach_role_policy()
        .role_name("key-admin")
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    iam.delete_role()
        .role_name("key-admin")
        .send()
        .await
        .unwrap();
    iam.delete_policy()
        .policy_arn(&policy_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(kms.list_keys().send().await),
        "UnrecognizedClientException"
    );
}

/// A session the server itself issued two hours ago for 15 minutes (made with the server's own
/// root key and store, since no client can turn the clock back) is refused as expired by every
/// protocol, and the refusal is journaled.
#[tokio::test]
async fn an_expired_session_token_is_refused_everywhere() {
    let server = TestServer::start_with(&format!("{DECLARED_CREDENTIALS}{ROOT_111}"), &[]);
    let url = server.url.clone();
    let iam = iam_client(&url, ROOT_111_KEY, ROOT_111_SECRET);
    iam.create_role()
        .role_name("key-admin")
        .assume_role_policy_document(TRUST)
        .send()
        .await
        .unwrap();

    let data_dir = server.data_dir();
    let store: std::sync::Arc<dyn keytrail_store::Store> = std::sync::Arc::new(
        keytrail_store::sqlite::SqliteStore::open(&data_dir.join("keytrail.db")).unwrap(),
    );
    let root_key = std::sync::Arc::new(
        keytrail_crypto::RootKey::load_or_create(&data_dir.join("root.key")).unwrap(),
    );
    let identities = keytrail_iam::Identities::new(store, root_key);
    let alice = identities.resolve(ALICE_KEY).await.unwrap().unwrap();
    let two_hours_ago = keytrail_audit::CallContext {
        request_id: "issued-in-the-past".into(),
        time: time::OffsetDateTime::now_utc() - time::Duration::hours(2),
        region: "us-east-1".into(),
        principal: alice.principal.clone(),
        source_ip: "127.0.0.1".into(),
        user_agent: "test".into(),
        invoked_by: None,
        source_arn: None,
        source_account: None,
        tls: None,
    };
    let old = identities
        .api_assume_role(&two_hours_ago, ROLE, "old-session", Some(900))
        .await
        .unwrap();
    let expired = aws_credential_types::Credentials::new(
        &old.access_key_id,
        old.secret_access_key.as_str(),
        Some(old.session_token.clone()),
        None,
        "expired",
    );

    let kms = kms_client_with(&url, expired.clone());
    let refused = kms.list_keys().send().await;
    let request_id = failed_request_id(&refused);
    assert_eq!(code(refused), "ExpiredTokenException");
    server.assert_journaled_error(&request_id, "ExpiredTokenException");
    assert_eq!(
        error_code_and_message(
            sts_client_with(&url, expired.clone())
                .get_caller_identity()
                .send()
                .await
        )
        .0,
        "ExpiredToken"
    );
    let s3 = s3_client_with(&url, expired).list_buckets().send().await;
    assert_eq!(s3.unwrap_err().code(), Some("ExpiredToken"));
}
