//! The awsJson adapter of KMS: operation name → typed request → `Kms::execute` → JSON.

use http::StatusCode;
use keytrail_audit::CallContext;
use keytrail_kms::model::*;
use keytrail_kms::{Kms, KmsError, KmsOperation};
use serde::de::DeserializeOwned;

use crate::errors::ApiError;

/// How a call ended, and whether KMS journaled it.
pub enum Dispatched {
    /// KMS ran the operation and journaled it.
    Ran(Result<Vec<u8>, ApiError>),
    /// The input could not be parsed; nothing ran, the caller journals the failure.
    Rejected(ApiError),
}

pub fn api_error(e: &KmsError) -> ApiError {
    ApiError::new(
        e.code(),
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
        e.message(),
    )
}

async fn run<O>(kms: &Kms, ctx: &CallContext, body: &[u8]) -> Dispatched
where
    O: KmsOperation + DeserializeOwned,
{
    let request: O = if body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice(b"{}") {
            Ok(r) => r,
            Err(e) => return Dispatched::Rejected(serialization(e)),
        }
    } else {
        match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) => return Dispatched::Rejected(serialization(e)),
        }
    };
    Dispatched::Ran(match kms.execute(ctx, &request).await {
        Ok(output) => {
            // A data key answer (two base64 blobs and an ARN) is ~400 bytes: one allocation.
            let mut body = Vec::with_capacity(512);
            keytrail_json::to_writer(&mut body, &output)
                .map(|()| body)
                .map_err(|e| {
                    tracing::error!(error = %e, "KMS response could not be serialized");
                    ApiError::internal()
                })
        }
        Err(e) => Err(api_error(&e)),
    })
}

fn serialization(e: serde_json::Error) -> ApiError {
    ApiError::new(
        "SerializationException",
        StatusCode::BAD_REQUEST,
        format!("The request body does not match the operation's input: {e}"),
    )
}

/// `None` when KMS has no such operation.
pub async fn dispatch(
    kms: &Kms,
    ctx: &CallContext,
    operation: &str,
    body: &[u8],
) -> Option<Dispatched> {
    macro_rules! operations {
        ($($name:literal => $ty:ty),* $(,)?) => {
            match operation {
                $($name => Some(run::<$ty>(kms, ctx, body).await),)*
                _ => None,
            }
        };
    }
    operations! {
        "CreateKey" => CreateKeyRequest,
        "DescribeKey" => DescribeKeyRequest,
        "GetKeyLastUsage" => GetKeyLastUsageRequest,
        "DeriveSharedSecret" => DeriveSharedSecretRequest,
        "Encapsulate" => EncapsulateRequest,
        "Decapsulate" => DecapsulateRequest,
        "GetParametersForImport" => GetParametersForImportRequest,
        "ImportKeyMaterial" => ImportKeyMaterialRequest,
        "DeleteImportedKeyMaterial" => DeleteImportedKeyMaterialRequest,
        "ListKeys" => ListKeysRequest,
        "UpdateKeyDescription" => UpdateKeyDescriptionRequest,
        "EnableKey" => EnableKeyRequest,
        "DisableKey" => DisableKeyRequest,
        "ScheduleKeyDeletion" => ScheduleKeyDeletionRequest,
        "CancelKeyDeletion" => CancelKeyDeletionRequest,
        "CreateAlias" => CreateAliasRequest,
        "UpdateAlias" => UpdateAliasRequest,
        "DeleteAlias" => DeleteAliasRequest,
        "ListAliases" => ListAliasesRequest,
        "Encrypt" => EncryptRequest,
        "Decrypt" => DecryptRequest,
        "ReEncrypt" => ReEncryptRequest,
        "GenerateDataKey" => GenerateDataKeyRequest,
        "GenerateDataKeyWithoutPlaintext" => GenerateDataKeyWithoutPlaintextRequest,
        "GenerateRandom" => GenerateRandomRequest,
        "EnableKeyRotation" => EnableKeyRotationRequest,
        "DisableKeyRotation" => DisableKeyRotationRequest,
        "GetKeyRotationStatus" => GetKeyRotationStatusRequest,
        "RotateKeyOnDemand" => RotateKeyOnDemandRequest,
        "ListKeyRotations" => ListKeyRotationsRequest,
        "TagResource" => TagResourceRequest,
        "UntagResource" => UntagResourceRequest,
        "ListResourceTags" => ListResourceTagsRequest,
        "GetKeyPolicy" => GetKeyPolicyRequest,
        "PutKeyPolicy" => PutKeyPolicyRequest,
        "ListKeyPolicies" => ListKeyPoliciesRequest,
        "GetPublicKey" => GetPublicKeyRequest,
        "Sign" => SignRequest,
        "Verify" => VerifyRequest,
        "GenerateMac" => GenerateMacRequest,
        "VerifyMac" => VerifyMacRequest,
        "GenerateDataKeyPair" => GenerateDataKeyPairRequest,
        "GenerateDataKeyPairWithoutPlaintext" => GenerateDataKeyPairWithoutPlaintextRequest,
        "CreateGrant" => CreateGrantRequest,
        "ListGrants" => ListGrantsRequest,
        "ListRetirableGrants" => ListRetirableGrantsRequest,
        "RetireGrant" => RetireGrantRequest,
        "RevokeGrant" => RevokeGrantRequest,
        "ReplicateKey" => ReplicateKeyRequest,
        "UpdatePrimaryRegion" => UpdatePrimaryRegionRequest,
        "CreateCustomKeyStore" => CreateCustomKeyStoreRequest,
        "DescribeCustomKeyStores" => DescribeCustomKeyStoresRequest,
        "UpdateCustomKeyStore" => UpdateCustomKeyStoreRequest,
        "DeleteCustomKeyStore" => DeleteCustomKeyStoreRequest,
        "ConnectCustomKeyStore" => ConnectCustomKeyStoreRequest,
        "DisconnectCustomKeyStore" => DisconnectCustomKeyStoreRequest,
    }
}
