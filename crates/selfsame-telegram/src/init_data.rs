//! Mini App initData: `Telegram.WebApp.initData`, checked with the bot token.
//!
//! Telegram's rule (<https://core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app>):
//! secret key = HMAC-SHA256(key = `"WebAppData"`, msg = bot token), the 32
//! raw bytes; the data is authentic when `hash` is the lowercase hex
//! HMAC-SHA256(secret key, data-check-string). The data-check-string covers
//! every received field but `hash` — `signature` included, when present.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use selfsame_telegram::{init_data, BotToken, Freshness};
//!
//! // A real Mini App launch, with the token published beside it.
//! let token = BotToken::parse("5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8")?;
//! let raw = "query_id=AAHdF6IQAAAAAN0XohDhrOrc\
//!     &user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%22%2C%22last_name%22\
//!     %3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22\
//!     %2C%22is_premium%22%3Atrue%7D&auth_date=1662771648\
//!     &hash=c501b71e775f74ce10e377dea85a7ea24ecd640b223ea86dfe453e0eaed2e2b2";
//! let now = UNIX_EPOCH + Duration::from_secs(1662771648 + 60);
//! let data = init_data::validate(raw, &token, Freshness::within(Duration::from_secs(3600), now))?;
//! assert_eq!(data.user.unwrap().id, 279058397);
//! assert_eq!(data.query_id.as_deref(), Some("AAHdF6IQAAAAAN0XohDhrOrc"));
//! # Ok::<(), selfsame_telegram::Error>(())
//! ```

use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Error;
use crate::freshness::{parse_auth_date, unix_secs, Freshness};
use crate::signed::{Fields, SecretKey};
use crate::token::BotToken;

/// The label Telegram uses to derive the Mini App secret key.
pub const KEY_LABEL: &[u8] = b"WebAppData";

/// A Telegram user inside initData (`user`, `receiver`): Telegram's
/// `WebAppUser`. Fields this version does not know are kept in `extra`, so
/// nothing Telegram sends is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// The user's or bot's id (up to 52 significant bits).
    pub id: i64,
    /// Whether this is a bot (sent for `receiver`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_bot: Option<bool>,
    /// First name.
    pub first_name: String,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// Username, without `@`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// IETF language tag of the user's client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
    /// Whether the user has Telegram Premium.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_premium: Option<bool>,
    /// Whether the user added the bot to the attachment menu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_to_attachment_menu: Option<bool>,
    /// Whether the user allowed the bot to message them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allows_write_to_pm: Option<bool>,
    /// URL of the user's profile photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    /// Every other field, as received.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The chat a Mini App was opened from (`chat`): Telegram's `WebAppChat`.
/// Unknown fields are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chat {
    /// The chat's id.
    pub id: i64,
    /// `group`, `supergroup` or `channel`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The chat's title.
    pub title: String,
    /// The chat's username.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// URL of the chat's photo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_url: Option<String>,
    /// Every other field, as received.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Validated initData: every received field, and the well-known ones typed.
///
/// Serializes (serde) to one JSON object with every received field in the
/// received order: `user`, `receiver` and `chat` as objects, `auth_date` as
/// a number, everything else as the received string.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct InitData {
    /// Every received field, decoded, in received order (`hash` and
    /// `signature` included).
    pub fields: Fields,
    /// When Telegram signed the data (`auth_date`).
    pub auth_date: SystemTime,
    /// The `hash` field, when present (always, after [`validate`]).
    pub hash: Option<String>,
    /// The Ed25519 `signature` field, when present.
    pub signature: Option<String>,
    /// `query_id`: for answering through `answerWebAppQuery`.
    pub query_id: Option<String>,
    /// `user`: who opened the Mini App.
    pub user: Option<User>,
    /// `receiver`: the chat partner, when opened from an attachment menu.
    pub receiver: Option<User>,
    /// `chat`: the group or channel the Mini App was opened from.
    pub chat: Option<Chat>,
    /// `chat_type`: `sender`, `private`, `group`, `supergroup` or `channel`.
    pub chat_type: Option<String>,
    /// `chat_instance`: a global id of the chat the app was opened from.
    pub chat_instance: Option<String>,
    /// `start_param`: the `startapp` parameter of the launch link.
    pub start_param: Option<String>,
}

impl InitData {
    /// `auth_date` in seconds since the unix epoch.
    pub fn auth_date_unix(&self) -> u64 {
        unix_secs(self.auth_date)
    }

    /// Types the fields of data whose signature was already checked:
    /// `auth_date` (required), its age, then the JSON fields.
    pub(crate) fn from_checked(fields: Fields, freshness: Freshness) -> Result<Self, Error> {
        let auth_date = parse_auth_date(fields.get("auth_date").ok_or(Error::MissingAuthDate)?)?;
        freshness.check(auth_date)?;
        let text = |key: &str| fields.get(key).map(str::to_owned);
        Ok(InitData {
            auth_date,
            hash: text("hash"),
            signature: text("signature"),
            query_id: text("query_id"),
            user: json_field(&fields, "user")?,
            receiver: json_field(&fields, "receiver")?,
            chat: json_field(&fields, "chat")?,
            chat_type: text("chat_type"),
            chat_instance: text("chat_instance"),
            start_param: text("start_param"),
            fields,
        })
    }
}

impl Serialize for InitData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (key, value) in self.fields.iter() {
            match key {
                "auth_date" => map.serialize_entry(key, &self.auth_date_unix())?,
                "user" => map.serialize_entry(key, &self.user)?,
                "receiver" => map.serialize_entry(key, &self.receiver)?,
                "chat" => map.serialize_entry(key, &self.chat)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

fn json_field<T: DeserializeOwned>(fields: &Fields, key: &str) -> Result<Option<T>, Error> {
    fields
        .get(key)
        .map(|text| {
            serde_json::from_str(text).map_err(|e| Error::BadField {
                field: key.to_owned(),
                reason: e.to_string(),
            })
        })
        .transpose()
}

/// The Mini App secret key of a bot: HMAC-SHA256(key = `"WebAppData"`, msg =
/// token). A backend may store this instead of the token and call
/// [`validate_with_key`].
pub fn secret_key(token: &BotToken) -> SecretKey {
    SecretKey::derive(KEY_LABEL, token.expose().as_bytes())
}

/// Validates initData with the bot token: parses strictly, checks `hash`
/// (lowercase hex, constant time), then requires `auth_date` and checks
/// its age, then decodes `user`, `receiver` and `chat`.
pub fn validate(
    init_data: &str,
    token: &BotToken,
    freshness: Freshness,
) -> Result<InitData, Error> {
    validate_with_key(init_data, &secret_key(token), freshness)
}

/// [`validate`] with the secret key from [`secret_key`] instead of the token.
pub fn validate_with_key(
    init_data: &str,
    key: &SecretKey,
    freshness: Freshness,
) -> Result<InitData, Error> {
    let fields = Fields::parse(init_data)?;
    let hash = fields.get("hash").ok_or(Error::MissingHash)?;
    if !key.verify(fields.data_check_string(&["hash"]).as_bytes(), hash) {
        return Err(Error::HashMismatch);
    }
    InitData::from_checked(fields, freshness)
}

/// Signs `fields` as Telegram would and returns the initData text: the
/// fields in their order (any `hash` among them dropped), then `hash`. For
/// tests and local development of a Mini App backend.
///
/// ```
/// use selfsame_telegram::{init_data, BotToken, Fields, Freshness};
///
/// let token = BotToken::parse("123456:test-token")?;
/// let mut fields = Fields::new();
/// fields.push("auth_date", "1700000000");
/// fields.push("user", r#"{"id":42,"first_name":"Ada"}"#);
/// let raw = init_data::sign(&fields, &token);
/// let data = init_data::validate(&raw, &token, Freshness::ANY)?;
/// assert_eq!(data.user.unwrap().first_name, "Ada");
/// # Ok::<(), selfsame_telegram::Error>(())
/// ```
pub fn sign(fields: &Fields, token: &BotToken) -> String {
    sign_with_key(fields, &secret_key(token))
}

pub(crate) fn sign_with_key(fields: &Fields, key: &SecretKey) -> String {
    let mut fields = fields.clone();
    fields.remove("hash");
    let hash = key.sign(fields.data_check_string(&[]).as_bytes());
    fields.push("hash", &hash);
    fields.encode()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_key_is_hmac_of_token_under_webappdata() {
        // tma.js publishes this derived key for its test token
        // (packages/init-data-node/src/entries/node.test.ts, `secretTokenHashed`).
        let token = BotToken::parse("5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8").unwrap();
        let key = secret_key(&token);
        let probe = key.mac(b"");
        let expected = SecretKey::from_bytes(
            hex::decode("a5c609aa52f63cb5e6d8ceb6e4138726ea82bbc36bb786d64482d445ea38ee5f")
                .unwrap()
                .try_into()
                .unwrap(),
        );
        assert_eq!(probe, expected.mac(b""));
    }

    #[test]
    fn unknown_user_fields_are_kept() {
        let user: User =
            serde_json::from_str(r#"{"id":1,"first_name":"A","emoji_status":"x","n":[1]}"#)
                .unwrap();
        assert_eq!(user.extra["emoji_status"], "x");
        let back = serde_json::to_value(&user).unwrap();
        assert_eq!(back["n"], serde_json::json!([1]));
    }
}
