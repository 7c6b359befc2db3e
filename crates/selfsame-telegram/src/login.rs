//! Telegram Login Widget data, checked with the bot token.
//!
//! Telegram's rule (<https://core.telegram.org/widgets/login#checking-authorization>):
//! secret key = SHA-256(bot token); the data is authentic when `hash` is the
//! lowercase hex HMAC-SHA256(secret key, data-check-string) over **all**
//! received fields but `hash` — never a fixed list of widget fields, since
//! Telegram may add fields.
//!
//! The widget hands the data over either as query parameters of the
//! `data-auth-url` redirect ([`validate`]) or as a JS object to the
//! `data-onauth` callback; for the latter, build [`Fields`] from the
//! object's entries (numbers written as decimal text) and call
//! [`validate_fields`].
//!
//! ```
//! use selfsame_telegram::{login, BotToken, Freshness};
//!
//! let token = BotToken::parse("123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11")?;
//! let raw = "id=42&first_name=John&last_name=Smith&username=username\
//!     &photo_url=https%3A%2F%2Ft.me%2Fi%2Fuserpic%2F320%2Fpicname.jpg&auth_date=1565810688\
//!     &hash=c303db2b5a06fe41d23a9b14f7c545cfc11dcc7473c07c9c5034ae60062461ce";
//! let who = login::validate(raw, &token, Freshness::ANY)?;
//! assert_eq!(who.id, 42);
//! assert_eq!(who.username.as_deref(), Some("username"));
//! # Ok::<(), selfsame_telegram::Error>(())
//! ```

use std::time::SystemTime;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::freshness::{parse_auth_date, unix_secs, Freshness};
use crate::signed::{Fields, SecretKey};
use crate::token::BotToken;

/// Validated Login Widget data: every received field, and the known ones
/// typed.
///
/// Serializes (serde) to one JSON object with every received field in the
/// received order: `id` and `auth_date` as numbers, the rest as strings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoginData {
    /// Every received field, decoded, in received order (`hash` included).
    pub fields: Fields,
    /// The user's id.
    pub id: i64,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// Username, without `@`.
    pub username: Option<String>,
    /// URL of the profile photo.
    pub photo_url: Option<String>,
    /// When the user logged in (`auth_date`).
    pub auth_date: SystemTime,
    /// The `hash` field.
    pub hash: String,
}

impl LoginData {
    /// `auth_date` in seconds since the unix epoch.
    pub fn auth_date_unix(&self) -> u64 {
        unix_secs(self.auth_date)
    }
}

impl Serialize for LoginData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (key, value) in self.fields.iter() {
            match key {
                "id" => map.serialize_entry(key, &self.id)?,
                "auth_date" => map.serialize_entry(key, &self.auth_date_unix())?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

/// The Login Widget secret key of a bot: SHA-256(token).
pub fn secret_key(token: &BotToken) -> SecretKey {
    SecretKey::from_bytes(Sha256::digest(token.expose().as_bytes()).into())
}

/// Validates Login Widget data given as query text (`id=…&first_name=…&…&hash=…`).
pub fn validate(data: &str, token: &BotToken, freshness: Freshness) -> Result<LoginData, Error> {
    validate_fields(Fields::parse(data)?, token, freshness)
}

/// Validates Login Widget data already split into fields.
pub fn validate_fields(
    fields: Fields,
    token: &BotToken,
    freshness: Freshness,
) -> Result<LoginData, Error> {
    let key = secret_key(token);
    let hash = fields.get("hash").ok_or(Error::MissingHash)?.to_owned();
    if !key.verify(fields.data_check_string(&["hash"]).as_bytes(), &hash) {
        return Err(Error::HashMismatch);
    }
    let auth_date = parse_auth_date(fields.get("auth_date").ok_or(Error::MissingAuthDate)?)?;
    freshness.check(auth_date)?;
    let id = parse_id(fields.get("id"))?;
    let text = |key: &str| fields.get(key).map(str::to_owned);
    Ok(LoginData {
        id,
        first_name: text("first_name"),
        last_name: text("last_name"),
        username: text("username"),
        photo_url: text("photo_url"),
        auth_date,
        hash,
        fields,
    })
}

/// Signs `fields` as the Login Widget would and returns the query text:
/// the fields in their order (any `hash` dropped), then `hash`. For tests.
pub fn sign(fields: &Fields, token: &BotToken) -> String {
    crate::init_data::sign_with_key(fields, &secret_key(token))
}

fn parse_id(text: Option<&str>) -> Result<i64, Error> {
    let bad = |reason: &str| Error::BadField {
        field: "id".to_owned(),
        reason: reason.to_owned(),
    };
    let text = text.ok_or_else(|| bad("missing"))?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("not a decimal integer"));
    }
    text.parse().map_err(|_| bad("out of range"))
}
