//! Encryption (symmetric, and RSA-OAEP through the same operations): Encrypt, Decrypt,
//! ReEncrypt, GenerateDataKey, GenerateDataKeyWithoutPlaintext, GenerateRandom.

use super::*;

pub(super) fn header_for(key: &LoadedKey) -> KmsResult<BlobHeader<'_>> {
    let (key_id, multi_region) = crate::keys::key_id_bytes(&key.record.key_id)
        .ok_or_else(|| KmsError::Internal("A stored key id is malformed.".into()))?;
    let material = key.current()?;
    let kind = if key.record.in_external_key_store() {
        BlobKind::ExternalKeyStore
    } else if multi_region {
        BlobKind::MultiRegion
    } else {
        BlobKind::SingleRegion
    };
    Ok(BlobHeader {
        region: &key.record.region,
        account_id: &key.record.account_id,
        key_id,
        kind,
        material_id: material.id,
    })
}

/// Encrypts under the key's current backing key and, for a key in an external key store, once
/// more by its external key. Returns the blob and the backing key's id.
pub(super) async fn seal(
    kms: &Kms,
    call: &KmsCall<'_>,
    key: &LoadedKey,
    ctx: &EncryptionContext,
    plaintext: &[u8],
) -> KmsResult<(Vec<u8>, String)> {
    let header = header_for(key)?;
    let material = key.current()?;
    let failed = |_| KmsError::Internal("Encryption failed.".into());
    let blob = if key.record.in_external_key_store() {
        let (header_bytes, sealed) =
            envelope::seal_parts(material.key.aes()?, &header, ctx, plaintext).map_err(failed)?;
        kms.seal_through_proxy(call, key, &header_bytes, &sealed, ctx)
            .await?
    } else {
        envelope::seal(material.key.aes()?, &header, ctx, plaintext).map_err(failed)?
    };
    Ok((blob, material.id_hex.clone()))
}

/// The `kms:EncryptionContext:<key>` and `kms:EncryptionContextKeys` condition keys of a
/// request's encryption context.
pub(crate) fn context_condition_keys(
    context: &Option<EncryptionContextMap>,
) -> Vec<(String, Vec<String>)> {
    let Some(context) = context else {
        return Vec::new();
    };
    let mut keys: Vec<(String, Vec<String>)> = context
        .iter()
        .map(|(k, v)| (format!("kms:EncryptionContext:{k}"), vec![v.clone()]))
        .collect();
    keys.push((
        "kms:EncryptionContextKeys".into(),
        context.keys().cloned().collect(),
    ));
    keys
}

pub(super) fn invalid_ciphertext() -> KmsError {
    KmsError::InvalidCiphertext(String::new())
}

/// Opens a ciphertext blob, authorized as `permission`: the key it names (checked against `expected_key_id` when given),
/// then the backing key, then AES-GCM with the context. Returns the key and the plaintext.
pub(super) async fn open(
    kms: &Kms,
    call: &KmsCall<'_>,
    permission: &str,
    blob: &[u8],
    expected_key_id: Option<&str>,
    context: &EncryptionContext,
    notes: &mut AuditNotes,
) -> KmsResult<(
    std::sync::Arc<LoadedKey>,
    zeroize::Zeroizing<Vec<u8>>,
    String,
)> {
    let parsed = envelope::parse(blob).map_err(|_| invalid_ciphertext())?;
    let header = &parsed.header;
    // A multi-Region key's ciphertext opens in every Region of its set: the related key here
    // has the same id and key material.
    if header.region != call.region && header.kind != BlobKind::MultiRegion {
        return Err(invalid_ciphertext());
    }
    // By ARN: a ciphertext of another account's key opens when that key's policy lets the
    // caller in.
    let blob_key = crate::keys::key_arn(&call.region, header.account_id, &header.key_id_string());
    let key = kms
        .resolve_for(call, &blob_key, false, permission)
        .await
        .map_err(|e| match e {
            KmsError::NotFound(_) => invalid_ciphertext(),
            other => other,
        })?;
    note_key(notes, &key);
    if let Some(expected) = expected_key_id {
        let named = kms.resolve_for(call, expected, true, permission).await?;
        if named.record.key_id != key.record.key_id {
            return Err(KmsError::IncorrectKey(
                "The key ID in the request does not identify a CMK that can perform this operation."
                    .into(),
            ));
        }
    }
    Kms::usable_for_crypto(&key)?;
    if parsed.proxy.is_some() != key.record.in_external_key_store() {
        return Err(invalid_ciphertext());
    }
    let material = key
        .material(&header.material_id)
        .ok_or_else(invalid_ciphertext)?;
    let plaintext = match &parsed.proxy {
        Some(proxy) => {
            let sealed = kms
                .open_through_proxy(call, &key, &parsed, proxy, context)
                .await?;
            envelope::open_sealed(material.key.aes()?, &parsed, &sealed, context)
        }
        None => envelope::open(material.key.aes()?, &parsed, context),
    }
    .map_err(|_| invalid_ciphertext())?;
    let material_id = material.id_hex.clone();
    Ok((key, plaintext, material_id))
}

pub(super) fn data_key_length(
    number_of_bytes: Option<i64>,
    key_spec: &Option<String>,
) -> KmsResult<usize> {
    match (number_of_bytes, key_spec.as_deref()) {
        (Some(_), Some(_)) | (None, None) => Err(KmsError::Validation(
            "Please specify either number of bytes or key spec.".into(),
        )),
        (Some(n), None) => {
            range("numberOfBytes", n, 1, 1024)?;
            Ok(usize::try_from(n).unwrap_or(0))
        }
        (None, Some("AES_256")) => Ok(32),
        (None, Some("AES_128")) => Ok(16),
        (None, Some(other)) => Err(KmsError::constraint(
            "keySpec",
            other,
            "Member must satisfy enum value set: [AES_256, AES_128]",
        )),
    }
}

#[async_trait::async_trait]
impl KmsOperation for EncryptRequest {
    const NAME: &'static str = "Encrypt";
    const READ_ONLY: bool = true;
    type Output = EncryptResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        context_condition_keys(&self.encryption_context)
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let key_id = key_id_member(&self.key_id, "keyId")?;
        let plaintext = bytes_member(&self.plaintext, "plaintext", 4096, "[SENSITIVE]")?;
        let enc_ctx = context(&self.encryption_context)?;
        grant_tokens(kms, &self.grant_tokens)?;
        let key = kms.resolve(ctx, key_id, true).await?;
        note_key(notes, &key);
        Kms::usable_for_crypto(&key)?;
        if key.record.key_spec != SYMMETRIC_DEFAULT {
            require_usage(&key, "ENCRYPT_DECRYPT", Self::NAME)?;
            let (algorithm, oaep) = rsa_algorithm(&self.encryption_algorithm, &key)?;
            no_context_for_asymmetric(&enc_ctx)?;
            let material = key.current()?;
            let max = material.key.oaep_max_plaintext(oaep);
            if plaintext.len() > max {
                return Err(KmsError::Validation(format!(
                    "Plaintext is {} bytes; {} with {} takes at most {max}.",
                    plaintext.len(),
                    key.record.key_spec,
                    algorithm
                )));
            }
            dry_run(self.dry_run)?;
            let blob = material.key.rsa_encrypt(oaep, plaintext)?;
            return Ok(EncryptResponse {
                ciphertext_blob: Some(Blob(blob)),
                key_id: Some(key.arn.clone()),
                encryption_algorithm: Some(algorithm),
            });
        }
        let algorithm =
            symmetric_algorithm("encryptionAlgorithm", &self.encryption_algorithm, &key)?;
        dry_run(self.dry_run)?;
        let (blob, material_id) = seal(kms, ctx, &key, &enc_ctx, plaintext).await?;
        notes.key_material_id = Some(material_id);
        Ok(EncryptResponse {
            ciphertext_blob: Some(Blob(blob)),
            key_id: Some(key.arn.clone()),
            encryption_algorithm: Some(algorithm),
        })
    }
}

/// The RSA-OAEP algorithm a request names; asymmetric keys have no default (§2.4).
pub(super) fn rsa_algorithm(
    value: &Option<String>,
    key: &LoadedKey,
) -> KmsResult<(String, &'static aws_lc_rs::rsa::OaepAlgorithm)> {
    let name = value.as_deref().unwrap_or(SYMMETRIC_DEFAULT);
    match asymmetric::oaep(name) {
        Some(alg) => Ok((name.to_string(), alg)),
        None => Err(KmsError::InvalidKeyUsage(format!(
            "Algorithm {name} is incompatible with key spec {}.",
            key.record.key_spec
        ))),
    }
}

pub(super) fn no_context_for_asymmetric(context: &EncryptionContext) -> KmsResult<()> {
    if context.is_empty() {
        Ok(())
    } else {
        Err(KmsError::Validation(
            "EncryptionContext is only supported for symmetric encryption KMS keys.".into(),
        ))
    }
}

pub(super) struct AsymmetricInput<'a> {
    blob: &'a [u8],
    key_id: Option<&'a str>,
    algorithm: &'a Option<String>,
    context: &'a EncryptionContext,
    operation: &'static str,
    /// `kms:Decrypt`, or `kms:ReEncryptFrom` for the source of a ReEncrypt.
    permission: &'static str,
}

/// Decrypts with the key the request names when it is an RSA key: RSA ciphertexts are raw
/// OAEP output and carry no key id, so AWS requires `KeyId` for them. `None` for symmetric.
pub(super) async fn open_asymmetric(
    kms: &Kms,
    call: &KmsCall<'_>,
    input: AsymmetricInput<'_>,
    notes: &mut AuditNotes,
) -> KmsResult<
    Option<(
        std::sync::Arc<LoadedKey>,
        zeroize::Zeroizing<Vec<u8>>,
        String,
    )>,
> {
    let Some(key_id) = input.key_id else {
        return Ok(None);
    };
    let key = kms
        .resolve_for(call, key_id, true, input.permission)
        .await?;
    if key.record.key_spec == SYMMETRIC_DEFAULT {
        return Ok(None);
    }
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_usage(&key, "ENCRYPT_DECRYPT", input.operation)?;
    let (name, oaep) = rsa_algorithm(input.algorithm, &key)?;
    no_context_for_asymmetric(input.context)?;
    let plaintext = key
        .current()?
        .key
        .rsa_decrypt(oaep, input.blob)
        .ok_or_else(invalid_ciphertext)?;
    Ok(Some((key, plaintext, name)))
}

#[async_trait::async_trait]
impl KmsOperation for DecryptRequest {
    const NAME: &'static str = "Decrypt";
    const READ_ONLY: bool = true;
    type Output = DecryptResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        context_condition_keys(&self.encryption_context)
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let blob = ciphertext_member(&self.ciphertext_blob, "ciphertextBlob")?;
        let enc_ctx = context(&self.encryption_context)?;
        grant_tokens(kms, &self.grant_tokens)?;
        if let Some(k) = &self.key_id {
            length("keyId", k, 1, 2048)?;
        }
        if let Some((key, plaintext, algorithm)) = open_asymmetric(
            kms,
            ctx,
            AsymmetricInput {
                blob,
                key_id: self.key_id.as_deref(),
                algorithm: &self.encryption_algorithm,
                context: &enc_ctx,
                operation: Self::NAME,
                permission: "kms:Decrypt",
            },
            notes,
        )
        .await?
        {
            dry_run(self.dry_run)?;
            return Ok(DecryptResponse {
                key_id: Some(key.arn.clone()),
                plaintext: Some(SecretBlob(plaintext)),
                encryption_algorithm: Some(algorithm),
                key_material_id: None,
            });
        }
        let (key, plaintext, material_id) = open(
            kms,
            ctx,
            "kms:Decrypt",
            blob,
            self.key_id.as_deref(),
            &enc_ctx,
            notes,
        )
        .await?;
        let algorithm =
            symmetric_algorithm("encryptionAlgorithm", &self.encryption_algorithm, &key)?;
        dry_run(self.dry_run)?;
        notes.key_material_id = Some(material_id.clone());
        Ok(DecryptResponse {
            key_id: Some(key.arn.clone()),
            plaintext: Some(SecretBlob(plaintext)),
            encryption_algorithm: Some(algorithm),
            key_material_id: Some(material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for ReEncryptRequest {
    const NAME: &'static str = "ReEncrypt";
    const READ_ONLY: bool = true;
    type Output = ReEncryptResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        context_condition_keys(&self.source_encryption_context)
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let blob = ciphertext_member(&self.ciphertext_blob, "ciphertextBlob")?;
        let destination = key_id_member(&self.destination_key_id, "destinationKeyId")?;
        let source_ctx = context(&self.source_encryption_context)?;
        let destination_ctx = context(&self.destination_encryption_context)?;
        grant_tokens(kms, &self.grant_tokens)?;
        let asymmetric_source = open_asymmetric(
            kms,
            ctx,
            AsymmetricInput {
                blob,
                key_id: self.source_key_id.as_deref(),
                algorithm: &self.source_encryption_algorithm,
                context: &source_ctx,
                operation: Self::NAME,
                permission: "kms:ReEncryptFrom",
            },
            notes,
        )
        .await?;
        let (source, plaintext, source_alg, source_material) = match asymmetric_source {
            Some((key, plaintext, alg)) => (key, plaintext, alg, None),
            None => {
                let (key, plaintext, material) = open(
                    kms,
                    ctx,
                    "kms:ReEncryptFrom",
                    blob,
                    self.source_key_id.as_deref(),
                    &source_ctx,
                    notes,
                )
                .await?;
                let alg = symmetric_algorithm(
                    "sourceEncryptionAlgorithm",
                    &self.source_encryption_algorithm,
                    &key,
                )?;
                (key, plaintext, alg, Some(material))
            }
        };
        let dest = kms
            .resolve_for(ctx, destination, true, "kms:ReEncryptTo")
            .await?;
        notes.extra_resources.push(Resource {
            account_id: Some(ctx.principal.account_id.clone()),
            resource_type: "AWS::KMS::Key".into(),
            arn: dest.arn.clone(),
        });
        Kms::usable_for_crypto(&dest)?;
        let (new_blob, dest_alg, dest_material) = if dest.record.key_spec == SYMMETRIC_DEFAULT {
            let dest_alg = symmetric_algorithm(
                "destinationEncryptionAlgorithm",
                &self.destination_encryption_algorithm,
                &dest,
            )?;
            dry_run(self.dry_run)?;
            let (new_blob, material) = seal(kms, ctx, &dest, &destination_ctx, &plaintext).await?;
            (new_blob, dest_alg, Some(material))
        } else {
            require_usage(&dest, "ENCRYPT_DECRYPT", Self::NAME)?;
            let (dest_alg, oaep) = rsa_algorithm(&self.destination_encryption_algorithm, &dest)?;
            no_context_for_asymmetric(&destination_ctx)?;
            let material = dest.current()?;
            if plaintext.len() > material.key.oaep_max_plaintext(oaep) {
                return Err(KmsError::Validation(format!(
                    "The plaintext is too long for {} with {dest_alg}.",
                    dest.record.key_spec
                )));
            }
            dry_run(self.dry_run)?;
            (material.key.rsa_encrypt(oaep, &plaintext)?, dest_alg, None)
        };
        notes.key_material_id = source_material.clone();
        Ok(ReEncryptResponse {
            ciphertext_blob: Some(Blob(new_blob)),
            source_key_id: Some(source.arn.clone()),
            key_id: Some(dest.arn.clone()),
            source_encryption_algorithm: Some(source_alg),
            destination_encryption_algorithm: Some(dest_alg),
            source_key_material_id: source_material,
            destination_key_material_id: dest_material,
        })
    }
}

/// The members GenerateDataKey and GenerateDataKeyWithoutPlaintext share.
pub(super) struct DataKeyInput<'a> {
    operation: &'static str,
    key_id: &'a Option<String>,
    encryption_context: &'a Option<EncryptionContextMap>,
    number_of_bytes: Option<i64>,
    key_spec: &'a Option<String>,
    grant_tokens: &'a Option<Vec<String>>,
    dry_run: Option<bool>,
}

pub(super) struct DataKey {
    key: std::sync::Arc<LoadedKey>,
    plaintext: zeroize::Zeroizing<Vec<u8>>,
    blob: Vec<u8>,
    material_id: String,
}

pub(super) async fn generate_data_key(
    kms: &Kms,
    ctx: &KmsCall<'_>,
    notes: &mut AuditNotes,
    input: DataKeyInput<'_>,
) -> KmsResult<DataKey> {
    let key_id = key_id_member(input.key_id, "keyId")?;
    let len = data_key_length(input.number_of_bytes, input.key_spec)?;
    let enc_ctx = context(input.encryption_context)?;
    grant_tokens(kms, input.grant_tokens)?;
    let key = kms.resolve(ctx, key_id, true).await?;
    note_key(notes, &key);
    Kms::usable_for_crypto(&key)?;
    require_symmetric(&key, input.operation)?;
    dry_run(input.dry_run)?;
    let plaintext = envelope::random(len)
        .map_err(|_| KmsError::Internal("Random generator failure.".into()))?;
    let (blob, material_id) = seal(kms, ctx, &key, &enc_ctx, &plaintext).await?;
    notes.key_material_id = Some(material_id.clone());
    Ok(DataKey {
        key,
        plaintext,
        blob,
        material_id,
    })
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyRequest {
    const NAME: &'static str = "GenerateDataKey";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        context_condition_keys(&self.encryption_context)
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let data_key = generate_data_key(
            kms,
            ctx,
            notes,
            DataKeyInput {
                operation: Self::NAME,
                key_id: &self.key_id,
                encryption_context: &self.encryption_context,
                number_of_bytes: self.number_of_bytes,
                key_spec: &self.key_spec,
                grant_tokens: &self.grant_tokens,
                dry_run: self.dry_run,
            },
        )
        .await?;
        Ok(GenerateDataKeyResponse {
            ciphertext_blob: Some(Blob(data_key.blob)),
            plaintext: Some(SecretBlob(data_key.plaintext)),
            key_id: Some(data_key.key.arn.clone()),
            key_material_id: Some(data_key.material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for GenerateDataKeyWithoutPlaintextRequest {
    const NAME: &'static str = "GenerateDataKeyWithoutPlaintext";
    const READ_ONLY: bool = true;
    type Output = GenerateDataKeyWithoutPlaintextResponse;

    fn condition_keys(&self) -> Vec<(String, Vec<String>)> {
        context_condition_keys(&self.encryption_context)
    }

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let data_key = generate_data_key(
            kms,
            ctx,
            notes,
            DataKeyInput {
                operation: Self::NAME,
                key_id: &self.key_id,
                encryption_context: &self.encryption_context,
                number_of_bytes: self.number_of_bytes,
                key_spec: &self.key_spec,
                grant_tokens: &self.grant_tokens,
                dry_run: self.dry_run,
            },
        )
        .await?;
        Ok(GenerateDataKeyWithoutPlaintextResponse {
            ciphertext_blob: Some(Blob(data_key.blob)),
            key_id: Some(data_key.key.arn.clone()),
            key_material_id: Some(data_key.material_id),
        })
    }
}

#[async_trait::async_trait]
impl KmsOperation for GenerateRandomRequest {
    const NAME: &'static str = "GenerateRandom";
    const READ_ONLY: bool = true;
    type Output = GenerateRandomResponse;

    async fn run(
        &self,
        kms: &Kms,
        ctx: &KmsCall<'_>,
        _notes: &mut AuditNotes,
    ) -> KmsResult<Self::Output> {
        let n = *required(&self.number_of_bytes, "numberOfBytes")?;
        range("numberOfBytes", n, 1, 1024)?;
        kms.authorize(ctx, None, ctx.action(), Vec::new()).await?;
        if let Some(id) = &self.custom_key_store_id {
            // Only CloudHSM key stores generate random bytes, and keytrail has none.
            kms.key_store(&ctx.principal.account_id, &ctx.region, id)
                .await?;
            return Err(KmsError::UnsupportedOperation(format!(
                "{id} is an external key store: GenerateRandom takes the id of an AWS CloudHSM key store only."
            )));
        }
        let bytes = envelope::random(usize::try_from(n).unwrap_or(0))
            .map_err(|_| KmsError::Internal("Random generator failure.".into()))?;
        Ok(GenerateRandomResponse {
            plaintext: Some(SecretBlob(bytes)),
        })
    }
}
