//! `.selfsame/identity`: the vault's Ed25519 identity key, its public half
//! in the clear and its seed sealed under a key only the bot's token
//! derives. Bytes ↔ types only; the sealing is [`crate::crypto`]'s.
//!
//! ```text
//! selfsame-identity 1
//! public <base64url, no padding, 32 bytes>
//! sealed <base64url, no padding: nonce (12) || ciphertext (32) || tag (16)>
//! ```

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// The first line of an identity file.
pub const HEADER: &str = "selfsame-identity 1";
/// How a public key is shown for people to publish:
/// `selfsame:ed25519:<base64url>`.
pub const DISPLAY_PREFIX: &str = "selfsame:ed25519:";
/// Bytes of the sealed seed: nonce, ciphertext, tag.
pub const SEALED_LEN: usize = NONCE_LEN + 32 + 16;
/// Bytes of a nonce.
pub const NONCE_LEN: usize = 12;
/// Most bytes an identity file can hold (it holds about 170).
pub const MAX_LEN: u64 = 1024;

/// Why bytes are not an identity file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityFileError {
    /// Not the three lines `selfsame-identity 1`, `public …`, `sealed …`,
    /// each ending in a newline.
    #[error(
        "not an identity file (expected the lines `{HEADER}`, `public <key>`, `sealed <seed>`)"
    )]
    Shape,
    /// The `public` line does not hold a 32-byte key in base64url.
    #[error("the `public` line is not a 32-byte key in base64url without padding")]
    Public,
    /// The `sealed` line does not hold a sealed seed in base64url.
    #[error("the `sealed` line is not {SEALED_LEN} bytes in base64url without padding")]
    Sealed,
}

/// An identity file's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityFile {
    /// The Ed25519 public key.
    pub public: [u8; 32],
    /// nonce || ciphertext || tag of the 32-byte seed.
    pub sealed: [u8; SEALED_LEN],
}

/// base64url without padding, canonical: what selfsame writes for keys and
/// signatures.
pub fn encode_b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes base64url without padding into exactly `N` bytes; only the
/// canonical encoding (the one [`encode_b64url`] writes) is accepted.
pub fn decode_b64url<const N: usize>(text: &str) -> Option<[u8; N]> {
    let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let out: [u8; N] = bytes.as_slice().try_into().ok()?;
    (encode_b64url(&out) == text).then_some(out)
}

/// The public key as people publish it: `selfsame:ed25519:<base64url>`.
pub fn display_public(public: &[u8; 32]) -> String {
    format!("{DISPLAY_PREFIX}{}", encode_b64url(public))
}

/// Parses `selfsame:ed25519:<base64url>` (or the bare base64url).
pub fn parse_display_public(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    decode_b64url(text.strip_prefix(DISPLAY_PREFIX).unwrap_or(text))
}

impl IdentityFile {
    /// The associated data of the sealed seed: the first two lines, both
    /// newlines included.
    pub fn associated_data(public: &[u8; 32]) -> String {
        format!("{HEADER}\npublic {}\n", encode_b64url(public))
    }

    /// The file's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Self::associated_data(&self.public);
        out.push_str("sealed ");
        out.push_str(&encode_b64url(&self.sealed));
        out.push('\n');
        out.into_bytes()
    }

    /// Parses an identity file: exactly the bytes [`IdentityFile::to_bytes`]
    /// writes.
    pub fn parse(bytes: &[u8]) -> Result<IdentityFile, IdentityFileError> {
        let text = std::str::from_utf8(bytes).map_err(|_| IdentityFileError::Shape)?;
        let body = text.strip_suffix('\n').ok_or(IdentityFileError::Shape)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [header, public, sealed] = lines[..] else {
            return Err(IdentityFileError::Shape);
        };
        if header != HEADER {
            return Err(IdentityFileError::Shape);
        }
        let public = public
            .strip_prefix("public ")
            .ok_or(IdentityFileError::Shape)?;
        let sealed = sealed
            .strip_prefix("sealed ")
            .ok_or(IdentityFileError::Shape)?;
        Ok(IdentityFile {
            public: decode_b64url(public).ok_or(IdentityFileError::Public)?,
            sealed: decode_b64url(sealed).ok_or(IdentityFileError::Sealed)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> IdentityFile {
        IdentityFile {
            public: [7; 32],
            sealed: [9; SEALED_LEN],
        }
    }

    #[test]
    fn the_file_round_trips_and_nothing_else_parses() {
        let f = sample();
        let bytes = f.to_bytes();
        assert_eq!(IdentityFile::parse(&bytes), Ok(f.clone()));
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("selfsame-identity 1\npublic BwcH"));
        let bad = [
            text.trim_end().to_owned(),
            text.replace("identity 1", "identity 2"),
            format!("{text}\n"),
            text.replace('\n', "\r\n"),
            text.replace("public ", "public  "),
            text.replace("BwcH", "BwcH="),
            text.replace("sealed ", "sealed\t"),
        ];
        for b in bad {
            assert!(IdentityFile::parse(b.as_bytes()).is_err(), "{b:?}");
        }
    }

    #[test]
    fn only_the_canonical_base64url_decodes() {
        let key = [0xfbu8; 32];
        let text = encode_b64url(&key);
        assert_eq!(decode_b64url::<32>(&text), Some(key));
        // Padding, the standard alphabet, non-zero trailing bits: refused.
        assert_eq!(decode_b64url::<32>(&format!("{text}=")), None);
        assert_eq!(
            decode_b64url::<32>(&text.replace('-', "+").replace('_', "/")),
            None
        );
        let last = text.chars().last().unwrap();
        let bumped = format!("{}{}", &text[..text.len() - 1], (last as u8 + 1) as char);
        assert_eq!(decode_b64url::<32>(&bumped), None);
        assert_eq!(decode_b64url::<32>(&encode_b64url(&[1u8; 31])), None);
        assert_eq!(parse_display_public(&display_public(&key)), Some(key));
        assert_eq!(parse_display_public(&encode_b64url(&key)), Some(key));
        assert_eq!(parse_display_public("selfsame:ed25519:"), None);
        assert_eq!(parse_display_public("selfsame:rsa:AAAA"), None);
    }

    proptest! {
        /// Any bytes: parsing never panics, and what parses prints back
        /// byte for byte.
        #[test]
        fn parse_is_exact(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(f) = IdentityFile::parse(&bytes) {
                prop_assert_eq!(f.to_bytes(), bytes);
            }
        }

        /// Any key and sealed seed round-trip; any one-byte change is refused
        /// or parses to other values.
        #[test]
        fn round_trip_and_flips(public in any::<[u8; 32]>(), seed in any::<[u8; 32]>(),
                                at in any::<proptest::sample::Index>(), bit in 0u8..8) {
            let mut sealed = [0u8; SEALED_LEN];
            sealed[..32].copy_from_slice(&seed);
            let f = IdentityFile { public, sealed };
            let mut bytes = f.to_bytes();
            prop_assert_eq!(IdentityFile::parse(&bytes), Ok(f.clone()));
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
            prop_assert_ne!(IdentityFile::parse(&bytes), Ok(f));
        }
    }
}
