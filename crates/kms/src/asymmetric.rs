//! Key material of every key spec (§2.4): AES-256 backing keys, RSA, ECC, Ed25519 and ML-DSA
//! key pairs, HMAC keys, ML-KEM key pairs — generated, serialized for wrapping (PKCS#8 for the
//! signing key pairs), loaded, and used.

use aws_lc_rs::agreement;
use aws_lc_rs::digest::{self, Digest};
use aws_lc_rs::encoding::{AsBigEndian, AsDer, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::kem;
use aws_lc_rs::rsa::{
    self, KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm,
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair, PqdsaKeyPair,
    PqdsaSigningAlgorithm, PqdsaVerificationAlgorithm, UnparsedPublicKey,
};
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
    /// ECC_NIST_EDWARDS25519: Ed25519 (RFC 8032).
    Ed25519,
    /// ML-DSA (FIPS 204) by parameter set: 44, 65 or 87.
    MlDsa(u8),
}

fn ml_dsa(
    parameter_set: u8,
) -> Option<(
    &'static PqdsaSigningAlgorithm,
    &'static PqdsaVerificationAlgorithm,
)> {
    Some(match parameter_set {
        44 => (&signature::ML_DSA_44_SIGNING, &signature::ML_DSA_44),
        65 => (&signature::ML_DSA_65_SIGNING, &signature::ML_DSA_65),
        87 => (&signature::ML_DSA_87_SIGNING, &signature::ML_DSA_87),
        _ => return None,
    })
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
        "ECC_NIST_EDWARDS25519" => SpecFamily::Ed25519,
        "ML_DSA_44" => SpecFamily::MlDsa(44),
        "ML_DSA_65" => SpecFamily::MlDsa(65),
        "ML_DSA_87" => SpecFamily::MlDsa(87),
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
        Some(SpecFamily::Ed25519 | SpecFamily::MlDsa(_)) => &["SIGN_VERIFY"],
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
        "ECC_NIST_EDWARDS25519" => vec![ED25519_SHA_512.into(), ED25519_PH_SHA_512.into()],
        "ML_DSA_44" | "ML_DSA_65" | "ML_DSA_87" => vec![ML_DSA_SHAKE_256.into()],
        _ => Vec::new(),
    }
}

const ED25519_SHA_512: &str = "ED25519_SHA_512";
const ED25519_PH_SHA_512: &str = "ED25519_PH_SHA_512";
const ML_DSA_SHAKE_256: &str = "ML_DSA_SHAKE_256";

pub fn key_agreement_algorithms(usage: &str) -> Vec<String> {
    if usage == "KEY_AGREEMENT" {
        vec!["ECDH".into()]
    } else {
        Vec::new()
    }
}

/// Whether the deprecated `CustomerMasterKeySpec` names this spec (it predates ML-KEM,
/// ML-DSA and Ed25519).
pub fn has_customer_master_key_spec(spec: &str) -> bool {
    !matches!(
        family(spec),
        Some(SpecFamily::MlKem(_) | SpecFamily::Ed25519 | SpecFamily::MlDsa(_))
    )
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
    Ed25519(Box<Ed25519Material>),
    MlDsa(Box<MlDsaMaterial>),
}

/// An Ed25519 key pair and its public key as SubjectPublicKeyInfo; the same key for
/// Ed25519ph (RFC 8032 §5.1, ED25519_PH_SHA_512), which aws-lc-rs does not offer.
pub struct Ed25519Material {
    key_pair: Ed25519KeyPair,
    prehash: ed25519_dalek::SigningKey,
    public_der: Vec<u8>,
}

/// An ML-DSA key pair, its verification algorithm and its public key as SubjectPublicKeyInfo.
pub struct MlDsaMaterial {
    key_pair: PqdsaKeyPair,
    verification: &'static PqdsaVerificationAlgorithm,
    public_der: Vec<u8>,
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
            KeyMaterial::Ed25519(_) => "KeyMaterial::Ed25519(..)",
            KeyMaterial::MlDsa(_) => "KeyMaterial::MlDsa(..)",
        })
    }
}

/// New key material of `spec`: its serialized secret (to wrap and store) and the loaded form.
pub fn generate(spec: &str) -> KmsResult<(Zeroizing<Vec<u8>>, KeyMaterial)> {
    let secret = new_secret(spec)?;
    let loaded = load(spec, &secret)?;
    Ok((secret, loaded))
}

/// Runs `work`, the generation of a key of `spec`, where it cannot hold up other requests: RSA
/// key generation takes from tens of milliseconds to seconds, and a connection thread serves
/// many connections, so it runs on the blocking pool. Every other spec is quick and runs in
/// place.
pub async fn generate_off_connection_thread<T: Send + 'static>(
    spec: &str,
    work: impl FnOnce() -> KmsResult<T> + Send + 'static,
) -> KmsResult<T> {
    if !matches!(family(spec), Some(SpecFamily::Rsa(_))) {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| internal("RSA key generation"))?
}

/// New key material of `spec`, serialized (to wrap and store, and [`load`] for use).
pub fn new_secret(spec: &str) -> KmsResult<Zeroizing<Vec<u8>>> {
    Ok(match family(spec) {
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
        Some(SpecFamily::Ed25519) => {
            let pair =
                Ed25519KeyPair::generate().map_err(|_| internal("Ed25519 key generation"))?;
            let doc = pair
                .to_pkcs8v1()
                .map_err(|_| internal("Ed25519 key encoding"))?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
        Some(SpecFamily::MlDsa(parameter_set)) => {
            let (signing, _) = ml_dsa(parameter_set).ok_or_else(|| internal("ML-DSA"))?;
            let pair =
                PqdsaKeyPair::generate(signing).map_err(|_| internal("ML-DSA key generation"))?;
            let doc = pair
                .to_pkcs8v1()
                .map_err(|_| internal("ML-DSA key encoding"))?;
            Zeroizing::new(doc.as_ref().to_vec())
        }
        None => return Err(KmsError::Internal(format!("unknown key spec {spec}"))),
    })
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
        Some(SpecFamily::Ed25519) => {
            let key_pair = Ed25519KeyPair::from_pkcs8(secret).map_err(|_| malformed())?;
            let public_der = AsDer::<PublicKeyX509Der>::as_der(key_pair.public_key())
                .map_err(|_| malformed())?
                .as_ref()
                .to_vec();
            let seed = key_pair
                .seed()
                .and_then(|seed| seed.as_be_bytes())
                .map_err(|_| malformed())?;
            let seed: Zeroizing<[u8; 32]> =
                Zeroizing::new(seed.as_ref().try_into().map_err(|_| malformed())?);
            KeyMaterial::Ed25519(Box::new(Ed25519Material {
                prehash: ed25519_dalek::SigningKey::from_bytes(&seed),
                key_pair,
                public_der,
            }))
        }
        Some(SpecFamily::MlDsa(parameter_set)) => {
            let (signing, verification) = ml_dsa(parameter_set).ok_or_else(malformed)?;
            let key_pair = PqdsaKeyPair::from_pkcs8(signing, secret).map_err(|_| malformed())?;
            let public_der = AsDer::<PublicKeyX509Der>::as_der(key_pair.public_key())
                .map_err(|_| malformed())?
                .as_ref()
                .to_vec();
            KeyMaterial::MlDsa(Box::new(MlDsaMaterial {
                key_pair,
                verification,
                public_der,
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
            KeyMaterial::Ed25519(ed) => Some(&ed.public_der),
            KeyMaterial::MlDsa(ml_dsa) => Some(&ml_dsa.public_der),
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

/// What Sign and Verify work on: the digest RSA and ECDSA sign, or the whole message, which
/// Ed25519 and ML-DSA hash themselves.
pub enum SigningMessage<'a> {
    Digest(Digest),
    Whole(&'a [u8]),
}

/// The message of a Sign or Verify call as its algorithm takes it: a digest computed from a RAW
/// message or given (DIGEST, which must have the algorithm's length), or the RAW message whole.
pub fn signing_message<'a>(
    algorithm: &str,
    message: &'a [u8],
    message_type: &str,
) -> KmsResult<SigningMessage<'a>> {
    if !matches!(message_type, "RAW" | "DIGEST" | "EXTERNAL_MU") {
        return Err(KmsError::constraint(
            "messageType",
            message_type,
            "Member must satisfy enum value set: [RAW, DIGEST, EXTERNAL_MU]",
        ));
    }
    match (algorithm, message_type) {
        (ED25519_SHA_512 | ML_DSA_SHAKE_256, "RAW") => Ok(SigningMessage::Whole(message)),
        // The caller's SHA-512 digest is Ed25519ph's message, which it hashes once more.
        (ED25519_PH_SHA_512, "DIGEST") if message.len() == 64 => {
            Ok(SigningMessage::Whole(message))
        }
        (ED25519_PH_SHA_512, "DIGEST") => Err(KmsError::Validation(format!(
            "Digest is invalid length for algorithm {algorithm}: expected 64 bytes, got {}.",
            message.len()
        ))),
        (ED25519_PH_SHA_512, _) => Err(KmsError::Validation(format!(
            "The {algorithm} signing algorithm requires MessageType DIGEST."
        ))),
        (ML_DSA_SHAKE_256, "EXTERNAL_MU") => Err(KmsError::UnsupportedOperation(
            "MessageType EXTERNAL_MU is not supported by this keytrail version: sign the RAW message."
                .into(),
        )),
        (ED25519_SHA_512, _) => Err(KmsError::Validation(format!(
            "The {algorithm} signing algorithm requires MessageType RAW."
        ))),
        (ML_DSA_SHAKE_256, _) => Err(KmsError::Validation(format!(
            "The {algorithm} signing algorithm takes MessageType RAW or EXTERNAL_MU."
        ))),
        (_, "EXTERNAL_MU") => Err(KmsError::Validation(format!(
            "MessageType EXTERNAL_MU is valid only with ML_DSA_SHAKE_256, not {algorithm}."
        ))),
        _ => message_digest(algorithm, message, message_type).map(SigningMessage::Digest),
    }
}

fn message_digest(algorithm: &str, message: &[u8], message_type: &str) -> KmsResult<Digest> {
    let alg = signing_digest(algorithm).ok_or_else(|| {
        KmsError::constraint(
            "signingAlgorithm",
            algorithm,
            "Member must satisfy enum value set",
        )
    })?;
    if message_type == "RAW" {
        return Ok(digest::digest(alg, message));
    }
    Digest::import_less_safe(message, alg).map_err(|_| {
        KmsError::Validation(format!(
            "Digest is invalid length for algorithm {algorithm}: expected {} bytes, got {}.",
            alg.output_len(),
            message.len()
        ))
    })
}

/// Ed25519ph's prehash PH(M) = SHA-512(M), as the signer takes it.
fn prehash(message: &[u8]) -> sha2::Sha512 {
    use sha2::Digest as _;
    sha2::Sha512::new().chain_update(message)
}

/// The digest, for the algorithms that sign one.
fn digest_of<'m>(message: &'m SigningMessage<'_>) -> KmsResult<&'m Digest> {
    match message {
        SigningMessage::Digest(digest) => Ok(digest),
        SigningMessage::Whole(_) => Err(internal("Signing")),
    }
}

/// The message, for the algorithms that sign it whole.
fn whole<'m>(message: &'m SigningMessage<'_>) -> KmsResult<&'m [u8]> {
    match message {
        SigningMessage::Whole(m) => Ok(m),
        SigningMessage::Digest(_) => Err(internal("Signing")),
    }
}

pub fn sign(
    material: &KeyMaterial,
    spec: &str,
    algorithm: &str,
    message: &SigningMessage<'_>,
) -> KmsResult<Vec<u8>> {
    if !signing_algorithms(spec, "SIGN_VERIFY")
        .iter()
        .any(|a| a == algorithm)
    {
        return Err(incompatible(algorithm, spec));
    }
    match material {
        KeyMaterial::Rsa(rsa) => {
            let encoding = rsa_encoding(algorithm).ok_or_else(|| incompatible(algorithm, spec))?;
            let mut out = vec![0u8; rsa.signing.public_modulus_len()];
            rsa.signing
                .sign_digest(encoding, digest_of(message)?, &mut out)
                .map_err(|_| internal("Signing"))?;
            Ok(out)
        }
        KeyMaterial::Ecc(ecc) => Ok(ecc
            .key_pair
            .sign_digest(digest_of(message)?)
            .map_err(|_| internal("Signing"))?
            .as_ref()
            .to_vec()),
        KeyMaterial::Ed25519(ed) if algorithm == ED25519_PH_SHA_512 => Ok(ed
            .prehash
            .sign_prehashed(prehash(whole(message)?), None)
            .map_err(|_| internal("Signing"))?
            .to_bytes()
            .to_vec()),
        KeyMaterial::Ed25519(ed) => Ok(ed.key_pair.sign(whole(message)?).as_ref().to_vec()),
        KeyMaterial::MlDsa(ml_dsa) => {
            let mut out = vec![0u8; ml_dsa.key_pair.algorithm().signature_len()];
            let len = ml_dsa
                .key_pair
                .sign(whole(message)?, &mut out)
                .map_err(|_| internal("Signing"))?;
            out.truncate(len);
            Ok(out)
        }
        _ => Err(incompatible(algorithm, spec)),
    }
}

pub fn verify(
    material: &KeyMaterial,
    spec: &str,
    algorithm: &str,
    message: &SigningMessage<'_>,
    signature_bytes: &[u8],
) -> KmsResult<bool> {
    if !signing_algorithms(spec, "SIGN_VERIFY")
        .iter()
        .any(|a| a == algorithm)
    {
        return Err(incompatible(algorithm, spec));
    }
    let ok = match material {
        KeyMaterial::Rsa(rsa) => {
            let params =
                rsa_verification(algorithm).ok_or_else(|| incompatible(algorithm, spec))?;
            UnparsedPublicKey::new(params, rsa.signing.public_key().as_ref())
                .verify_digest(digest_of(message)?, signature_bytes)
                .is_ok()
        }
        KeyMaterial::Ecc(ecc) => {
            let params = ecdsa_verification(spec).ok_or_else(|| incompatible(algorithm, spec))?;
            UnparsedPublicKey::new(params, ecc.key_pair.public_key().as_ref())
                .verify_digest(digest_of(message)?, signature_bytes)
                .is_ok()
        }
        KeyMaterial::Ed25519(ed) if algorithm == ED25519_PH_SHA_512 => {
            match ed25519_dalek::Signature::from_slice(signature_bytes) {
                Ok(parsed) => ed
                    .prehash
                    .verifying_key()
                    .verify_prehashed(prehash(whole(message)?), None, &parsed)
                    .is_ok(),
                Err(_) => false,
            }
        }
        KeyMaterial::Ed25519(ed) => {
            UnparsedPublicKey::new(&signature::ED25519, ed.key_pair.public_key().as_ref())
                .verify(whole(message)?, signature_bytes)
                .is_ok()
        }
        KeyMaterial::MlDsa(ml_dsa) => {
            UnparsedPublicKey::new(ml_dsa.verification, ml_dsa.key_pair.public_key().as_ref())
                .verify(whole(message)?, signature_bytes)
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
        Some(SpecFamily::Rsa(_) | SpecFamily::Ecc(_) | SpecFamily::Ed25519) => {
            let (secret, loaded) = generate(spec)?;
            let public = loaded
                .public_key_der()
                .ok_or_else(|| internal("Key pair generation"))?
                .to_vec();
            Ok((secret, public))
        }
        _ if matches!(spec, "SM2" | "ML_KEM_512" | "ML_KEM_768" | "ML_KEM_1024") => {
            Err(KmsError::UnsupportedOperation(format!(
                "Data key pairs of spec {spec} are not supported by this keytrail version."
            )))
        }
        _ => Err(KmsError::constraint(
            "keyPairSpec",
            spec,
            "Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, SM2, ECC_NIST_EDWARDS25519, ML_KEM_512, ML_KEM_768, ML_KEM_1024]",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ed25519 key loaded as keytrail stores it, from a known RFC 8032 secret key.
    fn ed25519_from_seed(seed_hex: &str) -> KeyMaterial {
        let seed = hex::decode(seed_hex).unwrap();
        let pair = Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
        load("ECC_NIST_EDWARDS25519", pair.to_pkcs8v1().unwrap().as_ref()).unwrap()
    }

    /// RFC 8032 §7.1 (Ed25519, TEST 1) and §7.3 (Ed25519ph, "abc"): both algorithms of an
    /// ECC_NIST_EDWARDS25519 key give the standard's signatures, and verify only them.
    #[test]
    fn ed25519_and_ed25519ph_match_rfc_8032() {
        let spec = "ECC_NIST_EDWARDS25519";
        let pure =
            ed25519_from_seed("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let empty = SigningMessage::Whole(b"");
        let signed = sign(&pure, spec, ED25519_SHA_512, &empty).unwrap();
        assert_eq!(
            hex::encode(&signed),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
        assert!(verify(&pure, spec, ED25519_SHA_512, &empty, &signed).unwrap());

        let ph =
            ed25519_from_seed("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42");
        let abc = SigningMessage::Whole(b"abc");
        let signed = sign(&ph, spec, ED25519_PH_SHA_512, &abc).unwrap();
        assert_eq!(
            hex::encode(&signed),
            "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae4131f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406"
        );
        assert!(verify(&ph, spec, ED25519_PH_SHA_512, &abc, &signed).unwrap());
        let abd = SigningMessage::Whole(b"abd");
        assert!(!verify(&ph, spec, ED25519_PH_SHA_512, &abd, &signed).unwrap());
        // The two algorithms' signatures are not interchangeable.
        assert!(!verify(&ph, spec, ED25519_SHA_512, &abc, &signed).unwrap());
        assert!(!verify(&ph, spec, ED25519_PH_SHA_512, &abc, &[0u8; 3]).unwrap());
    }

    #[test]
    fn ed25519ph_takes_a_sha_512_digest_and_pure_ed25519_the_message() {
        assert!(matches!(
            signing_message(ED25519_PH_SHA_512, &[1u8; 64], "DIGEST"),
            Ok(SigningMessage::Whole(m)) if m.len() == 64
        ));
        for (algorithm, message, message_type) in [
            (ED25519_PH_SHA_512, &[1u8; 32][..], "DIGEST"),
            (ED25519_PH_SHA_512, &[1u8; 64][..], "RAW"),
            (ED25519_SHA_512, &[1u8; 64][..], "DIGEST"),
            (ED25519_SHA_512, &[1u8; 64][..], "EXTERNAL_MU"),
        ] {
            assert!(
                matches!(
                    signing_message(algorithm, message, message_type),
                    Err(KmsError::Validation(_))
                ),
                "{algorithm} {message_type}"
            );
        }
    }
}
