//! The platform seam: a credential says which platform and which account
//! the agent is, and holds the secret the vault's keys derive from
//! ([`super::Keys`]). Telegram's bot token today; another platform adds a
//! variant here and nothing in the verdict logic changes.

use std::fmt;

use selfsame_telegram::{BotToken, TokenError};

/// The platforms whose credentials can bind a vault to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// A Telegram bot: its token `<bot id>:<secret>` from BotFather.
    Telegram,
}

impl Platform {
    /// Every platform with its name in `config.toml` and checkpoints.
    pub const ALL: [(Platform, &'static str); 1] = [(Platform::Telegram, "telegram")];

    /// The name in `config.toml` and checkpoints (`platform`).
    pub fn as_str(self) -> &'static str {
        crate::format::name_of(&Self::ALL, self)
    }

    /// The platform named `name`, if selfsame knows it.
    pub fn parse(name: &str) -> Option<Platform> {
        crate::format::value_of(&Self::ALL, name)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why text is not a credential of a platform. Never holds the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// Not a Telegram bot token `<digits>:<secret>`.
    #[error("not a Telegram bot token of the form <digits>:<secret>")]
    Telegram(#[source] TokenError),
}

/// A credential: the platform, the account it proves, and the secret the
/// vault's keys derive from. It never prints its secret.
#[derive(Clone)]
pub struct Credential {
    secret: Secret,
}

#[derive(Clone)]
enum Secret {
    Telegram(BotToken),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("platform", &self.platform())
            .field("account", &self.account_id())
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// A Telegram bot's credential.
    pub fn telegram(token: BotToken) -> Credential {
        Credential {
            secret: Secret::Telegram(token),
        }
    }

    /// Parses `text` as a credential of `platform` (a Telegram bot token).
    pub fn parse(platform: Platform, text: &str) -> Result<Credential, CredentialError> {
        match platform {
            Platform::Telegram => BotToken::parse(text)
                .map(Credential::telegram)
                .map_err(CredentialError::Telegram),
        }
    }

    /// The platform.
    pub fn platform(&self) -> Platform {
        match self.secret {
            Secret::Telegram(_) => Platform::Telegram,
        }
    }

    /// The account the credential proves (a Telegram bot's id).
    pub fn account_id(&self) -> u64 {
        match &self.secret {
            Secret::Telegram(t) => t.bot_id(),
        }
    }

    /// The bytes the vault's keys derive from (the whole token).
    pub(crate) fn key_material(&self) -> &[u8] {
        match &self.secret {
            Secret::Telegram(t) => t.expose().as_bytes(),
        }
    }

    /// The Telegram bot token, for alerts through the Bot API.
    pub(crate) fn telegram_token(&self) -> Option<&BotToken> {
        match &self.secret {
            Secret::Telegram(t) => Some(t),
        }
    }

    /// The texts that must never leave the process: the whole credential,
    /// and its secret part alone.
    pub(crate) fn secret_texts(&self) -> [&str; 2] {
        match &self.secret {
            Secret::Telegram(t) => {
                let whole = t.expose();
                [whole, whole.split_once(':').map_or(whole, |(_, s)| s)]
            }
        }
    }
}
