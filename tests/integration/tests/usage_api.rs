//! `GET /_keytrail/usage`: an account's KMS requests for dashboards, signed with SigV4 and
//! authorized as `keytrail:GetUsage` — the root user and users allowed by policy get their own
//! account's figures; others are denied.

mod common;

use aws_sdk_kms::primitives::Blob;
use common::*;

#[tokio::test]
async fn the_usage_api_answers_allowed_callers_for_their_own_account() {
    let server = TestServer::start_with(&format!("{DECLARED_CREDENTIALS}{ROOT_111}"), &[]);
    let kms = kms_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET);
    let key = kms.create_key().send().await.unwrap();
    let key_arn = key.key_metadata().unwrap().arn().unwrap().to_string();
    for _ in 0..3 {
        kms.encrypt()
            .key_id(&key_arn)
            .plaintext(Blob::new(b"x".to_vec()))
            .send()
            .await
            .unwrap();
    }
    let root_111 = Creds {
        key: ROOT_111_KEY,
        secret: ROOT_111_SECRET,
    };
    let (status, body) = usage(&server.url, root_111, "groupBy=operation").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accountId"], "111122223333");
    let groups = body["groups"].as_array().unwrap();
    let encrypts = groups.iter().find(|g| g["name"] == "Encrypt").unwrap();
    assert_eq!(encrypts["requests"], 3);
    let (_, by_key) = usage(&server.url, root_111, "").await;
    assert_eq!(by_key["groupBy"], "key");
    assert!(
        by_key["groups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == key_arn.as_str() && g["requests"] == 4)
    );
    let (_, by_day) = usage(&server.url, root_111, "groupBy=day").await;
    let today = time::OffsetDateTime::now_utc().date().to_string();
    assert_eq!(
        by_day["groups"],
        serde_json::json!([{ "name": today, "requests": 4 }])
    );
    let (status, body) = usage(&server.url, root_111, "groupBy=colour").await;
    assert_eq!(status, 400, "{body}");

    // Alice (a user of the account) needs a policy; then she sees the account's figures.
    let alice = Creds {
        key: ALICE_KEY,
        secret: ALICE_SECRET,
    };
    let (status, body) = usage(&server.url, alice, "").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("keytrail:GetUsage")
    );
    iam_client(&server.url, ROOT_111_KEY, ROOT_111_SECRET)
        .put_user_policy()
        .user_name("alice")
        .policy_name("dashboards")
        .policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"keytrail:GetUsage","Resource":"*"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let (status, body) = usage(&server.url, alice, "groupBy=source").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["requests"], 4);
    assert_eq!(body["groups"][0]["name"], "user");

    // Another account sees only its own (empty) usage; a bad signature is refused.
    let (status, body) = usage(&server.url, root(), "").await;
    assert_eq!(status, 200);
    assert_eq!(body["accountId"], "000000000000");
    assert_eq!(body["requests"], 0);
    let wrong = Creds {
        key: ROOT_111_KEY,
        secret: "not-the-secret",
    };
    let (status, _) = usage(&server.url, wrong, "").await;
    assert_eq!(status, 400);
}
