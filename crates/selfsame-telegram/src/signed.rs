//! Signed fields: the shape shared by Telegram's initData, its Login Widget
//! data and selfsame checkpoints.
//!
//! A record is a list of `key=value` pairs in `application/x-www-form-urlencoded`
//! form. Its *data-check-string* is every pair but the excluded ones, decoded,
//! sorted by key bytes, written `key=value` and joined by `\n`. The MAC is
//! `HMAC-SHA256(secret key, data-check-string)` in lowercase hex.
//!
//! ```
//! use selfsame_telegram::signed::{Fields, SecretKey};
//!
//! let key = SecretKey::derive(b"WebAppData", b"123456:secret");
//! let mut fields = Fields::new();
//! fields.push("auth_date", "1700000000");
//! fields.push("query_id", "AAH");
//! let mac = key.sign(fields.data_check_string(&["hash"]).as_bytes());
//! fields.push("hash", &mac);
//!
//! let received = Fields::parse(&fields.encode()).unwrap();
//! let dcs = received.data_check_string(&["hash"]);
//! assert!(key.verify(dcs.as_bytes(), received.get("hash").unwrap()));
//! ```

use std::collections::HashSet;
use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Why a form-urlencoded record could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The input was empty.
    #[error("empty input")]
    Empty,
    /// A pair had no `=`.
    #[error("pair {index} has no '='")]
    MissingEquals {
        /// Zero-based position of the pair.
        index: usize,
    },
    /// A `%` was not followed by two hex digits.
    #[error("pair {index} has a bad percent escape")]
    BadEscape {
        /// Zero-based position of the pair.
        index: usize,
    },
    /// The decoded bytes were not UTF-8.
    #[error("pair {index} is not valid UTF-8 once decoded")]
    InvalidUtf8 {
        /// Zero-based position of the pair.
        index: usize,
    },
    /// The same key appeared twice.
    #[error("duplicate key {key:?}")]
    DuplicateKey {
        /// The repeated key, decoded.
        key: String,
    },
}

/// An ordered list of decoded `key=value` pairs with unique keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pairs: Vec<(String, String)>,
}

impl Fields {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses `application/x-www-form-urlencoded` text strictly: split on
    /// `&`, split each pair at its first `=`, *then* percent-decode each side
    /// (`+` is a space). A pair without `=`, a bad escape, invalid UTF-8 or a
    /// repeated key is an error. Empty values are kept.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        if input.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut fields = Fields::new();
        // A set, not a scan of the pairs: untrusted input with many pairs
        // must not cost quadratic time.
        let mut seen = HashSet::new();
        for (index, pair) in input.split('&').enumerate() {
            let (k, v) = pair
                .split_once('=')
                .ok_or(ParseError::MissingEquals { index })?;
            let key = decode(k, index)?;
            let value = decode(v, index)?;
            if !seen.insert(key.clone()) {
                return Err(ParseError::DuplicateKey { key });
            }
            fields.pairs.push((key, value));
        }
        Ok(fields)
    }

    /// Appends a pair. Replaces the value if the key is already present, so
    /// keys stay unique.
    pub fn push(&mut self, key: &str, value: &str) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value.to_owned(),
            None => self.pairs.push((key.to_owned(), value.to_owned())),
        }
    }

    /// Removes a key, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        let at = self.pairs.iter().position(|(k, _)| k == key)?;
        Some(self.pairs.remove(at).1)
    }

    /// The decoded value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs in the order they were received or pushed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Encodes the pairs in their order, WHATWG `application/x-www-form-urlencoded`
    /// style: ASCII letters, digits and `*-._` stay, a space becomes `+`,
    /// every other byte of the UTF-8 text becomes `%XX` (uppercase hex).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.extend(form_urlencoded::byte_serialize(k.as_bytes()));
            out.push('=');
            out.extend(form_urlencoded::byte_serialize(v.as_bytes()));
        }
        out
    }

    /// The data-check-string: every pair whose key is not in `exclude`,
    /// sorted by key bytes, `key=value`, joined by `\n`, no trailing newline.
    pub fn data_check_string(&self, exclude: &[&str]) -> String {
        let mut kept: Vec<&(String, String)> = self
            .pairs
            .iter()
            .filter(|(k, _)| !exclude.contains(&k.as_str()))
            .collect();
        kept.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut out = String::new();
        for (i, (k, v)) in kept.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }
}

fn decode(text: &str, index: usize) -> Result<String, ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .ok_or(ParseError::BadEscape { index })?;
                let hi = hex_val(hex[0]).ok_or(ParseError::BadEscape { index })?;
                let lo = hex_val(hex[1]).ok_or(ParseError::BadEscape { index })?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ParseError::InvalidUtf8 { index })
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A 32-byte HMAC key. It never prints its bytes.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl SecretKey {
    /// `HMAC-SHA256(key = label, msg = secret)`, the raw 32 bytes: Telegram's
    /// initData construction (label `WebAppData`), which is HKDF-Extract
    /// with the label as salt.
    pub fn derive(label: &[u8], secret: &[u8]) -> Self {
        let mut mac = HmacSha256::new_from_slice(label).expect("HMAC takes any key length");
        mac.update(secret);
        SecretKey(mac.finalize().into_bytes().into())
    }

    /// Wraps raw key bytes (for example `SHA-256(token)` for the Login Widget).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretKey(bytes)
    }

    /// The raw MAC of `message`.
    pub fn mac(&self, message: &[u8]) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    /// The MAC of `message` as lowercase hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.mac(message))
    }

    /// Whether `hex_mac` is the lowercase hex MAC of `message`. The
    /// comparison runs in constant time; uppercase hex does not match.
    pub fn verify(&self, message: &[u8], hex_mac: &str) -> bool {
        let expected = self.sign(message);
        expected.as_bytes().ct_eq(hex_mac.as_bytes()).into()
    }
}
