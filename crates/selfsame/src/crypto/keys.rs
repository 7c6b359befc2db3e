//! The keys a credential derives, and what they sign.
//!
//! - the **checkpoint key** `HMAC-SHA256(key = "selfsame/checkpoint/v1",
//!   msg = token)`, Telegram's initData construction with `WebAppData`
//!   replaced: checkpoints' `hash`, the awake marker, and the restore
//!   journal (under a label of its own);
//! - the **history key** `HMAC-SHA256(key = "selfsame/history/v1", msg =
//!   token)`: every history line's `mac` (History v2);
//! - the **wrap key** `HMAC-SHA256(key = "selfsame/identity/v1", msg =
//!   token)`: the identity key's seal ([`super::identity`]).
//!
//! A checkpoint sealed with an identity key also carries `identity` (the
//! public key, covered by the MAC) and `signature` (by the identity key,
//! covering every other field).

use selfsame_telegram::{Fields, SecretKey};

use super::{Credential, IdentityKey, WrapKey};

use crate::format::checkpoint::{
    Checkpoint, Draft, IDENTITY, PREV_KEY_HASH, SIGNATURE, UNSIGNED_FIELDS,
};
use crate::format::history::{signed_body, with_mac};
use crate::format::{marker, HistoryLine};

/// The label that turns a bot token into the checkpoint MAC key.
pub const CHECKPOINT_LABEL: &[u8] = b"selfsame/checkpoint/v1";
/// The label that turns a bot token into the history MAC key (History v2).
pub const HISTORY_LABEL: &[u8] = b"selfsame/history/v1";
/// Label that separates journal MACs from checkpoint and marker MACs.
const JOURNAL_LABEL: &[u8] = b"selfsame/journal/v1\n";

/// The checkpoint MAC key of a credential.
pub fn checkpoint_key(cred: &Credential) -> SecretKey {
    SecretKey::derive(CHECKPOINT_LABEL, cred.key_material())
}

/// The history MAC key of a credential.
pub fn history_key(cred: &Credential) -> SecretKey {
    SecretKey::derive(HISTORY_LABEL, cred.key_material())
}

/// The keys of one credential. They never print.
#[derive(Debug, Clone)]
pub struct Keys {
    checkpoint: SecretKey,
    history: SecretKey,
    wrap: WrapKey,
}

impl Keys {
    /// The keys a credential derives.
    pub fn of(cred: &Credential) -> Keys {
        Keys {
            checkpoint: checkpoint_key(cred),
            history: history_key(cred),
            wrap: WrapKey::of(cred),
        }
    }

    /// The key that seals the identity key's seed.
    pub fn wrap(&self) -> &WrapKey {
        &self.wrap
    }

    /// Signs a draft: `hash` over the data-check-string of its fields; with
    /// an identity key, first `identity` (its public key) is added as the
    /// last field the MAC covers, and `signature` (over every field but
    /// itself) goes before `hash`.
    pub fn sign(&self, draft: &Draft, identity: Option<&IdentityKey>) -> Checkpoint {
        self.sign_with(draft, None, identity)
    }

    /// Signs a rekey (or bind) checkpoint: `hash` under these (the new)
    /// keys, and `prev_key_hash` = the MAC of the same data-check-string
    /// under `old`. Neither MAC covers the other; both cover every other
    /// field; the identity's `signature` covers both.
    pub fn sign_rekey(
        &self,
        draft: &Draft,
        old: &Keys,
        identity: Option<&IdentityKey>,
    ) -> Checkpoint {
        self.sign_with(draft, Some(old), identity)
    }

    /// File order: the draft's fields, `identity`, then `prev_key_hash`,
    /// `signature`, `hash`.
    fn sign_with(
        &self,
        draft: &Draft,
        old: Option<&Keys>,
        identity: Option<&IdentityKey>,
    ) -> Checkpoint {
        let mut fields = draft.fields();
        if let Some(id) = identity {
            fields.push(IDENTITY, &id.public_b64());
        }
        let dcs = fields.data_check_string(UNSIGNED_FIELDS);
        let mac = self.checkpoint.sign(dcs.as_bytes());
        let mut tail: Vec<(&str, String)> = Vec::new();
        if let Some(old) = old {
            tail.push((PREV_KEY_HASH, old.checkpoint.sign(dcs.as_bytes())));
        }
        if let Some(id) = identity {
            let mut covered = fields.clone();
            for (k, v) in &tail {
                covered.push(k, v);
            }
            covered.push("hash", &mac);
            tail.push((SIGNATURE, id.sign(&covered)));
        }
        tail.push(("hash", mac));
        let tail: Vec<(&str, &str)> = tail.iter().map(|(k, v)| (*k, v.as_str())).collect();
        draft.with_macs(fields, &tail)
    }

    /// Whether the checkpoint's MAC verifies under the checkpoint key
    /// (constant-time comparison).
    pub fn verifies(&self, ckpt: &Checkpoint) -> bool {
        self.checkpoint
            .verify(ckpt.data_check_string().as_bytes(), &ckpt.hash)
    }

    /// Whether `ckpt` is a rekey checkpoint whose `prev_key_hash` verifies
    /// under these keys: the credential they derive from was retired there.
    pub fn retired_by(&self, ckpt: &Checkpoint) -> bool {
        ckpt.prev_key_hash().is_some_and(|m| {
            self.checkpoint
                .verify(ckpt.data_check_string().as_bytes(), m)
        })
    }

    /// A history line as stored (History v2): its body with the MAC under
    /// the history key as its last member, without the newline.
    pub fn sign_line(&self, line: &HistoryLine) -> String {
        let body = line.to_line();
        let mac = self.history.sign(body.as_bytes());
        with_mac(body, &mac)
    }

    /// Whether a stored line carries a MAC, and if so whether it verifies
    /// under the history key: `None` for a line without one.
    pub fn line_valid(&self, raw: &str) -> Option<bool> {
        let (body, mac) = signed_body(raw)?;
        Some(self.history.verify(body.as_bytes(), mac))
    }

    /// The awake marker's file text: its fields and their MAC.
    pub fn sign_marker(&self, fields: Fields) -> String {
        let mac = self
            .checkpoint
            .sign(fields.data_check_string(&[marker::MAC]).as_bytes());
        marker::to_text(fields, &mac)
    }

    /// Whether marker fields carry a MAC that verifies.
    pub fn marker_valid(&self, fields: &Fields) -> bool {
        fields.get(marker::MAC).is_some_and(|mac| {
            self.checkpoint
                .verify(fields.data_check_string(&[marker::MAC]).as_bytes(), mac)
        })
    }

    /// The MAC of a journal body. Only a process holding the credential can
    /// write a journal the next wake acts on.
    pub fn journal_mac(&self, body: &str) -> String {
        self.checkpoint
            .sign(&[JOURNAL_LABEL, body.as_bytes()].concat())
    }

    /// Whether `mac` is the journal body's MAC.
    pub fn journal_valid(&self, body: &str, mac: &str) -> bool {
        self.checkpoint
            .verify(&[JOURNAL_LABEL, body.as_bytes()].concat(), mac)
    }
}
