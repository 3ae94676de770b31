//! KMS grants through the AWS SDK for Rust: a grant with an encryption-context constraint that
//! allows only under the right context, grant tokens, a grant to another account's user, listing,
//! retiring by the retiring principal and revoking by the key's administrator.

mod common;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{GrantConstraints, GrantOperation};
use common::*;

fn purpose(value: &str) -> std::collections::HashMap<String, String> {
    [("purpose".to_string(), value.to_string())].into()
}

async fn encrypt(
    kms: &aws_sdk_kms::Client,
    key: &str,
    context: Option<std::collections::HashMap<String, String>>,
) -> Result<Blob, String> {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(b"granted".to_vec()))
        .set_encryption_context(context)
        .send()
        .await
        .map(|out| out.ciphertext_blob().cloned().expect("ciphertext"))
        .map_err(|e| {
            aws_sdk_kms::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("<no code>")
                .to_string()
        })
}

#[tokio::test]
async fn grants_allow_their_grantee_under_their_constraints_until_retired_or_revoked() {
    let server = TestServer::start_with(&format!("{DECLARED_CREDENTIALS}{ROOT_111}"), &[]);
    let url = server.url.clone();
    let admin = kms_client(&url, ROOT_111_KEY, ROOT_111_SECRET);
    let alice = kms_client(&url, ALICE_KEY, ALICE_SECRET);
    let iam = iam_client(&url, ROOT_111_KEY, ROOT_111_SECRET);
    let bob_credentials = create_user_with_key(&iam, "bob").await;
    let bob = kms_client_with(&url, bob_credentials);

    let key = admin.create_key().send().await.unwrap();
    let key = key.key_metadata().unwrap();
    let (key_id, key_arn) = (key.key_id().to_string(), key.arn().unwrap().to_string());
    // The default key policy delegates to IAM, and alice has no IAM policy.
    assert_eq!(
        encrypt(&alice, &key_arn, Some(purpose("logs")))
            .await
            .unwrap_err(),
        "AccessDeniedException"
    );

    let grant = admin
        .create_grant()
        .key_id(&key_id)
        .grantee_principal("arn:aws:iam::111122223333:user/alice")
        .retiring_principal("arn:aws:iam::111122223333:user/bob")
        .operations(GrantOperation::Encrypt)
        .operations(GrantOperation::Decrypt)
        .constraints(
            GrantConstraints::builder()
                .set_encryption_context_subset(Some(purpose("logs")))
                .build(),
        )
        .name("alice-logs")
        .send()
        .await
        .unwrap();
    let grant_id = grant.grant_id().unwrap().to_string();
    let token = grant.grant_token().unwrap().to_string();
    assert_eq!(grant_id.len(), 64);

    // Under the right context alice may encrypt and decrypt; under another, or none, not.
    let blob = encrypt(&alice, &key_arn, Some(purpose("logs")))
        .await
        .unwrap();
    let mut both = purpose("logs");
    both.insert("extra".into(), "fine".into());
    encrypt(&alice, &key_arn, Some(both)).await.unwrap();
    assert_eq!(
        encrypt(&alice, &key_arn, Some(purpose("other")))
            .await
            .unwrap_err(),
        "AccessDeniedException"
    );
    assert_eq!(
        encrypt(&alice, &key_arn, None).await.unwrap_err(),
        "AccessDeniedException"
    );
    let plain = alice
        .decrypt()
        .ciphertext_blob(blob.clone())
        .set_encryption_context(Some(purpose("logs")))
        .grant_tokens(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(plain.plaintext().unwrap().as_ref(), b"granted");
    // Operations outside the grant stay denied; a token this server did not issue is refused.
    assert_eq!(
        error_code(alice.describe_key().key_id(&key_arn).send().await),
        "AccessDeniedException"
    );
    assert_eq!(
        error_code(
            alice
                .decrypt()
                .ciphertext_blob(blob.clone())
                .set_encryption_context(Some(purpose("logs")))
                .grant_tokens(format!("{token}x"))
                .send()
                .await
        ),
        "InvalidGrantTokenException"
    );

    // The same named grant again is the same grant; invalid grants are refused.
    let again = admin
        .create_grant()
        .key_id(&key_id)
        .grantee_principal("arn:aws:iam::111122223333:user/alice")
        .retiring_principal("arn:aws:iam::111122223333:user/bob")
        .operations(GrantOperation::Decrypt)
        .operations(GrantOperation::Encrypt)
        .constraints(
            GrantConstraints::builder()
                .set_encryption_context_subset(Some(purpose("logs")))
                .build(),
        )
        .name("alice-logs")
        .send()
        .await
        .unwrap();
    assert_eq!(again.grant_id(), Some(grant_id.as_str()));
    assert_eq!(
        error_code(
            admin
                .create_grant()
                .key_id(&key_id)
                .grantee_principal("arn:aws:iam::111122223333:user/alice")
                .operations(GrantOperation::Sign)
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        error_code(
            admin
                .create_grant()
                .key_id(&key_id)
                .grantee_principal("arn:aws:iam::111122223333:user/alice")
                .operations(GrantOperation::DescribeKey)
                .constraints(
                    GrantConstraints::builder()
                        .set_encryption_context_equals(Some(purpose("logs")))
                        .build(),
                )
                .send()
                .await
        ),
        "ValidationException"
    );

    // A grant to another account's user: no policy on either side is needed.
    let iam_000 = iam_client(&url, ROOT_KEY, ROOT_SECRET);
    let carol = kms_client_with(&url, create_user_with_key(&iam_000, "carol").await);
    assert_eq!(
        encrypt(&carol, &key_arn, None).await.unwrap_err(),
        "AccessDeniedException"
    );
    let carol_grant = admin
        .create_grant()
        .key_id(&key_arn)
        .grantee_principal("arn:aws:iam::000000000000:user/carol")
        .operations(GrantOperation::Encrypt)
        .send()
        .await
        .unwrap();
    encrypt(&carol, &key_arn, None).await.unwrap();

    // Listing: the key's administrator sees both grants as AWS shows them; alice may not list.
    let listed = admin.list_grants().key_id(&key_id).send().await.unwrap();
    assert_eq!(listed.grants().len(), 2);
    let alice_grant = listed
        .grants()
        .iter()
        .find(|g| g.grant_id() == Some(grant_id.as_str()))
        .unwrap();
    assert_eq!(alice_grant.key_id(), Some(key_arn.as_str()));
    assert_eq!(alice_grant.name(), Some("alice-logs"));
    assert_eq!(
        alice_grant.issuing_account(),
        Some("arn:aws:iam::111122223333:root")
    );
    assert_eq!(alice_grant.operations().len(), 2);
    assert_eq!(
        alice_grant
            .constraints()
            .unwrap()
            .encryption_context_subset()
            .unwrap()
            .get("purpose")
            .map(String::as_str),
        Some("logs")
    );
    let page = admin
        .list_grants()
        .key_id(&key_id)
        .limit(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.grants().len(), 1);
    assert!(page.truncated());
    assert_eq!(
        error_code(alice.list_grants().key_id(&key_arn).send().await),
        "AccessDeniedException"
    );
    let retirable = admin
        .list_retirable_grants()
        .retiring_principal("arn:aws:iam::111122223333:user/bob")
        .send()
        .await
        .unwrap();
    assert_eq!(retirable.grants().len(), 1);

    // Alice cannot retire her grant (RetireGrant is not among its operations); bob, its
    // retiring principal, can, by token. Then alice is denied again.
    assert_eq!(
        error_code(alice.retire_grant().grant_token(&token).send().await),
        "AccessDeniedException"
    );
    bob.retire_grant().grant_token(&token).send().await.unwrap();
    assert_eq!(
        encrypt(&alice, &key_arn, Some(purpose("logs")))
            .await
            .unwrap_err(),
        "AccessDeniedException"
    );
    assert_eq!(
        error_code(bob.retire_grant().grant_token(&token).send().await),
        "NotFoundException"
    );

    // Revoking is the administrator's: carol loses her access.
    admin
        .revoke_grant()
        .key_id(&key_id)
        .grant_id(carol_grant.grant_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        encrypt(&carol, &key_arn, None).await.unwrap_err(),
        "AccessDeniedException"
    );
    assert_eq!(
        error_code(
            admin
                .revoke_grant()
                .key_id(&key_id)
                .grant_id("not-a-grant")
                .send()
                .await
        ),
        "InvalidGrantIdException"
    );

    // The journal shows the grant's id, never its token.
    let events = server.events();
    let created = events
        .iter()
        .find(|e| e["eventName"] == "CreateGrant" && e["errorCode"].is_null())
        .unwrap();
    assert_eq!(created["responseElements"]["grantId"], grant_id.as_str());
    assert_eq!(
        created["requestParameters"]["granteePrincipal"],
        "arn:aws:iam::111122223333:user/alice"
    );
    assert!(!created.to_string().contains(&token));
}
