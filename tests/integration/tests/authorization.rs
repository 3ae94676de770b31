//! Authorization through the AWS SDK for Rust: IAM users and their inline policies, KMS key
//! policies with and without delegation to the account, conditions on the encryption context,
//! cross-account key use, and denials that are journaled.

mod common;

use aws_sdk_kms::error::ProvideErrorMetadata;
use aws_sdk_kms::primitives::Blob;
use common::*;

fn start() -> TestServer {
    TestServer::start_with(&format!("{DECLARED_CREDENTIALS}{ROOT_111}"), &[])
}

use error_code as code;

fn context(pairs: &[(&str, &str)]) -> Option<std::collections::HashMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

async fn encrypt(kms: &aws_sdk_kms::Client, key: &str) -> Result<Blob, String> {
    encrypt_with(kms, key, b"secret", None).await
}

async fn encrypt_with(
    kms: &aws_sdk_kms::Client,
    key: &str,
    plaintext: &[u8],
    purpose: Option<&str>,
) -> Result<Blob, String> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(plaintext.to_vec()))
        .set_encryption_context(purpose.and_then(|p| context(&[("purpose", p)])))
        .send()
        .await
        .map(|out| {
            out.ciphertext_blob()
                .cloned()
                .unwrap_or_else(|| Blob::new(Vec::new()))
        })
        .map_err(|e| e.code().unwrap_or("<no code>").to_string())
}

/// The ARN of a new key with the default key policy (the account's principals as IAM allows).
async fn default_policy_key(kms: &aws_sdk_kms::Client) -> String {
    kms.create_key()
        .send()
        .await
        .expect("key")
        .key_metadata()
        .expect("meta")
        .arn()
        .expect("arn")
        .to_string()
}

/// Gives `user` an inline policy.
async fn put_policy(iam: &aws_sdk_iam::Client, user: &str, name: &str, document: &str) {
    iam.put_user_policy()
        .user_name(user)
        .policy_name(name)
        .policy_document(document)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{user}'s policy {name}: {e}"));
}

#[tokio::test]
async fn iam_users_and_their_policies_over_the_query_protocol() {
    let server = start();
    let iam = iam_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET);

    let created = iam
        .create_user()
        .user_name("bob")
        .send()
        .await
        .expect("create bob");
    let bob = created.user().expect("user");
    assert_eq!(bob.arn(), "arn:aws:iam::111122223333:user/bob");
    assert!(bob.user_id().starts_with("AIDA"));
    assert_eq!(
        error_code_and_message(iam.create_user().user_name("bob").send().await).0,
        "EntityAlreadyExists"
    );
    assert_eq!(
        error_code_and_message(iam.get_user().user_name("nobody").send().await).0,
        "NoSuchEntity"
    );
    let names: Vec<String> = iam
        .list_users()
        .send()
        .await
        .expect("list users")
        .users()
        .iter()
        .map(|u| u.user_name().to_string())
        .collect();
    assert_eq!(names, ["alice", "bob"]);

    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
    iam.put_user_policy()
        .user_name("bob")
        .policy_name("kms-all")
        .policy_document(policy)
        .send()
        .await
        .expect("put user policy");
    let fetched = iam
        .get_user_policy()
        .user_name("bob")
        .policy_name("kms-all")
        .send()
        .await
        .expect("get user policy");
    // IAM returns documents URL-encoded, as AWS does.
    assert!(
        fetched.policy_document().starts_with("%7B%22Version%22"),
        "{}",
        fetched.policy_document()
    );
    let listed = iam
        .list_user_policies()
        .user_name("bob")
        .send()
        .await
        .expect("list policies");
    assert_eq!(listed.policy_names(), ["kms-all"]);
    let (code, message) = error_code_and_message(
        iam.put_user_policy()
            .user_name("bob")
            .policy_name("broken")
            .policy_document(r#"{"Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Principal":"*"}]}"#)
            .send()
            .await,
    );
    assert_eq!(code, "MalformedPolicyDocument");
    assert!(message.contains("Principal"), "{message}");

    let key = iam
        .create_access_key()
        .user_name("bob")
        .send()
        .await
        .expect("key");
    let key_id = key.access_key().expect("key").access_key_id().to_string();
    assert_eq!(
        error_code_and_message(iam.delete_user().user_name("bob").send().await).0,
        "DeleteConflict"
    );
    let keys = iam
        .list_access_keys()
        .user_name("bob")
        .send()
        .await
        .expect("list keys");
    assert_eq!(keys.access_key_metadata().len(), 1);
    iam.update_access_key()
        .user_name("bob")
        .access_key_id(&key_id)
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .expect("deactivate");
    iam.delete_access_key()
        .user_name("bob")
        .access_key_id(&key_id)
        .send()
        .await
        .expect("delete key");
    iam.delete_user_policy()
        .user_name("bob")
        .policy_name("kms-all")
        .send()
        .await
        .expect("delete policy");
    iam.delete_user()
        .user_name("bob")
        .send()
        .await
        .expect("delete user");

    // A user without IAM permissions cannot manage users, and the denial is journaled.
    let alice_iam = iam_client(&server.url, ALICE_KEY, ALICE_SECRET);
    let denied = alice_iam.create_user().user_name("mallory").send().await;
    let request_id = failed_request_id(&denied);
    let (code, message) = error_code_and_message(denied);
    assert_eq!(code, "AccessDenied");
    assert_eq!(
        message,
        "User: arn:aws:iam::111122223333:user/alice is not authorized to perform: iam:CreateUser \
         on resource: arn:aws:iam::111122223333:user/mallory because no identity-based policy \
         allows the iam:CreateUser action"
    );
    let event = server.event_for_request(&request_id);
    assert_eq!(event["errorCode"], "AccessDenied");
    assert_eq!(event["eventSource"], "iam.amazonaws.com");
    assert_eq!(event["userIdentity"]["userName"], "alice");
}

#[tokio::test]
async fn key_policies_decide_and_iam_counts_only_where_they_delegate() {
    let server = start();
    let iam = iam_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET);
    let root = kms_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET);
    let alice = kms_client(&server.url, ALICE_KEY, ALICE_SECRET);
    let bob = kms_client_with(&server.url, create_user_with_key(&iam, "bob").await);

    // Without any policy a user may do nothing, and the denial names the action.
    let denied = bob.list_keys().send().await;
    let request_id = failed_request_id(&denied);
    assert_eq!(code(denied), "AccessDeniedException");
    server.assert_journaled_error(&request_id, "AccessDeniedException");

    put_policy(
        &iam,
        "bob",
        "kms",
        r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"kms:*","Resource":"*"},
                {"Effect":"Deny","Action":"kms:ScheduleKeyDeletion","Resource":"*"}]}"#,
    )
    .await;

    // The default key policy delegates to the account: IAM decides.
    let default_key = default_policy_key(&root).await;
    let blob = encrypt(&bob, &default_key)
        .await
        .expect("bob may encrypt through IAM");
    assert_eq!(
        encrypt(&alice, &default_key).await,
        Err("AccessDeniedException".into())
    );
    assert_eq!(
        code(
            bob.schedule_key_deletion()
                .key_id(&default_key)
                .send()
                .await
        ),
        "AccessDeniedException",
        "an explicit Deny wins"
    );
    bob.decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .expect("bob decrypts");

    // A key policy that names alice alone: she needs no IAM policy, and bob's IAM policy no
    // longer counts.
    let alice_only = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"AliceUses","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
         "Action":["kms:Encrypt","kms:DescribeKey"],"Resource":"*"},
        {"Sid":"AliceDecryptsLogsOnly","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
         "Action":"kms:Decrypt","Resource":"*",
         "Condition":{"StringEquals":{"kms:EncryptionContext:purpose":"logs"}}}]}"#;
    assert_eq!(
        code(root.create_key().policy(alice_only).send().await),
        "MalformedPolicyDocumentException",
        "the lockout safety check"
    );
    let locked_key = root
        .create_key()
        .policy(alice_only)
        .bypass_policy_lockout_safety_check(true)
        .send()
        .await
        .expect("created with the check bypassed")
        .key_metadata()
        .expect("meta")
        .arn()
        .expect("arn")
        .to_string();
    assert_eq!(
        encrypt(&bob, &locked_key).await,
        Err("AccessDeniedException".into())
    );
    assert_eq!(
        code(root.describe_key().key_id(&locked_key).send().await),
        "AccessDeniedException",
        "not even the account root gets in when the policy does not name it"
    );
    let for_logs = encrypt_with(&alice, &locked_key, b"log", Some("logs"))
        .await
        .expect("alice encrypts");
    let other = encrypt_with(&alice, &locked_key, b"x", Some("other"))
        .await
        .expect("alice encrypts");
    let opened = alice
        .decrypt()
        .ciphertext_blob(for_logs)
        .set_encryption_context(context(&[("purpose", "logs")]))
        .send()
        .await
        .expect("the condition holds");
    assert_eq!(opened.plaintext().expect("plaintext").as_ref(), b"log");
    let denied = alice
        .decrypt()
        .ciphertext_blob(other)
        .set_encryption_context(context(&[("purpose", "other")]))
        .send()
        .await;
    let request_id = failed_request_id(&denied);
    let message = denied
        .as_ref()
        .err()
        .and_then(|e| e.message())
        .unwrap_or_default()
        .to_string();
    assert_eq!(code(denied), "AccessDeniedException");
    assert!(
        message.starts_with("User: arn:aws:iam::111122223333:user/alice is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:111122223333:key/"),
        "{message}"
    );
    let event = server.event_for_request(&request_id);
    assert_eq!(event["errorCode"], "AccessDeniedException");
    assert_eq!(
        event["userIdentity"]["arn"],
        "arn:aws:iam::111122223333:user/alice"
    );

    // PutKeyPolicy validates the document and applies the same lockout check.
    assert_eq!(
        code(
            root.put_key_policy()
                .key_id(&default_key)
                .policy(r#"{"Statement":[{"Effect":"Allow","Action":"kms:*"}]}"#)
                .send()
                .await
        ),
        "MalformedPolicyDocumentException"
    );
    assert_eq!(
        code(
            root.put_key_policy()
                .key_id(&default_key)
                .policy(alice_only)
                .send()
                .await
        ),
        "MalformedPolicyDocumentException"
    );
}

#[tokio::test]
async fn a_key_is_used_across_accounts_when_both_sides_allow() {
    let server = start();
    let owner = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let alice = kms_client(&server.url, ALICE_KEY, ALICE_SECRET);
    let iam = iam_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET);

    let shared_policy = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"Owner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"kms:*","Resource":"*"},
        {"Sid":"Partner","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*"}]}"#;
    let shared = owner
        .create_key()
        .policy(shared_policy)
        .send()
        .await
        .expect("shared key");
    let shared = shared
        .key_metadata()
        .expect("meta")
        .arn()
        .expect("arn")
        .to_string();
    let private = owner.create_key().send().await.expect("private key");
    let private = private
        .key_metadata()
        .expect("meta")
        .arn()
        .expect("arn")
        .to_string();

    // The key trusts alice's account, but her account has not allowed her yet.
    assert_eq!(
        encrypt(&alice, &shared).await,
        Err("AccessDeniedException".into())
    );
    put_policy(
        &iam,
        "alice",
        "use-partner-keys",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"arn:aws:kms:*:000000000000:key/*"}]}"#,
    )
    .await;
    let blob = encrypt(&alice, &shared).await.expect("both sides allow");
    let opened = alice
        .decrypt()
        .ciphertext_blob(blob)
        .send()
        .await
        .expect("cross-account decrypt");
    assert_eq!(opened.key_id(), Some(shared.as_str()));
    // Her IAM policy alone does not open a key whose policy does not trust her account.
    assert_eq!(
        encrypt(&alice, &private).await,
        Err("AccessDeniedException".into())
    );
    // By bare key id a key of another account is not even found.
    let bare_id = shared.rsplit('/').next().expect("id");
    assert_eq!(
        encrypt(&alice, bare_id).await,
        Err("NotFoundException".into())
    );
}

/// The default key policy reads no condition keys, so a request under it is decided without
/// building them unless another policy in play reads them: an identity policy's condition, or
/// a policy variable in its resource, still holds.
#[tokio::test]
async fn identity_policies_read_condition_keys_under_a_key_policy_without_conditions() {
    let server = start();
    let iam = iam_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET);
    let root = kms_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET);
    let carol = kms_client_with(&server.url, create_user_with_key(&iam, "carol").await);
    let dave = kms_client_with(&server.url, create_user_with_key(&iam, "dave").await);
    put_policy(
        &iam,
        "carol",
        "logs-only",
        r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"kms:Encrypt","Resource":"*",
                 "Condition":{"StringEquals":{"kms:EncryptionContext:purpose":"logs"}}}]}"#,
    )
    .await;
    put_policy(
        &iam,
        "dave",
        "own-account-keys",
        r#"{"Version":"2012-10-17","Statement":[
                {"Effect":"Allow","Action":"kms:Encrypt",
                 "Resource":"arn:aws:kms:*:${aws:PrincipalAccount}:key/*"}]}"#,
    )
    .await;
    let key = default_policy_key(&root).await;

    encrypt_with(&carol, &key, b"log", Some("logs"))
        .await
        .expect("carol's condition holds");
    assert_eq!(
        encrypt_with(&carol, &key, b"x", Some("other")).await,
        Err("AccessDeniedException".into()),
        "another purpose fails carol's condition"
    );
    assert_eq!(
        encrypt_with(&carol, &key, b"x", None).await,
        Err("AccessDeniedException".into()),
        "no encryption context fails it too"
    );
    encrypt(&dave, &key)
        .await
        .expect("dave's resource names his account through a policy variable");
}
