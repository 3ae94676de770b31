//! The KMS operations: validation as the model constrains the input, the key-state rules of
//! §2.6, and the cryptography of §2.8.

mod aliases;
mod asymmetric_ops;
mod managed;

pub use managed::CreateAwsManagedKey;
mod checks;
mod crypto;
mod custom_key_stores;
mod grants;
mod import;
mod lifecycle;
mod metadata;
mod multi_region;
mod policies;
mod rotation;
mod tags;

use keytrail_audit::{CallContext, Resource};
use keytrail_store::AliasRow;

use crate::asymmetric;
use crate::envelope::{self, BlobHeader, BlobKind, EncryptionContext};
use crate::error::{KmsError, KmsResult};
use crate::keys::{
    KeyRecord, KeyState, MultiRegionSet, ORIGIN_EXTERNAL, ORIGIN_EXTERNAL_KEY_STORE, alias_arn,
    aws_managed_policy, default_policy, key_arn, new_key_id, validate_alias_name, validate_policy,
};
use crate::model::*;
use crate::service::{AuditNotes, Kms, KmsCall, KmsOperation, LoadedKey, epoch_seconds, now_ms};

use crate::asymmetric::SYMMETRIC_DEFAULT;

/// The encryption context limit AWS does not document; chosen as the spec suggests.
const MAX_CONTEXT_BYTES: usize = 8192;
const MAX_TAGS: usize = 50;
const MAX_ALIASES_PER_KEY: usize = 50;
const MAX_ON_DEMAND_ROTATIONS: u32 = 25;
const DAY_MS: i64 = 86_400_000;

use checks::*;
use crypto::*;
use metadata::*;
