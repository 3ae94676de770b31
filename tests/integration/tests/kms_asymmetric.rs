//! Asymmetric and HMAC KMS keys through the AWS SDK for Rust: every spec × usage × algorithm,
//! the usage rules, and what their events record.

mod common;

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    DataKeyPairSpec, EncapsulationAlgorithmSpec, EncryptionAlgorithmSpec,
    KeyAgreementAlgorithmSpec, KeySpec, KeyUsageType, MacAlgorithmSpec, MessageType,
    SigningAlgorithmSpec,
};
use common::*;

use error_code as code;

async fn create(kms: &Client, spec: KeySpec, usage: KeyUsageType) -> String {
    kms.create_key()
        .key_spec(spec)
        .key_usage(usage)
        .send()
        .await
        .expect("create key")
        .key_metadata()
        .expect("metadata")
        .key_id()
        .to_string()
}

fn digest_of(algorithm: &SigningAlgorithmSpec, message: &[u8]) -> Vec<u8> {
    use aws_lc_rs::digest;
    let alg = match algorithm.as_str() {
        s if s.ends_with("256") => &digest::SHA256,
        s if s.ends_with("384") => &digest::SHA384,
        _ => &digest::SHA512,
    };
    digest::digest(alg, message).as_ref().to_vec()
}

#[tokio::test]
async fn every_signing_spec_and_algorithm() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    use SigningAlgorithmSpec as S;
    let rsa_algorithms = vec![
        S::RsassaPssSha256,
        S::RsassaPssSha384,
        S::RsassaPssSha512,
        S::RsassaPkcs1V15Sha256,
        S::RsassaPkcs1V15Sha384,
        S::RsassaPkcs1V15Sha512,
    ];
    let cases = vec![
        (KeySpec::Rsa2048, rsa_algorithms.clone()),
        (KeySpec::Rsa3072, rsa_algorithms.clone()),
        (KeySpec::Rsa4096, rsa_algorithms),
        (KeySpec::EccNistP256, vec![S::EcdsaSha256]),
        (KeySpec::EccNistP384, vec![S::EcdsaSha384]),
        (KeySpec::EccNistP521, vec![S::EcdsaSha512]),
        (KeySpec::EccSecgP256K1, vec![S::EcdsaSha256]),
    ];
    let message = b"the message to sign".to_vec();
    for (spec, algorithms) in cases {
        let key = create(&kms, spec.clone(), KeyUsageType::SignVerify).await;
        let meta = kms.describe_key().key_id(&key).send().await.unwrap();
        let meta = meta.key_metadata().unwrap();
        assert_eq!(meta.signing_algorithms(), algorithms.as_slice(), "{spec:?}");
        assert!(meta.encryption_algorithms().is_empty());
        let public = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(public.key_spec(), Some(&spec));
        assert_eq!(public.key_usage(), Some(&KeyUsageType::SignVerify));
        assert!(public.public_key().unwrap().as_ref().len() > 60, "SPKI DER");
        for algorithm in &algorithms {
            let signed = kms
                .sign()
                .key_id(&key)
                .message(Blob::new(message.clone()))
                .signing_algorithm(algorithm.clone())
                .send()
                .await
                .unwrap();
            let signature = signed.signature().unwrap().clone();
            let verified = kms
                .verify()
                .key_id(&key)
                .message(Blob::new(message.clone()))
                .signature(signature.clone())
                .signing_algorithm(algorithm.clone())
                .send()
                .await
                .unwrap();
            assert!(verified.signature_valid(), "{spec:?} {algorithm:?}");
            // The same signature verifies against the digest computed here.
            let digest = digest_of(algorithm, &message);
            let by_digest = kms
                .verify()
                .key_id(&key)
                .message(Blob::new(digest.clone()))
                .message_type(MessageType::Digest)
                .signature(signature.clone())
                .signing_algorithm(algorithm.clone())
                .send()
                .await
                .unwrap();
            assert!(by_digest.signature_valid());
            // A signature over a digest computed here verifies over the raw message.
            let digest_signed = kms
                .sign()
                .key_id(&key)
                .message(Blob::new(digest))
                .message_type(MessageType::Digest)
                .signing_algorithm(algorithm.clone())
                .send()
                .await
                .unwrap();
            kms.verify()
                .key_id(&key)
                .message(Blob::new(message.clone()))
                .signature(digest_signed.signature().unwrap().clone())
                .signing_algorithm(algorithm.clone())
                .send()
                .await
                .unwrap();
            let mut tampered = signature.into_inner();
            let mid = tampered.len() / 2;
            tampered[mid] ^= 1;
            assert_eq!(
                code(
                    kms.verify()
                        .key_id(&key)
                        .message(Blob::new(message.clone()))
                        .signature(Blob::new(tampered))
                        .signing_algorithm(algorithm.clone())
                        .send()
                        .await
                ),
                "KMSInvalidSignatureException"
            );
        }
        assert_eq!(
            code(
                kms.sign()
                    .key_id(&key)
                    .message(Blob::new(vec![1; 5]))
                    .message_type(MessageType::Digest)
                    .signing_algorithm(algorithms[0].clone())
                    .send()
                    .await
            ),
            "ValidationException",
            "a digest of the wrong length"
        );
        assert_eq!(
            code(
                kms.encrypt()
                    .key_id(&key)
                    .plaintext(Blob::new(b"x".to_vec()))
                    .send()
                    .await
            ),
            "InvalidKeyUsageException"
        );
        assert_eq!(
            code(
                kms.generate_data_key()
                    .key_id(&key)
                    .key_spec(aws_sdk_kms::types::DataKeySpec::Aes256)
                    .send()
                    .await
            ),
            "InvalidKeyUsageException"
        );
        assert_eq!(
            code(kms.enable_key_rotation().key_id(&key).send().await),
            "UnsupportedOperationException"
        );
    }
    let ecc = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    assert_eq!(
        code(
            kms.sign()
                .key_id(&ecc)
                .message(Blob::new(message.clone()))
                .signing_algorithm(S::RsassaPssSha256)
                .send()
                .await
        ),
        "InvalidKeyUsageException",
        "an RSA algorithm on an ECC key"
    );
    let signed = kms
        .sign()
        .key_id(&ecc)
        .message(Blob::new(message.clone()))
        .signing_algorithm(S::EcdsaSha256)
        .send()
        .await
        .unwrap();
    let event = server.event_for_request(signed.request_id().unwrap());
    assert_eq!(event["eventName"], "Sign");
    assert_eq!(
        event["requestParameters"]["signingAlgorithm"],
        "ECDSA_SHA_256"
    );
    assert_eq!(event["requestParameters"]["keyId"], ecc.as_str());
    assert!(event["requestParameters"].get("message").is_none());
    assert_eq!(event["resources"][0]["type"], "AWS::KMS::Key");
}

#[tokio::test]
async fn rsa_encryption_every_size_and_algorithm() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    use EncryptionAlgorithmSpec as E;
    for (spec, max_sha1, max_sha256) in [
        (KeySpec::Rsa2048, 214, 190),
        (KeySpec::Rsa3072, 342, 318),
        (KeySpec::Rsa4096, 470, 446),
    ] {
        let key = create(&kms, spec.clone(), KeyUsageType::EncryptDecrypt).await;
        let meta = kms.describe_key().key_id(&key).send().await.unwrap();
        assert_eq!(
            meta.key_metadata().unwrap().encryption_algorithms(),
            &[E::RsaesOaepSha1, E::RsaesOaepSha256]
        );
        for (algorithm, max) in [
            (E::RsaesOaepSha1, max_sha1),
            (E::RsaesOaepSha256, max_sha256),
        ] {
            let plaintext = vec![7u8; max];
            let encrypted = kms
                .encrypt()
                .key_id(&key)
                .plaintext(Blob::new(plaintext.clone()))
                .encryption_algorithm(algorithm.clone())
                .send()
                .await
                .unwrap();
            let decrypted = kms
                .decrypt()
                .key_id(&key)
                .ciphertext_blob(encrypted.ciphertext_blob().unwrap().clone())
                .encryption_algorithm(algorithm.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(
                decrypted.plaintext().unwrap().as_ref(),
                plaintext.as_slice()
            );
            assert_eq!(
                code(
                    kms.encrypt()
                        .key_id(&key)
                        .plaintext(Blob::new(vec![7u8; max + 1]))
                        .encryption_algorithm(algorithm.clone())
                        .send()
                        .await
                ),
                "ValidationException",
                "{spec:?} {algorithm:?} takes at most {max} bytes"
            );
        }
        assert_eq!(
            code(
                kms.encrypt()
                    .key_id(&key)
                    .plaintext(Blob::new(b"x".to_vec()))
                    .send()
                    .await
            ),
            "InvalidKeyUsageException",
            "SYMMETRIC_DEFAULT is incompatible with RSA"
        );
        assert_eq!(
            code(
                kms.sign()
                    .key_id(&key)
                    .message(Blob::new(b"x".to_vec()))
                    .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
                    .send()
                    .await
            ),
            "InvalidKeyUsageException",
            "an ENCRYPT_DECRYPT key cannot sign"
        );
    }
}

#[tokio::test]
async fn hmac_keys() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    use MacAlgorithmSpec as M;
    for (spec, algorithm, len) in [
        (KeySpec::Hmac224, M::HmacSha224, 28),
        (KeySpec::Hmac256, M::HmacSha256, 32),
        (KeySpec::Hmac384, M::HmacSha384, 48),
        (KeySpec::Hmac512, M::HmacSha512, 64),
    ] {
        let key = create(&kms, spec.clone(), KeyUsageType::GenerateVerifyMac).await;
        let meta = kms.describe_key().key_id(&key).send().await.unwrap();
        assert_eq!(
            meta.key_metadata().unwrap().mac_algorithms(),
            std::slice::from_ref(&algorithm)
        );
        let mac = kms
            .generate_mac()
            .key_id(&key)
            .message(Blob::new(b"payload".to_vec()))
            .mac_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap();
        let tag = mac.mac().unwrap().clone();
        assert_eq!(tag.as_ref().len(), len);
        let ok = kms
            .verify_mac()
            .key_id(&key)
            .message(Blob::new(b"payload".to_vec()))
            .mac(tag.clone())
            .mac_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap();
        assert!(ok.mac_valid());
        assert_eq!(
            code(
                kms.verify_mac()
                    .key_id(&key)
                    .message(Blob::new(b"payload!".to_vec()))
                    .mac(tag)
                    .mac_algorithm(algorithm.clone())
                    .send()
                    .await
            ),
            "KMSInvalidMacException"
        );
        assert_eq!(
            code(kms.get_public_key().key_id(&key).send().await),
            "UnsupportedOperationException"
        );
    }
    assert_eq!(
        code(kms.create_key().key_spec(KeySpec::Hmac256).send().await),
        "ValidationException",
        "HMAC keys need KeyUsage GENERATE_VERIFY_MAC"
    );
    let hmac = create(&kms, KeySpec::Hmac256, KeyUsageType::GenerateVerifyMac).await;
    assert_eq!(
        code(
            kms.generate_mac()
                .key_id(&hmac)
                .message(Blob::new(b"x".to_vec()))
                .mac_algorithm(M::HmacSha512)
                .send()
                .await
        ),
        "InvalidKeyUsageException"
    );
}

#[tokio::test]
async fn data_key_pairs_of_every_spec() {
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    for spec in [
        DataKeyPairSpec::Rsa2048,
        DataKeyPairSpec::Rsa3072,
        DataKeyPairSpec::Rsa4096,
        DataKeyPairSpec::EccNistP256,
        DataKeyPairSpec::EccNistP384,
        DataKeyPairSpec::EccNistP521,
        DataKeyPairSpec::EccSecgP256K1,
        DataKeyPairSpec::EccNistEdwards25519,
    ] {
        let pair = kms
            .generate_data_key_pair()
            .key_id(&key)
            .key_pair_spec(spec.clone())
            .encryption_context("purpose", "pair")
            .send()
            .await
            .unwrap();
        assert_eq!(pair.key_pair_spec(), Some(&spec));
        let private = pair.private_key_plaintext().unwrap().as_ref().to_vec();
        let unwrapped = kms
            .decrypt()
            .ciphertext_blob(pair.private_key_ciphertext_blob().unwrap().clone())
            .encryption_context("purpose", "pair")
            .send()
            .await
            .unwrap();
        assert_eq!(unwrapped.plaintext().unwrap().as_ref(), private.as_slice());
        assert!(!pair.public_key().unwrap().as_ref().is_empty());
        let event = server.event_for_request(pair.request_id().unwrap());
        let text = event.to_string();
        use base64::Engine;
        assert!(!text.contains(&base64::engine::general_purpose::STANDARD.encode(&private)));
        let without = kms
            .generate_data_key_pair_without_plaintext()
            .key_id(&key)
            .key_pair_spec(spec.clone())
            .send()
            .await
            .unwrap();
        assert!(without.private_key_ciphertext_blob().is_some());
        if spec == DataKeyPairSpec::EccNistEdwards25519 {
            // The private key is PKCS#8 another implementation loads, with the public key given.
            let loaded = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(&private)
                .expect("an Ed25519 PKCS#8 private key");
            let public = pair.public_key().unwrap().as_ref();
            use aws_lc_rs::signature::KeyPair;
            assert!(public.ends_with(loaded.public_key().as_ref()));
        }
    }
    let unsupported = kms
        .generate_data_key_pair()
        .key_id(&key)
        .key_pair_spec(DataKeyPairSpec::MlKem768)
        .send()
        .await;
    assert_eq!(code(unsupported), "UnsupportedOperationException");
    let signing = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    assert_eq!(
        code(
            kms.generate_data_key_pair()
                .key_id(&signing)
                .key_pair_spec(DataKeyPairSpec::EccNistP256)
                .send()
                .await
        ),
        "InvalidKeyUsageException"
    );
}

/// The raw public key at the end of a SubjectPublicKeyInfo (for the Ed25519 and ML-DSA keys,
/// whose SPKI is the algorithm identifier and the key as a BIT STRING).
fn raw_public_key(spki: &[u8], len: usize) -> &[u8] {
    assert!(spki.len() > len, "SPKI of {} bytes", spki.len());
    &spki[spki.len() - len..]
}

/// A key spec that signs whole messages, and how to check its signatures offline.
struct WholeMessageSigning {
    spec: KeySpec,
    algorithm: SigningAlgorithmSpec,
    verification: &'static dyn aws_lc_rs::signature::VerificationAlgorithm,
    /// The raw public key's length, at the end of its SubjectPublicKeyInfo.
    public_len: usize,
    /// The algorithm's OID (content octets), which the SubjectPublicKeyInfo must name.
    oid: &'static [u8],
}

/// Ed25519 (ECC_NIST_EDWARDS25519) and ML-DSA keys sign whole messages; their signatures verify
/// in KMS and, with the public key GetPublicKey gives, in an independent implementation.
#[tokio::test]
async fn ed25519_and_ml_dsa_keys_sign_whole_messages() {
    use aws_lc_rs::signature::{self, UnparsedPublicKey};
    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    let message = b"signed by a post-quantum or an Edwards key".to_vec();
    let cases = [
        WholeMessageSigning {
            spec: KeySpec::EccNistEdwards25519,
            algorithm: SigningAlgorithmSpec::Ed25519Sha512,
            verification: &signature::ED25519,
            public_len: 32,
            oid: &[0x2b, 0x65, 0x70],
        },
        WholeMessageSigning {
            spec: KeySpec::MlDsa44,
            algorithm: SigningAlgorithmSpec::MlDsaShake256,
            verification: &signature::ML_DSA_44,
            public_len: 1312,
            oid: &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x11],
        },
        WholeMessageSigning {
            spec: KeySpec::MlDsa65,
            algorithm: SigningAlgorithmSpec::MlDsaShake256,
            verification: &signature::ML_DSA_65,
            public_len: 1952,
            oid: &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x12],
        },
        WholeMessageSigning {
            spec: KeySpec::MlDsa87,
            algorithm: SigningAlgorithmSpec::MlDsaShake256,
            verification: &signature::ML_DSA_87,
            public_len: 2592,
            oid: &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, 0x13],
        },
    ];
    for WholeMessageSigning {
        spec,
        algorithm,
        verification,
        public_len,
        oid,
    } in cases
    {
        let created = kms
            .create_key()
            .key_spec(spec.clone())
            .key_usage(KeyUsageType::SignVerify)
            .send()
            .await
            .expect("create key");
        let meta = created.key_metadata().unwrap();
        assert_eq!(meta.signing_algorithms()[0], algorithm);
        // The deprecated member predates these specs, as AWS's model says.
        #[allow(deprecated)]
        let legacy_spec = meta.customer_master_key_spec();
        assert!(legacy_spec.is_none(), "{spec:?}");
        let key = meta.key_id().to_string();
        let signed = kms
            .sign()
            .key_id(&key)
            .message(Blob::new(message.clone()))
            .signing_algorithm(algorithm.clone())
            .send()
            .await
            .expect("sign");
        let signature_bytes = signed.signature().unwrap().as_ref().to_vec();
        let public = kms.get_public_key().key_id(&key).send().await.unwrap();
        let spki = public.public_key().unwrap().as_ref();
        assert!(
            spki.windows(oid.len()).any(|w| w == oid),
            "{spec:?}: the algorithm's OID in the SPKI"
        );
        assert_eq!(public.signing_algorithms()[0], algorithm);
        UnparsedPublicKey::new(verification, raw_public_key(spki, public_len))
            .verify(&message, &signature_bytes)
            .unwrap_or_else(|_| panic!("{spec:?}: offline verification"));
        let verified = kms
            .verify()
            .key_id(&key)
            .message(Blob::new(message.clone()))
            .signature(Blob::new(signature_bytes.clone()))
            .signing_algorithm(algorithm.clone())
            .send()
            .await
            .unwrap();
        assert!(verified.signature_valid());
        let tampered = kms
            .verify()
            .key_id(&key)
            .message(Blob::new(b"another message".to_vec()))
            .signature(Blob::new(signature_bytes))
            .signing_algorithm(algorithm.clone())
            .send()
            .await;
        assert_eq!(code(tampered), "KMSInvalidSignatureException");
        // These algorithms hash the message themselves: a digest is not what they take.
        let digest = kms
            .sign()
            .key_id(&key)
            .message(Blob::new(vec![7u8; 64]))
            .message_type(MessageType::Digest)
            .signing_algorithm(algorithm.clone())
            .send()
            .await;
        assert_eq!(code(digest), "ValidationException");
        let ecdsa = kms
            .sign()
            .key_id(&key)
            .message(Blob::new(message.clone()))
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await;
        assert_eq!(code(ecdsa), "InvalidKeyUsageException");
        if algorithm == SigningAlgorithmSpec::MlDsaShake256 {
            let mu = kms
                .sign()
                .key_id(&key)
                .message(Blob::new(vec![1u8; 64]))
                .message_type(MessageType::ExternalMu)
                .signing_algorithm(algorithm.clone())
                .send()
                .await;
            assert_eq!(code(mu), "UnsupportedOperationException");
        }
        let event = server.event_for_request(signed.request_id().unwrap());
        assert_eq!(
            event["requestParameters"]["signingAlgorithm"],
            algorithm.as_str()
        );
        assert!(!event.to_string().contains("signature\""));
    }
    // Ed25519ph (ED25519_PH_SHA_512) signs the caller's SHA-512 digest (DIGEST only); KMS hashes
    // it once more, as RFC 8032's prehash does (the unit tests check RFC 8032's vectors).
    let edwards = create(&kms, KeySpec::EccNistEdwards25519, KeyUsageType::SignVerify).await;
    let described = kms.describe_key().key_id(&edwards).send().await.unwrap();
    assert_eq!(
        described.key_metadata().unwrap().signing_algorithms(),
        &[
            SigningAlgorithmSpec::Ed25519Sha512,
            SigningAlgorithmSpec::Ed25519PhSha512
        ]
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA512, &message);
    let prehashed = kms
        .sign()
        .key_id(&edwards)
        .message(Blob::new(digest.as_ref().to_vec()))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::Ed25519PhSha512)
        .send()
        .await
        .expect("Ed25519ph sign");
    let signature_bytes = prehashed.signature().unwrap().as_ref().to_vec();
    assert_eq!(signature_bytes.len(), 64);
    for (candidate, valid) in [(digest.as_ref().to_vec(), true), (vec![0u8; 64], false)] {
        let checked = kms
            .verify()
            .key_id(&edwards)
            .message(Blob::new(candidate))
            .message_type(MessageType::Digest)
            .signature(Blob::new(signature_bytes.clone()))
            .signing_algorithm(SigningAlgorithmSpec::Ed25519PhSha512)
            .send()
            .await;
        if valid {
            assert!(checked.unwrap().signature_valid());
        } else {
            assert_eq!(code(checked), "KMSInvalidSignatureException");
        }
    }
    // Not the pure Ed25519 signature of the message, and not a RAW message.
    let as_pure = kms
        .verify()
        .key_id(&edwards)
        .message(Blob::new(message.clone()))
        .signature(Blob::new(signature_bytes))
        .signing_algorithm(SigningAlgorithmSpec::Ed25519Sha512)
        .send()
        .await;
    assert_eq!(code(as_pure), "KMSInvalidSignatureException");
    let raw = kms
        .sign()
        .key_id(&edwards)
        .message(Blob::new(message.clone()))
        .signing_algorithm(SigningAlgorithmSpec::Ed25519PhSha512)
        .send()
        .await;
    assert_eq!(code(raw), "ValidationException");

    let rsa = create(&kms, KeySpec::Rsa2048, KeyUsageType::SignVerify).await;
    let mu_on_rsa = kms
        .sign()
        .key_id(&rsa)
        .message(Blob::new(vec![1u8; 64]))
        .message_type(MessageType::ExternalMu)
        .signing_algorithm(SigningAlgorithmSpec::RsassaPssSha256)
        .send()
        .await;
    assert_eq!(code(mu_on_rsa), "ValidationException");
}

async fn assert_cannot_sign(kms: &Client, key: &str) {
    let signed = kms
        .sign()
        .key_id(key)
        .message(Blob::new(b"m".to_vec()))
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await;
    assert_eq!(code(signed), "InvalidKeyUsageException", "{key} signs");
}

/// A peer's ECDH key pair: the private key and the public key as DER SubjectPublicKeyInfo.
fn ecdh_peer(
    curve: &'static aws_lc_rs::agreement::Algorithm,
) -> (aws_lc_rs::agreement::PrivateKey, Vec<u8>) {
    use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
    let private = aws_lc_rs::agreement::PrivateKey::generate(curve).unwrap();
    let public = AsDer::<PublicKeyX509Der>::as_der(&private.compute_public_key().unwrap())
        .unwrap()
        .as_ref()
        .to_vec();
    (private, public)
}

#[tokio::test]
async fn key_agreement_keys_derive_the_shared_secret_the_peer_derives() {
    use aws_lc_rs::agreement;

    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    for (spec, curve, secret_len) in [
        (KeySpec::EccNistP256, &agreement::ECDH_P256, 32),
        (KeySpec::EccNistP384, &agreement::ECDH_P384, 48),
        (KeySpec::EccNistP521, &agreement::ECDH_P521, 66),
    ] {
        let key = create(&kms, spec.clone(), KeyUsageType::KeyAgreement).await;
        let described = kms.describe_key().key_id(&key).send().await.unwrap();
        let meta = described.key_metadata().unwrap();
        assert_eq!(meta.key_usage(), Some(&KeyUsageType::KeyAgreement));
        assert_eq!(meta.key_agreement_algorithms().len(), 1);
        assert_eq!(meta.key_agreement_algorithms()[0].as_str(), "ECDH");
        assert!(meta.signing_algorithms().is_empty());
        let public = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(public.key_agreement_algorithms()[0].as_str(), "ECDH");
        let kms_public = public.public_key().unwrap().as_ref().to_vec();

        let (peer, peer_public) = ecdh_peer(curve);
        let derived = kms
            .derive_shared_secret()
            .key_id(&key)
            .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
            .public_key(Blob::new(peer_public.clone()))
            .send()
            .await
            .unwrap();
        assert!(derived.key_id().unwrap().ends_with(&key), "the key ARN");
        assert_eq!(derived.key_origin().map(|o| o.as_str()), Some("AWS_KMS"));
        let theirs = agreement::agree(
            &peer,
            agreement::UnparsedPublicKey::new(curve, &kms_public),
            (),
            |secret| Ok(secret.to_vec()),
        )
        .unwrap();
        let ours = derived.shared_secret().unwrap().as_ref().to_vec();
        assert_eq!(ours.len(), secret_len, "{spec:?}");
        assert_eq!(ours, theirs, "{spec:?}: both sides derive the same secret");

        let event = server.event_for_request(derived.request_id().unwrap());
        assert_eq!(event["eventName"], "DeriveSharedSecret");
        assert_eq!(event["readOnly"], true);
        assert_eq!(event["requestParameters"]["keyAgreementAlgorithm"], "ECDH");
        assert_eq!(event["responseElements"], serde_json::Value::Null);
        let text = event.to_string();
        assert!(
            !text.contains("publicKey") && !text.contains("sharedSecret"),
            "neither key material nor the secret reach the event: {text}"
        );

        // A key agreement key does not sign; a signing key does not agree.
        assert_cannot_sign(&kms, &key).await;
    }

    let p256 = create(&kms, KeySpec::EccNistP256, KeyUsageType::KeyAgreement).await;
    let (_, p384_public) = ecdh_peer(&agreement::ECDH_P384);
    let derive = |key: String, public: Vec<u8>| {
        let kms = kms.clone();
        async move {
            kms.derive_shared_secret()
                .key_id(key)
                .key_agreement_algorithm(KeyAgreementAlgorithmSpec::Ecdh)
                .public_key(Blob::new(public))
                .send()
                .await
        }
    };
    assert_eq!(
        code(derive(p256.clone(), p384_public).await),
        "ValidationException",
        "a public key on another curve"
    );
    assert_eq!(
        code(derive(p256.clone(), b"not a key".to_vec()).await),
        "ValidationException"
    );
    let signing = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    let (_, peer_public) = ecdh_peer(&agreement::ECDH_P256);
    assert_eq!(
        code(derive(signing, peer_public.clone()).await),
        "InvalidKeyUsageException"
    );
    kms.disable_key().key_id(&p256).send().await.unwrap();
    assert_eq!(
        code(derive(p256.clone(), peer_public).await),
        "DisabledException"
    );
}

#[tokio::test]
async fn ml_kem_keys_encapsulate_and_decapsulate_shared_secrets() {
    use aws_lc_rs::kem;

    let server = TestServer::start();
    let kms = kms_client(&server.url, ROOT_KEY, ROOT_SECRET);
    for (spec, algorithm, public_len, ciphertext_len) in [
        (KeySpec::MlKem512, &kem::ML_KEM_512, 800, 768),
        (KeySpec::MlKem768, &kem::ML_KEM_768, 1184, 1088),
        (KeySpec::MlKem1024, &kem::ML_KEM_1024, 1568, 1568),
    ] {
        let key = create(&kms, spec.clone(), KeyUsageType::EncapsulateDecapsulate).await;
        let described = kms.describe_key().key_id(&key).send().await.unwrap();
        let meta = described.key_metadata().unwrap();
        assert_eq!(
            meta.encapsulation_algorithms(),
            [EncapsulationAlgorithmSpec::MlKem]
        );
        #[allow(deprecated)]
        let customer_master_key_spec = meta.customer_master_key_spec();
        assert_eq!(
            customer_master_key_spec, None,
            "the deprecated field predates ML-KEM"
        );
        let public = kms.get_public_key().key_id(&key).send().await.unwrap();
        assert_eq!(
            public.encapsulation_algorithms(),
            [EncapsulationAlgorithmSpec::MlKem]
        );
        let spki = public.public_key().unwrap().as_ref().to_vec();
        assert_eq!(spki[0], 0x30, "DER SubjectPublicKeyInfo");
        let raw = &spki[spki.len() - public_len..];

        // A peer encapsulates to the public key; KMS recovers the same secret.
        let peer = kem::EncapsulationKey::new(algorithm, raw).unwrap();
        let (ciphertext, secret) = peer.encapsulate().unwrap();
        let decapsulate = |blob: Vec<u8>| {
            let kms = kms.clone();
            let key = key.clone();
            async move {
                kms.decapsulate()
                    .key_id(key)
                    .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
                    .shared_secret_ciphertext_blob(Blob::new(blob))
                    .send()
                    .await
            }
        };
        let recovered = decapsulate(ciphertext.as_ref().to_vec()).await.unwrap();
        assert_eq!(
            recovered.shared_secret().unwrap().as_ref(),
            secret.as_ref(),
            "{spec:?}"
        );

        // KMS encapsulates; decapsulating its ciphertext gives its secret.
        let encapsulated = kms
            .encapsulate()
            .key_id(&key)
            .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
            .send()
            .await
            .unwrap();
        let blob = encapsulated
            .shared_secret_ciphertext_blob()
            .unwrap()
            .as_ref()
            .to_vec();
        assert_eq!(blob.len(), ciphertext_len);
        let shared = encapsulated.shared_secret().unwrap().as_ref().to_vec();
        assert_eq!(shared.len(), 32);
        let again = decapsulate(blob.clone()).await.unwrap();
        assert_eq!(again.shared_secret().unwrap().as_ref(), shared.as_slice());

        // Implicit rejection: an altered ciphertext gives another secret, not an error; one of
        // the wrong length is refused.
        let mut altered = blob.clone();
        altered[0] ^= 1;
        let other = decapsulate(altered).await.unwrap();
        assert_ne!(other.shared_secret().unwrap().as_ref(), shared.as_slice());
        assert_eq!(
            code(decapsulate(blob[..blob.len() - 1].to_vec()).await),
            "InvalidCiphertextException"
        );

        for request_id in [encapsulated.request_id(), again.request_id()] {
            let event = server.event_for_request(request_id.unwrap());
            assert_eq!(
                event["requestParameters"]["encapsulationAlgorithm"],
                "ML_KEM"
            );
            let text = event.to_string();
            assert!(
                !text.contains("sharedSecret"),
                "neither the secret nor its ciphertext reach the event: {text}"
            );
        }
        assert_cannot_sign(&kms, &key).await;
    }
    let ecc = create(&kms, KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
    assert_eq!(
        code(
            kms.encapsulate()
                .key_id(&ecc)
                .encapsulation_algorithm(EncapsulationAlgorithmSpec::MlKem)
                .send()
                .await
        ),
        "InvalidKeyUsageException"
    );
}
