//! Exact validation of Telegram-signed data — Mini App initData, Login Widget
//! data and Ed25519 third-party signatures — and the signed-fields primitive
//! that selfsame checkpoints share with it.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use selfsame_telegram::{init_data, BotToken, Freshness};
//!
//! # let raw_from_client = {
//! #     let token = BotToken::parse("123456:test-token")?;
//! #     let mut f = selfsame_telegram::Fields::new();
//! #     let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
//! #     f.push("auth_date", &now.to_string());
//! #     f.push("user", r#"{"id":42,"first_name":"Ada"}"#);
//! #     init_data::sign(&f, &token)
//! # };
//! // On the backend: the bot token (from the environment in real life), and
//! // initData from the Mini App (`Telegram.WebApp.initData`, sent e.g. as
//! // `Authorization: tma <initData>`).
//! let token = BotToken::parse("123456:test-token")?;
//! let fresh = Freshness::within(Duration::from_secs(3600), SystemTime::now());
//! let data = init_data::validate(&raw_from_client, &token, fresh)?;
//! let user = data.user.expect("opened by a user");
//! assert_eq!((user.id, user.first_name.as_str()), (42, "Ada"));
//! # Ok::<(), selfsame_telegram::Error>(())
//! ```
//!
//! | module | checks | key |
//! |---|---|---|
//! | [`init_data`] | Mini App `hash` | HMAC-SHA256(`"WebAppData"`, token) |
//! | [`login`] | Login Widget `hash` | SHA-256(token) |
//! | [`third_party`] | Mini App Ed25519 `signature`, no token | Telegram's public key |
//! | [`signed`] | the shared shape: strict parsing, data-check-string, MAC | any |
//!
//! Everything is a pure function: no I/O, no clock (the caller passes `now`
//! in [`Freshness`]), no async. Errors are one enum, [`Error`], that never
//! holds the token.
//!
//! The rules, each pinned by a test and by the vectors in
//! `tests/vectors/telegram/`:
//! * parsing splits on `&`, then each pair at its first `=`, *then*
//!   percent-decodes (`+` is a space); a pair without `=`, a bad escape,
//!   invalid UTF-8 or a repeated key refuses the whole input;
//! * the data-check-string is every field but `hash` (so `signature` is
//!   covered by `hash`), values as decoded, sorted by key bytes, joined by
//!   `\n`;
//! * `hash` must be lowercase hex and is compared in constant time;
//! * `auth_date` is required; data is expired only when
//!   `now - auth_date > max_age`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod error;
pub mod freshness;
pub mod init_data;
pub mod login;
pub mod signed;
pub mod third_party;
pub mod token;

pub use error::{Error, SignatureFault};
pub use freshness::Freshness;
pub use init_data::{Chat, InitData, User};
pub use login::LoginData;
pub use signed::{Fields, ParseError, SecretKey};
pub use token::{BotToken, TokenError};

// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
