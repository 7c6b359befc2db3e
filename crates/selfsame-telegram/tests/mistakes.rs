//! Known mistakes of other Telegram validators, one named test each, plus
//! the rules of issue 4 that are easiest to read as code.

use std::time::{Duration, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use selfsame_telegram::third_party::{self, PublicKey};
use selfsame_telegram::{init_data, login, BotToken, Error, Fields, Freshness};
use sha2::Sha256;

/// Real Telegram data for bot 7342037359, with its published token
/// (github.com/Telegram-Mini-Apps/init-data-golang README.md @aea9e8dd).
const REAL_TOKEN: &str = "7342037359:AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4";
const REAL: &str = "user=%7B%22id%22%3A279058397%2C%22first_name%22%3A%22Vladislav%20%2B%20-%20%3F%20%5C%2F%22%2C%22last_name%22%3A%22Kibenko%22%2C%22username%22%3A%22vdkfrost%22%2C%22language_code%22%3A%22ru%22%2C%22is_premium%22%3Atrue%2C%22allows_write_to_pm%22%3Atrue%2C%22photo_url%22%3A%22https%3A%5C%2F%5C%2Ft.me%5C%2Fi%5C%2Fuserpic%5C%2F320%5C%2F4FPEE4tmP3ATHa57u6MqTDih13LTOiMoKoLDRG4PnSA.svg%22%7D&chat_instance=8134722200314281151&chat_type=private&auth_date=1733509682&signature=TYJxVcisqbWjtodPepiJ6ghziUL94-KNpG8Pau-X7oNNLNBM72APCpi_RKiUlBvcqo5L-LAxIc3dnTzcZX_PDg&hash=a433d8f9847bd6addcc563bff7cc82c89e97ea0d90c11fe5729cae6796a36d73";

/// tma.js's fixture: every initData field, `hash` in the middle
/// (github.com/Telegram-Mini-Apps/telegram-apps
/// packages/init-data-node/src/entries/node.test.ts @1c586e6b).
const TMA_TOKEN: &str = "5768337691:AAH5YkoiEuPk8-FZa32hStHTqXiLPtAEhx8";
const TMA: &str = "auth_date=1&can_send_after=10000&chat=%7B%22id%22%3A1%2C%22type%22%3A%22group%22%2C%22title%22%3A%22chat-title%22%2C%22photo_url%22%3A%22group%22%2C%22username%22%3A%22my-chat%22%7D&chat_instance=888&chat_type=sender&hash=47cfa22e72b887cba90c9cb833c5ea0f599975b6ce7193741844b5c4a4228b40&query_id=QUERY&receiver=%7B%22added_to_attachment_menu%22%3Afalse%2C%22allows_write_to_pm%22%3Atrue%2C%22first_name%22%3A%22receiver-first-name%22%2C%22id%22%3A991%2C%22is_bot%22%3Afalse%2C%22is_premium%22%3Atrue%2C%22language_code%22%3A%22ru%22%2C%22last_name%22%3A%22receiver-last-name%22%2C%22photo_url%22%3A%22receiver-photo%22%2C%22username%22%3A%22receiver-username%22%7D&start_param=debug&user=%7B%22added_to_attachment_menu%22%3Afalse%2C%22allows_write_to_pm%22%3Afalse%2C%22first_name%22%3A%22user-first-name%22%2C%22id%22%3A222%2C%22is_bot%22%3Atrue%2C%22is_premium%22%3Afalse%2C%22language_code%22%3A%22en%22%2C%22last_name%22%3A%22user-last-name%22%2C%22photo_url%22%3A%22user-photo%22%2C%22username%22%3A%22user-username%22%7D";

/// Real Login Widget data (github.com/aiogram/aiogram
/// tests/test_utils/test_auth_widget.py @25235e38).
const WIDGET_TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";
const WIDGET: &str = "id=42&first_name=John&last_name=Smith&username=username&photo_url=https%3A%2F%2Ft.me%2Fi%2Fuserpic%2F320%2Fpicname.jpg&auth_date=1565810688&hash=c303db2b5a06fe41d23a9b14f7c545cfc11dcc7473c07c9c5034ae60062461ce";

fn token(text: &str) -> BotToken {
    BotToken::parse(text).unwrap()
}

fn raw_hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().into()
}

#[test]
fn mistake_leaving_signature_out_of_the_hash_check() {
    let t = token(REAL_TOKEN);
    // Real data verifies only with `signature` inside the data-check-string…
    init_data::validate(REAL, &t, Freshness::ANY).expect("real Telegram data");
    let fields = Fields::parse(REAL).unwrap();
    let key = init_data::secret_key(&t);
    let hash = fields.get("hash").unwrap();
    assert!(key.verify(fields.data_check_string(&["hash"]).as_bytes(), hash));
    assert!(
        !key.verify(
            fields.data_check_string(&["hash", "signature"]).as_bytes(),
            hash
        ),
        "a validator that drops signature rejects real data"
    );
    // …and so a changed signature breaks the hash.
    let forged = REAL.replace("TYJxVcisqbWj", "TYJxVcisqbWk");
    assert_eq!(
        init_data::validate(&forged, &t, Freshness::ANY).unwrap_err(),
        Error::HashMismatch
    );
}

#[test]
fn mistake_using_the_hex_text_of_the_secret_as_the_key() {
    let t = token(TMA_TOKEN);
    let secret = raw_hmac(b"WebAppData", TMA_TOKEN.as_bytes());
    let fields = Fields::parse(TMA).unwrap();
    let dcs = fields.data_check_string(&["hash"]);
    let wrong = hex::encode(raw_hmac(hex::encode(secret).as_bytes(), dcs.as_bytes()));
    let right = hex::encode(raw_hmac(&secret, dcs.as_bytes()));
    assert_eq!(
        right,
        fields.get("hash").unwrap(),
        "the raw 32 bytes are the key"
    );
    assert_ne!(wrong, right);

    let mut forged = fields.clone();
    forged.push("hash", &wrong);
    assert_eq!(
        init_data::validate(&forged.encode(), &t, Freshness::ANY).unwrap_err(),
        Error::HashMismatch
    );
}

#[test]
fn mistake_mixing_up_the_login_and_mini_app_keys() {
    // Real Mini App data under the Login Widget key, and the reverse.
    assert_eq!(
        login::validate(TMA, &token(TMA_TOKEN), Freshness::ANY).unwrap_err(),
        Error::HashMismatch
    );
    assert_eq!(
        init_data::validate(WIDGET, &token(WIDGET_TOKEN), Freshness::ANY).unwrap_err(),
        Error::HashMismatch
    );
    // Each validates under its own key.
    init_data::validate(TMA, &token(TMA_TOKEN), Freshness::ANY).unwrap();
    login::validate(WIDGET, &token(WIDGET_TOKEN), Freshness::ANY).unwrap();
}

#[test]
fn mistake_decoding_before_splitting() {
    // A value that holds an encoded `&hash=…`: decoding the whole text first
    // would see two hashes, or take the attacker's.
    let t = token("1234567890:AAselfsame-test");
    let mut fields = Fields::new();
    fields.push("auth_date", "1700000000");
    let sneaky = format!("x&hash={}&user=evil", "0".repeat(64));
    fields.push("start_param", &sneaky);
    let raw = init_data::sign(&fields, &t);
    assert!(raw.contains("%26hash%3D"));

    let data = init_data::validate(&raw, &t, Freshness::ANY).unwrap();
    assert_eq!(data.start_param.as_deref(), Some(sneaky.as_str()));
    assert!(data.user.is_none());

    // Decode-then-split reads other pairs than were signed: two hashes and
    // a user that nobody sent.
    let decoded_first = raw.replace("%26", "&").replace("%3D", "=");
    let keys: Vec<&str> = decoded_first
        .split('&')
        .filter_map(|pair| pair.split_once('=').map(|(k, _)| k))
        .collect();
    assert_eq!(keys.iter().filter(|k| **k == "hash").count(), 2);
    assert!(keys.contains(&"user"));
}

#[test]
fn mistake_assuming_hash_is_the_last_pair() {
    // tma.js's fixture has `hash` in the middle; Telegram's own data has it
    // before `signature` (github.com/Telegram-Mini-Apps/init-data-golang
    // validate_third_party_test.go).
    let t = token(TMA_TOKEN);
    let data = init_data::validate(TMA, &t, Freshness::ANY).unwrap();
    assert_eq!(data.start_param.as_deref(), Some("debug"));
    assert_eq!(data.receiver.unwrap().id, 991);
    assert_eq!(data.chat.unwrap().title, "chat-title");

    // Whatever follows the hash is covered too: a cut at "&hash=" would
    // miss a field added after it.
    let appended = format!("{TMA}&is_admin=true");
    assert_eq!(
        init_data::validate(&appended, &t, Freshness::ANY).unwrap_err(),
        Error::HashMismatch
    );
    let hash_first = {
        let fields = Fields::parse(TMA).unwrap();
        let mut moved = Fields::new();
        moved.push("hash", fields.get("hash").unwrap());
        for (k, v) in fields.iter().filter(|(k, _)| *k != "hash") {
            moved.push(k, v);
        }
        moved.encode()
    };
    init_data::validate(&hash_first, &t, Freshness::ANY).unwrap();
}

#[test]
fn uppercase_hash_is_a_mismatch() {
    let upper = TMA.replace(
        "47cfa22e72b887cba90c9cb833c5ea0f599975b6ce7193741844b5c4a4228b40",
        "47CFA22E72B887CBA90C9CB833C5EA0F599975B6CE7193741844B5C4A4228B40",
    );
    assert_eq!(
        init_data::validate(&upper, &token(TMA_TOKEN), Freshness::ANY).unwrap_err(),
        Error::HashMismatch
    );
}

#[test]
fn duplicate_hash_or_signature_is_refused_not_resolved() {
    let t = token(REAL_TOKEN);
    for extra in ["&hash=00", "&signature=AA"] {
        let doubled = format!("{REAL}{extra}");
        let err = init_data::validate(&doubled, &t, Freshness::ANY).unwrap_err();
        assert_eq!(err.code(), "duplicate_key");
        let err = third_party::validate(
            &doubled,
            7342037359,
            &PublicKey::production(),
            Freshness::ANY,
        )
        .unwrap_err();
        assert_eq!(err.code(), "duplicate_key");
    }
}

#[test]
fn max_age_boundary_is_inclusive() {
    let t = token(TMA_TOKEN); // tma.js's fixture has auth_date=1
    let at = |now: u64| {
        init_data::validate(
            TMA,
            &t,
            Freshness::within(
                Duration::from_secs(100),
                UNIX_EPOCH + Duration::from_secs(now),
            ),
        )
    };
    assert!(at(101).is_ok(), "exactly 100 s old");
    assert_eq!(at(102).unwrap_err().code(), "expired");
    assert!(at(0).is_ok(), "auth_date one second in the future");
}

#[test]
fn errors_never_contain_the_token() {
    let secret = "AAHI25ES9xCOMPokpYoz-p8XVrZUdygo2J4";
    let t = token(REAL_TOKEN);
    let now = UNIX_EPOCH + Duration::from_secs(1733509682 + 10 * 86400);
    let day = Freshness::within(Duration::from_secs(86400), now);
    let inputs = [
        "",
        "a",
        "a=%zz",
        "a=1&a=2",
        "auth_date=1",
        "hash=0",
        "hash=0&auth_date=x",
        REAL,
    ];
    let mut errors: Vec<Error> = Vec::new();
    for input in inputs {
        errors.extend(init_data::validate(input, &t, day).err());
        errors.extend(login::validate(input, &t, day).err());
        errors
            .extend(third_party::validate(input, t.bot_id(), &PublicKey::production(), day).err());
    }
    errors.extend(
        BotToken::parse(&format!("x{REAL_TOKEN} "))
            .err()
            .map(Error::from),
    );
    assert!(errors.len() >= 20);
    for e in &errors {
        for shown in [e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
    assert!(!format!("{t:?}").contains(secret));
}

#[test]
fn third_party_bot_id_can_come_from_a_token() {
    // Only the id before ':' is used; the secret part plays no role.
    let t = token("7342037359:not-the-real-secret");
    let data =
        third_party::validate(REAL, t.bot_id(), &PublicKey::production(), Freshness::ANY).unwrap();
    assert_eq!(data.user.unwrap().username.as_deref(), Some("vdkfrost"));
}
