//! CloudTrail's errors: the exception names of the model, all HTTP 400 but the internal one.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CloudTrailError {
    pub code: &'static str,
    pub message: String,
}

impl CloudTrailError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn status(&self) -> u16 {
        if self.code == "InternalFailure" {
            500
        } else {
            400
        }
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "CloudTrail internal error");
        Self::new(
            "InternalFailure",
            "The request processing has failed because of an unknown error.",
        )
    }

    pub fn not_found(name: &str) -> Self {
        Self::new(
            "TrailNotFoundException",
            format!("Unknown trail: {name} for the user"),
        )
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new("InvalidParameterException", message)
    }
}

impl From<keytrail_store::StoreError> for CloudTrailError {
    fn from(e: keytrail_store::StoreError) -> Self {
        Self::internal(e)
    }
}

pub type CloudTrailResult<T> = Result<T, CloudTrailError>;
