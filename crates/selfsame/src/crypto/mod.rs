//! Hashing, credentials ([`Credential`]: the platform seam) and every MAC
//! selfsame writes or checks: the keys a credential derives ([`Keys`]), checkpoints signed and verified, history lines, the
//! restore journal and the awake marker. Keys are derived here and only
//! here.

mod credential;
pub(crate) mod identity;
pub(crate) mod keys;
#[cfg(feature = "remote")]
pub(crate) mod remote;

pub use credential::{Credential, CredentialError, DiscordToken, DiscordTokenError, Platform};
pub use identity::{IdentityKey, Passphrase, WrapKey};
pub use keys::Keys;

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Raw SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
