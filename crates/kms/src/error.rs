//! KMS errors, named and shaped as AWS KMS names them (§2.7 of the behaviour spec).

/// An error of a KMS operation. `code()` is the awsJson `__type`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KmsError {
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Disabled(String),
    #[error("{0}")]
    InvalidState(String),
    #[error("{0}")]
    InvalidCiphertext(String),
    #[error("{0}")]
    IncorrectKey(String),
    #[error("{0}")]
    InvalidKeyUsage(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidGrantToken(String),
    #[error("{0}")]
    InvalidGrantId(String),
    #[error("{0}")]
    InvalidSignature(String),
    #[error("{0}")]
    InvalidMac(String),
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidAliasName(String),
    #[error("{0}")]
    InvalidArn(String),
    #[error("{0}")]
    InvalidMarker(String),
    #[error("{0}")]
    MalformedPolicyDocument(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("{0}")]
    Tag(String),
    #[error("{0}")]
    UnsupportedOperation(String),
    #[error("{0}")]
    DryRun(String),
    #[error("{0}")]
    IncorrectKeyMaterial(String),
    #[error("{0}")]
    ExpiredImportToken(String),
    #[error("{0}")]
    InvalidImportToken(String),
    /// Custom key stores (external key stores and their XKS proxies).
    #[error("{0}")]
    CustomKeyStoreNotFound(String),
    #[error("{0}")]
    CustomKeyStoreNameInUse(String),
    #[error("{0}")]
    CustomKeyStoreInvalidState(String),
    #[error("{0}")]
    CustomKeyStoreHasKeys(String),
    #[error("{0}")]
    CloudHsmClusterNotFound(String),
    #[error("{0}")]
    XksProxyUriInUse(String),
    #[error("{0}")]
    XksProxyUriEndpointInUse(String),
    #[error("{0}")]
    XksProxyUriUnreachable(String),
    #[error("{0}")]
    XksProxyIncorrectAuthenticationCredential(String),
    #[error("{0}")]
    XksProxyInvalidResponse(String),
    #[error("{0}")]
    XksProxyInvalidConfiguration(String),
    #[error("{0}")]
    XksProxyVpcEndpointServiceNotFound(String),
    #[error("{0}")]
    XksKeyNotFound(String),
    #[error("{0}")]
    XksKeyInvalidConfiguration(String),
    #[error("{0}")]
    XksKeyAlreadyInUse(String),
    #[error("{0}")]
    Internal(String),
}

impl KmsError {
    pub fn code(&self) -> &'static str {
        match self {
            KmsError::AccessDenied(_) => "AccessDeniedException",
            KmsError::NotFound(_) => "NotFoundException",
            KmsError::Disabled(_) => "DisabledException",
            KmsError::InvalidState(_) => "KMSInvalidStateException",
            KmsError::InvalidCiphertext(_) => "InvalidCiphertextException",
            KmsError::IncorrectKey(_) => "IncorrectKeyException",
            KmsError::InvalidKeyUsage(_) => "InvalidKeyUsageException",
            KmsError::AlreadyExists(_) => "AlreadyExistsException",
            KmsError::InvalidGrantToken(_) => "InvalidGrantTokenException",
            KmsError::InvalidGrantId(_) => "InvalidGrantIdException",
            KmsError::InvalidSignature(_) => "KMSInvalidSignatureException",
            KmsError::InvalidMac(_) => "KMSInvalidMacException",
            KmsError::Validation(_) => "ValidationException",
            KmsError::InvalidAliasName(_) => "InvalidAliasNameException",
            KmsError::InvalidArn(_) => "InvalidArnException",
            KmsError::InvalidMarker(_) => "InvalidMarkerException",
            KmsError::MalformedPolicyDocument(_) => "MalformedPolicyDocumentException",
            KmsError::LimitExceeded(_) => "LimitExceededException",
            KmsError::Tag(_) => "TagException",
            KmsError::UnsupportedOperation(_) => "UnsupportedOperationException",
            KmsError::DryRun(_) => "DryRunOperationException",
            KmsError::IncorrectKeyMaterial(_) => "IncorrectKeyMaterialException",
            KmsError::ExpiredImportToken(_) => "ExpiredImportTokenException",
            KmsError::InvalidImportToken(_) => "InvalidImportTokenException",
            KmsError::CustomKeyStoreNotFound(_) => "CustomKeyStoreNotFoundException",
            KmsError::CustomKeyStoreNameInUse(_) => "CustomKeyStoreNameInUseException",
            KmsError::CustomKeyStoreInvalidState(_) => "CustomKeyStoreInvalidStateException",
            KmsError::CustomKeyStoreHasKeys(_) => "CustomKeyStoreHasCMKsException",
            KmsError::CloudHsmClusterNotFound(_) => "CloudHsmClusterNotFoundException",
            KmsError::XksProxyUriInUse(_) => "XksProxyUriInUseException",
            KmsError::XksProxyUriEndpointInUse(_) => "XksProxyUriEndpointInUseException",
            KmsError::XksProxyUriUnreachable(_) => "XksProxyUriUnreachableException",
            KmsError::XksProxyIncorrectAuthenticationCredential(_) => {
                "XksProxyIncorrectAuthenticationCredentialException"
            }
            KmsError::XksProxyInvalidResponse(_) => "XksProxyInvalidResponseException",
            KmsError::XksProxyInvalidConfiguration(_) => "XksProxyInvalidConfigurationException",
            KmsError::XksProxyVpcEndpointServiceNotFound(_) => {
                "XksProxyVpcEndpointServiceNotFoundException"
            }
            KmsError::XksKeyNotFound(_) => "XksKeyNotFoundException",
            KmsError::XksKeyInvalidConfiguration(_) => "XksKeyInvalidConfigurationException",
            KmsError::XksKeyAlreadyInUse(_) => "XksKeyAlreadyInUseException",
            KmsError::Internal(_) => "KMSInternalException",
        }
    }

    /// HTTP status: client errors 400, KMS's own failures 500.
    pub fn status(&self) -> u16 {
        match self {
            KmsError::Internal(_) => 500,
            _ => 400,
        }
    }

    pub fn message(&self) -> String {
        self.to_string()
    }

    /// AWS's wording for one failed constraint of the input.
    pub fn constraint(field: &str, value: &str, constraint: &str) -> Self {
        KmsError::Validation(format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ))
    }
}

impl From<keytrail_store::StoreError> for KmsError {
    fn from(e: keytrail_store::StoreError) -> Self {
        tracing::error!(error = %e, "KMS store access failed");
        KmsError::Internal("The request failed because of an internal error.".into())
    }
}

pub type KmsResult<T> = Result<T, KmsError>;
