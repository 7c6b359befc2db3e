//! Third-party validation of initData: Telegram's Ed25519 `signature`,
//! checked without the bot token.
//!
//! Telegram's rule (<https://core.telegram.org/bots/webapps#validating-data-for-third-party-use>):
//! the `signature` field is the base64url Ed25519 signature, by Telegram's
//! key, of `<bot_id>:WebAppData\n` followed by the data-check-string of
//! every received field but `hash` and `signature`. Telegram publishes two
//! public keys: [`PublicKey::production`] and [`PublicKey::test_environment`].
//!
//! ```
//! use selfsame_telegram::{third_party, Freshness};
//! use selfsame_telegram::third_party::PublicKey;
//!
//! // Real data signed by Telegram for bot 7342037359.
//! let raw = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F\
//!     %22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code\
//!     %22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url\
//!     %22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih\
//!     13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_type=private\
//!     &auth_date=1733584787&hash=2174df5b000556d044f3f020384e879c8efcab55ddea2ced4eb752e93e7080d6\
//!     &signature=zL-ucjNyREiHDE8aihFwpfR9aggP2xiAo3NSpfe-p7IbCisNlDKlo7Kb6G4D0Ao2mBrSgEk4maLSdv6MLIlADQ";
//! let data = third_party::validate(raw, 7342037359, &PublicKey::production(), Freshness::ANY)?;
//! assert_eq!(data.user.unwrap().first_name, "Vladislav + - ? /");
//! assert!(third_party::validate(raw, 7342037360, &PublicKey::production(), Freshness::ANY).is_err());
//! # Ok::<(), selfsame_telegram::Error>(())
//! ```

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::{Error, SignatureFault};
use crate::freshness::Freshness;
use crate::init_data::InitData;
use crate::signed::Fields;

/// Telegram's production Ed25519 public key for third-party validation, hex,
/// as published at <https://core.telegram.org/bots/webapps#validating-data-for-third-party-use>.
pub const PRODUCTION_KEY_HEX: &str =
    "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d";

/// Telegram's test-environment Ed25519 public key, hex, as published at
/// <https://core.telegram.org/bots/webapps#validating-data-for-third-party-use>.
pub const TEST_ENVIRONMENT_KEY_HEX: &str =
    "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec";

/// base64url, `=` padding optional, trailing bits must be zero.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An Ed25519 public key that signs initData.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0.as_bytes()))
    }
}

impl PublicKey {
    /// Telegram's production key ([`PRODUCTION_KEY_HEX`]).
    pub fn production() -> Self {
        Self::from_hex(PRODUCTION_KEY_HEX).expect("Telegram's published key is valid")
    }

    /// Telegram's test-environment key ([`TEST_ENVIRONMENT_KEY_HEX`]).
    pub fn test_environment() -> Self {
        Self::from_hex(TEST_ENVIRONMENT_KEY_HEX).expect("Telegram's published key is valid")
    }

    /// A caller-given key: 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, Error> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes).map_err(|_| Error::BadPublicKey)?;
        Self::from_bytes(&bytes)
    }

    /// A caller-given key: the 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        VerifyingKey::from_bytes(bytes)
            .map(PublicKey)
            .map_err(|_| Error::BadPublicKey)
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

/// The bytes Telegram signs: `<bot_id>:WebAppData\n` followed by the
/// data-check-string without `hash` and `signature`.
pub fn signed_message(fields: &Fields, bot_id: u64) -> String {
    format!(
        "{bot_id}:WebAppData\n{}",
        fields.data_check_string(&["hash", "signature"])
    )
}

/// Decodes a `signature` field: base64url, padding optional, 64 bytes.
pub fn decode_signature(text: &str) -> Result<[u8; 64], SignatureFault> {
    let bytes = BASE64URL
        .decode(text)
        .map_err(|_| SignatureFault::NotBase64Url)?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| SignatureFault::WrongLength(bytes.len()))
}

/// Verifies `signature` (base64url, padding optional, 64 bytes) as the
/// Ed25519 signature of `message` under `key`, strictly: small-order keys
/// and non-canonical signatures are refused. The one Ed25519 check of this
/// crate, and of selfsame's checkpoint signatures.
pub fn verify_signature(
    key: &PublicKey,
    message: &[u8],
    signature: &str,
) -> Result<(), SignatureFault> {
    let signature = Signature::from_bytes(&decode_signature(signature)?);
    key.0
        .verify_strict(message, &signature)
        .map_err(|_| SignatureFault::Mismatch)
}

/// Validates initData for a third party: checks `signature` for `bot_id`
/// under `key` (no token needed; `hash` is not checked and not required),
/// then requires `auth_date` and checks its age, then decodes `user`,
/// `receiver` and `chat`. The bot id may come from a token's prefix
/// ([`BotToken::bot_id`](crate::BotToken::bot_id)).
pub fn validate(
    init_data: &str,
    bot_id: u64,
    key: &PublicKey,
    freshness: Freshness,
) -> Result<InitData, Error> {
    let fields = Fields::parse(init_data)?;
    let signature = fields.get("signature").ok_or(Error::MissingSignature)?;
    // Strict: also refuses small-order keys and non-canonical signatures,
    // which Telegram never produces.
    verify_signature(key, signed_message(&fields, bot_id).as_bytes(), signature)
        .map_err(Error::BadSignature)?;
    InitData::from_checked(fields, freshness)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_keys_parse() {
        assert_eq!(
            hex::encode(PublicKey::production().to_bytes()),
            PRODUCTION_KEY_HEX
        );
        assert_eq!(
            hex::encode(PublicKey::test_environment().to_bytes()),
            TEST_ENVIRONMENT_KEY_HEX
        );
        assert_eq!(PublicKey::from_hex("abcd"), Err(Error::BadPublicKey));
        assert_eq!(
            PublicKey::from_hex(&"zz".repeat(32)),
            Err(Error::BadPublicKey)
        );
    }

    #[test]
    fn signature_encoding() {
        let sig = [7u8; 64];
        let unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(sig);
        assert_ne!(unpadded, padded);
        assert_eq!(decode_signature(&unpadded), Ok(sig));
        assert_eq!(decode_signature(&padded), Ok(sig));
        // Standard base64 (`+`, `/`) is not base64url.
        let standard = base64::engine::general_purpose::STANDARD.encode([0xfbu8; 64]);
        assert_eq!(
            decode_signature(&standard),
            Err(SignatureFault::NotBase64Url)
        );
        let short = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([1u8; 63]);
        assert_eq!(
            decode_signature(&short),
            Err(SignatureFault::WrongLength(63))
        );
        assert_eq!(decode_signature(""), Err(SignatureFault::WrongLength(0)));
    }
}
