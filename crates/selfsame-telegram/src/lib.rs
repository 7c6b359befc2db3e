//! Exact validation of Telegram-signed data, and the signed-fields primitive
//! that selfsame checkpoints share with it.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod signed;
pub mod token;

pub use signed::{Fields, ParseError, SecretKey};
pub use token::{BotToken, TokenError};
