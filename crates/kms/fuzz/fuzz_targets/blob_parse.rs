//! Any bytes given as a ciphertext blob must be rejected or parsed, never panic; and a parsed
//! blob must not open under an unrelated key.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use keytrail_kms::envelope::{self, MaterialKey};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static MaterialKey {
    static KEY: OnceLock<MaterialKey> = OnceLock::new();
    KEY.get_or_init(|| MaterialKey::new(&[42u8; 32]).expect("a 32-byte key"))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = envelope::parse(data) {
        let _ = envelope::open(key(), &parsed, &BTreeMap::new());
    }
});
