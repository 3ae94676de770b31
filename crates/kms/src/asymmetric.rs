//! Key material of every key spec (§2.4): AES-256 backing keys, RSA and ECC key pairs, HMAC
//! keys, ML-KEM key pairs — generated, serialized for wrapping (PKCS#8 for RSA and ECC key
//! pairs), loaded, and used.

use aws_lc_rs::agreement;
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::kem;
use aws_lc_rs::rsa::{
    self, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm,
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{self, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair, UnparsedPublicKey};
use zeroize::Zeroizing;

use crate::envelope::{self, MATERIAL_LEN, MaterialKey};
use crate::error::{KmsError, KmsResult};

pub const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";

/// What a key spec allows (§2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecFamily {
    Symmetric,
    Rsa(KeySize),
    Ecc(&'static str),
    Hmac(&'static hmac::Algorithm, usize),
    /// ML-KEM (FIPS 203), by the last arc of its algorithm OID (2.16.840.1.101.3.4.4.n):
    /// 1 = ML-KEM-512, 2 = ML-KEM-768, 3 = ML-KEM-1024.
    MlKem(u8),
}

/// An ML-KEM parameter set: the algorithm, its public key and ciphertext lengths (FIPS 203).
struct MlKemParameters {
    algorithm: &'static kem::Algorithm<kem::AlgorithmId>,
    public_len: usize,
    ciphertext_len: usize,
}

fn ml_kem_parameters(oid_arc: u8) -> Option<MlKemParameters> {
    let (algorithm, public_len, ciphertext_len) = match oid_arc {
        1 => (&kem::ML_KEM_512, 800, 768),
        2 => (&kem::ML_KEM_768, 1184, 1088),
        3 => (&kem::ML_KEM_1024, 1568, 1568),
        _ => return None,
    };
    Some(MlKemParameters {
        algorithm,
        public_len,
        ciphertext_len,
    })
}

pub fn family(spec: &str) -> Option<SpecFamily> {
    Some(match spec {
        SYMMETRIC_DEFAULT => SpecFamily::Symmetric,
        "RSA_2048" => SpecFamily::Rsa(KeySize::Rsa2048),
        "RSA_3072" => SpecFamily::Rsa(KeySize::Rsa3072),
        "RSA_4096" => SpecFamily::Rsa(KeySize::Rsa4096),
        "ECC_NIST_P256" | "ECC_NIST_P384" | "ECC_NIST_P521" | "ECC_SECG_P256K1" => {
            SpecFamily::Ecc(match spec {
                "ECC_NIST_P256" => "ECC_NIST_P256",
                "ECC_NIST_P384" => "ECC_NIST_P384",
                "ECC_NIST_P521" => "ECC_NIST_P521",
                _ => "ECC_SECG_P256K1",
            })
        }
        "HMAC_224" => SpecFamily::Hmac(&hmac::HMAC_SHA224, 28),
        "HMAC_256" => SpecFamily::Hmac(&hmac::HMAC_SHA256, 32),
        "HMAC_384" => SpecFamily::Hmac(&hmac::HMAC_SHA384, 48),
        "HMAC_512" => SpecFamily::Hmac(&hmac::HMAC_SHA512, 64),
        "ML_KEM_512" => SpecFamily::MlKem(1),
        "ML_KEM_768" => SpecFamily::MlKem(2),
        "ML_KEM_1024" => SpecFamily::MlKem(3),
        _ => return None,
    })
}

/// Key usages a spec may have, the first being the default when CreateKey names none.
pub fn usages(spec: &str) -> &'static [&'static str] {
    match family(spec) {
        Some(SpecFamily::Symmetric) => &["ENCRYPT_DECRYPT"],
        Some(SpecFamily::Rsa(_)) => &["ENCRYPT_DECRYPT", "SIGN_VERIFY"],
        Some(SpecFamily::Ecc("ECC_SECG_P256K1")) => &["SIGN_VERIFY"],
        Some(SpecFamily::Ecc(_)) => &["SIGN_VERIFY", "KEY_AGREEMENT"],
        Some(SpecFamily::Hmac(..)) => &["GENERATE_VERIFY_MAC"],
        Some(SpecFamily::MlKem(_)) => &["ENCAPSULATE_DECAPSULATE"],
        None => &[],
    }
}

pub fn encryption_algorithms(spec: &str, usage: &str) -> Vec<String> {
    match (family(spec), usage) {
        (Some(SpecFamily::Symmetric), _) => vec![SYMMETRIC_DEFAULT.into()],
        (Some(SpecFamily::Rsa(_)), "ENCRYPT_DECRYPT") => {
            vec!["RSAES_OAEP_SHA_1".into(), "RSAES_OAEP_SHA_256".into()]
        }
        _ => Vec::new(),
    }
}

pub fn signing_algorithms(spec: &str, usage: &str) -> Vec<String> {
    if usage != "SIGN_VERIFY" {
        return Vec::new();
    }
    match spec {
        "RSA_2048" | "RSA_3072" | "RSA_4096" => [
            "RSASSA_PSS_SHA_256",
            "RSASSA_PSS_SHA_384",
            "RSASSA_PSS_SHA_512",
            "RSASSA_PKCS1_V1_5_SHA_256",
            "RSASSA_PKCS1_V1_5_SHA_384",
            "RSASSA_PKCS1_V1_5_SHA_512",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        "ECC_NIST_P256" | "ECC_SECG_P256K1" => vec!["ECDSA_SHA_256".into()],
        "ECC_NIST_P384" => vec!["ECDSA_SHA_384".into()],
        "ECC_NIST_P521" => vec!["ECDSA_SHA_512".into()],
        _ => Vec::new(),
    }
}

pub fn key_agreement_algorithms(usage: &str) -> Vec<String> {
    if usage == "KEY_AGREEMENT" {
        vec!["ECDH".into()]
    } else {
        Vec::new()
    }
}

/// Whether the deprecated `CustomerMasterKeySpec` names this spec (it predates ML-KEM).
pub fn has_customer_master_key_spec(spec: &str) -> bool {
    !matches!(family(spec), Some(SpecFamily::MlKem(_)))
}

pub fn encapsulation_algorithms(usage: &str) -> Vec<String> {
    if usage == "ENCAPSULATE_DECAPSULATE" {
        vec!["ML_KEM".into()]
    } else {
        Vec::new()
    }
}

fn ecdh(spec: &str) -> Option<&'static agreement::Algorithm> {
    match spec {
        "ECC_NIST_P256" => Some(&agreement::ECDH_P256),
        "ECC_NIST_P384" => Some(&agreement::ECDH_P384),
        "ECC_NIST_P521" => Some(&agreement::ECDH_P521),
        _ => None,
    }
}

pub fn mac_algorithms(spec: &str) -> Vec<String> {
    match spec {
        "HMAC_224" => vec!["HMAC_SHA_224".into()],
        "HMAC_256" => vec!["HMAC_SHA_256".into()],
        "HMAC_384" => vec!["HMAC_SHA_384".into()],
        "HMAC_512" => vec!["HMAC_SHA_512".into()],
        _ => Vec::new(),
    }
}

fn ecdsa_signing(spec: &str) -> KmsResult<&'static EcdsaSigningAlgorithm> {
    Ok(match spec {
        "ECC_NIST_P256" => &signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        "ECC_NIST_P384" => &signature::ECDSA_P384_SHA384_ASN1_SIGNING,
        "ECC_NIST_P521" => &signature::ECDSA_P521_SHA512_ASN1_SIGNING,
        "ECC_SECG_P256K1" => &signature::ECDSA_P256K1_SHA256_ASN1_SIGNING,
        other => {
            return Err(KmsError::Internal(format!(
                "{other} is not an ECC key spec"
            )));
        }
    })
}

fn internal(what: &str) -> KmsError {
    KmsError::Internal(format!("{what} failed."))
}

/// One version of a key, ready for use. Secrets stay inside aws-lc-rs objects or zeroizing
/// buffers.
pub enum KeyMaterial {
    Aes(MaterialKey),
    Rsa(Box<RsaMaterial>),
    Ecc(Box<EccMaterial>),
    Hmac(Box<hmac::Key>),
    MlKem(Box<MlKemMaterial>),
}

/// An ML-KEM key pair and its public key as SubjectPublicKeyInfo. Stored as the decapsulation
/// key's bytes followed by the encapsulation key's (aws-lc-rs cannot derive the second from
/// the first once they are serialized).
pub struct MlKemMaterial {
    decapsulation: kem::DecapsulationKey<kem::AlgorithmId>,
    encapsulation: kem::EncapsulationKey<kem::AlgorithmId>,
    ciphertext_len: usize,
    public_der: Vec<u8>,
}

/// An ECC key pair and its public key as SubjectPublicKeyInfo; NIST curves also as an ECDH
/// private key (the same secret), for KEY_AGREEMENT keys.
pub struct EccMaterial {
    key_pair: EcdsaKeyPair,
    public_der: Vec<u8>,
    agreement: Option<agreement::PrivateKey>,
}

/// An RSA key pair in the three forms aws-lc-rs uses it.
pub struct RsaMaterial {
    signing: rsa::KeyPair,
    decrypting: OaepPrivateDecryptingKey,
    encrypting: OaepPublicEncryptingKey,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyMaterial::Aes(_) => "KeyMaterial::Aes(..)",
            KeyMaterial::Rsa(_) => "KeyMaterial::Rsa(..)",
            KeyMaterial::Ecc(_) => "KeyMaterial::Ecc(..)",
            KeyMaterial::Hmac(_) => "KeyMaterial::Hmac(..)",
            KeyMaterial::MlKem(_) => "KeyMaterial::MlKem(..)",
        })
    }
}

/// New key material of `spec`: its serialized secret (to wrap and store) and the loaded form.
pub fn generate(spec: &str) -> KmsResult<(Zeroizing<Vec<u8>>, KeyMaterial)> {
    let secret: Zeroizing<Vec<u8>> = match family(spec) {
        Some(SpecFamily::Symmetric) => {
            envelope::random(MATERIAL_LEN).map_err(|_| internal("Random generation"))?
        }
        Some(SpecFamily::Hmac(_, len)) => {
            envelope::random(len).map_err(|_| internal("Random generation"))?
        }
        Some(SpecFamily::Rsa(size)) => {
            let pair = rsa::KeyPair::generate(size).map_err(|_| internal("RSA key generation"))?;
            let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair)
                .map_err(|_| internal("RSA key encoding"))?;
            Zeroizing::new(der.as_ref().to_vec())
        }
        Some(SpecFamily::Ecc(_)) => {
            let pair = EcdsaKeyPair::generate(ecdsa_signing(spec)?)
                .map_err(|_| internal("ECC key generation"))?;
            let doc = pair
                .to_pkcs8v1()
                .map_err(|_| internal("ECC key encoding"))?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
        Some(SpecFamily::MlKem(oid_arc)) => {
            let parameters = ml_kem_parameters(oid_arc).ok_or_else(|| internal("ML-KEM"))?;
            let decapsulation = kem::DecapsulationKey::generate(parameters.algorithm)
                .map_err(|_| internal("ML-KEM key generation"))?;
            let private = decapsulation
                .key_bytes()
                .map_err(|_| internal("ML-KEM key encoding"))?;
            let public = decapsulation
                .encapsulation_key()
                .and_then(|k| k.key_bytes())
                .map_err(|_| internal("ML-KEM key encoding"))?;
            let mut both = Zeroizing::new(Vec::with_capacity(
                private.as_ref().len() + public.as_ref().len(),
            ));
            both.extend_from_slice(private.as_ref());
            both.extend_from_slice(public.as_ref());
            both
        }
        None => return Err(KmsError::Internal(format!("unknown key spec {spec}"))),
    };
    let loaded = load(spec, &secret)?;
    Ok((secret, loaded))
}

/// Loads stored key material of `spec`.
pub fn load(spec: &str, secret: &[u8]) -> KmsResult<KeyMaterial> {
    let malformed = || KmsError::Internal("Stored key material is malformed.".into());
    Ok(match family(spec) {
        Some(SpecFamily::Symmetric) => {
            KeyMaterial::Aes(MaterialKey::new(secret).map_err(|_| malformed())?)
        }
        Some(SpecFamily::Hmac(alg, _)) => KeyMaterial::Hmac(Box::new(hmac::Key::new(*alg, secret))),
        Some(SpecFamily::Rsa(_)) => {
            let signing = rsa::KeyPair::from_pkcs8(secret).map_err(|_| malformed())?;
            let public_der = AsDer::<PublicKeyX509Der>::as_der(signing.public_key())
                .map_err(|_| malformed())?
                .as_ref()
                .to_vec();
            let private = PrivateDecryptingKey::from_pkcs8(secret).map_err(|_| malformed())?;
            let encrypting =
                OaepPublicEncryptingKey::new(private.public_key()).map_err(|_| malformed())?;
            let decrypting = OaepPrivateDecryptingKey::new(private).map_err(|_| malformed())?;
            KeyMaterial::Rsa(Box::new(RsaMaterial {
                signing,
                decrypting,
                encrypting,
                public_der,
            }))
        }
        Some(SpecFamily::Ecc(_)) => {
            let key_pair =
                EcdsaKeyPair::from_pkcs8(ecdsa_signing(spec)?, secret).map_err(|_| malformed())?;
            let public_der = AsDer::<PublicKeyX509Der>::as_der(key_pair.public_key())
                .map_err(|_| malformed())?
                .as_ref()
                .to_vec();
            let agreement = match ecdh(spec) {
                Some(alg) => Some(
                    agreement::PrivateKey::from_private_key_der(alg, secret)
                        .map_err(|_| malformed())?,
                ),
                None => None,
            };
            KeyMaterial::Ecc(Box::new(EccMaterial {
                key_pair,
                public_der,
                agreement,
            }))
        }
        Some(SpecFamily::MlKem(oid_arc)) => {
            let parameters = ml_kem_parameters(oid_arc).ok_or_else(malformed)?;
            let split = secret
                .len()
                .checked_sub(parameters.public_len)
                .ok_or_else(malformed)?;
            let (private, public) = secret.split_at(split);
            KeyMaterial::MlKem(Box::new(MlKemMaterial {
                decapsulation: kem::DecapsulationKey::new(parameters.algorithm, private)
                    .map_err(|_| malformed())?,
                encapsulation: kem::EncapsulationKey::new(parameters.algorithm, public)
                    .map_err(|_| malformed())?,
                ciphertext_len: parameters.ciphertext_len,
                public_der: ml_kem_spki(oid_arc, public),
            }))
        }
        None => return Err(malformed()),
    })
}

/// DER SubjectPublicKeyInfo of an ML-KEM public key: AlgorithmIdentifier with the algorithm's
/// OID and no parameters, and the raw key as the BIT STRING (the IETF LAMPS encoding of
/// ML-KEM keys in X.509).
fn ml_kem_spki(oid_arc: u8, public: &[u8]) -> Vec<u8> {
    fn der_length(out: &mut Vec<u8>, len: usize) {
        match len {
            0..=0x7f => out.push(len as u8),
            0x80..=0xff => out.extend_from_slice(&[0x81, len as u8]),
            _ => out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]),
        }
    }
    let algorithm = [
        0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x04, oid_arc,
    ];
    let mut bit_string = vec![0x03];
    der_length(&mut bit_string, public.len() + 1);
    bit_string.push(0x00);
    bit_string.extend_from_slice(public);
    let mut out = vec![0x30];
    der_length(&mut out, algorithm.len() + bit_string.len());
    out.extend_from_slice(&algorithm);
    out.extend_from_slice(&bit_string);
    out
}

impl KeyMaterial {
    pub fn aes(&self) -> KmsResult<&MaterialKey> {
        match self {
            KeyMaterial::Aes(k) => Ok(k),
            _ => Err(KmsError::Internal("not a symmetric key".into())),
        }
    }

    /// DER SubjectPublicKeyInfo, as GetPublicKey returns it.
    pub fn public_key_der(&self) -> Option<&[u8]> {
        match self {
            KeyMaterial::Rsa(rsa) => Some(&rsa.public_der),
            KeyMaterial::Ecc(ecc) => Some(&ecc.public_der),
            KeyMaterial::MlKem(ml_kem) => Some(&ml_kem.public_der),
            _ => None,
        }
    }

    /// The ECDH shared secret (the x-coordinate of the shared point, as KMS returns it) with a
    /// peer's public key given as DER SubjectPublicKeyInfo on the same curve.
    pub fn derive_shared_secret(&self, spec: &str, peer: &[u8]) -> KmsResult<Zeroizing<Vec<u8>>> {
        let (KeyMaterial::Ecc(ecc), Some(alg)) = (self, ecdh(spec)) else {
            return Err(internal("Key agreement"));
        };
        let Some(private) = &ecc.agreement else {
            return Err(internal("Key agreement"));
        };
        agreement::agree(
            private,
            agreement::UnparsedPublicKey::new(alg, peer),
            KmsError::Validation(format!(
                "PublicKey is not a DER-encoded SubjectPublicKeyInfo of a point on the curve of {spec}."
            )),
            |secret| Ok(Zeroizing::new(secret.to_vec())),
        )
    }

    /// A fresh shared secret and its ciphertext under this ML-KEM key's public key.
    pub fn encapsulate(&self) -> KmsResult<(Vec<u8>, Zeroizing<Vec<u8>>)> {
        let KeyMaterial::MlKem(ml_kem) = self else {
            return Err(internal("Encapsulation"));
        };
        let (ciphertext, secret) = ml_kem
            .encapsulation
            .encapsulate()
            .map_err(|_| internal("Encapsulation"))?;
        Ok((
            ciphertext.as_ref().to_vec(),
            Zeroizing::new(secret.as_ref().to_vec()),
        ))
    }

    /// The shared secret of an ML-KEM ciphertext. A ciphertext of the wrong length is
    /// `InvalidCiphertextException`; any other yields a 32-byte value (FIPS 203's implicit
    /// rejection: a forged or altered ciphertext gives an unrelated secret, not an error).
    pub fn decapsulate(&self, ciphertext: &[u8]) -> KmsResult<Zeroizing<Vec<u8>>> {
        let KeyMaterial::MlKem(ml_kem) = self else {
            return Err(internal("Decapsulation"));
        };
        if ciphertext.len() != ml_kem.ciphertext_len {
            return Err(KmsError::InvalidCiphertext(String::new()));
        }
        let secret = ml_kem
            .decapsulation
            .decapsulate(ciphertext.into())
            .map_err(|_| KmsError::InvalidCiphertext(String::new()))?;
        Ok(Zeroizing::new(secret.as_ref().to_vec()))
    }

    /// The largest plaintext RSA-OAEP takes with this key and algorithm.
    pub fn oaep_max_plaintext(&self, algorithm: &'static OaepAlgorithm) -> usize {
        match self {
            KeyMaterial::Rsa(rsa) => rsa.encrypting.max_plaintext_size(algorithm),
            _ => 0,
        }
    }

    pub fn rsa_encrypt(
        &self,
        algorithm: &'static OaepAlgorithm,
        plaintext: &[u8],
    ) -> KmsResult<Vec<u8>> {
        let KeyMaterial::Rsa(rsa) = self else {
            return Err(internal("RSA encryption"));
        };
        let mut out = vec![0u8; rsa.encrypting.ciphertext_size()];
        let len = rsa
            .encrypting
            .encrypt(algorithm, plaintext, &mut out, None)
            .map_err(|_| internal("RSA encryption"))?
            .len();
        out.truncate(len);
        Ok(out)
    }

    pub fn rsa_decrypt(
        &self,
        algorithm: &'static OaepAlgorithm,
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let KeyMaterial::Rsa(rsa) = self else {
            return None;
        };
        let mut out = Zeroizing::new(vec![0u8; rsa.decrypting.min_output_size()]);
        let len = rsa
            .decrypting
            .decrypt(algorithm, ciphertext, &mut out, None)
            .ok()?
            .len();
        out.truncate(len);
        Some(out)
    }

    pub fn hmac(&self) -> Option<&hmac::Key> {
        match self {
            KeyMaterial::Hmac(k) => Some(k),
            _ => None,
        }
    }
}

/// The OAEP algorithm an `EncryptionAlgorithm` names.
pub fn oaep(name: &str) -> Option<&'static OaepAlgorithm> {
    match name {
        "RSAES_OAEP_SHA_1" => Some(&OAEP_SHA1_MGF1SHA1),
        "RSAES_OAEP_SHA_256" => Some(&OAEP_SHA256_MGF1SHA256),
        _ => None,
    }
}

/// Digest algorithm of a signing algorithm name.
fn signing_digest(name: &str) -> Option<&'static digest::Algorithm> {
    Some(match name {
        "RSASSA_PSS_SHA_256" | "RSASSA_PKCS1_V1_5_SHA_256" | "ECDSA_SHA_256" => &digest::SHA256,
        "RSASSA_PSS_SHA_384" | "RSASSA_PKCS1_V1_5_SHA_384" | "ECDSA_SHA_384" => &digest::SHA384,
        "RSASSA_PSS_SHA_512" | "RSASSA_PKCS1_V1_5_SHA_512" | "ECDSA_SHA_512" => &digest::SHA512,
        _ => return None,
    })
}

fn rsa_encoding(name: &str) -> Option<&'static dyn signature::RsaEncoding> {
    Some(match name {
        "RSASSA_PSS_SHA_256" => &signature::RSA_PSS_SHA256,
        "RSASSA_PSS_SHA_384" => &signature::RSA_PSS_SHA384,
        "RSASSA_PSS_SHA_512" => &signature::RSA_PSS_SHA512,
        "RSASSA_PKCS1_V1_5_SHA_256" => &signature::RSA_PKCS1_SHA256,
        "RSASSA_PKCS1_V1_5_SHA_384" => &signature::RSA_PKCS1_SHA384,
        "RSASSA_PKCS1_V1_5_SHA_512" => &signature::RSA_PKCS1_SHA512,
        _ => return None,
    })
}

fn rsa_verification(name: &str) -> Option<&'static signature::RsaParameters> {
    Some(match name {
        "RSASSA_PSS_SHA_256" => &signature::RSA_PSS_2048_8192_SHA256,
        "RSASSA_PSS_SHA_384" => &signature::RSA_PSS_2048_8192_SHA384,
        "RSASSA_PSS_SHA_512" => &signature::RSA_PSS_2048_8192_SHA512,
        "RSASSA_PKCS1_V1_5_SHA_256" => &signature::RSA_PKCS1_2048_8192_SHA256,
        "RSASSA_PKCS1_V1_5_SHA_384" => &signature::RSA_PKCS1_2048_8192_SHA384,
        "RSASSA_PKCS1_V1_5_SHA_512" => &signature::RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    })
}

fn ecdsa_verification(spec: &str) -> Option<&'static signature::EcdsaVerificationAlgorithm> {
    Some(match spec {
        "ECC_NIST_P256" => &signature::ECDSA_P256_SHA256_ASN1,
        "ECC_NIST_P384" => &signature::ECDSA_P384_SHA384_ASN1,
        "ECC_NIST_P521" => &signature::ECDSA_P521_SHA512_ASN1,
        "ECC_SECG_P256K1" => &signature::ECDSA_P256K1_SHA256_ASN1,
        _ => return None,
    })
}

/// The digest a Sign or Verify call works on: computed from a RAW message, or given (DIGEST),
/// in which case its length must be the algorithm's.
pub fn message_digest(algorithm: &str, message: &[u8], message_type: &str) -> KmsResult<Digest> {
    let alg = signing_digest(algorithm).ok_or_else(|| {
        KmsError::constraint(
            "signingAlgorithm",
            algorithm,
            "Member must satisfy enum value set",
        )
    })?;
    match message_type {
        "RAW" => Ok(digest::digest(alg, message)),
        "DIGEST" => Digest::import_less_safe(message, alg).map_err(|_| {
            KmsError::Validation(format!(
                "Digest is invalid length for algorithm {algorithm}: expected {} bytes, got {}.",
                alg.output_len(),
                message.len()
            ))
        }),
        other => Err(KmsError::constraint(
            "messageType",
            other,
            "Member must satisfy enum value set: [RAW, DIGEST]",
        )),
    }
}

pub fn sign(
    material: &KeyMaterial,
    spec: &str,
    algorithm: &str,
    digest: &Digest,
) -> KmsResult<Vec<u8>> {
    match material {
        KeyMaterial::Rsa(rsa) => {
            let encoding = rsa_encoding(algorithm).ok_or_else(|| incompatible(algorithm, spec))?;
            let mut out = vec![0u8; rsa.signing.public_modulus_len()];
            rsa.signing
                .sign_digest(encoding, digest, &mut out)
                .map_err(|_| internal("Signing"))?;
            Ok(out)
        }
        KeyMaterial::Ecc(ecc) => {
            if !signing_algorithms(spec, "SIGN_VERIFY")
                .iter()
                .any(|a| a == algorithm)
            {
                return Err(incompatible(algorithm, spec));
            }
            Ok(ecc
                .key_pair
                .sign_digest(digest)
                .map_err(|_| internal("Signing"))?
                .as_ref()
                .to_vec())
        }
        _ => Err(incompatible(algorithm, spec)),
    }
}

pub fn verify(
    material: &KeyMaterial,
    spec: &str,
    algorithm: &str,
    digest: &Digest,
    signature_bytes: &[u8],
) -> KmsResult<bool> {
    let ok = match material {
        KeyMaterial::Rsa(rsa) => {
            let params =
                rsa_verification(algorithm).ok_or_else(|| incompatible(algorithm, spec))?;
            UnparsedPublicKey::new(params, rsa.signing.public_key().as_ref())
                .verify_digest(digest, signature_bytes)
                .is_ok()
        }
        KeyMaterial::Ecc(ecc) => {
            if !signing_algorithms(spec, "SIGN_VERIFY")
                .iter()
                .any(|a| a == algorithm)
            {
                return Err(incompatible(algorithm, spec));
            }
            let params = ecdsa_verification(spec).ok_or_else(|| incompatible(algorithm, spec))?;
            UnparsedPublicKey::new(params, ecc.key_pair.public_key().as_ref())
                .verify_digest(digest, signature_bytes)
                .is_ok()
        }
        _ => return Err(incompatible(algorithm, spec)),
    };
    Ok(ok)
}

fn incompatible(algorithm: &str, spec: &str) -> KmsError {
    KmsError::InvalidKeyUsage(format!(
        "Algorithm {algorithm} is incompatible with key spec {spec}."
    ))
}

/// A generated key pair for GenerateDataKeyPair: PKCS#8 private key and SPKI public key.
pub fn data_key_pair(spec: &str) -> KmsResult<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    match family(spec) {
        Some(SpecFamily::Rsa(_)) | Some(SpecFamily::Ecc(_)) => {
            let (secret, loaded) = generate(spec)?;
            let public = loaded
                .public_key_der()
                .ok_or_else(|| internal("Key pair generation"))?
                .to_vec();
            Ok((secret, public))
        }
        _ => Err(KmsError::constraint(
            "keyPairSpec",
            spec,
            "Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1]",
        )),
    }
}
