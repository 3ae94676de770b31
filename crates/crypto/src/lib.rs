//! Secrets at rest: the root key that every stored secret is wrapped under, authenticated
//! wrapping (AES-256-GCM with associated data) and random identifiers.
//!
//! The root key lives in a file created on first start with mode 0600 (an HSM through PKCS#11 can
//! replace it later without changing callers). Plaintext secrets are returned in
//! [`zeroize::Zeroizing`] buffers so they are wiped when dropped.

use std::fs;
use std::io::Write;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

const ROOT_KEY_LEN: usize = 32;
/// Format byte in front of every wrapped blob so the scheme can change without ambiguity.
const WRAP_FORMAT_V1: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("root key file {path}: {source}")]
    RootKeyIo {
        path: String,
        source: std::io::Error,
    },
    #[error("root key file {path} is {len} bytes, expected {ROOT_KEY_LEN}")]
    RootKeyLength { path: String, len: usize },
    #[error("the system random generator failed")]
    Random,
    #[error("wrapped secret is malformed or was not wrapped under this root key")]
    Unwrap,
}

/// The key every secret at rest is wrapped under. Never printed: `Debug` shows nothing secret.
pub struct RootKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootKey(..)")
    }
}

impl RootKey {
    /// Loads the root key from `path`, creating it (mode 0600, parent directories included) when
    /// it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let io_err = |source| CryptoError::RootKeyIo {
            path: path.display().to_string(),
            source,
        };
        match fs::read(path) {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                Self::from_bytes(&bytes).ok_or(CryptoError::RootKeyLength {
                    path: path.display().to_string(),
                    len: bytes.len(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent).map_err(io_err)?;
                }
                let bytes = Zeroizing::new(random_bytes(ROOT_KEY_LEN)?);
                write_private_file(path, &bytes).map_err(io_err)?;
                Self::from_bytes(&bytes).ok_or(CryptoError::RootKeyLength {
                    path: path.display().to_string(),
                    len: bytes.len(),
                })
            }
            Err(e) => Err(io_err(e)),
        }
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ROOT_KEY_LEN {
            return None;
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).ok()?;
        Some(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// A root key given as text (an environment variable): 64 hex digits or the base64 of 32
    /// bytes.
    pub fn from_encoded(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            decode_hex(text)
                .or_else(|| decode_base64(text))
                .unwrap_or_default(),
        );
        Self::from_bytes(&bytes).ok_or(CryptoError::RootKeyLength {
            path: "(environment)".into(),
            len: bytes.len(),
        })
    }

    /// A root key for tests and throwaway servers.
    pub fn ephemeral() -> Result<Self, CryptoError> {
        let bytes = Zeroizing::new(random_bytes(ROOT_KEY_LEN)?);
        Self::from_bytes(&bytes).ok_or(CryptoError::Random)
    }

    /// Encrypts `plaintext` bound to `context` (e.g. the record's primary key), so a wrapped blob
    /// copied onto another record does not unwrap.
    pub fn wrap(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = random_array::<NONCE_LEN>()?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| CryptoError::Random)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(WRAP_FORMAT_V1);
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&in_out);
        Ok(out)
    }

    /// Reverses [`RootKey::wrap`]; fails when the blob, the context or the root key differ.
    pub fn unwrap(&self, blob: &[u8], context: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let Some((&WRAP_FORMAT_V1, rest)) = blob.split_first() else {
            return Err(CryptoError::Unwrap);
        };
        if rest.len() < NONCE_LEN {
            return Err(CryptoError::Unwrap);
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Unwrap)?;
        let mut in_out = Zeroizing::new(sealed.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .map_err(|_| CryptoError::Unwrap)?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let text = text.trim_end_matches('=');
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)?;
        bits = (bits << 6) | u32::try_from(v).ok()?;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push(u8::try_from((bits >> nbits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// Writes a file readable by its owner only; the mode is set at creation so the secret is never
/// briefly world-readable.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

pub fn random_bytes(len: usize) -> Result<Vec<u8>, CryptoError> {
    let mut out = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

fn random_array<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// A random string over `alphabet`, without modulo bias.
pub fn random_string(len: usize, alphabet: &[u8]) -> Result<String, CryptoError> {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random_bytes(len * 2)? {
            if usize::from(b) < limit {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
                if out.len() == len {
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_round_trips_and_binds_context() {
        let key = RootKey::ephemeral().unwrap();
        let blob = key.wrap(b"secret", b"AKIA1").unwrap();
        assert_eq!(key.unwrap(&blob, b"AKIA1").unwrap().as_slice(), b"secret");
        assert!(key.unwrap(&blob, b"AKIA2").is_err());
        let mut tampered = blob.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(key.unwrap(&tampered, b"AKIA1").is_err());
        assert!(
            RootKey::ephemeral()
                .unwrap()
                .unwrap(&blob, b"AKIA1")
                .is_err()
        );
        assert!(key.unwrap(&[], b"AKIA1").is_err());
    }

    #[test]
    fn root_key_file_is_created_private_and_reloaded() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/root.key");
        let first = RootKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let blob = first.wrap(b"x", b"").unwrap();
        let second = RootKey::load_or_create(&path).unwrap();
        assert_eq!(second.unwrap(&blob, b"").unwrap().as_slice(), b"x");
        assert_eq!(format!("{second:?}"), "RootKey(..)");
    }

    #[test]
    fn root_key_from_text() {
        let hex = "00".repeat(32);
        let a = RootKey::from_encoded(&hex).unwrap();
        let b = RootKey::from_encoded("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
        let blob = a.wrap(b"x", b"").unwrap();
        assert_eq!(b.unwrap(&blob, b"").unwrap().as_slice(), b"x");
        assert!(RootKey::from_encoded("short").is_err());
    }

    #[test]
    fn short_root_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.key");
        fs::write(&path, b"short").unwrap();
        assert!(matches!(
            RootKey::load_or_create(&path),
            Err(CryptoError::RootKeyLength { len: 5, .. })
        ));
    }

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(40, b"AB").unwrap();
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b == b'A' || b == b'B'));
    }
}
