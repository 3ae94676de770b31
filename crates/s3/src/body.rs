//! Object bodies at rest: AES-256-GCM in fixed-size segments under the object's own data key.
//!
//! Each segment of up to [`SEGMENT_LEN`] plaintext bytes is sealed separately; its nonce is its
//! index (the data key is used for one object only) and its associated data binds the object
//! version, the index and whether it is the last segment — so segments cannot be reordered,
//! swapped between objects or dropped from the end without detection, and a range read only
//! decrypts the segments it needs.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

pub const SEGMENT_LEN: usize = 64 * 1024;
pub const TAG_LEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the data key is malformed")]
    Key,
    #[error("an object segment does not authenticate")]
    Authentication,
}

/// The data key of one object version, ready for use.
pub struct BodyKey {
    key: LessSafeKey,
    version: [u8; 16],
}

impl BodyKey {
    pub fn new(data_key: &[u8], version: [u8; 16]) -> Result<Self, BodyError> {
        let key = UnboundKey::new(&AES_256_GCM, data_key).map_err(|_| BodyError::Key)?;
        Ok(Self {
            key: LessSafeKey::new(key),
            version,
        })
    }

    fn nonce(index: u64) -> Nonce {
        let mut n = [0u8; NONCE_LEN];
        n[4..].copy_from_slice(&index.to_be_bytes());
        Nonce::assume_unique_for_key(n)
    }

    fn aad(&self, index: u64, last: bool) -> [u8; 25] {
        let mut a = [0u8; 25];
        a[..16].copy_from_slice(&self.version);
        a[16..24].copy_from_slice(&index.to_be_bytes());
        a[24] = u8::from(last);
        a
    }

    /// Seals one segment in place (appending the tag).
    pub fn seal(&self, index: u64, last: bool, segment: &mut Vec<u8>) -> Result<(), BodyError> {
        self.key
            .seal_in_place_append_tag(
                Self::nonce(index),
                Aad::from(self.aad(index, last)),
                segment,
            )
            .map_err(|_| BodyError::Key)
    }

    /// Opens one sealed segment in place; returns the plaintext length.
    pub fn open<'a>(
        &self,
        index: u64,
        last: bool,
        sealed: &'a mut [u8],
    ) -> Result<&'a mut [u8], BodyError> {
        self.key
            .open_in_place(Self::nonce(index), Aad::from(self.aad(index, last)), sealed)
            .map_err(|_| BodyError::Authentication)
    }
}

/// How many segments an object of `size` bytes has (an empty object has one, empty).
pub fn segment_count(size: u64) -> u64 {
    size.div_ceil(SEGMENT_LEN as u64).max(1)
}

/// Where segment `index` starts in the stored file.
pub fn stored_offset(index: u64) -> u64 {
    index * (SEGMENT_LEN + TAG_LEN) as u64
}

/// The stored length of segment `index` of an object of `size` bytes.
pub fn stored_len(size: u64, index: u64) -> usize {
    let start = index * SEGMENT_LEN as u64;
    let plain = size.saturating_sub(start).min(SEGMENT_LEN as u64);
    usize::try_from(plain).unwrap_or(SEGMENT_LEN) + TAG_LEN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(version: u8) -> BodyKey {
        BodyKey::new(&[9u8; 32], [version; 16]).unwrap()
    }

    #[test]
    fn segments_round_trip_and_are_bound() {
        let k = key(1);
        let mut a = b"first".to_vec();
        k.seal(0, false, &mut a).unwrap();
        let mut b = b"last".to_vec();
        k.seal(1, true, &mut b).unwrap();
        assert_eq!(k.open(0, false, &mut a.clone()).unwrap(), b"first");
        assert_eq!(k.open(1, true, &mut b.clone()).unwrap(), b"last");
        // Swapped positions, a truncated object, another version: all refused.
        assert!(k.open(1, false, &mut a.clone()).is_err());
        assert!(k.open(0, true, &mut a.clone()).is_err());
        assert!(key(2).open(0, false, &mut a.clone()).is_err());
    }

    #[test]
    fn layout() {
        assert_eq!(segment_count(0), 1);
        assert_eq!(segment_count(SEGMENT_LEN as u64), 1);
        assert_eq!(segment_count(SEGMENT_LEN as u64 + 1), 2);
        assert_eq!(stored_len(10, 0), 10 + TAG_LEN);
        assert_eq!(stored_len(SEGMENT_LEN as u64 + 3, 1), 3 + TAG_LEN);
        assert_eq!(stored_offset(2), 2 * (SEGMENT_LEN + TAG_LEN) as u64);
    }
}
