//! The remote replica's cryptography (docs/REMOTE.md): the data keys — one
//! per generation, a new one whenever the token changes — and their
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
/// The first line of the key file of generation 1.
pub const KEY_HEADER: &str = "selfsame-remote-key 1\n";
/// The first line of the key file of a later generation.
pub const KEYRING_HEADER: &str = "selfsame-remote-key 2\n";
/// The first bytes of a record sealed under generation 1.
pub const RECORD_MAGIC: &[u8; 4] = b"SSR1";
/// The first bytes of a record sealed under a later generation, which
/// follows them as 4 bytes big-endian.
pub const RECORD_MAGIC_GEN: &[u8; 4] = b"SSR2";
/// The most generations a key file may hold.
pub const MAX_GENERATIONS: usize = 1000;
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
    #[error("the remote's data key does not open with this token (another bot's remote, a token a rekey or a bind retired, a vault that has not pushed or woken since its token changed, or the key file was altered)")]
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

/// One generation's data key: 32 random bytes. It never prints.
#[derive(Clone)]
struct DataKey {
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
    fn generate() -> DataKey {
        DataKey::from_raw(ChaCha20Poly1305::generate_key(&mut OsRng).into())
    }

    fn from_raw(raw: [u8; 32]) -> DataKey {
        DataKey {
            encrypt: hmac(&raw, &[b"selfsame/remote/encrypt"]),
            name: hmac(&raw, &[b"selfsame/remote/name"]),
            raw,
        }
    }

    /// The keyed name of a record: lowercase hex
    /// `HMAC-SHA256(name key, kind || "\n" || id)`.
    fn name(&self, kind: &str, id: &str) -> String {
        hex::encode(hmac(&self.name, &[kind.as_bytes(), b"\n", id.as_bytes()]))
    }

    /// The AEAD of one record: its key is
    /// `HMAC-SHA256(encrypt key, name || 0x00 || nonce)`.
    fn record_aead(&self, name: &str, nonce: &[u8]) -> ChaCha20Poly1305 {
        let key = hmac(&self.encrypt, &[name.as_bytes(), &[0], nonce]);
        ChaCha20Poly1305::new(Key::from_slice(&key))
    }

    /// Seals `plain` as the record stored under `name` (the path below the
    /// prefix): `header` (the magic, and the generation after the first),
    /// a random 16-byte nonce, then the chunks.
    fn seal(&self, header: &[u8], name: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; RECORD_NONCE];
        chacha20poly1305::aead::rand_core::RngCore::fill_bytes(&mut OsRng, &mut nonce);
        let aead = self.record_aead(name, &nonce);
        let chunks = plain.len().div_ceil(CHUNK).max(1);
        let mut out = Vec::with_capacity(header.len() + sealed_len(plain.len() as u64) as usize);
        out.extend_from_slice(header);
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

    /// Opens the part of a record after its header: the nonce, then the
    /// chunks.
    fn open_body<E: From<OpenError>>(
        &self,
        name: &str,
        sealed: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        if sealed.len() < RECORD_NONCE + TAG {
            return Err(OpenError::RecordMalformed.into());
        }
        let nonce = &sealed[..RECORD_NONCE];
        let body = &sealed[RECORD_NONCE..];
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
}

/// The data keys of a remote, generation 1 first. Generation 1 names every
/// record; the newest seals what is written now; each opens the records
/// sealed under it. It never prints.
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<DataKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keyring({} generations, <redacted>)", self.keys.len())
    }
}

impl PartialEq for Keyring {
    /// Compared through a hash of the keys, so no comparison time depends
    /// on a key's bytes.
    fn eq(&self, other: &Keyring) -> bool {
        self.fingerprint() == other.fingerprint()
    }
}

impl Keyring {
    /// A fresh keyring of one generation.
    pub fn generate() -> Keyring {
        Keyring {
            keys: vec![DataKey::generate()],
        }
    }

    /// The keyring with one more generation, a fresh random key: what a
    /// remote's records are sealed under once the token changed.
    pub fn rotated(&self) -> Keyring {
        let mut keys = self.keys.clone();
        keys.push(DataKey::generate());
        Keyring { keys }
    }

    fn fingerprint(&self) -> [u8; 32] {
        let raw: Vec<&[u8]> = self.keys.iter().map(|k| &k.raw[..]).collect();
        hmac(b"selfsame/remote/keyring-fingerprint", &raw)
    }

    /// How many generations it holds: the newest one's number.
    pub fn generation(&self) -> usize {
        self.keys.len()
    }

    /// The key file text, wrapped under
    /// `HMAC-SHA256(key = "selfsame/remote/v1", msg = token)` with the
    /// header line as associated data: `selfsame-remote-key 1` and the one
    /// data key for generation 1; `selfsame-remote-key 2` and the keys of
    /// every generation, oldest first, after it.
    pub fn wrap(&self, cred: &Credential) -> String {
        let header = if self.keys.len() == 1 {
            KEY_HEADER
        } else {
            KEYRING_HEADER
        };
        let wrap = hmac(REMOTE_LABEL, &[cred.key_material()]);
        let aead = ChaCha20Poly1305::new(Key::from_slice(&wrap));
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let raw: Vec<u8> = self.keys.iter().flat_map(|k| k.raw).collect();
        let sealed = aead
            .encrypt(
                &nonce,
                Payload {
                    msg: &raw,
                    aad: header.as_bytes(),
                },
            )
            .expect("sealing a few keys cannot fail");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{header}sealed {}\n", URL_SAFE_NO_PAD.encode(blob))
    }

    /// Opens a key file under the credential.
    pub fn unwrap(text: &[u8], cred: &Credential) -> Result<Keyring, OpenError> {
        let text = std::str::from_utf8(text).map_err(|_| OpenError::KeyFileMalformed)?;
        let (header, rest) = [KEY_HEADER, KEYRING_HEADER]
            .into_iter()
            .find_map(|h| Some((h, text.strip_prefix(h)?)))
            .ok_or(OpenError::KeyFileMalformed)?;
        let sealed = rest
            .strip_prefix("sealed ")
            .and_then(|rest| rest.strip_suffix('\n'))
            .filter(|b64| !b64.contains('\n'))
            .ok_or(OpenError::KeyFileMalformed)?;
        let blob = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::KeyFileMalformed)?;
        let keys = blob.len().saturating_sub(12 + TAG) / 32;
        let fits = if header == KEY_HEADER {
            keys == 1
        } else {
            (2..=MAX_GENERATIONS).contains(&keys)
        };
        if !fits || blob.len() != 12 + 32 * keys + TAG {
            return Err(OpenError::KeyFileMalformed);
        }
        let wrap = hmac(REMOTE_LABEL, &[cred.key_material()]);
        let aead = ChaCha20Poly1305::new(Key::from_slice(&wrap));
        let raw = aead
            .decrypt(
                Nonce::from_slice(&blob[..12]),
                Payload {
                    msg: &blob[12..],
                    aad: header.as_bytes(),
                },
            )
            .map_err(|_| OpenError::KeyNotOpened)?;
        Ok(Keyring {
            keys: raw
                .chunks_exact(32)
                .map(|k| DataKey::from_raw(k.try_into().expect("32 bytes")))
                .collect(),
        })
    }

    /// The keyed name of a record: lowercase hex
    /// `HMAC-SHA256(name key of generation 1, kind || "\n" || id)`.
    pub fn name(&self, kind: &str, id: &str) -> String {
        self.keys[0].name(kind, id)
    }

    /// Seals `plain` as the record stored under `name`, under the newest
    /// generation: `SSR1` for generation 1, else `SSR2` and the generation
    /// as 4 bytes big-endian; then the nonce and the chunks.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Vec<u8> {
        let g = self.keys.len();
        let newest = &self.keys[g - 1];
        if g == 1 {
            newest.seal(RECORD_MAGIC, name, plain)
        } else {
            let mut header = RECORD_MAGIC_GEN.to_vec();
            header.extend_from_slice(&(g as u32).to_be_bytes());
            newest.seal(&header, name, plain)
        }
    }

    /// Opens a record stored under `name`, giving each plaintext chunk to
    /// `sink` in order once it is authenticated, with the key of the
    /// generation its header names. A record cut short, with chunks after
    /// the last, moved from another name, or of a generation this keyring
    /// lacks does not open.
    pub fn open_each<E: From<OpenError>>(
        &self,
        name: &str,
        sealed: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<u64, E> {
        if let Some(body) = sealed.strip_prefix(RECORD_MAGIC) {
            return self.keys[0].open_body(name, body, sink);
        }
        let body = sealed
            .strip_prefix(RECORD_MAGIC_GEN)
            .filter(|b| b.len() >= 4)
            .ok_or(OpenError::RecordMalformed)?;
        let g = u32::from_be_bytes(body[..4].try_into().expect("4 bytes")) as usize;
        if g < 2 || g > self.keys.len() {
            return Err(OpenError::RecordNotAuthentic.into());
        }
        self.keys[g - 1].open_body(name, &body[4..], sink)
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

/// The size of the sealed record of `len` plaintext bytes under generation
/// 1 (4 bytes more under a later one).
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
        let ring = Keyring::generate();
        let file = ring.wrap(&cred("1:a"));
        assert!(file.starts_with(KEY_HEADER));
        let back = Keyring::unwrap(file.as_bytes(), &cred("1:a")).unwrap();
        assert_eq!(back, ring);
        assert_eq!(
            Keyring::unwrap(file.as_bytes(), &cred("1:b")).unwrap_err(),
            OpenError::KeyNotOpened
        );
        let changed = file.replace("key 1", "key 2");
        assert!(Keyring::unwrap(changed.as_bytes(), &cred("1:a")).is_err());
        let raw = hex::encode(ring.keys[0].raw);
        assert!(!format!("{ring:?}").contains(&raw));
    }

    #[test]
    fn a_rotated_keyring_opens_the_old_records_and_seals_new_ones_the_old_token_cannot_open() {
        let old = Keyring::generate();
        let old_file = old.wrap(&cred("1:a"));
        let before = old.seal("c/x", b"checkpoint one");
        let new = old.rotated();
        assert_eq!(new.generation(), 2);
        let file = new.wrap(&cred("1:b"));
        assert!(file.starts_with(KEYRING_HEADER));
        let back = Keyring::unwrap(file.as_bytes(), &cred("1:b")).unwrap();
        assert_eq!(back, new);
        assert_ne!(back, old);
        assert!(Keyring::unwrap(file.as_bytes(), &cred("1:a")).is_err());
        // Names stay; the old generation's records still open.
        assert_eq!(back.name("object", "ab"), old.name("object", "ab"));
        assert_eq!(back.open("c/x", &before).unwrap(), b"checkpoint one");
        // What is sealed now is generation 2's, and the keyring the old
        // token opens (the first key file) does not open it.
        let after = back.seal("c/y", b"checkpoint two");
        assert_eq!(&after[..8], b"SSR2\0\0\0\x02");
        assert_eq!(after.len() as u64, 4 + sealed_len(14));
        assert_eq!(back.open("c/y", &after).unwrap(), b"checkpoint two");
        let opened_by_old = Keyring::unwrap(old_file.as_bytes(), &cred("1:a")).unwrap();
        assert_eq!(
            opened_by_old.open("c/y", &after).unwrap_err(),
            OpenError::RecordNotAuthentic
        );
        // The generation is bound: claiming another does not open.
        let mut moved = after.clone();
        moved[7] = 3;
        assert!(new.rotated().open("c/y", &moved).is_err());
        moved[7] = 1;
        assert!(back.open("c/y", &moved).is_err());
    }

    #[test]
    fn records_round_trip_and_are_bound_to_their_name() {
        let key = Keyring::generate();
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
            rotated in any::<bool>(),
        ) {
            let key = Keyring::generate();
            let key = if rotated { key.rotated() } else { key };
            let mut sealed = key.seal("HEAD", &plain);
            let i = at.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(key.open("HEAD", &sealed).is_err());
        }

        #[test]
        fn arbitrary_bytes_never_open_or_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let key = Keyring::generate().rotated();
            prop_assert!(key.open("HEAD", &bytes).is_err());
            let mut framed = RECORD_MAGIC_GEN.to_vec();
            framed.extend_from_slice(&bytes);
            prop_assert!(key.open("HEAD", &framed).is_err());
            let _ = Keyring::unwrap(&bytes, &cred("1:a"));
            let mut text = KEYRING_HEADER.as_bytes().to_vec();
            text.extend_from_slice(&bytes);
            let _ = Keyring::unwrap(&text, &cred("1:a"));
        }
    }
}
