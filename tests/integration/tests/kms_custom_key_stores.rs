//! Custom key stores through the AWS SDK for Rust: every operation's request and error shapes
//! against a server whose only XKS proxy cannot be reached. (The proxy conversation itself —
//! connecting, keys encrypting through the proxy — is in tests/e2e/test_kms_custom_key_stores.py,
//! with an XKS proxy written from AWS's specification.)

mod common;

use aws_sdk_kms::types::{
    CustomKeyStoreType, OriginType, XksProxyAuthenticationCredentialType, XksProxyConnectivityType,
};
use common::*;

use error_code as code;

const PROXY_HOST: &str = "xks.keytrail.test";

fn credential(secret: &str) -> XksProxyAuthenticationCredentialType {
    XksProxyAuthenticationCredentialType::builder()
        .access_key_id("KEYTRAILXKSTESTACCESSKEY")
        .raw_secret_access_key(secret)
        .build()
        .unwrap()
}

#[tokio::test]
async fn every_custom_key_store_operation_answers_in_the_models_shapes() {
    // The proxy's name resolves to a closed port: nothing answers there.
    let config = format!(
        "{DECLARED_CREDENTIALS}\n[kms]\nxks_timeout_ms = 5000\n[kms.xks_proxy_addresses]\n\"{PROXY_HOST}\" = \"127.0.0.1:1\"\n"
    );
    let server = TestServer::start_with(&config, &[]);
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTIz";

    let listed = kms.describe_custom_key_stores().send().await.unwrap();
    assert!(listed.custom_key_stores().is_empty());
    assert!(!listed.truncated());

    let create = || {
        kms.create_custom_key_store()
            .custom_key_store_name("sdk-store")
            .custom_key_store_type(CustomKeyStoreType::ExternalKeyStore)
            .xks_proxy_uri_endpoint(format!("https://{PROXY_HOST}"))
            .xks_proxy_uri_path("/kms/xks/v1")
            .xks_proxy_connectivity(XksProxyConnectivityType::PublicEndpoint)
    };
    // The proxy is checked before the key store is saved.
    let unreachable = create()
        .xks_proxy_authentication_credential(credential(secret))
        .send()
        .await;
    let (c, message) = error_code_and_message(unreachable);
    assert_eq!(c, "XksProxyUriUnreachableException");
    assert!(message.contains("cannot communicate"), "{message}");
    assert_eq!(
        code(
            create()
                .xks_proxy_authentication_credential(credential("short"))
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        code(
            create()
                .xks_proxy_uri_path("/kms/xks/v1/")
                .xks_proxy_authentication_credential(credential(secret))
                .send()
                .await
        ),
        "ValidationException"
    );
    assert_eq!(
        code(
            create()
                .xks_proxy_connectivity(XksProxyConnectivityType::VpcEndpointService)
                .xks_proxy_vpc_endpoint_service_name("com.amazonaws.vpce.us-east-1.vpce-svc-0abc")
                .xks_proxy_authentication_credential(credential(secret))
                .send()
                .await
        ),
        "XksProxyVpcEndpointServiceNotFoundException"
    );
    assert_eq!(
        code(
            kms.create_custom_key_store()
                .custom_key_store_name("hsm")
                .cloud_hsm_cluster_id("cluster-abcdefghijk")
                .trust_anchor_certificate("-----BEGIN CERTIFICATE-----")
                .key_store_password("kmsuser-password")
                .send()
                .await
        ),
        "CloudHsmClusterNotFoundException"
    );
    assert!(
        kms.describe_custom_key_stores()
            .send()
            .await
            .unwrap()
            .custom_key_stores()
            .is_empty(),
        "nothing was saved"
    );

    let missing = "cks-1234567890abcdef0";
    assert_eq!(
        code(
            kms.describe_custom_key_stores()
                .custom_key_store_id(missing)
                .send()
                .await
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        code(
            kms.describe_custom_key_stores()
                .custom_key_store_name("sdk-store")
                .send()
                .await
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        code(
            kms.connect_custom_key_store()
                .custom_key_store_id(missing)
                .send()
                .await
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        code(
            kms.disconnect_custom_key_store()
                .custom_key_store_id(missing)
                .send()
                .await
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        code(
            kms.update_custom_key_store()
                .custom_key_store_id(missing)
                .new_custom_key_store_name("renamed")
                .send()
                .await
        ),
        "CustomKeyStoreNotFoundException"
    );
    let deleted = kms
        .delete_custom_key_store()
        .custom_key_store_id(missing)
        .send()
        .await;
    let request_id = failed_request_id(&deleted);
    assert_eq!(code(deleted), "CustomKeyStoreNotFoundException");
    server.assert_journaled_error(&request_id, "CustomKeyStoreNotFoundException");

    assert_eq!(
        code(
            kms.create_key()
                .origin(OriginType::ExternalKeyStore)
                .custom_key_store_id(missing)
                .xks_key_id("external-key-1")
                .send()
                .await
        ),
        "CustomKeyStoreNotFoundException"
    );
    assert_eq!(
        code(
            kms.create_key()
                .origin(OriginType::ExternalKeyStore)
                .custom_key_store_id(missing)
                .send()
                .await
        ),
        "ValidationException",
        "an external key id is required"
    );
    assert_eq!(
        code(kms.create_key().xks_key_id("external-key-1").send().await),
        "ValidationException",
        "an external key id needs origin EXTERNAL_KEY_STORE"
    );
    assert_eq!(
        code(
            kms.generate_random()
                .number_of_bytes(16)
                .custom_key_store_id(missing)
                .send()
                .await
        ),
        "CustomKeyStoreNotFoundException"
    );
}
