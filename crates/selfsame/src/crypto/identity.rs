//! The identity key: one Ed25519 key per vault that signs every
//! checkpoint, outlives token rotation and platform moves, and lets anyone
//! with its public key check the chain without any secret.
//!
//! - Its 32-byte seed is kept in `.selfsame/identity` sealed with
//!   ChaCha20-Poly1305 under the **wrap key** `HMAC-SHA256(key =
//!   "selfsame/identity/v1", msg = token)`, the file's first two lines as
//!   associated data ([`IdentityKey::seal`], [`IdentityKey::unseal`]).
//! - A checkpoint's `signature` is the Ed25519 signature of
//!   `selfsame/checkpoint/v1\n` followed by the data-check-string of every
//!   field but `signature` ([`signed_message`]); the check is
//!   `selfsame-telegram`'s, shared with Telegram's third-party signatures.
//! - The owner's offline copy is an age file encrypted to a passphrase
//!   ([`IdentityKey::export`], [`IdentityKey::import`]).

use std::fmt;

use age::secrecy::{ExposeSecret, SecretString};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::ChaCha20Poly1305;
use ed25519_dalek::{Signer, SigningKey};
use hmac::{Hmac, Mac};
use selfsame_telegram::third_party::{verify_signature, PublicKey};
use selfsame_telegram::Fields;
use sha2::Sha256;
use zeroize::{Zeroize, Zeroizing};

use super::Credential;
use crate::error::ImportError;
use crate::format::checkpoint::{Checkpoint, IDENTITY, SIGNATURE};
use crate::format::identity::{
    decode_b64url, display_public, encode_b64url, IdentityFile, NONCE_LEN, SEALED_LEN,
};

/// The label that turns a bot token into the identity wrap key.
pub const IDENTITY_LABEL: &[u8] = b"selfsame/identity/v1";
/// What a checkpoint signature's message starts with.
pub const SIGNATURE_PREFIX: &[u8] = b"selfsame/checkpoint/v1\n";
/// The first line of an exported identity (inside the age file).
const EXPORT_HEADER: &str = "selfsame-identity-export 1";
/// The scrypt work factor of an export, `N = 2^18` (256 MiB, about a
/// second): fixed, not calibrated to the machine's load at the time.
const EXPORT_LOG_N: u8 = 18;
/// The most work an import accepts, `N = 2^22` (what age advises as a
/// bound): more is refused instead of tried.
const IMPORT_MAX_LOG_N: u8 = 22;

/// The key that seals the identity seed: `HMAC-SHA256(key =
/// "selfsame/identity/v1", msg = token)`. Never prints; zeroed on drop.
#[derive(Clone)]
pub struct WrapKey([u8; 32]);

impl fmt::Debug for WrapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WrapKey(<redacted>)")
    }
}

impl Drop for WrapKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl WrapKey {
    /// The wrap key a credential derives.
    pub fn of(cred: &Credential) -> WrapKey {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(IDENTITY_LABEL).expect("any key length");
        mac.update(cred.key_material());
        WrapKey(mac.finalize().into_bytes().into())
    }
}

/// A passphrase for an exported identity. Never prints.
pub struct Passphrase(SecretString);

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

impl Passphrase {
    /// Wraps a passphrase (a trailing newline, as a file holds it, is the
    /// caller's to remove).
    pub fn new(text: String) -> Passphrase {
        Passphrase(SecretString::from(text))
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.expose_secret().is_empty()
    }
}

/// An Ed25519 identity key. `Debug` shows the public key only; the seed is
/// zeroed on drop.
#[derive(Clone)]
pub struct IdentityKey(SigningKey);

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", display_public(&self.public()))
    }
}

/// What a checkpoint's signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// It carries no `identity` and no `signature`.
    Unsigned,
    /// `signature` is valid under `identity` (the public key).
    Valid([u8; 32]),
    /// It names an identity but carries no signature.
    Missing,
    /// The identity or the signature is malformed, or does not verify.
    Invalid(&'static str),
}

/// The bytes a checkpoint's signature covers: `selfsame/checkpoint/v1\n`
/// and the data-check-string of every field but `signature` (so `hash` and
/// a rekey's `prev_key_hash` too: the signature fixes every byte of the
/// checkpoint but its own).
pub fn signed_message(fields: &Fields) -> Vec<u8> {
    let mut out = SIGNATURE_PREFIX.to_vec();
    out.extend_from_slice(fields.data_check_string(&[SIGNATURE]).as_bytes());
    out
}

/// Checks a checkpoint's `signature` under the `identity` it names.
pub fn check_signature(ckpt: &Checkpoint) -> SignatureCheck {
    let Some(identity) = ckpt.fields.get(IDENTITY) else {
        return match ckpt.fields.get(SIGNATURE) {
            None => SignatureCheck::Unsigned,
            Some(_) => SignatureCheck::Invalid("a signature without an identity"),
        };
    };
    let Some(public) = decode_b64url::<32>(identity) else {
        return SignatureCheck::Invalid("the identity is not a 32-byte key in base64url");
    };
    let Ok(key) = PublicKey::from_bytes(&public) else {
        return SignatureCheck::Invalid("the identity is not an Ed25519 public key");
    };
    let Some(signature) = ckpt.fields.get(SIGNATURE) else {
        return SignatureCheck::Missing;
    };
    if decode_b64url::<64>(signature).is_none() {
        return SignatureCheck::Invalid("the signature is not 64 bytes in base64url");
    }
    match verify_signature(&key, &signed_message(&ckpt.fields), signature) {
        Ok(()) => SignatureCheck::Valid(public),
        Err(_) => SignatureCheck::Invalid("the signature does not verify under the identity"),
    }
}

impl IdentityKey {
    /// The key of a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> IdentityKey {
        IdentityKey(SigningKey::from_bytes(seed))
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }

    /// The public key in base64url, as checkpoints carry it.
    pub fn public_b64(&self) -> String {
        encode_b64url(&self.public())
    }

    /// The signature of `fields` (every field but `signature`), base64url.
    pub fn sign(&self, fields: &Fields) -> String {
        encode_b64url(&self.0.sign(&signed_message(fields)).to_bytes())
    }

    /// The identity file: the seed sealed under `wrap` with `nonce`.
    pub fn seal(&self, wrap: &WrapKey, nonce: &[u8; NONCE_LEN]) -> IdentityFile {
        let public = self.public();
        let aad = IdentityFile::associated_data(&public);
        let cipher = ChaCha20Poly1305::new(&wrap.0.into());
        let seed = Zeroizing::new(self.0.to_bytes());
        let ct = cipher
            .encrypt(
                nonce.into(),
                Payload {
                    msg: seed.as_slice(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("32 bytes always encrypt");
        let mut sealed = [0u8; SEALED_LEN];
        sealed[..NONCE_LEN].copy_from_slice(nonce);
        sealed[NONCE_LEN..].copy_from_slice(&ct);
        IdentityFile { public, sealed }
    }

    /// The key an identity file seals, when `wrap` opens it and the seed
    /// is the public key's; `None` otherwise.
    pub fn unseal(file: &IdentityFile, wrap: &WrapKey) -> Option<IdentityKey> {
        let aad = IdentityFile::associated_data(&file.public);
        let cipher = ChaCha20Poly1305::new(&wrap.0.into());
        let (nonce, ct) = file.sealed.split_at(NONCE_LEN);
        let seed = Zeroizing::new(
            cipher
                .decrypt(
                    nonce.into(),
                    Payload {
                        msg: ct,
                        aad: aad.as_bytes(),
                    },
                )
                .ok()?,
        );
        let seed: &[u8; 32] = seed.as_slice().try_into().ok()?;
        let key = IdentityKey::from_seed(seed);
        (key.public() == file.public).then_some(key)
    }

    /// The seed encrypted to `passphrase` as an age file (scrypt
    /// recipient), for the owner's offline copy.
    pub fn export(&self, passphrase: &Passphrase) -> Vec<u8> {
        let seed = Zeroizing::new(self.0.to_bytes());
        let text = Zeroizing::new(format!(
            "{EXPORT_HEADER}\npublic {}\nseed {}\n",
            self.public_b64(),
            encode_b64url(seed.as_slice())
        ));
        let mut recipient = age::scrypt::Recipient::new(passphrase.0.clone());
        recipient.set_work_factor(EXPORT_LOG_N);
        age::encrypt(&recipient, text.as_bytes()).expect("one scrypt recipient always encrypts")
    }

    /// The key an exported file holds, opened with `passphrase`.
    pub fn import(bytes: &[u8], passphrase: &Passphrase) -> Result<IdentityKey, ImportError> {
        let decryptor = age::Decryptor::new(bytes).map_err(|_| ImportError::NotPassphraseFile)?;
        if !decryptor.is_scrypt() {
            return Err(ImportError::NotPassphraseFile);
        }
        let mut identity = age::scrypt::Identity::new(passphrase.0.clone());
        identity.set_max_work_factor(IMPORT_MAX_LOG_N);
        let plain = Zeroizing::new(age::decrypt(&identity, bytes).map_err(|e| match e {
            age::DecryptError::ExcessiveWork { .. } => ImportError::ExcessiveWork,
            age::DecryptError::InvalidHeader | age::DecryptError::UnknownFormat => {
                ImportError::NotPassphraseFile
            }
            _ => ImportError::Passphrase,
        })?);
        let text = std::str::from_utf8(&plain).map_err(|_| ImportError::NotIdentity)?;
        let mut lines = text.strip_suffix('\n').unwrap_or("").split('\n');
        let (Some(EXPORT_HEADER), Some(public), Some(seed), None) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(ImportError::NotIdentity);
        };
        let public = public
            .strip_prefix("public ")
            .and_then(decode_b64url::<32>)
            .ok_or(ImportError::NotIdentity)?;
        let seed = Zeroizing::new(
            seed.strip_prefix("seed ")
                .and_then(decode_b64url::<32>)
                .ok_or(ImportError::NotIdentity)?,
        );
        let key = IdentityKey::from_seed(&seed);
        if key.public() != public {
            return Err(ImportError::NotIdentity);
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Platform;

    fn cred(token: &str) -> Credential {
        Credential::parse(Platform::Telegram, token).unwrap()
    }

    #[test]
    fn the_seed_opens_only_under_its_token_and_its_own_file() {
        let key = IdentityKey::from_seed(&[3; 32]);
        let wrap = WrapKey::of(&cred("42:first-secret"));
        let file = key.seal(&wrap, &[5; NONCE_LEN]);
        assert_eq!(file.public, key.public());
        let opened = IdentityKey::unseal(&file, &wrap).expect("opens");
        assert_eq!(opened.public(), key.public());
        assert!(IdentityKey::unseal(&file, &WrapKey::of(&cred("42:other-secret"))).is_none());
        // Another public line (the associated data) refuses the seal.
        let mut other = file.clone();
        other.public = IdentityKey::from_seed(&[4; 32]).public();
        assert!(IdentityKey::unseal(&other, &wrap).is_none());
        for i in 0..SEALED_LEN {
            let mut flipped = file.clone();
            flipped.sealed[i] ^= 0x10;
            assert!(IdentityKey::unseal(&flipped, &wrap).is_none(), "byte {i}");
        }
        let shown = format!("{key:?} {wrap:?}");
        assert!(
            shown.starts_with("IdentityKey(selfsame:ed25519:"),
            "{shown}"
        );
        assert!(!shown.contains(&encode_b64url(&[3; 32])), "{shown}");
    }

    #[test]
    fn an_export_opens_with_its_passphrase_only() {
        let key = IdentityKey::from_seed(&[8; 32]);
        let pass = Passphrase::new("correct horse".into());
        let file = key.export(&pass);
        assert!(file.starts_with(b"age-encryption.org/v1\n-> scrypt "));
        let back = IdentityKey::import(&file, &pass).unwrap();
        assert_eq!(back.public(), key.public());
        let wrong = Passphrase::new("battery staple".into());
        assert_eq!(
            IdentityKey::import(&file, &wrong).unwrap_err(),
            ImportError::Passphrase
        );
        assert_eq!(
            IdentityKey::import(b"selfsame-identity 1\n", &pass).unwrap_err(),
            ImportError::NotPassphraseFile
        );
        // A passphrase file that holds something else.
        let other = age::encrypt(
            &age::scrypt::Recipient::new(SecretString::from("correct horse".to_owned())),
            b"hello\n",
        )
        .unwrap();
        assert_eq!(
            IdentityKey::import(&other, &pass).unwrap_err(),
            ImportError::NotIdentity
        );
    }
}
