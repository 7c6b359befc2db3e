//! `selfsame telegram`: validate Telegram-signed data (Mini App initData,
//! Login Widget data, Ed25519 third-party signatures) for backends in any
//! language. A thin shell over the `selfsame-telegram` crate.

use crate::context::Context;
use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::output::{errln, outln};
use selfsame_telegram::third_party::{self, PublicKey};
use selfsame_telegram::{init_data, login, BotToken, Error, Freshness};

const INIT_DATA_ABOUT: &str = "\
Check Telegram-signed data and print its fields as JSON.

By default DATA is Mini App initData (Telegram.WebApp.initData) checked with
the bot token: secret key = HMAC-SHA256(\"WebAppData\", token), and `hash`
must be the lowercase hex HMAC of every other field. --login checks Login
Widget data instead (secret key = SHA-256(token)). --third-party checks
Telegram's Ed25519 `signature` with Telegram's public key, without the token.

The input is parsed strictly: a pair without '=', a bad %-escape, invalid
UTF-8 or a repeated key is refused. `auth_date` is required; data older than
--max-age is refused (exactly --max-age old is still valid).

On success the fields are printed as one JSON object on stdout: user,
receiver and chat as objects, auth_date (and the Login Widget's id) as
numbers, everything else as the received strings. On failure the reason goes
to stderr; the token is never printed.";

const INIT_DATA_AFTER: &str = "\
Examples:
  # In a backend: pass the Mini App's initData on stdin (not in argv, where
  # other users can see it), read the user from the JSON
  export TELEGRAM_BOT_TOKEN=123456:ABC-your-token
  printf %s \"$INIT_DATA\" | selfsame telegram init-data --max-age 1h | jq .user.id

  # A third party, without the token: Telegram's signature for bot 7342037359
  selfsame telegram init-data --third-party --bot-id 7342037359 - < init_data.txt

  # Login Widget data: the query string of the data-auth-url redirect
  selfsame telegram init-data --login 'id=42&first_name=Ada&auth_date=1700000000&hash=…'

Exit codes:
  0  valid; the fields are on stdout
  2  malformed data, a missing or bad token or key, or a usage error
  4  not authentic (hash or signature missing or wrong) or expired";

/// `selfsame telegram …`
#[derive(clap::Args, Debug)]
pub struct TelegramArgs {
    /// What to validate.
    #[command(subcommand)]
    pub command: TelegramCommand,
}

/// The `telegram` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TelegramCommand {
    /// Check Mini App initData or Login Widget data; print its fields as JSON.
    #[command(long_about = INIT_DATA_ABOUT, after_help = INIT_DATA_AFTER)]
    InitData(InitDataArgs),
}

/// `selfsame telegram init-data`
#[derive(clap::Args, Debug)]
pub struct InitDataArgs {
    /// The data exactly as received; `-` or nothing reads it from stdin
    /// (one trailing newline is dropped).
    #[arg(value_name = "DATA")]
    pub data: Option<String>,

    /// Refuse data signed longer ago than this (30s, 1h, 1d, …); 0 accepts
    /// any age.
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = parse_max_age)]
    pub max_age: Duration,

    /// Measure the age from this unix time instead of the clock.
    #[arg(long, value_name = "UNIX")]
    pub now: Option<u64>,

    /// Check Telegram's Ed25519 `signature` instead of `hash`; needs no token.
    #[arg(long, conflicts_with = "login")]
    pub third_party: bool,

    /// With --third-party: the bot the data was issued for (default: the id
    /// before ':' in the token, if the token is set).
    #[arg(long, value_name = "N", requires = "third_party")]
    pub bot_id: Option<u64>,

    /// With --third-party: use Telegram's test-environment key.
    #[arg(long, requires = "third_party", conflicts_with = "public_key")]
    pub test_env: bool,

    /// With --third-party: use this Ed25519 public key (64 hex digits)
    /// instead of Telegram's.
    #[arg(long, value_name = "HEX", requires = "third_party")]
    pub public_key: Option<String>,

    /// The data comes from the Login Widget, not a Mini App.
    #[arg(long)]
    pub login: bool,

    /// The environment variable that holds the bot token.
    #[arg(long, value_name = "NAME", default_value = "TELEGRAM_BOT_TOKEN")]
    pub token_env: String,
}

/// Runs `selfsame telegram …`; returns the process exit code.
pub fn run(args: TelegramArgs, ctx: &Context) -> i32 {
    match args.command {
        TelegramCommand::InitData(a) => match init_data_command(&a, ctx) {
            Ok(json) => {
                outln!("{json}");
                0
            }
            Err(Failure { code, message }) => {
                errln!("selfsame: {message}");
                code
            }
        },
    }
}

const EXIT_USAGE: i32 = 2;
const EXIT_NOT_AUTHENTIC: i32 = 4;

struct Failure {
    code: i32,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = if e.is_not_authentic() || matches!(e, Error::Expired { .. }) {
            EXIT_NOT_AUTHENTIC
        } else {
            EXIT_USAGE
        };
        Failure {
            code,
            message: format!("telegram data refused ({}): {e}", e.code()),
        }
    }
}

fn init_data_command(a: &InitDataArgs, ctx: &Context) -> Result<String, Failure> {
    let data = read_data(a.data.as_deref())?;
    let now = match a.now {
        Some(secs) => UNIX_EPOCH
            .checked_add(Duration::from_secs(secs))
            .ok_or_else(|| Failure::usage("--now is out of range"))?,
        None => SystemTime::now(),
    };
    let freshness = if a.max_age.is_zero() {
        Freshness::ANY
    } else {
        Freshness::within(a.max_age, now)
    };

    let json = if a.third_party {
        let bot_id = match a.bot_id {
            Some(id) => id,
            None => token(ctx, &a.token_env)
                .map_err(|_| {
                    Failure::usage(format!(
                        "--third-party needs --bot-id N (or the bot token in ${})",
                        a.token_env
                    ))
                })?
                .bot_id(),
        };
        let key = match (&a.public_key, a.test_env) {
            (Some(hex), _) => PublicKey::from_hex(hex)?,
            (None, true) => PublicKey::test_environment(),
            (None, false) => PublicKey::production(),
        };
        to_json(&third_party::validate(&data, bot_id, &key, freshness)?)
    } else if a.login {
        to_json(&login::validate(
            &data,
            &token(ctx, &a.token_env)?,
            freshness,
        )?)
    } else {
        to_json(&init_data::validate(
            &data,
            &token(ctx, &a.token_env)?,
            freshness,
        )?)
    };
    Ok(json)
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("validated data serializes")
}

/// The bot token from the global `--token-file`, else the environment.
/// Messages name the file or variable, never the value.
fn token(ctx: &Context, var: &str) -> Result<BotToken, Failure> {
    if ctx.has_token_file() {
        return ctx
            .bot_token(var)
            .map_err(|e| Failure::usage(e.to_string()));
    }
    let text = std::env::var(var).unwrap_or_default();
    if text.trim().is_empty() {
        return Err(Failure::usage(format!(
            "the bot token is not set: export {var}=<token from @BotFather> \
             (or name another variable with --token-env, or use --third-party)"
        )));
    }
    BotToken::parse(&text).map_err(|e| Failure::usage(format!("${var}: {e}")))
}

fn read_data(arg: Option<&str>) -> Result<String, Failure> {
    match arg {
        Some(text) if text != "-" => Ok(text.to_owned()),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::usage(format!("cannot read stdin: {e}")))?;
            let mut text = String::from_utf8(bytes).map_err(|_| {
                Failure::usage("telegram data refused (malformed): stdin is not UTF-8")
            })?;
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            Ok(text)
        }
    }
}

fn parse_max_age(text: &str) -> Result<Duration, String> {
    if text.trim() == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (examples: 30s, 1h, 1d; 0 = any age)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_parses() {
        assert_eq!(parse_max_age("0"), Ok(Duration::ZERO));
        assert_eq!(parse_max_age("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_max_age("90s"), Ok(Duration::from_secs(90)));
        assert!(parse_max_age("soon").is_err());
    }

    #[test]
    fn exit_codes_by_error() {
        assert_eq!(Failure::from(Error::HashMismatch).code, 4);
        assert_eq!(Failure::from(Error::MissingHash).code, 4);
        assert_eq!(
            Failure::from(Error::Expired {
                age: Duration::from_secs(2),
                max_age: Duration::from_secs(1)
            })
            .code,
            4
        );
        assert_eq!(Failure::from(Error::BadAuthDate).code, 2);
        assert_eq!(Failure::from(Error::BadPublicKey).code, 2);
    }
}
