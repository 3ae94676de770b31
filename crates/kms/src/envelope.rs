//! The cryptographic core: the canonical encoding of an encryption context and the ciphertext
//! blob format. Pure functions, property-tested and fuzzed.
//!
//! Blob layout, all integers big-endian:
//!
//! ```text
//! version u8 | region_len u8 | region | account_id (12 ASCII digits) | key_id (16)
//! | material_id (32) | nonce (12) | AES-256-GCM ciphertext | tag (16)
//! ```
//!
//! Version 1 names a single-Region key (key_id: the UUID's bytes), version 2 a multi-Region
//! key (`mrk-` and the hex of key_id), whose related keys in other Regions open it too.
//!
//! Version 3 names a key in an external key store and is encrypted twice: the part after the
//! header (`nonce | ciphertext | tag` as above, under keytrail's own backing key) is encrypted
//! again by the external key manager through its XKS proxy, and the blob carries what the proxy
//! returned:
//!
//! ```text
//! header | iv_len u8 (12 or 16) | iv | tag (16) | metadata_len u8 (≤ 20) | metadata
//! | proxy ciphertext
//! ```
//!
//! Everything before the nonce is the header. The AEAD's associated data is a domain label,
//! the header and the canonical context, so changing the key, the material, the context or any
//! byte of the blob makes decryption fail.

use std::collections::BTreeMap;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

pub const BLOB_VERSION: u8 = 1;
pub const MULTI_REGION_BLOB_VERSION: u8 = 2;
pub const EXTERNAL_KEY_STORE_BLOB_VERSION: u8 = 3;
/// The most ciphertext metadata an XKS proxy may return (XKS API v1).
pub const MAX_PROXY_METADATA_LEN: usize = 20;
const PROXY_AAD_LABEL: &[u8] = b"keytrail-kms/xks/v1";
pub const MATERIAL_ID_LEN: usize = 32;
pub const MATERIAL_LEN: usize = 32;
const TAG_LEN: usize = 16;
const AAD_LABEL: &[u8] = b"keytrail-kms/v1";

/// An encryption context: sorted by key, which makes its encoding canonical.
pub type EncryptionContext = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the ciphertext is not a keytrail ciphertext blob")]
    Malformed,
    #[error("the ciphertext does not authenticate with this key and encryption context")]
    Authentication,
    #[error("random generator failure")]
    Random,
}

/// Length-prefixed, sorted pairs: `count` then `len key, key, len value, value` for each pair.
/// The framing is what keeps `{"ab":"c"}` and `{"a":"bc"}` apart.
pub fn encode_context(context: &EncryptionContext) -> Vec<u8> {
    let size: usize = context.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(4 + size);
    out.extend_from_slice(&u32_be(context.len()));
    for (k, v) in context {
        out.extend_from_slice(&u32_be(k.len()));
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&u32_be(v.len()));
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn u32_be(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

/// What kind of key sealed a blob: it decides the blob's version and how `key_id` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    /// `key_id` is a UUID.
    SingleRegion,
    /// `key_id` is a multi-Region key's (`mrk-…`).
    MultiRegion,
    /// A UUID key in an external key store: the sealed part is encrypted again by its proxy.
    ExternalKeyStore,
}

impl BlobKind {
    fn version(self) -> u8 {
        match self {
            BlobKind::SingleRegion => BLOB_VERSION,
            BlobKind::MultiRegion => MULTI_REGION_BLOB_VERSION,
            BlobKind::ExternalKeyStore => EXTERNAL_KEY_STORE_BLOB_VERSION,
        }
    }
}

/// Which key and which of its backing keys sealed a blob; borrowed from the key when sealing and
/// from the blob when opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader<'a> {
    pub region: &'a str,
    pub account_id: &'a str,
    pub key_id: [u8; 16],
    pub kind: BlobKind,
    pub material_id: [u8; MATERIAL_ID_LEN],
}

impl BlobHeader<'_> {
    fn encode(&self) -> Result<Vec<u8>, EnvelopeError> {
        let region_len = u8::try_from(self.region.len()).map_err(|_| EnvelopeError::Malformed)?;
        if self.account_id.len() != 12 || region_len == 0 {
            return Err(EnvelopeError::Malformed);
        }
        let mut out = Vec::with_capacity(2 + self.region.len() + 12 + 16 + MATERIAL_ID_LEN);
        out.push(self.kind.version());
        out.push(region_len);
        out.extend_from_slice(self.region.as_bytes());
        out.extend_from_slice(self.account_id.as_bytes());
        out.extend_from_slice(&self.key_id);
        out.extend_from_slice(&self.material_id);
        Ok(out)
    }

    pub fn key_id_string(&self) -> String {
        crate::keys::key_id_from_bytes(&self.key_id, self.kind == BlobKind::MultiRegion)
    }

    pub fn material_id_hex(&self) -> String {
        hex::encode(self.material_id)
    }
}

/// A parsed blob: the header, and where its parts are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBlob<'a> {
    pub header: BlobHeader<'a>,
    header_bytes: &'a [u8],
    body: &'a [u8],
    /// What the XKS proxy returned, for blobs of keys in an external key store.
    pub proxy: Option<ProxySealed<'a>>,
}

/// The external key manager's encryption of a blob's sealed part, as its proxy returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySealed<'a> {
    pub iv: &'a [u8],
    pub tag: &'a [u8],
    pub metadata: &'a [u8],
    pub ciphertext: &'a [u8],
}

/// Splits a blob into its parts without decrypting. Never panics, whatever the input.
pub fn parse(blob: &[u8]) -> Result<ParsedBlob<'_>, EnvelopeError> {
    let (&version, rest) = blob.split_first().ok_or(EnvelopeError::Malformed)?;
    let kind = match version {
        BLOB_VERSION => BlobKind::SingleRegion,
        MULTI_REGION_BLOB_VERSION => BlobKind::MultiRegion,
        EXTERNAL_KEY_STORE_BLOB_VERSION => BlobKind::ExternalKeyStore,
        _ => return Err(EnvelopeError::Malformed),
    };
    let (&region_len, rest) = rest.split_first().ok_or(EnvelopeError::Malformed)?;
    let region_len = usize::from(region_len);
    let fixed = region_len + 12 + 16 + MATERIAL_ID_LEN;
    if region_len == 0 || rest.len() < fixed + NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Malformed);
    }
    let (region, rest) = rest.split_at(region_len);
    let (account, rest) = rest.split_at(12);
    let (key_id, rest) = rest.split_at(16);
    let (material_id, body) = rest.split_at(MATERIAL_ID_LEN);
    let region = std::str::from_utf8(region).map_err(|_| EnvelopeError::Malformed)?;
    if !region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || !account.iter().all(u8::is_ascii_digit)
    {
        return Err(EnvelopeError::Malformed);
    }
    let proxy = match kind {
        BlobKind::ExternalKeyStore => Some(parse_proxy_part(body)?),
        _ => None,
    };
    let header_len = 2 + fixed;
    Ok(ParsedBlob {
        header: BlobHeader {
            region,
            // ASCII digits, checked above.
            account_id: std::str::from_utf8(account).map_err(|_| EnvelopeError::Malformed)?,
            key_id: key_id.try_into().map_err(|_| EnvelopeError::Malformed)?,
            kind,
            material_id: material_id
                .try_into()
                .map_err(|_| EnvelopeError::Malformed)?,
        },
        header_bytes: &blob[..header_len],
        body,
        proxy,
    })
}

fn parse_proxy_part(body: &[u8]) -> Result<ProxySealed<'_>, EnvelopeError> {
    let (&iv_len, rest) = body.split_first().ok_or(EnvelopeError::Malformed)?;
    let iv_len = usize::from(iv_len);
    if !matches!(iv_len, 12 | 16) || rest.len() < iv_len + TAG_LEN + 1 {
        return Err(EnvelopeError::Malformed);
    }
    let (iv, rest) = rest.split_at(iv_len);
    let (tag, rest) = rest.split_at(TAG_LEN);
    let (&metadata_len, rest) = rest.split_first().ok_or(EnvelopeError::Malformed)?;
    let metadata_len = usize::from(metadata_len);
    // The proxy encrypted `nonce | ciphertext | tag`, which is never shorter than this.
    if metadata_len > MAX_PROXY_METADATA_LEN || rest.len() < metadata_len + NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Malformed);
    }
    let (metadata, ciphertext) = rest.split_at(metadata_len);
    Ok(ProxySealed {
        iv,
        tag,
        metadata,
        ciphertext,
    })
}

/// A blob of a key in an external key store, from its sealed header and what the proxy made of
/// the sealed part.
pub fn join_proxy_sealed(
    header_bytes: &[u8],
    proxy: &ProxySealed<'_>,
) -> Result<Vec<u8>, EnvelopeError> {
    let iv_len = u8::try_from(proxy.iv.len()).map_err(|_| EnvelopeError::Malformed)?;
    let metadata_len = u8::try_from(proxy.metadata.len()).map_err(|_| EnvelopeError::Malformed)?;
    if !matches!(iv_len, 12 | 16)
        || proxy.tag.len() != TAG_LEN
        || usize::from(metadata_len) > MAX_PROXY_METADATA_LEN
    {
        return Err(EnvelopeError::Malformed);
    }
    let mut out = Vec::with_capacity(
        header_bytes.len()
            + 2
            + proxy.iv.len()
            + TAG_LEN
            + proxy.metadata.len()
            + proxy.ciphertext.len(),
    );
    out.extend_from_slice(header_bytes);
    out.push(iv_len);
    out.extend_from_slice(proxy.iv);
    out.extend_from_slice(proxy.tag);
    out.push(metadata_len);
    out.extend_from_slice(proxy.metadata);
    out.extend_from_slice(proxy.ciphertext);
    Ok(out)
}

/// The additional authenticated data the external key manager binds its encryption to: a digest
/// of the blob's header and the canonical encryption context (fixed size, whatever the context).
pub fn proxy_aad(header_bytes: &[u8], context: &EncryptionContext) -> [u8; 32] {
    let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    hasher.update(PROXY_AAD_LABEL);
    hasher.update(header_bytes);
    hasher.update(&encode_context(context));
    let mut out = [0u8; 32];
    out.copy_from_slice(hasher.finish().as_ref());
    out
}

impl ParsedBlob<'_> {
    pub fn header_bytes(&self) -> &[u8] {
        self.header_bytes
    }
}

fn aad(header: &[u8], context: &EncryptionContext) -> Vec<u8> {
    let encoded = encode_context(context);
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + header.len() + encoded.len());
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(header);
    aad.extend_from_slice(&encoded);
    aad
}

/// A backing key ready for use (the AES key schedule is built once).
pub struct MaterialKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for MaterialKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaterialKey(..)")
    }
}

impl MaterialKey {
    pub fn new(material: &[u8]) -> Result<Self, EnvelopeError> {
        let key = UnboundKey::new(&AES_256_GCM, material).map_err(|_| EnvelopeError::Malformed)?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }
}

/// Fresh random bytes (backing keys, data keys, GenerateRandom).
pub fn random(len: usize) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    fill_random(&mut out)?;
    Ok(out)
}

/// How many bytes a thread draws from AWS-LC's DRBG at once (see [`fill_random`]).
const RANDOM_BLOCK: usize = 4096;

struct RandomBlock {
    bytes: Zeroizing<Vec<u8>>,
    used: usize,
}

thread_local! {
    static RANDOM: std::cell::RefCell<RandomBlock> = std::cell::RefCell::new(RandomBlock {
        bytes: Zeroizing::new(Vec::new()),
        used: 0,
    });
}

/// Fills `out` from AWS-LC's DRBG, through a per-thread block for the small draws of the hot
/// path (a data key and a nonce per request): each `RAND_bytes` call costs ~0.7 µs here whatever
/// it returns (it mixes in fresh RDRAND output every time). Handed-out bytes are wiped from the
/// block at once, and the block is wiped when its thread ends.
pub(crate) fn fill_random(out: &mut [u8]) -> Result<(), EnvelopeError> {
    use zeroize::Zeroize as _;
    if out.len() > RANDOM_BLOCK / 8 {
        return SystemRandom::new()
            .fill(out)
            .map_err(|_| EnvelopeError::Random);
    }
    RANDOM.with(|block| {
        let mut block = block.borrow_mut();
        if block.bytes.len() - block.used < out.len() {
            block.bytes.resize(RANDOM_BLOCK, 0);
            SystemRandom::new()
                .fill(&mut block.bytes)
                .map_err(|_| EnvelopeError::Random)?;
            block.used = 0;
        }
        let start = block.used;
        let drawn = &mut block.bytes[start..start + out.len()];
        out.copy_from_slice(drawn);
        drawn.zeroize();
        block.used += out.len();
        Ok(())
    })
}

/// Encrypts `plaintext` under `key`, bound to `header` and `context`.
pub fn seal(
    key: &MaterialKey,
    header: &BlobHeader<'_>,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let header_bytes = header.encode()?;
    seal_after(key, header_bytes, context, plaintext)
}

/// [`seal`] split at the end of the header: `(header, nonce | ciphertext | tag)`. For keys in an
/// external key store, whose sealed part goes on to their XKS proxy.
pub fn seal_parts(
    key: &MaterialKey,
    header: &BlobHeader<'_>,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<(Vec<u8>, Vec<u8>), EnvelopeError> {
    let header_bytes = header.encode()?;
    let header_len = header_bytes.len();
    let mut blob = seal_after(key, header_bytes, context, plaintext)?;
    let sealed = blob.split_off(header_len);
    Ok((blob, sealed))
}

fn seal_after(
    key: &MaterialKey,
    header_bytes: Vec<u8>,
    context: &EncryptionContext,
    plaintext: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let mut out = Vec::with_capacity(header_bytes.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&header_bytes);
    out.extend_from_slice(&nonce);
    let body_start = out.len();
    out.extend_from_slice(plaintext);
    let tag = key
        .key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&header_bytes, context)),
            &mut out[body_start..],
        )
        .map_err(|_| EnvelopeError::Random)?;
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

/// Decrypts a parsed blob with the backing key its header names. A blob of a key in an external
/// key store needs its proxy first: see [`open_sealed`].
pub fn open(
    key: &MaterialKey,
    blob: &ParsedBlob<'_>,
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if blob.proxy.is_some() {
        return Err(EnvelopeError::Malformed);
    }
    open_sealed(key, blob, blob.body, context)
}

/// Decrypts the sealed part (`nonce | ciphertext | tag`) of a blob: the blob's own, or what the
/// XKS proxy decrypted of it.
pub fn open_sealed(
    key: &MaterialKey,
    blob: &ParsedBlob<'_>,
    sealed: &[u8],
    context: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::Authentication);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| EnvelopeError::Malformed)?;
    let mut buf = Zeroizing::new(body.to_vec());
    let len = key
        .key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(blob.header_bytes, context)),
            &mut buf,
        )
        .map_err(|_| EnvelopeError::Authentication)?
        .len();
    buf.truncate(len);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooled_random_draws_are_distinct_and_wiped_from_the_block() {
        let mut seen = std::collections::HashSet::new();
        // ~3 blocks of 12-byte draws, so refills happen mid-way, plus odd sizes and one draw
        // too big for the block.
        for i in 0..1_000 {
            let mut nonce = [0u8; NONCE_LEN];
            fill_random(&mut nonce).unwrap();
            assert!(seen.insert(nonce), "draw {i} repeated an earlier one");
            assert_ne!(nonce, [0u8; NONCE_LEN]);
        }
        for len in [
            1,
            31,
            32,
            33,
            RANDOM_BLOCK / 8,
            RANDOM_BLOCK / 8 + 1,
            RANDOM_BLOCK,
        ] {
            let drawn = random(len).unwrap();
            assert_eq!(drawn.len(), len);
            if len >= 16 {
                assert!(drawn.iter().any(|b| *b != 0));
            }
        }
        RANDOM.with(|block| {
            let block = block.borrow();
            assert!(block.used > 0);
            assert!(block.bytes[..block.used].iter().all(|b| *b == 0));
        });
    }
    use proptest::prelude::*;

    fn header() -> BlobHeader<'static> {
        BlobHeader {
            region: "us-east-1",
            account_id: "111122223333",
            key_id: *uuid::Uuid::new_v4().as_bytes(),
            kind: BlobKind::SingleRegion,
            material_id: [7; MATERIAL_ID_LEN],
        }
    }

    fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn key() -> MaterialKey {
        MaterialKey::new(&random(MATERIAL_LEN).unwrap()).unwrap()
    }

    #[test]
    fn framing_keeps_shifted_pairs_apart() {
        assert_ne!(
            encode_context(&ctx(&[("ab", "c")])),
            encode_context(&ctx(&[("a", "bc")]))
        );
        let k = key();
        let h = header();
        let blob = seal(&k, &h, &ctx(&[("ab", "c")]), b"secret").unwrap();
        let parsed = parse(&blob).unwrap();
        assert_eq!(
            open(&k, &parsed, &ctx(&[("a", "bc")])),
            Err(EnvelopeError::Authentication)
        );
        assert_eq!(
            open(&k, &parsed, &ctx(&[("ab", "c")])).unwrap().as_slice(),
            b"secret"
        );
    }

    #[test]
    fn context_is_order_independent_but_exact() {
        let k = key();
        let h = header();
        let c = ctx(&[("b", "2"), ("a", "1")]);
        let blob = seal(&k, &h, &c, b"x").unwrap();
        let parsed = parse(&blob).unwrap();
        assert!(open(&k, &parsed, &ctx(&[("a", "1"), ("b", "2")])).is_ok());
        for wrong in [
            ctx(&[]),
            ctx(&[("a", "1")]),
            ctx(&[("a", "1"), ("b", "2"), ("c", "3")]),
            ctx(&[("a", "1"), ("b", "3")]),
            ctx(&[("A", "1"), ("b", "2")]),
        ] {
            assert_eq!(
                open(&k, &parsed, &wrong),
                Err(EnvelopeError::Authentication)
            );
        }
        assert_eq!(parsed.header, h);
    }

    #[test]
    fn another_key_or_a_truncated_blob_fails() {
        let h = header();
        let blob = seal(&key(), &h, &ctx(&[]), b"x").unwrap();
        assert_eq!(
            open(&key(), &parse(&blob).unwrap(), &ctx(&[])),
            Err(EnvelopeError::Authentication)
        );
        for cut in 0..blob.len() - 1 {
            if let Ok(p) = parse(&blob[..cut]) {
                assert!(open(&key(), &p, &ctx(&[])).is_err());
            }
        }
        assert_eq!(parse(&[2, 0, 0]), Err(EnvelopeError::Malformed));
        let mut other_version = blob.clone();
        other_version[0] = 4;
        assert_eq!(parse(&other_version), Err(EnvelopeError::Malformed));
    }

    #[test]
    fn a_multi_region_blob_names_its_key_and_cannot_pass_for_a_single_region_one() {
        let k = key();
        let h = BlobHeader {
            kind: BlobKind::MultiRegion,
            ..header()
        };
        let blob = seal(&k, &h, &ctx(&[]), b"x").unwrap();
        assert_eq!(blob[0], MULTI_REGION_BLOB_VERSION);
        let parsed = parse(&blob).unwrap();
        assert_eq!(parsed.header, h);
        assert!(parsed.header.key_id_string().starts_with("mrk-"));
        assert_eq!(open(&k, &parsed, &ctx(&[])).unwrap().as_slice(), b"x");
        let mut relabelled = blob.clone();
        relabelled[0] = BLOB_VERSION;
        assert_eq!(
            open(&k, &parse(&relabelled).unwrap(), &ctx(&[])),
            Err(EnvelopeError::Authentication)
        );
    }

    #[test]
    fn an_external_key_store_blob_carries_what_the_proxy_returned() {
        let k = key();
        let h = BlobHeader {
            kind: BlobKind::ExternalKeyStore,
            ..header()
        };
        let c = ctx(&[("a", "1")]);
        let (header_bytes, sealed) = seal_parts(&k, &h, &c, b"data key").unwrap();
        assert_eq!(header_bytes[0], EXTERNAL_KEY_STORE_BLOB_VERSION);
        // A stand-in for the external key manager: any reversible transformation will do here.
        let outer: Vec<u8> = sealed.iter().map(|b| b ^ 0x5a).collect();
        let proxy = ProxySealed {
            iv: &[1; 12],
            tag: &[2; 16],
            metadata: b"v1",
            ciphertext: &outer,
        };
        let blob = join_proxy_sealed(&header_bytes, &proxy).unwrap();
        let parsed = parse(&blob).unwrap();
        assert_eq!(parsed.header, h);
        assert_eq!(parsed.proxy.as_ref(), Some(&proxy));
        assert_eq!(parsed.header_bytes(), header_bytes.as_slice());
        // Without the proxy, the blob does not open.
        assert_eq!(open(&k, &parsed, &c), Err(EnvelopeError::Malformed));
        let inner: Vec<u8> = parsed
            .proxy
            .as_ref()
            .unwrap()
            .ciphertext
            .iter()
            .map(|b| b ^ 0x5a)
            .collect();
        assert_eq!(
            open_sealed(&k, &parsed, &inner, &c).unwrap().as_slice(),
            b"data key"
        );
        assert_eq!(
            open_sealed(&k, &parsed, &inner, &ctx(&[("a", "2")])),
            Err(EnvelopeError::Authentication)
        );
        // The proxy's AAD binds the header and the context.
        assert_ne!(
            proxy_aad(&header_bytes, &c),
            proxy_aad(&header_bytes, &ctx(&[("a", "2")]))
        );
        let mut other_header = header_bytes.clone();
        other_header[1 + 1 + 9] ^= 1;
        assert_ne!(proxy_aad(&header_bytes, &c), proxy_aad(&other_header, &c));
        // Malformed proxy parts are refused.
        for (iv, tag, metadata) in [
            (&[1u8; 11][..], &[2u8; 16][..], &b""[..]),
            (&[1; 12], &[2; 15], b""),
            (&[1; 16], &[2; 16], &[0; 21]),
        ] {
            let bad = ProxySealed {
                iv,
                tag,
                metadata,
                ciphertext: &outer,
            };
            assert_eq!(
                join_proxy_sealed(&header_bytes, &bad),
                Err(EnvelopeError::Malformed)
            );
        }
        for cut in header_bytes.len()..blob.len() - NONCE_LEN - TAG_LEN {
            assert!(parse(&blob[..cut]).is_err(), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn any_byte_change_is_detected(plaintext in proptest::collection::vec(any::<u8>(), 1..512),
                                       pairs in proptest::collection::btree_map("[ -~]{0,12}", "[ -~]{0,12}", 0..6),
                                       flip in any::<prop::sample::Index>()) {
            let k = key();
            let h = header();
            let blob = seal(&k, &h, &pairs, &plaintext).unwrap();
            let parsed = parse(&blob).unwrap();
            let opened = open(&k, &parsed, &pairs).unwrap();
            prop_assert_eq!(opened.as_slice(), plaintext.as_slice());
            let mut tampered = blob.clone();
            let i = flip.index(tampered.len());
            tampered[i] ^= 0x01;
            if let Ok(p) = parse(&tampered) {
                prop_assert!(open(&k, &p, &pairs).is_err());
            }
        }

        #[test]
        fn context_encoding_is_injective(a in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4),
                                         b in proptest::collection::btree_map("[a-c]{0,3}", "[a-c]{0,3}", 0..4)) {
            prop_assert_eq!(a == b, encode_context(&a) == encode_context(&b));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse(&bytes);
        }
    }
}
