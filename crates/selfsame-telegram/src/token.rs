//! The bot token: `<bot id>:<secret>`, held in a type that never prints it.

use std::fmt;

/// Why a string is not a bot token. Never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the form `<digits>:<secret>`.
    #[error("not a bot token: expected <digits>:<secret> as BotFather gives it (the value is not shown)")]
    BadFormat,
}

/// A Telegram bot token. `Debug` prints `BotToken(<id>:<redacted>)`; there is
/// no `Display`, so it cannot end up in a message by accident.
#[derive(Clone)]
pub struct BotToken {
    text: String,
    bot_id: u64,
}

impl fmt::Debug for BotToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotToken({}:<redacted>)", self.bot_id)
    }
}

impl BotToken {
    /// Parses `<digits>:<secret>`; the secret must be non-empty printable
    /// ASCII without spaces. Surrounding whitespace (a trailing newline from
    /// a file) is trimmed.
    pub fn parse(text: &str) -> Result<Self, TokenError> {
        let text = text.trim();
        let (id, secret) = text.split_once(':').ok_or(TokenError::BadFormat)?;
        if id.is_empty() || id.len() > 19 || !id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::BadFormat);
        }
        if secret.is_empty() || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::BadFormat);
        }
        let bot_id = id.parse().map_err(|_| TokenError::BadFormat)?;
        Ok(BotToken {
            text: text.to_owned(),
            bot_id,
        })
    }

    /// The numeric bot id before the `:`.
    pub fn bot_id(&self) -> u64 {
        self.bot_id
    }

    /// The whole token string, for key derivation only.
    pub fn expose(&self) -> &str {
        &self.text
    }
}
