//! The RSA-2048 key pairs that sign digest files (§6.5, §6.6): one current pair per region,
//! created on first use and replaced after the rotation period, each valid for that period plus
//! a day so consecutive keys overlap. Private halves are stored wrapped under the root key;
//! public halves stay listable forever as PKCS#1 RSAPublicKey DER with an MD5 fingerprint.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{self, KeyPair as _};
use keytrail_store::SigningKeyRow;

use crate::error::{CloudTrailError, CloudTrailResult};
use crate::model::{ListPublicKeysRequest, ListPublicKeysResponse, PublicKey};
use crate::{CallOutcome, CloudTrail, epoch_seconds, now_ms};

const OVERLAP_MS: i64 = 86_400_000;

/// A key ready to sign.
pub(crate) struct SigningKey {
    pub fingerprint: String,
    pair: KeyPair,
}

impl SigningKey {
    /// RSASSA-PKCS1-v1_5 with SHA-256 ("SHA256withRSA"), lowercase hex.
    pub fn sign(&self, message: &[u8]) -> CloudTrailResult<String> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &signature::RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                message,
                &mut signature,
            )
            .map_err(|_| CloudTrailError::internal("digest signing failed"))?;
        Ok(signature.iter().map(|b| format!("{b:02x}")).collect())
    }
}

fn wrap_context(region: &str, fingerprint: &str) -> Vec<u8> {
    format!("keytrail:cloudtrail-digest-key:{region}:{fingerprint}").into_bytes()
}

/// Lowercase hex MD5 of the PKCS#1 DER, as CloudTrail fingerprints its public keys.
pub(crate) fn fingerprint(public_der: &[u8]) -> String {
    format!("{:x}", md5::compute(public_der))
}

impl CloudTrail {
    /// The region's current signing key, created or rotated as needed.
    pub(crate) async fn signing_key(&self, region: &str) -> CloudTrailResult<SigningKey> {
        let _guard = self.signing.lock().await;
        let now = now_ms();
        let rotation =
            i64::try_from(self.config.signing_key_rotation.as_millis()).unwrap_or(i64::MAX / 2);
        let keys = self.store.list_signing_keys(region).await?;
        let current = keys
            .iter()
            .rev()
            .find(|k| k.valid_from_ms <= now && now - k.valid_from_ms < rotation);
        let row = match current {
            Some(row) => row.clone(),
            None => {
                let pair = KeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| CloudTrailError::internal("RSA key generation failed"))?;
                let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&pair)
                    .map_err(|_| CloudTrailError::internal("RSA key serialization failed"))?;
                let public_der = pair.public_key().as_ref().to_vec();
                let fingerprint = fingerprint(&public_der);
                let wrapped_private = self
                    .root_key
                    .wrap(pkcs8.as_ref(), &wrap_context(region, &fingerprint))
                    .map_err(CloudTrailError::internal)?;
                let row = SigningKeyRow {
                    region: region.to_string(),
                    fingerprint,
                    valid_from_ms: now,
                    valid_until_ms: now.saturating_add(rotation).saturating_add(OVERLAP_MS),
                    public_der,
                    wrapped_private,
                };
                self.store.put_signing_key(row.clone()).await?;
                tracing::info!(region, fingerprint = %row.fingerprint, "new digest signing key");
                row
            }
        };
        let pkcs8 = self
            .root_key
            .unwrap(
                &row.wrapped_private,
                &wrap_context(region, &row.fingerprint),
            )
            .map_err(|_| {
                CloudTrailError::internal(
                    "a digest signing key cannot be unwrapped with this root key",
                )
            })?;
        let pair = KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| CloudTrailError::internal("a stored digest signing key is unreadable"))?;
        Ok(SigningKey {
            fingerprint: row.fingerprint,
            pair,
        })
    }

    /// ListPublicKeys: every key of the caller's region valid at some time in the range, in one
    /// page (the CLI reads only the first).
    pub(crate) async fn list_public_keys(
        &self,
        ctx: &keytrail_audit::CallContext,
        input: ListPublicKeysRequest,
        _outcome: &mut CallOutcome,
    ) -> CloudTrailResult<ListPublicKeysResponse> {
        self.authorize(ctx, "cloudtrail:ListPublicKeys", "*")
            .await?;
        let now = now_ms();
        let start = input.start_time.map_or(now, |s| (s * 1000.0) as i64);
        let end = input.end_time.map_or(now, |s| (s * 1000.0) as i64);
        if start > end {
            return Err(CloudTrailError::new(
                "InvalidTimeRangeException",
                "StartTime must be before EndTime.",
            ));
        }
        // A region gets its first key when something asks for it.
        self.signing_key(&ctx.region).await?;
        let keys = self
            .store
            .list_signing_keys(&ctx.region)
            .await?
            .into_iter()
            .filter(|k| k.valid_from_ms <= end && k.valid_until_ms >= start)
            .map(|k| PublicKey {
                value: Some(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    &k.public_der,
                )),
                validity_start_time: Some(epoch_seconds(k.valid_from_ms)),
                validity_end_time: Some(epoch_seconds(k.valid_until_ms)),
                fingerprint: Some(k.fingerprint),
            })
            .collect();
        Ok(ListPublicKeysResponse {
            public_key_list: Some(keys),
            next_token: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::UnparsedPublicKey;
    use base64::Engine;

    /// The public key and fingerprint of the AWS CLI's `list-public-keys` example.
    const AWS_SAMPLE_KEY: &str = "MIIBCgKCAQEAlSS3cl92HDycr/MTj0moOhas8habjrraXw+KzlWF0axSI2tcF+3iJ9BKQAVSKxGwxwu3m0wG3J+kUl1xboEcEPHYoIYMbgfSw7KGnuDKwkLzsQWhUJ0cIbOHASox1vv/5fNXkrHhGbDCHeVXm804c83nvHUEFYThr1PfyP/8HwrCtR3FX5OANtQCP61C1nJtSSkC8JSQUOrIP4CuwJjc+4WGDk+BGH5m9iuiAKkipEHWmUl8/P7XpfpWQuk4h8g3pXZOrNXr08lbh4d39svj7UqdhvOXoBISp9t/EXYuePGEtBdrKD9Dz+VHwyUPtBQvYr9BnkF88qBnaPNhS44rzwIDAQAB";

    #[test]
    fn the_published_sample_key_has_the_published_fingerprint() {
        let der = base64::engine::general_purpose::STANDARD
            .decode(AWS_SAMPLE_KEY)
            .unwrap();
        assert_eq!(fingerprint(&der), "7f3f401420072e50a65a141430817ab3");
    }

    #[test]
    fn signatures_are_sha256_with_rsa_over_the_digest_string_verifiable_by_the_pkcs1_key() {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let public_der = pair.public_key().as_ref().to_vec();
        // PKCS#1 RSAPublicKey, as python-rsa's load_pkcs1 (the CLI's validator) reads it.
        assert!(
            base64::engine::general_purpose::STANDARD
                .encode(&public_der)
                .starts_with("MIIBCgKCAQEA")
        );
        let key = SigningKey {
            fingerprint: fingerprint(&public_der),
            pair,
        };
        let message = "2026-11-28T21:05:23Z\nlogs/AWSLogs/1/CloudTrail-Digest/x.json.gz\nabc\nnull";
        let signature = key.sign(message.as_bytes()).unwrap();
        assert_eq!(signature.len(), 512);
        assert!(
            signature
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        // PKCS#1 v1.5 is deterministic: a redone digest carries the same signature.
        assert_eq!(signature, key.sign(message.as_bytes()).unwrap());
        let bytes: Vec<u8> = (0..signature.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&signature[i..i + 2], 16).unwrap())
            .collect();
        let verifier = UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &public_der);
        verifier.verify(message.as_bytes(), &bytes).unwrap();
        assert!(verifier.verify(b"another message", &bytes).is_err());
    }
}

#[cfg(test)]
mod rotation_tests {
    use std::sync::Arc;
    use std::time::Duration;

    use keytrail_audit::{Journal, Principal};
    use keytrail_store::Store;

    use crate::model::ListPublicKeysRequest;
    use crate::{CallOutcome, CloudTrail, CloudTrailConfig};

    #[tokio::test]
    async fn keys_rotate_after_their_period_and_old_ones_stay_listed_with_overlap() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> =
            Arc::new(keytrail_store::sqlite::SqliteStore::open(&dir.path().join("k.db")).unwrap());
        let root_key = Arc::new(keytrail_crypto::RootKey::ephemeral().unwrap());
        let identities = Arc::new(keytrail_iam::Identities::new(
            Arc::clone(&store),
            Arc::clone(&root_key),
        ));
        let kms = Arc::new(keytrail_kms::Kms::new(
            Arc::clone(&store),
            Arc::clone(&root_key),
            Arc::clone(&identities),
            Journal::new(Arc::clone(&store)),
        ));
        let s3 = keytrail_s3::S3Engine::open(
            Arc::clone(&store),
            Arc::clone(&kms),
            Arc::clone(&root_key),
            Arc::clone(&identities),
            dir.path(),
        )
        .unwrap();
        let config = CloudTrailConfig {
            signing_key_rotation: Duration::from_millis(1500),
            ..Default::default()
        };
        let cloudtrail = CloudTrail::new(
            Arc::clone(&store),
            kms,
            s3,
            identities,
            root_key,
            Journal::new(Arc::clone(&store)),
            config,
        );
        let first = cloudtrail.signing_key("us-east-1").await.unwrap();
        let again = cloudtrail.signing_key("us-east-1").await.unwrap();
        assert_eq!(first.fingerprint, again.fingerprint);
        let other_region = cloudtrail.signing_key("eu-west-1").await.unwrap();
        assert_ne!(first.fingerprint, other_region.fingerprint);
        tokio::time::sleep(Duration::from_millis(1700)).await;
        let rotated = cloudtrail.signing_key("us-east-1").await.unwrap();
        assert_ne!(first.fingerprint, rotated.fingerprint);

        let ctx = keytrail_audit::CallContext {
            request_id: "r".into(),
            time: keytrail_audit::clock::now(),
            region: "us-east-1".into(),
            principal: Principal::root("000000000000", None),
            source_ip: "127.0.0.1".into(),
            user_agent: "test".into(),
            invoked_by: None,
            source_arn: None,
            source_account: None,
            tls: None,
        };
        // Whole seconds, as clients send them: the end is the next second so a key created in
        // this one is inside the range.
        let now = keytrail_audit::clock::now().unix_timestamp() as f64 + 1.0;
        let listed = cloudtrail
            .list_public_keys(
                &ctx,
                ListPublicKeysRequest {
                    start_time: Some(now - 60.0),
                    end_time: Some(now),
                    next_token: None,
                },
                &mut CallOutcome::default(),
            )
            .await
            .unwrap()
            .public_key_list
            .unwrap();
        let fingerprints: Vec<_> = listed
            .iter()
            .filter_map(|k| k.fingerprint.clone())
            .collect();
        assert_eq!(fingerprints, [first.fingerprint, rotated.fingerprint]);
        // Consecutive keys overlap: the old one is still valid when the new one starts.
        assert!(listed[0].validity_end_time.unwrap() > listed[1].validity_start_time.unwrap());
        let inverted = cloudtrail
            .list_public_keys(
                &ctx,
                ListPublicKeysRequest {
                    start_time: Some(now),
                    end_time: Some(now - 60.0),
                    next_token: None,
                },
                &mut CallOutcome::default(),
            )
            .await;
        assert_eq!(inverted.unwrap_err().code, "InvalidTimeRangeException");
    }
}
