//! Wake verdicts, their details, default actions and exit codes — the
//! table of DESIGN.md, as types.

use std::fmt;

use crate::format::{name_of, value_of};

/// What wake found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Soul = head checkpoint, MAC valid, identity matches.
    Verified,
    /// Soul differs, but the last stop was unclean (valid awake marker).
    Drifted,
    /// Soul differs and the last stop was clean.
    Tampered,
    /// The token is another bot's, or no checkpoint verifies under it.
    IdentityMismatch,
    /// The vault is damaged.
    Corrupted,
    /// The newest checkpoint is older than HEAD or history say.
    RolledBack,
    /// The soul format is not readable by this shell.
    Incompatible,
}

impl Verdict {
    /// Every verdict with its name as in DESIGN.md and `--json`.
    pub const ALL: [(Verdict, &'static str); 7] = [
        (Verdict::Verified, "verified"),
        (Verdict::Drifted, "drifted"),
        (Verdict::Tampered, "tampered"),
        (Verdict::IdentityMismatch, "identity-mismatch"),
        (Verdict::Corrupted, "corrupted"),
        (Verdict::RolledBack, "rolled-back"),
        (Verdict::Incompatible, "incompatible"),
    ];

    /// The verdict's name as in DESIGN.md and `--json`.
    pub fn as_str(self) -> &'static str {
        name_of(&Self::ALL, self)
    }

    /// The exit code when the verdict halts the agent.
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Verified => 0,
            // Accepted drift exits 0; halted by policy it exits like
            // tampered (the soul changed and was not adopted), so a start
            // script's `selfsame wake || exit $?` keeps the agent stopped.
            Verdict::Drifted | Verdict::Tampered => 3,
            Verdict::IdentityMismatch => 4,
            Verdict::Corrupted | Verdict::RolledBack => 5,
            Verdict::Incompatible => 6,
        }
    }

    /// The action taken when no policy says otherwise.
    pub fn default_action(self) -> Action {
        match self {
            Verdict::Verified => Action::Start,
            Verdict::Drifted => Action::Accept,
            _ => Action::Halt,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a verdict was reached, when more than the verdict is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Detail {
    /// The token's bot id is not the vault's.
    DifferentBot,
    /// No checkpoint verifies under this token (forged, or token rotated).
    MacInvalid,
    /// Some checkpoints verify and others do not.
    MacMismatch,
    /// A checkpoint file cannot be parsed.
    UnreadableCheckpoint,
    /// The `prev` chain or the seq numbering is broken.
    ChainBroken,
    /// The history chain is broken or a line is unreadable.
    HistoryBroken,
    /// A history line that must carry a valid MAC (History v2) does not:
    /// it was not written by selfsame with this bot's token.
    HistoryForged,
    /// A checkpoint's `log` anchor is not in the history.
    AnchorMissing,
    /// An object of the head is missing.
    ObjectMissing,
    /// An object of the head does not match its hash.
    ObjectCorrupt,
    /// HEAD names a checkpoint newer than the newest present.
    HeadAhead,
    /// History records a checkpoint newer than the newest present.
    HistoryAhead,
    /// There is no checkpoint at all.
    NoCheckpoint,
    /// `config.toml` differs from the config the head checkpoint was
    /// sealed with (its `config` field): tampered until the owner accepts it.
    ConfigChanged,
    /// A vault file is not a regular file (a symlink, a FIFO, a device),
    /// or is larger than such a file can be.
    BadFile,
    /// `run/restore.journal` is not signed by this vault's key, or is
    /// unreadable, or its work dir is not the one it made: it is never
    /// acted on.
    BadJournal,
    /// `quarantine/` is a symlink or not a directory: nothing is moved
    /// there.
    QuarantineInvalid,
    /// A protected path differs from the head: only the owner's approval
    /// adopts such a change, whatever the awake marker says.
    ProtectedChanged,
    /// A checkpoint's identity signature does not verify (or its identity
    /// or signature is malformed).
    SignatureInvalid,
    /// A checkpoint after a signed one, or one that names an identity,
    /// carries no signature.
    SignatureMissing,
    /// A checkpoint names another identity than the one before it, and is
    /// not an `identity` checkpoint (the one way a key is replaced).
    IdentityChanged,
    /// The identity file is missing while checkpoints are signed, is
    /// damaged, does not open under the token, or holds another key than
    /// the head's.
    IdentityFile,
    /// The remote witness has checkpoints this vault lacks: an older vault
    /// was put back, or its newest records were cut.
    RemoteAhead,
    /// The remote witness holds another checkpoint under a seq this vault
    /// also sealed: the agent also runs elsewhere.
    Forked,
}

impl Detail {
    /// Every detail with its code in `--json`.
    pub const ALL: [(Detail, &'static str); 24] = [
        (Detail::DifferentBot, "different-bot"),
        (Detail::MacInvalid, "mac-invalid"),
        (Detail::MacMismatch, "mac-mismatch"),
        (Detail::UnreadableCheckpoint, "unreadable-checkpoint"),
        (Detail::ChainBroken, "chain-broken"),
        (Detail::HistoryBroken, "history-broken"),
        (Detail::HistoryForged, "history-forged"),
        (Detail::AnchorMissing, "anchor-missing"),
        (Detail::ObjectMissing, "object-missing"),
        (Detail::ObjectCorrupt, "object-corrupt"),
        (Detail::HeadAhead, "head-ahead"),
        (Detail::HistoryAhead, "history-ahead"),
        (Detail::NoCheckpoint, "no-checkpoint"),
        (Detail::ConfigChanged, "config-changed"),
        (Detail::BadFile, "bad-file"),
        (Detail::BadJournal, "bad-journal"),
        (Detail::QuarantineInvalid, "quarantine-invalid"),
        (Detail::ProtectedChanged, "protected-changed"),
        (Detail::SignatureInvalid, "signature-invalid"),
        (Detail::SignatureMissing, "signature-missing"),
        (Detail::IdentityChanged, "identity-changed"),
        (Detail::IdentityFile, "identity-file"),
        (Detail::RemoteAhead, "remote-ahead"),
        (Detail::Forked, "forked"),
    ];

    /// The detail's code in `--json`.
    pub fn as_str(self) -> &'static str {
        name_of(&Self::ALL, self)
    }

    /// The verdict this detail leads to.
    pub fn verdict(self) -> Verdict {
        match self {
            Detail::DifferentBot | Detail::MacInvalid => Verdict::IdentityMismatch,
            Detail::HeadAhead | Detail::HistoryAhead | Detail::RemoteAhead => Verdict::RolledBack,
            Detail::ConfigChanged | Detail::ProtectedChanged => Verdict::Tampered,
            _ => Verdict::Corrupted,
        }
    }
}

impl fmt::Display for Detail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What wake does about a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Nothing to do: the agent may start.
    Start,
    /// Adopt the current soul (seal `recover`) and start.
    Accept,
    /// Restore the last known good checkpoint, quarantine the current soul,
    /// and start.
    Rollback,
    /// Do not start; alert the owner.
    Halt,
    /// Put the approved version of each changed protected path back (the
    /// changed one goes to quarantine), and start.
    Revert,
}

impl Action {
    /// Every action with its word.
    pub const ALL: [(Action, &'static str); 5] = [
        (Action::Start, "start"),
        (Action::Accept, "accept"),
        (Action::Rollback, "rollback"),
        (Action::Halt, "halt"),
        (Action::Revert, "revert"),
    ];

    /// Parses a policy word of `drifted` and `tampered` (`start` is no
    /// policy's; `revert` is `protected`'s alone).
    pub fn parse(text: &str) -> Option<Action> {
        value_of(&Self::ALL, text).filter(|a| !matches!(a, Action::Start | Action::Revert))
    }

    /// The policy word.
    pub fn as_str(self) -> &'static str {
        name_of(&Self::ALL, self)
    }
}

/// What wake does when the soul's format has a migration path to a newer
/// format the shell reads (the `needs-migration` warning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationPolicy {
    /// Warn only; a soul the shell cannot read is `incompatible`.
    #[default]
    Warn,
    /// Run the pending migrations before the agent starts.
    Migrate,
}

impl MigrationPolicy {
    /// Parses `migrate` or `warn`.
    pub fn parse(text: &str) -> Option<MigrationPolicy> {
        match text {
            "migrate" => Some(MigrationPolicy::Migrate),
            "warn" => Some(MigrationPolicy::Warn),
            _ => None,
        }
    }
}

/// What happens when a protected path changed (`[policy] protected`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProtectPolicy {
    /// Put the approved version back, quarantine the changed one, go on.
    #[default]
    Revert,
    /// Adopt nothing and stop (wake halts, `run` stops the agent).
    Halt,
}

impl ProtectPolicy {
    /// Parses `revert` or `halt`.
    pub fn parse(text: &str) -> Option<ProtectPolicy> {
        match text {
            "revert" => Some(ProtectPolicy::Revert),
            "halt" => Some(ProtectPolicy::Halt),
            _ => None,
        }
    }

    /// The policy word.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtectPolicy::Revert => "revert",
            ProtectPolicy::Halt => "halt",
        }
    }
}

/// Per-verdict policies. Only `drifted` and `tampered` can be changed:
/// identity, corruption and rollback always halt. `needs-migration` is a
/// warning, not a verdict, with its own policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policies {
    /// Action on `drifted`.
    pub drifted: Action,
    /// Action on `tampered`.
    pub tampered: Action,
    /// What to do on the `needs-migration` warning.
    pub needs_migration: MigrationPolicy,
    /// What to do when a protected path changed.
    pub protected: ProtectPolicy,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            drifted: Action::Accept,
            tampered: Action::Halt,
            needs_migration: MigrationPolicy::Warn,
            protected: ProtectPolicy::Revert,
        }
    }
}

impl Policies {
    /// Sets a policy from `VERDICT=ACTION`.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (verdict, action) = spec.split_once('=').ok_or_else(|| {
            format!("policy {spec:?}: expected VERDICT=ACTION, e.g. tampered=rollback")
        })?;
        if verdict == "needs-migration" {
            self.needs_migration = MigrationPolicy::parse(action)
                .ok_or_else(|| format!("policy {spec:?}: needs-migration takes migrate or warn"))?;
            return Ok(());
        }
        if verdict == "protected" {
            self.protected = ProtectPolicy::parse(action)
                .ok_or_else(|| format!("policy {spec:?}: protected takes revert or halt"))?;
            return Ok(());
        }
        let action = Action::parse(action)
            .ok_or_else(|| format!("policy {spec:?}: action must be accept, rollback or halt"))?;
        match verdict {
            "drifted" => self.drifted = action,
            "tampered" => self.tampered = action,
            "identity-mismatch" | "corrupted" | "rolled-back" | "incompatible" => {
                return Err(format!(
                    "policy {spec:?}: `{verdict}` always halts; no policy overrides it"
                ))
            }
            _ => {
                return Err(format!(
                    "policy {spec:?}: unknown verdict (drifted, tampered, protected or needs-migration)"
                ))
            }
        }
        Ok(())
    }

    /// The action for a verdict.
    pub fn action(&self, verdict: Verdict) -> Action {
        match verdict {
            Verdict::Drifted => self.drifted,
            Verdict::Tampered => self.tampered,
            v => v.default_action(),
        }
    }
}

/// What the owner can do about a problem or a verdict: a fact for the
/// caller to word (the CLI names its commands; the library names none).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Advice {
    /// `config.toml` changed: adopt it if the change is the owner's; if
    /// not, the config the head was sealed with is saved at `saved`.
    AdoptConfig {
        /// The object holding the sealed config, when it is stored.
        saved: Option<std::path::PathBuf>,
    },
    /// No checkpoint verifies under the credential: it may have been
    /// rotated, which a rekey with the old one records.
    Rekey,
    /// The same, said at wake: if the platform issued a new credential,
    /// rekey with the old one.
    RekeyWithOld,
    /// A work dir of an interrupted swap is not the one it made: once the
    /// owner moved it and the journal aside, wake again (and restore the
    /// head to put the sealed soul back).
    WakeAfterClearing,
    /// Migrations lead from the soul's format to one the shell reads.
    Migrate,
    /// A bind moved the vault from this credential to the account of
    /// checkpoint `seq`: use that account's credential.
    Moved {
        /// The bind checkpoint.
        seq: u64,
        /// The platform it moved to.
        platform: String,
        /// The account it moved to.
        bot_id: u64,
    },
    /// A bind was interrupted after its checkpoint, before `config.toml`
    /// was written: running it again finishes it.
    FinishBind,
    /// A soul entry no seal can record: remove it, or exclude it and
    /// adopt the config, then wake again.
    RemoveOrExclude,
    /// A protected path changed and was not adopted: approve the change if
    /// it is the owner's, or put the approved version back.
    ApproveOrRevert,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_and_each_is_one_value_s() {
        fn check<T: Copy + PartialEq + std::fmt::Debug>(
            all: &[(T, &str)],
            name: fn(T) -> &'static str,
        ) {
            for (i, (v, n)) in all.iter().enumerate() {
                assert_eq!(name(*v), *n);
                assert!(all[..i].iter().all(|(w, m)| w != v && m != n), "{n} twice");
            }
        }
        check(&Verdict::ALL, Verdict::as_str);
        check(&Detail::ALL, Detail::as_str);
        check(&Action::ALL, Action::as_str);
        assert_eq!(Action::parse("rollback"), Some(Action::Rollback));
        assert_eq!(Action::parse("start"), None);
        assert_eq!(Action::parse("revert"), None);
        let mut p = Policies::default();
        assert_eq!(p.protected, ProtectPolicy::Revert);
        p.set("protected=halt").unwrap();
        assert_eq!(p.protected, ProtectPolicy::Halt);
        assert!(p.set("protected=accept").is_err());
        assert!(p.set("tampered=revert").is_err());
    }
}
