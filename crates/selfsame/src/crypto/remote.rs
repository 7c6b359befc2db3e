//! The remote replica's cryptography (docs/REMOTE.md): the data key and its
//! wrapping under the credential, the keyed names of remote records, and
//! the sealing of every record with ChaCha20-Poly1305 in 64 KiB chunks
//! (age's STREAM construction), so that whoever reads the bucket learns
//! sizes and times, nothing more.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Credential;

/// The label that turns the credential into the key wrapping the data key.
pub const REMOTE_LABEL: &[u8] = b"selfsame/remote/v1";
/// The first line of the key file.
pub const KEY_HEADER: &str = "selfsame-remote-key 1\n";
/// The first bytes of every sealed record.
pub const RECORD_MAGIC: &[u8; 4] = b"SSR1";
/// Plaintext bytes per sealed chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG: usize = 16;
const RECORD_NONCE: usize = 16;

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Why a key file or a sealed record does not open. Never holds a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// The key file is not `selfsame-remote-key 1` text.
    #[error("not a selfsame remote key file")]
    KeyFileMalformed,
    /// The key file's seal does not open under this credential: another
    /// vault's (another token's) remote, or the file was changed.
    #[error("the remote's data key does not open with this token (another bot's remote, a token changed by a rekey, or the key file was altered)")]
    KeyNotOpened,
    /// A record is too short or lacks the magic bytes.
    #[error("not a sealed record")]
    RecordMalformed,
    /// A chunk of a record fails authentication: altered, truncated,
    /// extended, or stored under another name.
    #[error(
        "a sealed record fails authentication (altered, truncated, or moved from another name)"
    )]
    RecordNotAuthentic,
}

/// The vault's remote data key: 32 random bytes. It never prints.
#[derive(Clone)]
pub struct DataKey {
    encrypt: [u8; 32],
    name: [u8; 32],
    raw: [u8; 32],
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> DataKey {
        DataKey::from_raw(ChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    fn from_raw(raw: [u8; 32]) -> DataKey {
        DataKey {
            encrypt: hmac(&raw, &[b"selfsame/remote/encrypt"]),
            name: hmac(&raw, &[b"selfsame/remote/name"]),
            raw,
        }
    }

    /// The key file text: the header, then the data key sealed under the
    /// wrap key `HMAC-SHA256(key = "selfsame/remote/v1", msg = token)`
    /// with the header as associated data.
    pub fn wrap(&self, cred: &Credential) -> String {
        let wrap = hmac(REMOTE_LABEL, &[cred.key_material()]);
        let aead = ChaCha20Poly1305::new(Key::from_slice(&wrap));
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = aead
            .encrypt(
                &nonce,
                Payload {
                    msg: &self.raw,
                    aad: KEY_HEADER.as_bytes(),
                },
            )
            .expect("sealing 32 bytes cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{KEY_HEADER}sealed {}\n", URL_SAFE_NO_PAD.encode(blob))
    }

    /// Opens a key file under the credential.
    pub fn unwrap(text: &[u8], cred: &Credential) -> Result<DataKey, OpenError> {
        let text = std::str::from_utf8(text).map_err(|_| OpenError::KeyFileMalformed)?;
        let sealed = text
            .strip_prefix(KEY_HEADER)
            .and_then(|rest| rest.strip_prefix("sealed "))
            .and_then(|rest| rest.strip_suffix('\n'))
            .filter(|b64| !b64.contains('\n'))
            .ok_or(OpenError::KeyFileMalformed)?;
        let blob = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::KeyFileMalformed)?;
        if blob.len() != 12 + 32 + TAG {
            return Err(OpenError::KeyFileMalformed);
        }
        let wrap = hmac(REMOTE_LABEL, &[cred.key_material()]);
        let aead = ChaCha20Poly1305::new(Key::from_slice(&wrap));
        let raw = aead
            .decrypt(
                Nonce::from_slice(&blob[..12]),
                Payload {
                    msg: &blob[12..],
                    aad: KEY_HEADER.as_bytes(),
                },
            )
            .map_err(|_| OpenError::KeyNotOpened)?;
        Ok(DataKey::from_raw(
            raw.try_into().expect("the plaintext is 32 bytes"),
        ))
    }

    /// The keyed name of a record: lowercase hex
    /// `HMAC-SHA256(name key, kind || "\n" || id)`.
    pub fn name(&self, kind: &str, id: &str) -> String {
        hex::encode(hmac(&self.name, &[kind.as_bytes(), b"\n", id.as_bytes()]))
    }

    /// The AEAD of one record: its key is
    /// `HMAC-SHA256(encrypt key, name || 0x00 || nonce)`.
    fn record_aead(&self, name: &str, nonce: &[u8]) -> ChaCha20Poly1305 {
        let key = hmac(&self.encrypt, &[name.as_bytes(), &[0], nonce]);
        ChaCha20Poly1305::new(Key::from_slice(&key))
    }

    /// Seals `plain` as the record stored under `name` (the path below the
    /// prefix): magic, a random 16-byte nonce, then the chunks.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; RECORD_NONCE];
        chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut nonce);
        let aead = self.record_aead(name, &nonce);
        let chunks = plain.len().div_ceil(CHUNK).max(1);
        let mut out = Vec::with_capacity(sealed_len(plain.len() as u64) as usize);
        out.extend_from_slice(RECORD_MAGIC);
        out.extend_from_slice(&nonce);
        for i in 0..chunks {
            let piece = &plain[(i * CHUNK).min(plain.len())..((i + 1) * CHUNK).min(plain.len())];
            let sealed = aead
                .encrypt(&chunk_nonce(i as u64, i + 1 == chunks), piece)
                .expect("sealing a chunk cannot fail");
            out.extend_from_slice(&sealed);
        }
        out
    }

    /// Opens a record stored under `name`, giving each plaintext chunk to
    /// `sink` in order once it is authenticated. A record cut short, with
    /// chunks after the last, or moved from another name does not open.
    pub fn open_each<E: From<OpenError>>(
        &self,
        name: &str,
        sealed: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        if sealed.len() < RECORD_MAGIC.len() + RECORD_NONCE + TAG
            || &sealed[..RECORD_MAGIC.len()] != RECORD_MAGIC
        {
            return Err(OpenError::RecordMalformed.into());
        }
        let nonce = &sealed[RECORD_MAGIC.len()..RECORD_MAGIC.len() + RECORD_NONCE];
        let body = &sealed[RECORD_MAGIC.len() + RECORD_NONCE..];
        let aead = self.record_aead(name, nonce);
        let step = CHUNK + TAG;
        let chunks = body.len().div_ceil(step);
        // A final chunk of only a tag is the empty record; elsewhere a
        // chunk is never empty, so a trailing tag-only piece is refused.
        let mut total = 0u64;
        for i in 0..chunks {
            let piece = &body[i * step..((i + 1) * step).min(body.len())];
            let last = i + 1 == chunks;
            if piece.len() < TAG || (piece.len() == TAG && i > 0) {
                return Err(OpenError::RecordNotAuthentic.into());
            }
            let plain = aead
                .decrypt(&chunk_nonce(i as u64, last), piece)
                .map_err(|_| OpenError::RecordNotAuthentic)?;
            total += plain.len() as u64;
            sink(&plain)?;
        }
        Ok(total)
    }

    /// Opens a whole record into memory.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let mut out = Vec::with_capacity(sealed.len());
        self.open_each(name, sealed, &mut |p: &[u8]| {
            out.extend_from_slice(p);
            Ok::<(), OpenError>(())
        })?;
        Ok(out)
    }
}

/// The size of the sealed record of `len` plaintext bytes.
pub fn sealed_len(len: u64) -> u64 {
    let chunks = len.div_ceil(CHUNK as u64).max(1);
    (RECORD_MAGIC.len() + RECORD_NONCE) as u64 + len + chunks * TAG as u64
}

/// The nonce of chunk `i`: an 11-byte big-endian counter, then 1 for the
/// last chunk and 0 for the others.
fn chunk_nonce(i: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&i.to_be_bytes());
    n[11] = u8::from(last);
    *Nonce::from_slice(&n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Platform;
    use proptest::prelude::*;

    fn cred(t: &str) -> Credential {
        Credential::parse(Platform::Telegram, t).unwrap()
    }

    #[test]
    fn the_key_file_opens_only_with_its_token() {
        let key = DataKey::generate();
        let file = key.wrap(&cred("1:a"));
        assert!(file.starts_with(KEY_HEADER));
        let back = DataKey::unwrap(file.as_bytes(), &cred("1:a")).unwrap();
        assert_eq!(back.raw, key.raw);
        assert_eq!(
            DataKey::unwrap(file.as_bytes(), &cred("1:b")).unwrap_err(),
            OpenError::KeyNotOpened
        );
        let changed = file.replace("key 1", "key 2");
        assert!(DataKey::unwrap(changed.as_bytes(), &cred("1:a")).is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(key.raw)));
    }

    #[test]
    fn records_round_trip_and_are_bound_to_their_name() {
        let key = DataKey::generate();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sealed = key.seal("o/x", &plain);
            assert_eq!(sealed.len() as u64, sealed_len(len as u64));
            assert_eq!(key.open("o/x", &sealed).unwrap(), plain);
            assert!(key.open("o/y", &sealed).is_err());
            // Cut at a chunk boundary: the new last chunk was not sealed
            // as the last one.
            if len > CHUNK {
                let cut = RECORD_MAGIC.len() + RECORD_NONCE + CHUNK + TAG;
                assert!(key.open("o/x", &sealed[..cut]).is_err());
            }
        }
    }

    proptest! {
        #[test]
        fn no_altered_record_opens(
            plain in proptest::collection::vec(any::<u8>(), 0..200),
            at in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = DataKey::generate();
            let mut sealed = key.seal("HEAD", &plain);
            let i = at.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(key.open("HEAD", &sealed).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_open_or_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let key = DataKey::generate();
            prop_assert!(key.open("HEAD", &bytes).is_err());
            let _ = DataKey::unwrap(&bytes, &cred("1:a"));
        }
    }
}
