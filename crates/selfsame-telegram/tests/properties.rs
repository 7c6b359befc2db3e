//! Property tests: any change invalidates, order does not matter, and no
//! input makes a validator panic.

use std::collections::BTreeMap;

use proptest::prelude::*;
use selfsame_telegram::third_party::{self, PublicKey};
use selfsame_telegram::{init_data, login, BotToken, Error, Fields, Freshness};

const TOKEN: &str = "1234567890:AAselfsame-property-tests";

/// Field names that carry no typed meaning, so random values stay valid.
fn plain_key() -> impl Strategy<Value = String> {
    "[a-z_]{1,10}".prop_filter("not a typed field", |k| {
        !matches!(
            k.as_str(),
            "hash" | "signature" | "auth_date" | "user" | "receiver" | "chat" | "id"
        )
    })
}

/// Unique plain fields plus an `auth_date`, in some order.
fn fields() -> impl Strategy<Value = Vec<(String, String)>> {
    (
        prop::collection::btree_map(plain_key(), any::<String>(), 0..8),
        0u64..4_000_000_000,
    )
        .prop_map(|(map, auth_date): (BTreeMap<String, String>, u64)| {
            let mut pairs: Vec<(String, String)> = map.into_iter().collect();
            pairs.push(("auth_date".to_owned(), auth_date.to_string()));
            pairs
        })
        .prop_shuffle()
}

fn to_fields(pairs: &[(String, String)]) -> Fields {
    let mut f = Fields::new();
    for (k, v) in pairs {
        f.push(k, v);
    }
    f
}

fn token() -> BotToken {
    BotToken::parse(TOKEN).unwrap()
}

proptest! {
    #[test]
    fn encode_then_parse_gives_the_same_fields(pairs in fields()) {
        let f = to_fields(&pairs);
        prop_assert_eq!(Fields::parse(&f.encode()).unwrap(), f);
    }

    #[test]
    fn any_value_change_invalidates(pairs in fields(), pick in any::<prop::sample::Index>(), new in any::<String>()) {
        let signed = Fields::parse(&init_data::sign(&to_fields(&pairs), &token())).unwrap();
        let (key, old) = pairs[pick.index(pairs.len())].clone();
        prop_assume!(new != old);
        let mut changed = signed.clone();
        changed.push(&key, &new);
        prop_assert_eq!(
            init_data::validate(&changed.encode(), &token(), Freshness::ANY).unwrap_err(),
            Error::HashMismatch
        );
    }

    #[test]
    fn any_key_change_invalidates(pairs in fields(), pick in any::<prop::sample::Index>(), new_key in plain_key()) {
        let signed = Fields::parse(&init_data::sign(&to_fields(&pairs), &token())).unwrap();
        let (key, _) = pairs[pick.index(pairs.len())].clone();
        prop_assume!(signed.get(&new_key).is_none());
        let renamed: Fields = {
            let mut f = Fields::new();
            for (k, v) in signed.iter() {
                f.push(if k == key { &new_key } else { k }, v);
            }
            f
        };
        prop_assert_eq!(
            init_data::validate(&renamed.encode(), &token(), Freshness::ANY).unwrap_err(),
            Error::HashMismatch
        );
    }

    #[test]
    fn adding_or_removing_a_field_invalidates(pairs in fields(), pick in any::<prop::sample::Index>(), extra in plain_key()) {
        let signed = Fields::parse(&init_data::sign(&to_fields(&pairs), &token())).unwrap();
        let (key, _) = pairs[pick.index(pairs.len())].clone();
        let mut fewer = signed.clone();
        fewer.remove(&key);
        let err = init_data::validate(&fewer.encode(), &token(), Freshness::ANY).unwrap_err();
        prop_assert_eq!(err, Error::HashMismatch);
        prop_assume!(signed.get(&extra).is_none());
        let mut more = signed.clone();
        more.push(&extra, "");
        prop_assert_eq!(
            init_data::validate(&more.encode(), &token(), Freshness::ANY).unwrap_err(),
            Error::HashMismatch
        );
    }

    #[test]
    fn another_order_still_validates(pairs in fields(), seed in any::<u64>()) {
        let signed = Fields::parse(&init_data::sign(&to_fields(&pairs), &token())).unwrap();
        let mut shuffled: Vec<(String, String)> =
            signed.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        // A simple deterministic shuffle driven by the seed.
        let mut s = seed | 1;
        for i in (1..shuffled.len()).rev() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            shuffled.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let reordered = to_fields(&shuffled).encode();
        prop_assert!(init_data::validate(&reordered, &token(), Freshness::ANY).is_ok());
        let as_login = login::sign(&to_fields(&shuffled), &token());
        // Login data needs an id; without one it is refused as a bad field,
        // after the hash has verified.
        prop_assert_eq!(
            login::validate(&as_login, &token(), Freshness::ANY).unwrap_err().code(),
            "bad_field"
        );
    }

    #[test]
    fn parsers_never_panic_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        exercise(&text);
    }

    #[test]
    fn parsers_never_panic_on_form_like_text(text in "[a-z_&=%+0-9A-Fa-f.\\-]{0,120}") {
        exercise(&text);
    }

    #[test]
    fn parsers_never_panic_on_near_valid_data(pairs in fields(), cut in any::<prop::sample::Index>(), junk in "[&=%+a-z0-9]{0,4}") {
        let raw = init_data::sign(&to_fields(&pairs), &token());
        let at = cut.index(raw.len() + 1);
        let mangled = format!("{}{junk}{}", &raw[..at], &raw[at..]);
        exercise(&mangled);
    }
}

fn exercise(text: &str) {
    let _ = Fields::parse(text).map(|f| (f.encode(), f.data_check_string(&["hash"])));
    let t = token();
    let now = std::time::SystemTime::now();
    let day = Freshness::within(std::time::Duration::from_secs(86_400), now);
    let _ = init_data::validate(text, &t, day);
    let _ = init_data::validate(text, &t, Freshness::ANY);
    let _ = login::validate(text, &t, day);
    let _ = third_party::validate(text, t.bot_id(), &PublicKey::production(), Freshness::ANY);
    let _ = BotToken::parse(text);
    let _ = PublicKey::from_hex(text);
    let _ = third_party::decode_signature(text);
}
