//! Operations of asymmetric and HMAC keys: GetPublicKey, Sign, Verify, DeriveSharedSecret,
//! Encapsulate, Decapsulate, GenerateMac, VerifyMac, GenerateDataKeyPair,
//! GenerateDataKeyPairWithoutPlaintext.

use super::*;

pub(super) fn message_member(message: &Option<SecretBlob>) -> KmsResult<&[u8]> {
    bytes_member(message, "message", 4096, "[SENSITIVE]")
}

#[async_trait::async_trait]
impl KmsOperation for GetPublicKeyRequest {
    const NAME: &'static str = "GetPublicKey";
    const READ_ONLY: bool = true;
    type Output = GetPublicKeyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        grant_tokens(kms, &self.grant_tokens)?;
        let key = kms.resolve(ctx, key_id, true).await?;
        note_key(notes, &key);
        Kms::usable_for_crypto(&key)?;
        let material = key.current()?;
        let Some(public) = material.key.public_key_der() else {
            return Err(KmsError::UnsupportedOperation(format!(
                "{} is a {} key, which has no public key.",
                key.arn, key.record.key_spec
            )));
        };
        let r = &key.record;
        Ok(GetPublicKeyResponse {
            key_id: Some(key.arn.clone()),
            public_key: Some(Blob(public.to_vec())),
            customer_master_key_spec: asymmetric::has_customer_master_key_spec(&r.key_spec)
                .then(|| r.key_spec.clone()),
            key_spec: Some(r.key_spec.clone()),
            key_usage: Some(r.key_usage.clone()),
            encryption_algorithms: non_empty(asymmetric::encryption_algorithms(
                &r.key_spec,
                &r.key_usage,
            )),
            signing_algorithms: non_empty(asymmetric::signing_algorithms(
                &r.key_spec,
                &r.key_usage,
            )),
            key_agreement_algorithms: non_empty(asymmetric::key_agreement_algorithms(&r.key_usage)),
            encapsulation_algorithms: non_empty(asymmetric::encapsulation_algorithms(&r.key_usage)),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for DeriveSharedSecretRequest {
    const NAME: &'static str = "DeriveSharedSecret";
    const READ_ONLY: bool = true;
    type Output = DeriveSharedSecretResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let algorithm = required(&self.key_agreement_algorithm, "keyAgreementAlgorithm")?;
        if algorithm != "ECDH" {
            return Err(KmsError::constraint(
                "keyAgreementAlgorithm",
                algorithm,
                "Member must satisfy enum value set: [ECDH]",
            ));
        }
        let peer = bytes_member(&self.public_key, "publicKey", 8192, "[BLOB]")?;
        grant_tokens(kms, &self.grant_tokens)?;
        let key = key_of_usage(kms, ctx, notes, key_id, "KEY_AGREEMENT", Self::NAME).await?;
        dry_run(self.dry_run)?;
        let secret = key
            .current()?
            .key
            .derive_shared_secret(&key.record.key_spec, peer)?;
        Ok(DeriveSharedSecretResponse {
            key_id: Some(key.arn.clone()),
            shared_secret: Some(SecretBlob(secret)),
            key_agreement_algorithm: Some(algorithm.clone()),
            key_origin: Some(key.record.origin.clone()),
        })
    }
}

/// The members Sign and Verify share.
pub(super) struct SigningInput<'a> {
    key_id: &'a Option<String>,
    algorithm: &'a Option<String>,
    message: &'a [u8],
    message_type: &'a Option<String>,
    operation: &'static str,
}

/// Checks shared by Sign and Verify; returns the key and what to sign or verify.
pub(super) async fn signing_input<'a>(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    notes: &mut AuditNotes,
    input: SigningInput<'a>,
) -> KmsResult<(
    std::sync::Arc<LoadedKey>,
    String,
    asymmetric::SigningMessage<'a>,
)> {
    let SigningInput {
        key_id,
        algorithm,
        message,
        message_type,
        operation,
    } = input;
    let key_id = key_id_member(key_id, "keyId")?;
    let algorithm = required(algorithm, "signingAlgorithm")?;
    let key = key_of_usage(kms, ctx, notes, key_id, "SIGN_VERIFY", operation).await?;
    if !asymmetric::signing_algorithms(&key.record.key_spec, &key.record.key_usage)
        .contains(algorithm)
    {
        return Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {algorithm} is incompatible with key spec {}.",
            key.record.key_spec
        )));
    }
    let message =
        asymmetric::signing_message(algorithm, message, message_type.as_deref().unwrap_or("RAW"))?;
    Ok((key, algorithm.clone(), message))
}

#[async_trait::async_trait]
impl KmsOperation for SignRequest {
    const NAME: &'static str = "Sign";
    const READ_ONLY: bool = true;
    type Output = SignResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        grant_tokens(kms, &self.grant_tokens)?;
        let (key, algorithm, to_sign) = signing_input(
            kms,
            ctx,
            notes,
            SigningInput {
                key_id: &self.key_id,
                algorithm: &self.signing_algorithm,
                message,
                message_type: &self.message_type,
                operation: Self::NAME,
            },
        )
        .await?;
        dry_run(self.dry_run)?;
        let signature = asymmetric::sign(
            &key.current()?.key,
            &key.record.key_spec,
            &algorithm,
            &to_sign,
        )?;
        Ok(SignResponse {
            key_id: Some(key.arn.clone()),
            signature: Some(Blob(signature)),
            signing_algorithm: Some(algorithm),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for VerifyRequest {
    const NAME: &'static str = "Verify";
    const READ_ONLY: bool = true;
    type Output = VerifyResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        let signature = ciphertext_member(&self.signature, "signature")?;
        grant_tokens(kms, &self.grant_tokens)?;
        let (key, algorithm, to_sign) = signing_input(
            kms,
            ctx,
            notes,
            SigningInput {
                key_id: &self.key_id,
                algorithm: &self.signing_algorithm,
                message,
                message_type: &self.message_type,
                operation: Self::NAME,
            },
        )
        .await?;
        dry_run(self.dry_run)?;
        let valid = asymmetric::verify(
            &key.current()?.key,
            &key.record.key_spec,
            &algorithm,
            &to_sign,
            signature,
        )?;
        if !valid {
            return Err(KmsError::InvalidSignature(String::new()));
        }
        Ok(VerifyResponse {
            key_id: Some(key.arn.clone()),
            signature_valid: Some(true),
            signing_algorithm: Some(algorithm),
        })
    }
}

pub(super) async fn mac_key(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    notes: &mut AuditNotes,
    key_id: &Option<String>,
    algorithm: &Option<String>,
    operation: &'static str,
) -> KmsResult<(std::sync::Arc<LoadedKey>, String)> {
    let key_id = key_id_member(key_id, "keyId")?;
    let algorithm = required(algorithm, "macAlgorithm")?;
    let key = key_of_usage(kms, ctx, notes, key_id, "GENERATE_VERIFY_MAC", operation).await?;
    if !asymmetric::mac_algorithms(&key.record.key_spec).contains(algorithm) {
        return Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {algorithm} is incompatible with key spec {}.",
            key.record.key_spec
        )));
    }
    Ok((key, algorithm.clone()))
}

#[async_trait::async_trait]
impl KmsOperation for GenerateMacRequest {
    const NAME: &'static str = "GenerateMac";
    const READ_ONLY: bool = true;
    type Output = GenerateMacResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        grant_tokens(kms, &self.grant_tokens)?;
        let (key, algorithm) = mac_key(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.mac_algorithm,
            Self::NAME,
        )
        .await?;
        dry_run(self.dry_run)?;
        let hmac_key = key
            .current()?
            .key
            .hmac()
            .ok_or_else(|| KmsError::Internal("HMAC key material is missing.".into()))?;
        let tag = aws_lc_rs::hmac::sign(hmac_key, message);
        Ok(GenerateMacResponse {
            mac: Some(Blob(tag.as_ref().to_vec())),
            mac_algorithm: Some(algorithm),
            key_id: Some(key.arn.clone()),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for VerifyMacRequest {
    const NAME: &'static str = "VerifyMac";
    const READ_ONLY: bool = true;
    type Output = VerifyMacResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let message = message_member(&self.message)?;
        let mac = required(&self.mac, "mac")?;
        grant_tokens(kms, &self.grant_tokens)?;
        let (key, algorithm) = mac_key(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.mac_algorithm,
            Self::NAME,
        )
        .await?;
        dry_run(self.dry_run)?;
        let hmac_key = key
            .current()?
            .key
            .hmac()
            .ok_or_else(|| KmsError::Internal("HMAC key material is missing.".into()))?;
        if aws_lc_rs::hmac::verify(hmac_key, message, &mac.0).is_err() {
            return Err(KmsError::InvalidMac(String::new()));
        }
        Ok(VerifyMacResponse {
            key_id: Some(key.arn.clone()),
            mac_valid: Some(true),
            mac_algorithm: Some(algorithm),
        })
    }
}

pub(super) struct DataKeyPair {
    key: std::sync::Arc<LoadedKey>,
    spec: String,
    private_key: zeroize::Zeroizing<Vec<u8>>,
    public_key: Vec<u8>,
    blob: Vec<u8>,
    material_id: String,
}

pub(super) async fn generate_data_key_pair(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    notes: &mut AuditNotes,
    key_id: &Option<String>,
    spec: &Option<String>,
    encryption_context: &Option<EncryptionContextMap>,
    operation: &'static str,
) -> KmsResult<DataKeyPair> {
    let key_id = key_id_member(key_id, "keyId")?;
    let spec = required(spec, "keyPairSpec")?;
    let enc_ctx = context(encryption_context)?;
    let key = kms.resolve(ctx, key_id, true).await?;
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_symmetric(&key, operation)?;
    let owned = spec.clone();
    let (private_key, public_key) =
        asymmetric::generate_off_connection_thread(spec, move || asymmetric::data_key_pair(&owned))
            .await?;
    let (blob, material_id) = seal(kms, ctx, &key, &enc_ctx, &private_key).await?;
    notes.key_material_id = Some(material_id.clone());
    Ok(DataKeyPair {
        key,
        spec: spec.clone(),
        private_key,
        public_key,
        blob,
        material_id,
    })
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyPairRequest {
    const NAME: &'static str = "GenerateDataKeyPair";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyPairResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        context_condition_keys(&self.encryption_context)
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        grant_tokens(kms, &self.grant_tokens)?;
        dry_run(self.dry_run)?;
        let pair = generate_data_key_pair(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.key_pair_spec,
            &self.encryption_context,
            Self::NAME,
        )
        .await?;
        Ok(GenerateDataKeyPairResponse {
            private_key_ciphertext_blob: Some(Blob(pair.blob)),
            private_key_plaintext: Some(SecretBlob(pair.private_key)),
            public_key: Some(Blob(pair.public_key)),
            key_id: Some(pair.key.arn.clone()),
            key_pair_spec: Some(pair.spec),
            key_material_id: Some(pair.material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyPairWithoutPlaintextRequest {
    const NAME: &'static str = "GenerateDataKeyPairWithoutPlaintext";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyPairWithoutPlaintextResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        context_condition_keys(&self.encryption_context)
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        grant_tokens(kms, &self.grant_tokens)?;
        dry_run(self.dry_run)?;
        let pair = generate_data_key_pair(
            kms,
            ctx,
            notes,
            &self.key_id,
            &self.key_pair_spec,
            &self.encryption_context,
            Self::NAME,
        )
        .await?;
        Ok(GenerateDataKeyPairWithoutPlaintextResponse {
            private_key_ciphertext_blob: Some(Blob(pair.blob)),
            public_key: Some(Blob(pair.public_key)),
            key_id: Some(pair.key.arn.clone()),
            key_pair_spec: Some(pair.spec),
            key_material_id: Some(pair.material_id),
        })
    }
}

/// The key named, once the caller may use it, it is usable for cryptography and has the
/// usage the operation needs (what Sign, Verify, the MAC operations, DeriveSharedSecret,
/// Encapsulate and Decapsulate check of their key, in AWS's order).
pub(super) async fn key_of_usage(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    notes: &mut AuditNotes,
    key_id: &str,
    usage: &'static str,
    operation: &'static str,
) -> KmsResult<std::sync::Arc<LoadedKey>> {
    let key = kms.resolve(ctx, key_id, true).await?;
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_usage(&key, usage, operation)?;
    Ok(key)
}

/// The member every ML-KEM operation names: the one algorithm there is.
fn encapsulation_algorithm(algorithm: &Option<String>) -> KmsResult<&String> {
    let algorithm = required(algorithm, "encapsulationAlgorithm")?;
    if algorithm != "ML_KEM" {
        return Err(KmsError::constraint(
            "encapsulationAlgorithm",
            algorithm,
            "Member must satisfy enum value set: [ML_KEM]",
        ));
    }
    Ok(algorithm)
}

#[async_trait::async_trait]
impl KmsOperation for EncapsulateRequest {
    const NAME: &'static str = "Encapsulate";
    const READ_ONLY: bool = true;
    type Output = EncapsulateResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let algorithm = encapsulation_algorithm(&self.encapsulation_algorithm)?;
        grant_tokens(kms, &self.grant_tokens)?;
        let key = key_of_usage(
            kms,
            ctx,
            notes,
            key_id,
            "ENCAPSULATE_DECAPSULATE",
            Self::NAME,
        )
        .await?;
        dry_run(self.dry_run)?;
        let (ciphertext, secret) = key.current()?.key.encapsulate()?;
        Ok(EncapsulateResponse {
            key_id: Some(key.arn.clone()),
            shared_secret: Some(SecretBlob(secret)),
            shared_secret_ciphertext_blob: Some(Blob(ciphertext)),
            encapsulation_algorithm: Some(algorithm.clone()),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for DecapsulateRequest {
    const NAME: &'static str = "Decapsulate";
    const READ_ONLY: bool = true;
    type Output = DecapsulateResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let ciphertext = ciphertext_member(
            &self.shared_secret_ciphertext_blob,
            "sharedSecretCiphertextBlob",
        )?;
        let algorithm = encapsulation_algorithm(&self.encapsulation_algorithm)?;
        grant_tokens(kms, &self.grant_tokens)?;
        let key = key_of_usage(
            kms,
            ctx,
            notes,
            key_id,
            "ENCAPSULATE_DECAPSULATE",
            Self::NAME,
        )
        .await?;
        dry_run(self.dry_run)?;
        let secret = key.current()?.key.decapsulate(ciphertext)?;
        Ok(DecapsulateResponse {
            key_id: Some(key.arn.clone()),
            shared_secret: Some(SecretBlob(secret)),
            encapsulation_algorithm: Some(algorithm.clone()),
        })
    }
}
