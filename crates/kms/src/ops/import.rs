//! Imported key material (origin `EXTERNAL`): GetParametersForImport, ImportKeyMaterial,
//! DeleteImportedKeyMaterial.
//!
//! The import token is the wrapping key pair's private half, its algorithm and expiry, sealed
//! under the root key and bound to the key's ARN: KMS keeps no state between the two calls, a
//! token cannot serve another key, and nothing in it is readable outside keytrail.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::hmac;
use aws_lc_rs::key_wrap::{AES_256, AesKek, KeyWrapPadded};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    PrivateDecryptingKey,
};
use aws_lc_rs::signature::KeyPair as _;
use std::sync::Arc;

use zeroize::Zeroizing;

use super::*;
use crate::service::MaterialChange;

/// Import parameters are valid for 24 hours (AWS).
const PARAMETERS_VALID_MS: i64 = 24 * 3_600_000;
/// `ValidTo` may be at most 365 days ahead (AWS).
const MAX_VALID_TO_MS: i64 = 365 * DAY_MS;
const TOKEN_FORMAT_V1: u8 = 1;
const EXPIRES: &str = "KEY_MATERIAL_EXPIRES";
const DOES_NOT_EXPIRE: &str = "KEY_MATERIAL_DOES_NOT_EXPIRE";
const NEW_KEY_MATERIAL: &str = "NEW_KEY_MATERIAL";
const EXISTING_KEY_MATERIAL: &str = "EXISTING_KEY_MATERIAL";

/// The OAEP digest of a wrapping algorithm.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Sha {
    Sha1,
    Sha256,
}

impl Sha {
    fn oaep(self) -> &'static OaepAlgorithm {
        match self {
            Sha::Sha1 => &OAEP_SHA1_MGF1SHA1,
            Sha::Sha256 => &OAEP_SHA256_MGF1SHA256,
        }
    }
}

/// How the caller wraps the key material with the public key of the import parameters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Wrapping {
    /// RSA-OAEP of the material itself.
    Oaep(Sha),
    /// RSA-OAEP of a fresh AES-256 key, followed by the material wrapped under that key with
    /// AES key wrap with padding (RFC 5649).
    RsaAesKeyWrap(Sha),
}

impl Wrapping {
    fn parse(name: &str) -> KmsResult<Self> {
        Ok(match name {
            "RSAES_OAEP_SHA_1" => Wrapping::Oaep(Sha::Sha1),
            "RSAES_OAEP_SHA_256" => Wrapping::Oaep(Sha::Sha256),
            "RSA_AES_KEY_WRAP_SHA_1" => Wrapping::RsaAesKeyWrap(Sha::Sha1),
            "RSA_AES_KEY_WRAP_SHA_256" => Wrapping::RsaAesKeyWrap(Sha::Sha256),
            "RSAES_PKCS1_V1_5" => {
                return Err(KmsError::UnsupportedOperation(
                    "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported.".into(),
                ));
            }
            "SM2PKE" => {
                return Err(KmsError::UnsupportedOperation(
                    "The SM2PKE wrapping algorithm is supported only in China Regions.".into(),
                ));
            }
            other => {
                return Err(KmsError::constraint(
                    "wrappingAlgorithm",
                    other,
                    "Member must satisfy enum value set: [RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSA_AES_KEY_WRAP_SHA_256, SM2PKE]",
                ));
            }
        })
    }

    const ALL: [Wrapping; 4] = [
        Wrapping::Oaep(Sha::Sha1),
        Wrapping::Oaep(Sha::Sha256),
        Wrapping::RsaAesKeyWrap(Sha::Sha1),
        Wrapping::RsaAesKeyWrap(Sha::Sha256),
    ];

    /// Its byte in an import token.
    fn code(self) -> u8 {
        Self::ALL
            .iter()
            .position(|w| *w == self)
            .and_then(|i| u8::try_from(i + 1).ok())
            .unwrap_or_default()
    }

    fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    /// The key material the caller wrapped; `None` when it does not unwrap with this key.
    fn unwrap(self, private: PrivateDecryptingKey, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let modulus_len = private.key_size_bytes();
        let oaep = OaepPrivateDecryptingKey::new(private).ok()?;
        let rsa_decrypt = |algorithm: &'static OaepAlgorithm, ciphertext: &[u8]| {
            let mut out = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
            let len = oaep
                .decrypt(algorithm, ciphertext, &mut out, None)
                .ok()?
                .len();
            out.truncate(len);
            Some(out)
        };
        match self {
            Wrapping::Oaep(sha) => rsa_decrypt(sha.oaep(), wrapped),
            Wrapping::RsaAesKeyWrap(sha) => {
                if wrapped.len() <= modulus_len {
                    return None;
                }
                let (wrapped_key, wrapped_material) = wrapped.split_at(modulus_len);
                let aes_key = rsa_decrypt(sha.oaep(), wrapped_key)?;
                let kek = AesKek::new(&AES_256, &aes_key).ok()?;
                let mut out = Zeroizing::new(vec![0u8; wrapped_material.len()]);
                let len = kek
                    .unwrap_with_padding(wrapped_material, &mut out)
                    .ok()?
                    .len();
                out.truncate(len);
                Some(out)
            }
        }
    }
}

fn wrapping_key_size(spec: &str) -> KmsResult<KeySize> {
    match spec {
        "RSA_2048" => Ok(KeySize::Rsa2048),
        "RSA_3072" => Ok(KeySize::Rsa3072),
        "RSA_4096" => Ok(KeySize::Rsa4096),
        "SM2" => Err(KmsError::UnsupportedOperation(
            "The SM2 wrapping key spec is supported only in China Regions.".into(),
        )),
        other => Err(KmsError::constraint(
            "wrappingKeySpec",
            other,
            "Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, SM2]",
        )),
    }
}

fn token_aad(arn: &str) -> Vec<u8> {
    format!("import-token#{arn}").into_bytes()
}

/// The token's plaintext: format, wrapping algorithm, expiry (ms, big-endian), PKCS#8 key.
fn seal_token(
    kms: &Kms,
    arn: &str,
    wrapping: Wrapping,
    valid_to_ms: i64,
    pkcs8: &[u8],
) -> KmsResult<Vec<u8>> {
    let mut plain = Zeroizing::new(Vec::with_capacity(10 + pkcs8.len()));
    plain.push(TOKEN_FORMAT_V1);
    plain.push(wrapping.code());
    plain.extend_from_slice(&valid_to_ms.to_be_bytes());
    plain.extend_from_slice(pkcs8);
    kms.root_key()
        .wrap(&plain, &token_aad(arn))
        .map_err(|_| KmsError::Internal("The import token could not be sealed.".into()))
}

fn open_token(kms: &Kms, arn: &str, token: &[u8]) -> KmsResult<(Wrapping, PrivateDecryptingKey)> {
    let invalid = || {
        KmsError::InvalidImportToken(format!(
            "The import token is not valid for {arn}: use the ImportToken that GetParametersForImport returned for this key."
        ))
    };
    let plain = kms
        .root_key()
        .unwrap(token, &token_aad(arn))
        .map_err(|_| invalid())?;
    let [TOKEN_FORMAT_V1, code, rest @ ..] = plain.as_slice() else {
        return Err(invalid());
    };
    let (valid_to, pkcs8) = rest.split_at_checked(8).ok_or_else(invalid)?;
    let valid_to_ms = i64::from_be_bytes(valid_to.try_into().map_err(|_| invalid())?);
    if valid_to_ms <= now_ms() {
        return Err(KmsError::ExpiredImportToken(
            "The import token has expired: call GetParametersForImport again.".into(),
        ));
    }
    let wrapping = Wrapping::from_code(*code).ok_or_else(invalid)?;
    let private = PrivateDecryptingKey::from_pkcs8(pkcs8).map_err(|_| invalid())?;
    Ok((wrapping, private))
}

/// AWS derives a symmetric key's material id from the key and the material; keytrail uses an
/// HMAC keyed with the material, so reimporting the same material gives the same id and the id
/// reveals nothing of it.
fn material_id(key_id: &str, material: &[u8]) -> String {
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, material),
        format!("keytrail imported key material id#{key_id}").as_bytes(),
    );
    hex::encode(tag.as_ref())
}

/// The key operations on imported material work on: origin EXTERNAL, not pending deletion.
async fn external_key(kms: &Kms, ctx: &KmsCall<'_>, key_id: &str) -> KmsResult<Arc<LoadedKey>> {
    let key = kms.resolve(ctx, key_id, false).await?;
    if !key.record.is_external() {
        return Err(KmsError::UnsupportedOperation(format!(
            "{} has origin {}: key material can only be imported into keys of origin EXTERNAL.",
            key.arn, key.record.origin
        )));
    }
    Kms::not_pending_deletion(&key)?;
    Ok(key)
}

#[async_trait::async_trait]
impl KmsOperation for GetParametersForImportRequest {
    const NAME: &'static str = "GetParametersForImport";
    const READ_ONLY: bool = true;
    type Output = GetParametersForImportResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let wrapping = Wrapping::parse(required(&self.wrapping_algorithm, "wrappingAlgorithm")?)?;
        let size = wrapping_key_size(required(&self.wrapping_key_spec, "wrappingKeySpec")?)?;
        let key = external_key(kms, ctx, key_id).await?;
        note_key(notes, &key);
        let (pkcs8, public) = tokio::task::spawn_blocking(move || {
            let pair = aws_lc_rs::rsa::KeyPair::generate(size).ok()?;
            let pkcs8 = Zeroizing::new(AsDer::<Pkcs8V1Der>::as_der(&pair).ok()?.as_ref().to_vec());
            let public = AsDer::<PublicKeyX509Der>::as_der(pair.public_key())
                .ok()?
                .as_ref()
                .to_vec();
            Some((pkcs8, public))
        })
        .await
        .ok()
        .flatten()
        .ok_or_else(|| KmsError::Internal("The wrapping key could not be generated.".into()))?;
        let valid_to_ms = now_ms() + PARAMETERS_VALID_MS;
        let token = seal_token(kms, &key.arn, wrapping, valid_to_ms, &pkcs8)?;
        Ok(GetParametersForImportResponse {
            key_id: Some(key.arn.clone()),
            import_token: Some(Blob(token)),
            public_key: Some(Blob(public)),
            parameters_valid_to: Some(epoch_seconds(valid_to_ms)),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for ImportKeyMaterialRequest {
    const NAME: &'static str = "ImportKeyMaterial";
    const READ_ONLY: bool = false;
    type Output = KeyMaterialResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let token = ciphertext_member(&self.import_token, "importToken")?;
        let wrapped = bytes_member(
            &self.encrypted_key_material,
            "encryptedKeyMaterial",
            6144,
            "[SENSITIVE]",
        )?;
        let now = now_ms();
        let model = self.expiration_model.as_deref().unwrap_or(EXPIRES);
        let valid_to_ms = match (model, self.valid_to) {
            (EXPIRES, Some(at)) => {
                let at_ms = (at * 1000.0) as i64;
                if at_ms <= now || at_ms > now + MAX_VALID_TO_MS {
                    return Err(KmsError::Validation(
                        "ValidTo must be in the future and at most 365 days from now.".into(),
                    ));
                }
                Some(at_ms)
            }
            (EXPIRES, None) => {
                return Err(KmsError::Validation(
                    "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES.".into(),
                ));
            }
            (DOES_NOT_EXPIRE, None) => None,
            (DOES_NOT_EXPIRE, Some(_)) => {
                return Err(KmsError::Validation(
                    "ValidTo is not valid when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE."
                        .into(),
                ));
            }
            (other, _) => {
                return Err(KmsError::constraint(
                    "expirationModel",
                    other,
                    "Member must satisfy enum value set: [KEY_MATERIAL_EXPIRES, KEY_MATERIAL_DOES_NOT_EXPIRE]",
                ));
            }
        };
        if let Some(description) = &self.key_material_description {
            length("keyMaterialDescription", description, 0, 256)?;
        }
        let key = external_key(kms, ctx, key_id).await?;
        note_key(notes, &key);
        if key.record.state == KeyState::Disabled {
            return Err(KmsError::InvalidState(format!(
                "{} is disabled: key material is imported into keys that are pending import or enabled.",
                key.arn
            )));
        }
        let (wrapping, private) = open_token(kms, &key.arn, token)?;
        let material = wrapping
            .unwrap(private, wrapped)
            .ok_or_else(|| KmsError::InvalidCiphertext(String::new()))?;
        if material.len() != 32 {
            return Err(KmsError::IncorrectKeyMaterial(format!(
                "Key material for a SYMMETRIC_DEFAULT key is 256 bits; this is {} bits.",
                material.len() * 8
            )));
        }
        let id = material_id(&key.record.key_id, &material);
        // A multi-Region key's replicas take the material imported into any key of the set.
        let own = &key.record.imported_material_ids;
        let set = kms.imported_material_ids_of_set(&key).await?;
        let known = set.contains(&id);
        let default_type = if set.is_empty() {
            NEW_KEY_MATERIAL
        } else {
            EXISTING_KEY_MATERIAL
        };
        match self.import_type.as_deref().unwrap_or(default_type) {
            NEW_KEY_MATERIAL if self.key_material_id.is_some() => {
                return Err(KmsError::Validation(
                    "KeyMaterialId cannot be specified with ImportType NEW_KEY_MATERIAL.".into(),
                ));
            }
            NEW_KEY_MATERIAL if own.contains(&id) => {
                return Err(KmsError::IncorrectKeyMaterial(format!(
                    "This key material was already imported into {}: reimport it with ImportType EXISTING_KEY_MATERIAL.",
                    key.arn
                )));
            }
            NEW_KEY_MATERIAL if !set.is_empty() && !known && own.is_empty() => {
                return Err(KmsError::IncorrectKeyMaterial(format!(
                    "The key material is not the key material of the other keys of multi-Region key {}.",
                    key.arn
                )));
            }
            NEW_KEY_MATERIAL if !set.is_empty() && !known => {
                return Err(KmsError::UnsupportedOperation(format!(
                    "{} already has imported key material: importing new material for on-demand rotation is not supported by this keytrail version.",
                    key.arn
                )));
            }
            NEW_KEY_MATERIAL => {}
            EXISTING_KEY_MATERIAL => {
                let named = self
                    .key_material_id
                    .as_ref()
                    .is_none_or(|given| *given == id);
                if !known || !named {
                    return Err(KmsError::IncorrectKeyMaterial(format!(
                        "The key material is not the key material previously imported into {}.",
                        key.arn
                    )));
                }
            }
            other => {
                return Err(KmsError::constraint(
                    "importType",
                    other,
                    "Member must satisfy enum value set: [NEW_KEY_MATERIAL, EXISTING_KEY_MATERIAL]",
                ));
            }
        }
        // Material the key already has is not stored again: the import only sets its expiry.
        let id_for_record = id.clone();
        kms.change_key(
            &key,
            MaterialChange::Import {
                secret: &material,
                id_hex: &id,
            },
            move |r, arn| {
                Kms::record_not_pending_deletion(r, arn)?;
                if !r.current_material_id.is_empty() && r.current_material_id != id_for_record {
                    return Err(KmsError::IncorrectKeyMaterial(format!(
                        "The key material is not the current key material of {arn}."
                    )));
                }
                if !r.imported_material_ids.contains(&id_for_record) {
                    r.imported_material_ids.push(id_for_record.clone());
                }
                if r.state == KeyState::PendingImport {
                    r.state = KeyState::Enabled;
                }
                r.expiration_model = Some(model.to_string());
                r.valid_to_ms = valid_to_ms;
                Ok(())
            },
        )
        .await?;
        notes.key_material_id = Some(id.clone());
        Ok(KeyMaterialResponse {
            key_id: Some(key.arn.clone()),
            key_material_id: Some(id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for DeleteImportedKeyMaterialRequest {
    const NAME: &'static str = "DeleteImportedKeyMaterial";
    const READ_ONLY: bool = false;
    type Output = KeyMaterialResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let key = external_key(kms, ctx, key_id).await?;
        note_key(notes, &key);
        let current = key.record.current_material_id.clone();
        if let Some(given) = &self.key_material_id
            && *given != current
        {
            return Err(KmsError::NotFound(format!(
                "Key material {given} is not the current key material of {}.",
                key.arn
            )));
        }
        kms.change_key(&key, MaterialChange::DropAll, |r, arn| {
            Kms::record_not_pending_deletion(r, arn)?;
            r.state = KeyState::PendingImport;
            Ok(())
        })
        .await?;
        Ok(KeyMaterialResponse {
            key_id: Some(key.arn.clone()),
            key_material_id: (!current.is_empty()).then_some(current),
        })
    }
}
