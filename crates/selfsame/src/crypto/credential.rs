//! The platform seam: a credential says which platform and which account
//! the agent is, and holds the secret the vault's keys derive from
//! ([`super::Keys`]). A Telegram bot token or a Discord bot token; another
//! platform adds a variant here and nothing in the verdict logic changes.

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use selfsame_telegram::{BotToken, TokenError};

/// The platforms whose credentials can bind a vault to an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// A Telegram bot: its token `<bot id>:<secret>` from BotFather.
    Telegram,
    /// A Discord bot: its token `<base64 of the bot's user id>.<…>.<…>`
    /// from the Developer Portal.
    Discord,
}

impl Platform {
    /// Every platform with its name in `config.toml` and checkpoints.
    pub const ALL: [(Platform, &'static str); 2] = [
        (Platform::Telegram, "telegram"),
        (Platform::Discord, "discord"),
    ];

    /// The name in `config.toml` and checkpoints (`platform`).
    pub fn as_str(self) -> &'static str {
        crate::format::name_of(&Self::ALL, self)
    }

    /// The platform named `name`, if selfsame knows it.
    pub fn parse(name: &str) -> Option<Platform> {
        crate::format::value_of(&Self::ALL, name)
    }

    /// The env var that holds the token when `config.toml` names none
    /// (`token_env`).
    pub fn default_token_env(self) -> &'static str {
        match self {
            Platform::Telegram => "TELEGRAM_BOT_TOKEN",
            Platform::Discord => "DISCORD_BOT_TOKEN",
        }
    }

    /// The shape of the platform's token, for people (never a value).
    pub fn token_shape(self) -> &'static str {
        match self {
            Platform::Telegram => "<digits>:<secret> as BotFather gives it",
            Platform::Discord => {
                "<base64 of the bot's id>.<timestamp>.<signature> as the Developer Portal gives it"
            }
        }
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
    /// Not a Discord bot token.
    #[error("not a Discord bot token: {0}")]
    Discord(DiscordTokenError),
}

/// Why text is not a Discord bot token. Never holds the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DiscordTokenError {
    /// Not three non-empty `.`-separated segments of printable ASCII.
    #[error("expected three non-empty segments separated by `.`, printable ASCII without spaces")]
    Shape,
    /// The first segment is not base64 (standard or URL-safe alphabet,
    /// padding optional).
    #[error("the first segment is not base64")]
    NotBase64,
    /// The first segment does not decode to the bot's numeric user id.
    #[error("the first segment does not decode to a numeric bot id")]
    NotAnId,
}

/// A Discord bot token: `<base64 of the bot's user id>.<…>.<…>`. Its
/// `Debug` prints the id only; there is no `Display`.
#[derive(Clone)]
pub struct DiscordToken {
    text: String,
    bot_id: u64,
}

impl fmt::Debug for DiscordToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DiscordToken({}.<redacted>)", self.bot_id)
    }
}

/// base64 of either alphabet's characters, padding optional: the bot id
/// segment of a Discord token.
fn id_engine(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

impl DiscordToken {
    /// Parses a Discord bot token: three non-empty `.`-separated segments
    /// of printable ASCII without spaces, the first of which is the base64
    /// (standard or URL-safe alphabet, padding optional) of the bot's user
    /// id in ASCII digits. Surrounding whitespace (a trailing newline from a
    /// file) is trimmed.
    pub fn parse(text: &str) -> Result<DiscordToken, DiscordTokenError> {
        let text = text.trim();
        let segments: Vec<&str> = text.split('.').collect();
        if segments.len() != 3
            || segments.iter().any(|s| s.is_empty())
            || !text.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(DiscordTokenError::Shape);
        }
        let first = segments[0];
        let decoded = id_engine(&alphabet::STANDARD)
            .decode(first)
            .or_else(|_| id_engine(&alphabet::URL_SAFE).decode(first))
            .map_err(|_| DiscordTokenError::NotBase64)?;
        if decoded.is_empty() || decoded.len() > 20 || !decoded.iter().all(u8::is_ascii_digit) {
            return Err(DiscordTokenError::NotAnId);
        }
        let bot_id = std::str::from_utf8(&decoded)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or(DiscordTokenError::NotAnId)?;
        Ok(DiscordToken {
            text: text.to_owned(),
            bot_id,
        })
    }

    /// The bot's user id (the first segment, decoded).
    pub fn bot_id(&self) -> u64 {
        self.bot_id
    }
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
    Discord(DiscordToken),
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

    /// A Discord bot's credential.
    pub fn discord(token: DiscordToken) -> Credential {
        Credential {
            secret: Secret::Discord(token),
        }
    }

    /// Parses `text` as a credential of `platform`.
    pub fn parse(platform: Platform, text: &str) -> Result<Credential, CredentialError> {
        match platform {
            Platform::Telegram => BotToken::parse(text)
                .map(Credential::telegram)
                .map_err(CredentialError::Telegram),
            Platform::Discord => DiscordToken::parse(text)
                .map(Credential::discord)
                .map_err(CredentialError::Discord),
        }
    }

    /// Parses `text` as a credential of `expected`, else of any other
    /// platform whose tokens it is shaped like (the shapes do not overlap):
    /// another platform's token then proves another account, which the
    /// vault checks name, instead of being refused as malformed. The error
    /// is `expected`'s.
    pub fn parse_any(expected: Platform, text: &str) -> Result<Credential, CredentialError> {
        Credential::parse(expected, text).or_else(|e| {
            Platform::ALL
                .iter()
                .filter(|(p, _)| *p != expected)
                .find_map(|(p, _)| Credential::parse(*p, text).ok())
                .ok_or(e)
        })
    }

    /// The platform.
    pub fn platform(&self) -> Platform {
        match self.secret {
            Secret::Telegram(_) => Platform::Telegram,
            Secret::Discord(_) => Platform::Discord,
        }
    }

    /// The account the credential proves (the bot's id).
    pub fn account_id(&self) -> u64 {
        match &self.secret {
            Secret::Telegram(t) => t.bot_id(),
            Secret::Discord(t) => t.bot_id(),
        }
    }

    /// The bytes the vault's keys derive from (the whole token).
    pub(crate) fn key_material(&self) -> &[u8] {
        self.whole().as_bytes()
    }

    fn whole(&self) -> &str {
        match &self.secret {
            Secret::Telegram(t) => t.expose(),
            Secret::Discord(t) => &t.text,
        }
    }

    /// The Telegram bot token, for alerts through the Bot API.
    pub(crate) fn telegram_token(&self) -> Option<&BotToken> {
        match &self.secret {
            Secret::Telegram(t) => Some(t),
            Secret::Discord(_) => None,
        }
    }

    /// The texts that must never leave the process, longest first: the
    /// whole credential, and its secret part alone (after a Telegram
    /// token's `:`; after a Discord token's id segment, and its last
    /// segment).
    pub(crate) fn secret_texts(&self) -> Vec<&str> {
        let whole = self.whole();
        match &self.secret {
            Secret::Telegram(_) => vec![whole, whole.split_once(':').map_or(whole, |(_, s)| s)],
            Secret::Discord(_) => {
                let after_id = whole.split_once('.').map_or(whole, |(_, s)| s);
                let last = whole.rsplit_once('.').map_or(whole, |(_, s)| s);
                vec![whole, after_id, last]
            }
        }
    }

    /// Whether `bytes` hold the credential's secret part (for example an
    /// environment variable that holds the token under another name).
    pub fn is_in(&self, bytes: &[u8]) -> bool {
        self.secret_texts()
            .iter()
            .filter(|s| !s.is_empty())
            .any(|s| bytes.windows(s.len()).any(|w| w == s.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use proptest::prelude::*;

    #[test]
    fn discord_token_gives_the_bot_id_in_either_alphabet_with_or_without_padding() {
        for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let id = engine.encode("1087654321098765432");
            let t = DiscordToken::parse(&format!("{id}.GhIjKl.abc-DEF_ghi\n")).unwrap();
            assert_eq!(t.bot_id(), 1087654321098765432);
        }
        let id = URL_SAFE_NO_PAD.encode("4815162342");
        assert_eq!(
            DiscordToken::parse(&format!("{id}.x.y")).unwrap().bot_id(),
            4815162342
        );
    }

    #[test]
    fn malformed_discord_tokens_are_refused_with_a_reason() {
        let id = STANDARD_NO_PAD.encode("123456");
        let cases = [
            ("", DiscordTokenError::Shape),
            (&*format!("{id}.x"), DiscordTokenError::Shape),
            (&*format!("{id}.x.y.z"), DiscordTokenError::Shape),
            (&*format!("{id}..y"), DiscordTokenError::Shape),
            (&*format!("{id}.x y.z"), DiscordTokenError::Shape),
            ("123456:secret", DiscordTokenError::Shape),
            ("!!!.x.y", DiscordTokenError::NotBase64),
            (
                &*format!("{}.x.y", STANDARD_NO_PAD.encode("12a456")),
                DiscordTokenError::NotAnId,
            ),
            (
                &*format!("{}.x.y", STANDARD_NO_PAD.encode("123456789012345678901")),
                DiscordTokenError::NotAnId,
            ),
            (
                &*format!("{}.x.y", STANDARD_NO_PAD.encode("99999999999999999999")),
                DiscordTokenError::NotAnId,
            ),
        ];
        for (text, why) in cases {
            assert_eq!(DiscordToken::parse(text).unwrap_err(), why, "{text:?}");
        }
    }

    #[test]
    fn a_token_of_another_platform_is_that_platform_s_credential() {
        let discord = format!("{}.GhIjKl.secret-part", STANDARD_NO_PAD.encode("777"));
        let c = Credential::parse_any(Platform::Telegram, &discord).unwrap();
        assert_eq!((c.platform(), c.account_id()), (Platform::Discord, 777));
        let c = Credential::parse_any(Platform::Discord, "42:tg-secret").unwrap();
        assert_eq!((c.platform(), c.account_id()), (Platform::Telegram, 42));
        assert!(matches!(
            Credential::parse_any(Platform::Discord, "neither"),
            Err(CredentialError::Discord(DiscordTokenError::Shape))
        ));
    }

    #[test]
    fn a_discord_credential_never_prints_and_knows_its_secret_parts() {
        let text = format!("{}.GhIjKl.very-secret-sig", STANDARD_NO_PAD.encode("777"));
        let c = Credential::parse(Platform::Discord, &text).unwrap();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("GhIjKl"),
            "{shown}"
        );
        assert!(c.is_in(b"X=GhIjKl.very-secret-sig"));
        assert!(c.is_in(b"only very-secret-sig here"));
        assert!(!c.is_in(b"GhIjKl alone"));
    }

    proptest! {
        /// Any text: the parser never panics, and whatever it refuses, the
        /// error's words never repeat the text.
        #[test]
        fn discord_parse_never_panics_nor_repeats_the_text(text in "\\PC{0,80}") {
            if let Err(e) = DiscordToken::parse(&text) {
                let t = text.trim();
                prop_assert!(t.len() < 8 || !e.to_string().contains(t));
            }
        }

        /// Any id, any alphabet, any secret: the id comes back.
        #[test]
        fn discord_id_round_trips(id in 0u64.., pad in any::<bool>(), url in any::<bool>(),
                                  a in "[A-Za-z0-9_-]{1,12}", b in "[A-Za-z0-9_-]{1,40}") {
            let digits = id.to_string();
            let first = match (url, pad) {
                (true, _) => URL_SAFE_NO_PAD.encode(&digits),
                (false, true) => STANDARD.encode(&digits),
                (false, false) => STANDARD_NO_PAD.encode(&digits),
            };
            let t = DiscordToken::parse(&format!("{first}.{a}.{b}")).unwrap();
            prop_assert_eq!(t.bot_id(), id);
        }
    }
}
