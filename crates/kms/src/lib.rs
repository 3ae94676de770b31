//! AWS KMS for keytrail: symmetric keys, data keys and encryption context, with real
//! cryptography (AES-256-GCM from aws-lc-rs) and every backing key wrapped under the root key
//! at rest.
//!
//! Each operation is a request type implementing [`KmsOperation`]; [`Kms::execute`] runs it and
//! journals its CloudTrail event before returning, for calls from users and from other services
//! alike. Unwrapped backing keys are cached so the hot path (GenerateDataKey, Decrypt) never
//! reads the store; every mutation goes through the cache.

pub mod asymmetric;
mod audit;
pub mod envelope;
mod error;
mod grants;
mod key_stores;
pub mod keys;
pub mod model;
pub(crate) mod ops;
mod service;
pub mod xks;

pub use error::{KmsError, KmsResult};
pub use ops::CreateAwsManagedKey;
pub use service::{AuditNotes, EVENT_SOURCE, Kms, KmsOperation};

#[cfg(test)]
mod tests;
