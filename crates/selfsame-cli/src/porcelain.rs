//! The CLI's words for what the library reports as facts: what the owner
//! can run next, naming this binary's commands and flags. The library
//! names none (its errors, problems and verdicts are typed); every message
//! that says "run `selfsame …`" is made here.

use selfsame::ops::restore::{Pending, WakeWill};
use selfsame::ops::verify::VerifyReport;
use selfsame::ops::wake::WakeReport;
use selfsame::supervise::Next;
use selfsame::{
    Advice, Damage, Detail, Error, Left, LockName, Mismatch, Refusal, RemoteProblem, Then, Verdict,
};

/// An error as the owner reads it: what failed, and what to run next.
pub fn error(e: &Error) -> String {
    match e {
        Error::NoVault { .. } => format!(
            "{e}; run `selfsame init` there, or pass --vault / set SELFSAME_VAULT"
        ),
        Error::NoSoul(_) => {
            format!("{e}; check the path, or pass --create to start a new, empty soul there")
        }
        Error::ConfigNotText { .. } => format!("{e} and run `selfsame accept`"),
        Error::Refused(r) => refusal(r),
        Error::Busy { lock, pid } => {
            let lock = match lock {
                LockName::Vault => lock.to_string(),
                LockName::Supervisor => format!("{lock} (another `selfsame run`)"),
            };
            let holder = pid.map_or("another process".to_owned(), |p| format!("pid {p}"));
            format!("the vault is busy: {lock} is held by {holder}; try again when it finishes")
        }
        Error::Unsupported { .. } => format!(
            "{e}; remove it, or add it to `exclude` in config.toml (then `selfsame accept`)"
        ),
        Error::Unreadable { .. } => format!(
            "{e}; make it readable by the user selfsame runs as (chmod, chown), or leave it out with an `exclude` glob in config.toml (then `selfsame accept`)"
        ),
        Error::ObjectMissing { .. } => format!("{e}; run `selfsame verify` for the full list"),
        Error::Corrupt { path, damage } => format!(
            "vault damaged: {}{}; run `selfsame verify` for the full list",
            damage.describe(path),
            damage_advice(damage)
        ),
        Error::Identity(Mismatch::HeadUnverified(seq)) => format!(
            "identity mismatch: checkpoint {seq} does not verify under this token: wrong token, a rotated token (see `selfsame rekey`), or an edited checkpoint"
        ),
        Error::NoSuchCheckpoint(_) => format!("{e}; `selfsame log` lists them"),
        Error::NoSuchPath { seq, .. } => format!("{e}; `selfsame ls {seq}` lists what it has"),
        Error::NotAFile { seq, path, .. } => {
            format!("{e}; `selfsame ls {seq} {path}` lists what it holds")
        }
        Error::SwapPending(_) => format!(
            "{e}; run `selfsame wake` (or `selfsame restore --resume`) to finish it, or `selfsame restore --abort` to undo it"
        ),
        Error::SoulNotWritable { left, .. } => {
            let fix = "make it writable (its permissions, a read-only mount, `chattr -i`)";
            let next = match left {
                Left::Nothing => format!("nothing was changed: {fix}, then run the command again"),
                Left::Pending(event) => format!(
                    "the interrupted {event} stays pending: {fix}, then run `selfsame wake` (or `selfsame restore --resume`) to finish it, or `selfsame restore --abort` to undo it"
                ),
                Left::Undo => format!(
                    "the undo stays pending: {fix}, then run `selfsame restore --abort` again (or `selfsame wake`, which finishes it)"
                ),
            };
            format!("{e}; {next}")
        }
        Error::InTheWay { then, .. } => format!(
            "{e}, then run `selfsame restore {}`",
            match then {
                Then::Resume => "--resume",
                Then::Abort => "--abort",
            }
        ),
        Error::NoCommand => format!(
            "{e}: give the agent's command line after `--`, e.g. `selfsame run -- python bot.py`"
        ),
        Error::Remote { problem, .. } => match problem {
            RemoteProblem::NotConfigured => format!(
                "{e}: add `[remote]` with `url = \"s3://BUCKET/PREFIX\"` (and `endpoint` for a server other than AWS), then run `selfsame accept`"
            ),
            RemoteProblem::NoCredentials => format!(
                "{e}: export them in the environment (they are never stored)"
            ),
            RemoteProblem::Unreachable(_) => {
                format!("{e}; nothing was lost: run `selfsame push` again once it answers")
            }
            RemoteProblem::Ahead { .. } => format!(
                "{e}; run `selfsame wake` for the verdict, and do not push from this vault"
            ),
            RemoteProblem::Forked { .. } => format!(
                "{e}; stop the agent on one of the hosts: `selfsame wake` there says `corrupted` (forked)"
            ),
            _ => e.to_string(),
        },
        e => e.to_string(),
    }
}

fn refusal(r: &Refusal) -> String {
    match r {
        Refusal::AlreadySealed {
            event,
            sealed,
            quarantined,
            before,
        } => format!(
            "the interrupted {event} already sealed checkpoint {sealed}, so it can no longer be undone: run `selfsame wake` to finish recording it. The soul from before it is in {} (and checkpoint {before} is the state sealed before it)",
            quarantined.display()
        ),
        Refusal::MigrateDown { .. } => format!("{r} (`selfsame log`)"),
        Refusal::ConfigChanged { seq, saved } => format!(
            "config.toml changed since checkpoint {seq}{}; migrations run only under the config the head was sealed with",
            advice(&Advice::AdoptConfig {
                saved: saved.clone()
            })
        ),
        Refusal::ChangedAtRest(seq) => format!(
            "the soul changed since checkpoint {seq} while the agent was at rest; run `selfsame wake` (or `selfsame diff`) first: migrations start from a sealed state"
        ),
        Refusal::HasIdentity(_) => format!(
            "{r}: `selfsame identity show` prints it; to bring in another one, `selfsame identity import FILE --replace`"
        ),
        Refusal::OtherIdentity { .. } => format!("{r}: pass --replace to do so"),
        Refusal::BindSameBot => format!("{r}: see `selfsame rekey`"),
        Refusal::BindConfigChanged(_) => format!(
            "{r}: if you made the change, adopt it with `selfsame accept` first"
        ),
        Refusal::NoIdentity => format!(
            "{r}: `selfsame identity init` creates one (vaults made before identity keys have none)"
        ),
        Refusal::SetIdAsRoot { .. } => format!(
            "{r}. Restore it as the soul's owner (not root)"
        ),
        r => r.to_string(),
    }
}

/// What the owner can run about a damaged file, after its description.
fn damage_advice(d: &Damage) -> &'static str {
    match d {
        Damage::LineForged(_) => {
            ". Run `selfsame verify`, then move the file aside or cut it back to the line before"
        }
        Damage::WorkDir { .. } => {
            ", and run `selfsame wake` (then `selfsame restore head` puts the sealed soul back)"
        }
        Damage::PreviousSoulLost { .. } => ", then run `selfsame restore --abort` again",
        Damage::SealedConfigLost(_) => " with `selfsame accept`, then try again",
        _ => "",
    }
}

/// Advice, as the words that follow the message it belongs to.
pub fn advice(a: &Advice) -> String {
    match a {
        Advice::AdoptConfig { saved } => {
            let mut s = "; if you made the change, run `selfsame accept` to adopt it".to_owned();
            if let Some(saved) = saved {
                s.push_str(&format!(
                    "; if not, the config it was sealed with is saved as {}",
                    saved.display()
                ));
            }
            s
        }
        Advice::Rekey => " (see `selfsame rekey`)".into(),
        Advice::RekeyWithOld => " (see `selfsame rekey`); if BotFather issued a new token, run `selfsame rekey` with the old one".into(),
        Advice::WakeAfterClearing => {
            ", and run `selfsame wake` (then `selfsame restore head` puts the sealed soul back)"
                .into()
        }
        Advice::Migrate => {
            ": run `selfsame migrate`, or wake with --policy needs-migration=migrate".into()
        }
        Advice::RemoveOrExclude => "; remove it from the soul, or add it to `exclude` in config.toml and run `selfsame accept`, then wake again".into(),
        Advice::ApproveOrRevert => "; if the change is yours, `selfsame approve` adopts it (`selfsame approve --dry-run` shows the diff); if not, `selfsame wake --policy protected=revert` puts the approved version back".into(),
        Advice::Moved { platform, bot_id, .. } => format!(
            "; run the agent with that bot's token (set the variable config.toml's `token_env` names, e.g. {}, to the {platform} bot {bot_id}'s token)",
            selfsame::Platform::parse(platform).map_or("the platform's", |p| p.default_token_env())
        ),
        Advice::FinishBind => "; run the same `selfsame bind` again, with both tokens, to finish it".into(),
        _ => String::new(),
    }
}

/// A wake report with the advice worded into its messages (for people and
/// for `--json` alike).
pub fn wake(r: &mut WakeReport) {
    if let Some(a) = r.advice.take() {
        r.message.push_str(&advice(&a));
    }
    for p in &mut r.problems {
        if let Some(a) = p.advice.take() {
            p.message.push_str(&advice(&a));
        }
    }
}

/// A verify report with the advice worded in, and a note on a pending
/// restore.
pub fn verify(r: &mut VerifyReport) {
    for p in &mut r.problems {
        if let Some(a) = p.advice.take() {
            p.message.push_str(&advice(&a));
        }
    }
    if let Some(j) = &r.pending {
        r.notes.push(format!(
            "an interrupted restore is pending ({j}); the next wake finishes it (`selfsame status` says how), `selfsame restore --abort` undoes it"
        ));
    }
}

/// An interrupted restore or migration, and what the next wake does about
/// it, in one sentence.
pub fn pending(p: &Pending) -> String {
    let what = format!(
        "an interrupted {} to checkpoint {} is pending (phase {}{})",
        p.event,
        p.target,
        p.phase,
        if p.aborting { ", being undone" } else { "" }
    );
    let then = match p.wake_will {
        WakeWill::Finish if p.event == "migrate" => {
            "wake will finish it: the migrated soul is swapped in and sealed"
        }
        WakeWill::Finish => "wake will finish it: the soul becomes that checkpoint's and is sealed",
        WakeWill::Undo => "wake will undo it: the soul was not touched and stays at the head",
        WakeWill::FinishAbort => {
            "wake will finish undoing it (`selfsame restore --abort` began it): the soul goes back to how it was before"
        }
        WakeWill::Nothing => "wake will not act on it until the problem below is solved",
    };
    format!("{what}; {then}")
}

/// What the owner can run after a supervisor's alert.
pub fn next(n: &Next) -> String {
    match n {
        Next::Error => "`selfsame verify` and `selfsame log` show the state; fix the cause, then start `selfsame run` again".into(),
        Next::GaveUp => "fix the agent, then start it again; `selfsame log` shows the crashes, `selfsame restore N` puts any checkpoint back".into(),
        Next::RolledBack { quarantine } => {
            format!("inspect {quarantine}; `selfsame log` shows the crashes")
        }
        Next::TooManyRestarts => {
            "fix the agent, then start `selfsame run` again; `selfsame log` shows the crashes".into()
        }
        Next::Halted(Verdict::Tampered, Some(Detail::ProtectedChanged)) => "inspect with `selfsame approve --dry-run`; then `selfsame approve` to adopt the change, or `selfsame wake --policy protected=revert` to put the approved version back".into(),
        Next::Halted(Verdict::Tampered, Some(Detail::ConfigChanged)) => "check .selfsame/config.toml; then `selfsame accept` to adopt the change, or put the sealed config back (its path is in the message)".into(),
        Next::Halted(Verdict::Tampered, _) => "inspect with `selfsame diff`; then `selfsame accept` to adopt the soul as it is, or `selfsame restore head` to put the sealed state back".into(),
        Next::Halted(Verdict::IdentityMismatch, _) => "check that the token belongs to this bot; after a token rotation run `selfsame rekey` with the old one".into(),
        Next::Halted(Verdict::Incompatible, _) => {
            "run a shell that reads this soul format, or migrate the soul".into()
        }
        Next::Halted(..) => "`selfsame verify` lists every problem; `selfsame restore last-good` puts a good state back".into(),
        Next::Reverted { quarantine } => format!(
            "nothing, if the change was not yours. If it was: stop the agent, copy it back from {quarantine}, then `selfsame approve`"
        ),
        Next::RolledBackOnWake => "inspect the changed soul in quarantine (`selfsame log` names it); `selfsame restore N` puts any checkpoint back".into(),
        n => n.plain(),
    }
}
