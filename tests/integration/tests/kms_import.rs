//! Imported key material (origin EXTERNAL) through the AWS SDK for Rust: the import parameters,
//! wrapping the material as a client does, reimport, deletion, expiry, restart, and the events.

mod common;

use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPublicEncryptingKey,
    PublicEncryptingKey,
};
use aws_sdk_kms::Client;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::{Blob, DateTime};
use aws_sdk_kms::types::{
    AlgorithmSpec, ExpirationModelType, ImportType, KeySpec, KeyState, OriginType, WrappingKeySpec,
};
use common::*;

use error_code as code;

/// The material wrapped for import as a client does it, for the algorithm named.
fn wrap(public_der: &[u8], algorithm: &AlgorithmSpec, material: &[u8]) -> Vec<u8> {
    let public =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(public_der).unwrap()).unwrap();
    let rsa = |oaep: &'static OaepAlgorithm, plain: &[u8]| {
        let mut out = vec![0u8; public.ciphertext_size()];
        public
            .encrypt(oaep, plain, &mut out, None)
            .unwrap()
            .to_vec()
    };
    match algorithm {
        AlgorithmSpec::RsaesOaepSha1 => rsa(&OAEP_SHA1_MGF1SHA1, material),
        AlgorithmSpec::RsaesOaepSha256 => rsa(&OAEP_SHA256_MGF1SHA256, material),
        AlgorithmSpec::RsaAesKeyWrapSha1 | AlgorithmSpec::RsaAesKeyWrapSha256 => {
            let oaep = if *algorithm == AlgorithmSpec::RsaAesKeyWrapSha1 {
                &OAEP_SHA1_MGF1SHA1
            } else {
                &OAEP_SHA256_MGF1SHA256
            };
            let aes_key = [7u8; 32];
            let mut wrapped_material = vec![0u8; material.len() + 16];
            let len = AesKek::new(&AES_256, &aes_key)
                .unwrap()
                .wrap_with_padding(material, &mut wrapped_material)
                .unwrap()
                .len();
            wrapped_material.truncate(len);
            let mut out = rsa(oaep, &aes_key);
            out.extend_from_slice(&wrapped_material);
            out
        }
        other => panic!("no client wrapping for {other:?}"),
    }
}

struct Parameters {
    token: Vec<u8>,
    public_key: Vec<u8>,
}

async fn parameters(
    kms: &Client,
    key: &str,
    algorithm: AlgorithmSpec,
    spec: WrappingKeySpec,
) -> Parameters {
    let out = kms
        .get_parameters_for_import()
        .key_id(key)
        .wrapping_algorithm(algorithm)
        .wrapping_key_spec(spec)
        .send()
        .await
        .expect("get parameters for import");
    Parameters {
        token: out.import_token().unwrap().as_ref().to_vec(),
        public_key: out.public_key().unwrap().as_ref().to_vec(),
    }
}

async fn import(
    kms: &Client,
    key: &str,
    algorithm: AlgorithmSpec,
    material: &[u8],
    import_type: Option<ImportType>,
) -> Result<String, String> {
    let p = parameters(kms, key, algorithm.clone(), WrappingKeySpec::Rsa2048).await;
    kms.import_key_material()
        .key_id(key)
        .import_token(Blob::new(p.token))
        .encrypted_key_material(Blob::new(wrap(&p.public_key, &algorithm, material)))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .set_import_type(import_type)
        .send()
        .await
        .map(|out| out.key_material_id().unwrap_or_default().to_string())
        .map_err(|e| {
            aws_sdk_kms::error::ProvideErrorMetadata::code(&e)
                .unwrap_or("")
                .to_string()
        })
}

async fn seal(kms: &Client, key: &str, plaintext: &[u8]) -> Blob {
    kms.encrypt()
        .key_id(key)
        .plaintext(Blob::new(plaintext.to_vec()))
        .send()
        .await
        .expect("encrypt")
        .ciphertext_blob()
        .expect("ciphertext")
        .clone()
}

async fn state(kms: &Client, key: &str) -> KeyState {
    let described = kms.describe_key().key_id(key).send().await.unwrap();
    described
        .key_metadata()
        .unwrap()
        .key_state()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn imported_material_encrypts_and_survives_deletion_reimport_and_restart() {
    let mut server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let created = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap();
    let meta = created.key_metadata().unwrap();
    let key = meta.key_id().to_string();
    assert_eq!(meta.origin(), Some(&OriginType::External));
    assert_eq!(meta.key_state(), Some(&KeyState::PendingImport));
    assert!(!meta.enabled());
    assert!(meta.current_key_material_id().is_none());

    // Without material the key cannot be used, enabled, or rotated.
    let gdk = kms
        .generate_data_key()
        .key_id(&key)
        .number_of_bytes(32)
        .send()
        .await;
    assert_eq!(code(gdk), "KMSInvalidStateException");
    assert_eq!(
        code(kms.enable_key().key_id(&key).send().await),
        "KMSInvalidStateException"
    );
    assert_eq!(
        code(kms.enable_key_rotation().key_id(&key).send().await),
        "UnsupportedOperationException"
    );
    let rsa_external = kms
        .create_key()
        .origin(OriginType::External)
        .key_spec(KeySpec::Rsa2048)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await;
    assert_eq!(code(rsa_external), "UnsupportedOperationException");

    // Import parameters: a fresh RSA public key and a token, valid for 24 hours.
    let out = kms
        .get_parameters_for_import()
        .key_id(&key)
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa3072)
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_id(), Some(meta.arn().unwrap()));
    let public = PublicEncryptingKey::from_der(out.public_key().unwrap().as_ref()).unwrap();
    assert_eq!(public.key_size_bits(), 3072);
    let valid_for = out.parameters_valid_to().unwrap().secs()
        - DateTime::from(std::time::SystemTime::now()).secs();
    assert!((86_000..=86_400).contains(&valid_for), "{valid_for}");

    // The material, wrapped as a client does, is imported and used.
    let material = [0x42u8; 32];
    let token = out.import_token().unwrap().clone();
    let imported = kms
        .import_key_material()
        .key_id(&key)
        .import_token(token.clone())
        .encrypted_key_material(Blob::new(wrap(
            out.public_key().unwrap().as_ref(),
            &AlgorithmSpec::RsaesOaepSha256,
            &material,
        )))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await
        .unwrap();
    let material_id = imported.key_material_id().unwrap().to_string();
    assert_eq!(material_id.len(), 64);
    let described = kms.describe_key().key_id(&key).send().await.unwrap();
    let meta = described.key_metadata().unwrap();
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));
    assert_eq!(meta.current_key_material_id(), Some(material_id.as_str()));
    assert_eq!(
        meta.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialDoesNotExpire)
    );
    let ciphertext = seal(&kms, &key, b"under imported material").await;

    // Deleted material: the key waits for it again and nothing decrypts.
    let deleted = kms
        .delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.key_material_id(), Some(material_id.as_str()));
    assert_eq!(state(&kms, &key).await, KeyState::PendingImport);
    let decrypt = kms
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .send()
        .await;
    assert_eq!(code(decrypt), "KMSInvalidStateException");

    // Only the same material comes back; then the old ciphertext decrypts again.
    assert_eq!(
        import(
            &kms,
            &key,
            AlgorithmSpec::RsaAesKeyWrapSha256,
            &[0x43; 32],
            None
        )
        .await,
        Err("IncorrectKeyMaterialException".into())
    );
    assert_eq!(
        import(&kms, &key, AlgorithmSpec::RsaesOaepSha1, &[0x42; 16], None).await,
        Err("IncorrectKeyMaterialException".into())
    );
    assert_eq!(
        import(
            &kms,
            &key,
            AlgorithmSpec::RsaAesKeyWrapSha1,
            &material,
            Some(ImportType::NewKeyMaterial)
        )
        .await,
        Err("IncorrectKeyMaterialException".into())
    );
    assert_eq!(
        import(
            &kms,
            &key,
            AlgorithmSpec::RsaAesKeyWrapSha256,
            &material,
            None
        )
        .await,
        Ok(material_id.clone())
    );
    let plain = kms
        .decrypt()
        .ciphertext_blob(ciphertext.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.plaintext().unwrap().as_ref(),
        b"under imported material"
    );

    // The token of this key does not serve another; garbage does not unwrap.
    let other = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let foreign = kms
        .import_key_material()
        .key_id(&other)
        .import_token(token)
        .encrypted_key_material(Blob::new(vec![1u8; 384]))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await;
    assert_eq!(code(foreign), "InvalidImportTokenException");
    let p = parameters(
        &kms,
        &other,
        AlgorithmSpec::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
    )
    .await;
    let garbage = kms
        .import_key_material()
        .key_id(&other)
        .import_token(Blob::new(p.token.clone()))
        .encrypted_key_material(Blob::new(vec![1u8; 256]))
        .expiration_model(ExpirationModelType::KeyMaterialDoesNotExpire)
        .send()
        .await;
    assert_eq!(code(garbage), "InvalidCiphertextException");
    let no_valid_to = kms
        .import_key_material()
        .key_id(&other)
        .import_token(Blob::new(p.token))
        .encrypted_key_material(Blob::new(wrap(
            &p.public_key,
            &AlgorithmSpec::RsaesOaepSha256,
            &material,
        )))
        .send()
        .await;
    assert_eq!(code(no_valid_to), "ValidationException");
    let generated = kms.create_key().send().await.unwrap();
    let not_external = kms
        .get_parameters_for_import()
        .key_id(generated.key_metadata().unwrap().key_id())
        .wrapping_algorithm(AlgorithmSpec::RsaesOaepSha256)
        .wrapping_key_spec(WrappingKeySpec::Rsa2048)
        .send()
        .await;
    assert_eq!(code(not_external), "UnsupportedOperationException");

    // The events name the key, never the token or the material.
    let events = server.events();
    let import_events: Vec<_> = events
        .iter()
        .filter(|e| e["eventName"] == "ImportKeyMaterial")
        .collect();
    assert!(import_events.len() >= 2);
    for e in &import_events {
        let parameters = e["requestParameters"].to_string();
        assert!(
            !parameters.contains("importToken") && !parameters.contains("encryptedKeyMaterial")
        );
    }
    assert!(events.iter().any(|e| e["eventName"] == "ImportKeyMaterial"
        && e["errorCode"].is_null()
        && e["resources"][0]["ARN"] == meta.arn().unwrap()));

    // Imported material survives a restart.
    server.restart();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let plain = kms
        .decrypt()
        .ciphertext_blob(ciphertext)
        .send()
        .await
        .unwrap();
    assert_eq!(
        plain.plaintext().unwrap().as_ref(),
        b"under imported material"
    );
}

#[tokio::test]
async fn expired_material_is_deleted_and_the_key_waits_for_it() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = kms
        .create_key()
        .origin(OriginType::External)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let p = parameters(
        &kms,
        &key,
        AlgorithmSpec::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
    )
    .await;
    let valid_to = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    let imported = kms
        .import_key_material()
        .key_id(&key)
        .import_token(Blob::new(p.token))
        .encrypted_key_material(Blob::new(wrap(
            &p.public_key,
            &AlgorithmSpec::RsaesOaepSha256,
            &[9u8; 32],
        )))
        .expiration_model(ExpirationModelType::KeyMaterialExpires)
        .valid_to(DateTime::from(valid_to))
        .send()
        .await;
    let request_id = imported
        .as_ref()
        .ok()
        .and_then(|o| o.request_id())
        .map(str::to_string);
    imported.unwrap();
    let described = kms.describe_key().key_id(&key).send().await.unwrap();
    let meta = described.key_metadata().unwrap();
    assert_eq!(
        meta.expiration_model(),
        Some(&ExpirationModelType::KeyMaterialExpires)
    );
    assert!(meta.valid_to().is_some());
    let encrypted = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"soon gone".to_vec()))
        .send()
        .await;
    assert!(encrypted.is_ok());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let encrypt = kms
        .encrypt()
        .key_id(&key)
        .plaintext(Blob::new(b"too late".to_vec()))
        .send()
        .await;
    assert_eq!(code(encrypt), "KMSInvalidStateException");
    assert_eq!(state(&kms, &key).await, KeyState::PendingImport);
    let event = server.event_for_request(&request_id.unwrap());
    assert_eq!(
        event["requestParameters"]["expirationModel"],
        "KEY_MATERIAL_EXPIRES"
    );
    // KMS's own deletion of the expired material is an event of its own, once.
    let deletions: Vec<serde_json::Value> = server
        .events()
        .into_iter()
        .filter(|e| e["eventName"] == "DeleteExpiredKeyMaterial")
        .collect();
    assert_eq!(deletions.len(), 1, "{deletions:?}");
    let deletion = &deletions[0];
    assert_eq!(deletion["eventType"], "AwsServiceEvent");
    assert_eq!(
        deletion["userIdentity"],
        serde_json::json!({ "accountId": ROOT_ACCOUNT, "invokedBy": "AWS Internal" })
    );
    assert_eq!(deletion["sourceIPAddress"], "AWS Internal");
    assert_eq!(deletion["serviceEventDetails"]["keyId"], key.as_str());
    assert_eq!(
        deletion["resources"][0]["ARN"],
        format!("arn:aws:kms:us-east-1:{ROOT_ACCOUNT}:key/{key}")
    );
}

/// A multi-Region key of origin EXTERNAL: replicas start without material and take only the
/// material imported into the other keys of the set, whichever Region imports first.
#[tokio::test]
async fn multi_region_replicas_take_the_same_imported_material() {
    let server = TestServer::start();
    let us = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let eu = kms_client_in(&server.url, long_term(ROOT_KEY, ROOT_SECRET), "eu-west-1");
    let ap = kms_client_in(
        &server.url,
        long_term(ROOT_KEY, ROOT_SECRET),
        "ap-southeast-2",
    );
    let material = [5u8; 32];
    let other = [6u8; 32];
    let key = us
        .create_key()
        .origin(OriginType::External)
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    assert!(key.starts_with("mrk-"));
    let replica = us
        .replicate_key()
        .key_id(&key)
        .replica_region("eu-west-1")
        .send()
        .await
        .unwrap();
    let replica = replica.replica_key_metadata().unwrap();
    assert_eq!(replica.key_state(), Some(&KeyState::PendingImport));
    assert_eq!(replica.origin(), Some(&OriginType::External));

    // The replica imports first; the primary must then bring the same material.
    let imported = import(&eu, &key, AlgorithmSpec::RsaesOaepSha256, &material, None)
        .await
        .expect("import into the replica");
    assert_eq!(state(&eu, &key).await, KeyState::Enabled);
    assert_eq!(state(&us, &key).await, KeyState::PendingImport);
    let refused = import(&us, &key, AlgorithmSpec::RsaesOaepSha256, &other, None).await;
    assert_eq!(refused, Err("IncorrectKeyMaterialException".to_string()));
    let refused_as_existing = import(
        &us,
        &key,
        AlgorithmSpec::RsaesOaepSha1,
        &other,
        Some(ImportType::ExistingKeyMaterial),
    )
    .await;
    assert_eq!(
        refused_as_existing,
        Err("IncorrectKeyMaterialException".to_string())
    );
    assert_eq!(
        import(&us, &key, AlgorithmSpec::RsaesOaepSha1, &material, None).await,
        Ok(imported.clone())
    );

    // Ciphertexts cross Regions once both hold the material.
    let sealed = seal(&us, &key, b"imported, replicated").await;
    let opened = eu
        .decrypt()
        .ciphertext_blob(sealed.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        opened.plaintext().unwrap().as_ref(),
        b"imported, replicated"
    );

    // A later replica knows which material to expect, and is unusable until it has it.
    us.replicate_key()
        .key_id(&key)
        .replica_region("ap-southeast-2")
        .send()
        .await
        .unwrap();
    let waiting = ap.decrypt().ciphertext_blob(sealed.clone()).send().await;
    assert_eq!(code(waiting), "KMSInvalidStateException");
    let wrong = import(&ap, &key, AlgorithmSpec::RsaesOaepSha256, &other, None).await;
    assert_eq!(wrong, Err("IncorrectKeyMaterialException".to_string()));
    import(&ap, &key, AlgorithmSpec::RsaesOaepSha256, &material, None)
        .await
        .expect("import into the second replica");
    assert!(ap.decrypt().ciphertext_blob(sealed).send().await.is_ok());

    // Deleting one key's material leaves the others' alone.
    eu.delete_imported_key_material()
        .key_id(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(state(&eu, &key).await, KeyState::PendingImport);
    assert_eq!(state(&us, &key).await, KeyState::Enabled);
    assert_eq!(state(&ap, &key).await, KeyState::Enabled);
}
