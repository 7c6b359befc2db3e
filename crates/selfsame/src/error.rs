//! The library's error type: typed, so that callers decide by matching
//! variants, never text. Messages state what failed and on which path;
//! what the owner can run next is the caller's to word (the CLI names its
//! commands, the library names none). None of them can contain a secret.

use std::io;
use std::path::{Path, PathBuf};

use crate::format::checkpoint::{CheckpointError, FieldError};
use crate::format::identity::IdentityFileError;
use crate::format::journal::JournalError;
use crate::format::manifest::ManifestError;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a selfsame operation (as opposed to a verdict,
/// which is a finding about the soul and vault).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No `.selfsame/` here or in a parent.
    #[error("no vault found in {} or its parents", .start.display())]
    NoVault {
        /// Where the search started.
        start: PathBuf,
    },
    /// `init` found an existing vault.
    #[error("a vault already exists at {}; it was left untouched", .0.display())]
    VaultExists(PathBuf),
    /// `init` was given a soul directory that does not exist.
    #[error("soul {} does not exist", .0.display())]
    NoSoul(PathBuf),
    /// An I/O operation failed on a path.
    #[error("{}: {source}", shorten(&.path.to_string_lossy()))]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The configuration is invalid.
    #[error("config {}: {message}", .path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// `config.toml` is not UTF-8 text.
    #[error("config {}: not UTF-8 text (invalid byte at offset {offset}); fix the file (it is TOML)", .path.display())]
    ConfigNotText {
        /// The config file.
        path: PathBuf,
        /// Where the first invalid byte is.
        offset: usize,
    },
    /// A usage mistake the caller can fix.
    #[error("{0}")]
    Usage(String),
    /// An operation refused before it changed anything.
    #[error("{0}")]
    Refused(Refusal),
    /// The credential is missing or malformed.
    #[error("{0}")]
    Token(String),
    /// Another process holds a lock.
    #[error("the vault is busy: {lock} is held by {}", .pid.map_or("another process".to_owned(), |p| format!("pid {p}")))]
    Busy {
        /// Which lock.
        lock: LockName,
        /// Who holds it, when known.
        pid: Option<u32>,
    },
    /// A soul entry selfsame cannot record.
    #[error("soul entry {path}: {reason}")]
    Unsupported {
        /// The entry, relative to the soul (lossy if not UTF-8).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The soul's manifest would be larger than an object read whole may
    /// be ([`crate::vault::objects::MAX_WHOLE`]): nothing is sealed.
    #[error("the soul has {files} entries: its manifest would be more than {cap} bytes, more than selfsame reads back, so nothing was sealed; leave out what need not be kept (`exclude` in .selfsame/config.toml)")]
    SoulTooLarge {
        /// Entries in the soul.
        files: usize,
        /// The most bytes a manifest may have.
        cap: u64,
    },
    /// A soul file or directory this process may not read.
    #[error("cannot read {}: permission denied", .path.display())]
    Unreadable {
        /// The file or directory.
        path: PathBuf,
    },
    /// The operation was stopped before it finished (its result was no
    /// longer wanted).
    #[error("stopped before it finished")]
    Stopped,
    /// A file kept changing while selfsame read it.
    #[error("{} changed while it was being hashed ({tries} tries); seal at a quiescent point, or stop the writer", .path.display())]
    FileChanging {
        /// The file.
        path: PathBuf,
        /// How many times it was read.
        tries: u32,
    },
    /// A SQLite database in the soul stayed locked by its writers: a
    /// snapshot read past them would not be a committed state.
    #[error("SQLite database {} stayed locked by a writer for {}; its transaction must end before it can be sealed", .path.display(), humantime::format_duration(*.waited))]
    DatabaseBusy {
        /// The database file.
        path: PathBuf,
        /// How long the seal waited.
        waited: std::time::Duration,
    },
    /// A stored object is missing; the vault is damaged.
    #[error("vault damaged: object {hash} is missing")]
    ObjectMissing {
        /// The object's hash, hex.
        hash: String,
    },
    /// The vault is damaged.
    #[error("vault damaged: {}", .damage.describe(.path))]
    Corrupt {
        /// The file or directory the damage is in.
        path: PathBuf,
        /// What is wrong with it.
        damage: Box<Damage>,
    },
    /// The credential is another account's, or does not verify the vault.
    #[error("identity mismatch: {0}")]
    Identity(Mismatch),
    /// A checkpoint asked for does not exist.
    #[error("no checkpoint {0}")]
    NoSuchCheckpoint(String),
    /// A checkpoint asked for is in the chain, but a retention policy
    /// released its snapshot (a `forget` history event).
    #[error("checkpoint {seq} was forgotten by retention at {at}: its snapshot is released and can no longer be read or restored (the checkpoint stays in the chain)")]
    Forgotten {
        /// The checkpoint.
        seq: u64,
        /// When it was forgotten (RFC 3339).
        at: String,
    },
    /// A path asked of a checkpoint is not in it.
    #[error("checkpoint {seq} has no {path}")]
    NoSuchPath {
        /// The checkpoint.
        seq: u64,
        /// The path asked for, relative to the soul.
        path: String,
    },
    /// A path of a checkpoint is not what the command reads (a directory
    /// for `cat`).
    #[error("{path} in checkpoint {seq} is a {what}")]
    NotAFile {
        /// The checkpoint.
        seq: u64,
        /// The path, relative to the soul.
        path: String,
        /// What it is instead: `directory`.
        what: &'static str,
    },
    /// Fields asked of a new checkpoint were refused (a caller's mistake;
    /// nothing was written).
    #[error("cannot seal: {0}")]
    Field(#[from] FieldError),
    /// An interrupted restore or migration must be finished or undone
    /// first.
    #[error("an interrupted restore is pending ({0})")]
    SwapPending(String),
    /// The soul directory cannot be written: its permissions, a read-only
    /// mount or an immutable attribute.
    #[error("the soul directory {} is not writable ({}: {source})", .soul.display(), .path.display())]
    SoulNotWritable {
        /// The soul directory.
        soul: PathBuf,
        /// What could not be written.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
        /// What is left pending.
        left: Left,
    },
    /// A swap met something at a name it moves to, and never replaces
    /// anything.
    #[error("restore: {} already exists, and a restore never replaces anything: move it out of the way", .path.display())]
    InTheWay {
        /// What is in the way.
        path: PathBuf,
        /// Whether the owner then resumes or aborts.
        then: Then,
    },
    /// An exported identity could not be read back.
    #[error("cannot import the identity: {0}")]
    Import(ImportError),
    /// `supervise` was given no command to run.
    #[error("no command to supervise")]
    NoCommand,
    /// The remote replica (`[remote]`) could not be used.
    #[error("remote {url}: {problem}")]
    Remote {
        /// The remote, `s3://BUCKET/PREFIX`.
        url: String,
        /// What went wrong.
        problem: RemoteProblem,
    },
}

/// What went wrong with the remote replica. Never holds a key, a token or
/// an AWS secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteProblem {
    /// No `[remote]` in the config, and no URL given.
    #[error("no remote is configured ([remote] url in config.toml)")]
    NotConfigured,
    /// The AWS credentials are missing from the environment.
    #[error("no AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")]
    NoCredentials,
    /// The server could not be reached.
    #[error("{0}")]
    Unreachable(String),
    /// The server answered with an error.
    #[error("the server refused: {0}")]
    Server(String),
    /// The remote's data key does not open under the credential.
    #[error("{0}")]
    Key(String),
    /// A record of the remote does not open, does not parse, or is not
    /// what its name promises: the replica is damaged or was altered.
    #[error("damaged: {0}")]
    Damaged(String),
    /// The remote holds another checkpoint under a seq this vault also
    /// sealed: the agent also runs elsewhere.
    #[error("forked: the remote's checkpoint {seq} is not this vault's (the agent also runs elsewhere, or ran from a copy of this vault)")]
    Forked {
        /// The first seq where the two differ.
        seq: u64,
    },
    /// The remote holds no vault (no key or no HEAD).
    #[error("holds no vault")]
    Empty,
    /// The remote is ahead of this vault: pushing would rewind it.
    #[error("the remote is at checkpoint {remote}, this vault only at {local}: an older vault was put back here, or another host went on")]
    Ahead {
        /// The local head.
        local: u64,
        /// The remote head.
        remote: u64,
    },
    /// The local vault does not pass its checks; nothing is pushed.
    #[error("this vault does not pass its checks, so nothing was pushed: {0}")]
    LocalDamaged(String),
}

/// Why an exported identity could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    /// Not an age file encrypted to a passphrase.
    #[error("it is not an age file encrypted to a passphrase")]
    NotPassphraseFile,
    /// The passphrase does not open it (or the file is damaged).
    #[error("the passphrase does not open it (or the file is damaged)")]
    Passphrase,
    /// It would take more work than a file written here can need.
    #[error("its passphrase encryption asks for more work than selfsame accepts")]
    ExcessiveWork,
    /// It opens, but does not hold an identity exported by selfsame.
    #[error("it opens, but holds no identity exported by selfsame")]
    NotIdentity,
}

/// Which lock another process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockName {
    /// The short vault lock every writer takes.
    Vault,
    /// The lock a supervisor holds for its life.
    Supervisor,
}

impl std::fmt::Display for LockName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LockName::Vault => "the vault lock",
            LockName::Supervisor => "the supervisor lock",
        })
    }
}

/// What a swap that could not write the soul leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Left {
    /// Nothing was changed; the command can simply be run again.
    Nothing,
    /// The interrupted swap (its event) stays pending.
    Pending(String),
    /// The undo stays pending.
    Undo,
}

/// After an [`Error::InTheWay`]: go on with the swap, or undo it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Then {
    /// Finish it.
    Resume,
    /// Undo it.
    Abort,
}

/// Why a credential does not match the vault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Mismatch {
    /// The credential proves another account.
    #[error("the token is {token_platform} bot {token}'s, but this vault belongs to {vault_platform} bot {vault}")]
    OtherAccount {
        /// The credential's platform.
        token_platform: String,
        /// The credential's account.
        token: u64,
        /// The vault's platform.
        vault_platform: String,
        /// The vault's account.
        vault: u64,
    },
    /// The head does not verify under the credential.
    #[error("checkpoint {0} does not verify under this token: wrong token, a rotated token, or an edited checkpoint")]
    HeadUnverified(u64),
    /// A checkpoint asked for does not verify under the credential.
    #[error("checkpoint {0} does not verify under this token")]
    Unverified(u64),
    /// A rekey's two credentials prove two accounts.
    #[error("the old token is bot {old}'s and the new one bot {new}'s; a rekey keeps the bot and changes only its token")]
    RekeyAccounts {
        /// The old credential's account.
        old: u64,
        /// The new one's.
        new: u64,
    },
    /// A rekey's old credential does not verify the vault.
    #[error("the vault does not verify under the old token ({0}); a rekey vouches only for a chain that does")]
    RekeyUnverified(String),
    /// The credential does not verify the vault that `op` (forget, prune)
    /// would change.
    #[error("the vault does not verify under this token ({why}); {op} changes nothing in a vault that does not")]
    VaultUnverified {
        /// The operation.
        op: &'static str,
        /// The first problem (its detail and message).
        why: String,
    },
}

/// An operation refused before anything changed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// `restore --abort` of a swap that already sealed its checkpoint.
    #[error("the interrupted {event} already sealed checkpoint {sealed}, so it can no longer be undone. The soul from before it is in {} (and checkpoint {before} is the state sealed before it)", .quarantined.display())]
    AlreadySealed {
        /// `restore`, `rollback` or `migrate`.
        event: String,
        /// The checkpoint it sealed.
        sealed: u64,
        /// Where the soul from before it is.
        quarantined: PathBuf,
        /// The head before it.
        before: u64,
    },
    /// A migration to an older format.
    #[error("the soul is v{current}; migrations only go up. To go back, restore a checkpoint sealed at v{to}")]
    MigrateDown {
        /// The soul's format number.
        current: u32,
        /// The one asked for.
        to: u32,
    },
    /// A migration under a `config.toml` the head was not sealed with.
    #[error("config.toml changed since checkpoint {seq}; migrations run only under the config the head was sealed with")]
    ConfigChanged {
        /// The head.
        seq: u64,
        /// The object holding the sealed config, when it is stored.
        saved: Option<PathBuf>,
    },
    /// A migration from a soul that changed at rest.
    #[error("the soul changed since checkpoint {0} while the agent was at rest; migrations start from a sealed state")]
    ChangedAtRest(u64),
    /// The vault has an identity key already.
    #[error("the vault already has an identity key, {0}")]
    HasIdentity(String),
    /// An imported identity key is not the vault's, which has one.
    #[error("the vault's identity key is {current}, not the imported {imported}; replacing it starts a new identity (checkpoints from then on are signed by the imported key), so it is done only when asked")]
    OtherIdentity {
        /// The vault's key (`selfsame:ed25519:…`).
        current: String,
        /// The imported one.
        imported: String,
    },
    /// The vault has no identity key.
    #[error("the vault has no identity key")]
    NoIdentity,
    /// A bind to the bot the vault already belongs to.
    #[error("the new token is the same bot's as the vault's; a bind moves a vault to another platform or bot, a new token of the same bot is a rekey")]
    BindSameBot,
    /// A forget by the `[retention]` of a `config.toml` the head was not
    /// sealed with.
    #[error("config.toml changed since checkpoint {0}: its [retention] is not applied until `selfsame accept` adopts the change (or give --keep-* rules)")]
    RetentionConfigChanged(u64),
    /// A bind under a `config.toml` the head was not sealed with.
    #[error("config.toml changed since checkpoint {0}; a bind moves the config the head was sealed with")]
    BindConfigChanged(u64),
    /// A restore, rollback or migration run as root of a checkpoint that
    /// records a setuid or setgid file.
    #[error("the checkpoint records {path} with mode {mode:04o} (setuid or setgid): restored by root it would be a setuid or setgid program owned by root, so nothing was restored")]
    SetIdAsRoot {
        /// The file, relative to the soul.
        path: String,
        /// Its recorded permission bits.
        mode: u32,
    },
    /// The agent's user could write the vault (or what the supervisor
    /// runs): privilege separation would separate nothing.
    #[error("the agent's user {user} could write {} ({why}), so nothing was started; take it out of {user}'s reach: {fix}", .path.display())]
    VaultWritable {
        /// The user.
        user: String,
        /// What it could write.
        path: PathBuf,
        /// Why it could.
        why: String,
        /// A command that takes it out of the user's reach.
        fix: String,
    },
    /// The agent's user is root, which can write anything.
    #[error("the agent's user {0} is root, which can write the vault; give it a user of its own")]
    AgentIsRoot(String),
    /// Switching the agent to another user needs root.
    #[error("running the agent as {0} needs the supervisor to run as root")]
    CannotSwitchUser(String),
}

/// What is wrong with a vault file or directory (the `path` of
/// [`Error::Corrupt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// Not a regular file: a symlink, a FIFO, a device, a directory.
    NotRegular(&'static str),
    /// A vault directory that is not a directory: a symlink, a file.
    NotADirectory(&'static str),
    /// Larger than such a file can be.
    TooBig {
        /// Bytes found (at least).
        len: u64,
        /// Most bytes such a file can hold.
        cap: u64,
    },
    /// `config.toml` is missing.
    ConfigMissing,
    /// The `format` file is missing.
    FormatMissing,
    /// The `format` file holds no vault format.
    FormatInvalid,
    /// `checkpoints/` is missing.
    CheckpointsMissing,
    /// A checkpoint file does not parse.
    Checkpoint(CheckpointError),
    /// A checkpoint file says another seq than its name.
    CheckpointSeq(u64),
    /// A checkpoint that a seal was about to write exists already.
    CheckpointExists,
    /// `HEAD` holds no seq.
    HeadInvalid,
    /// `HEAD` names a checkpoint newer than the newest present.
    HeadAhead(u64),
    /// `quarantine/` is a symlink or not a directory (what it is).
    QuarantineInvalid(String),
    /// A history line after the head's anchor has no valid MAC.
    LineForged(u64),
    /// The restore journal is not one selfsame wrote with this credential.
    Journal(JournalError),
    /// A work dir of an interrupted swap is not the one it made.
    WorkDir {
        /// `restore`, `rollback` or `migrate`.
        event: String,
        /// Why not.
        why: String,
        /// The work dir.
        work: PathBuf,
        /// The journal.
        journal: PathBuf,
        /// The quarantine.
        quarantine: PathBuf,
    },
    /// An object is not the size its manifest says.
    ObjectSize {
        /// Its size.
        len: u64,
        /// The manifest's.
        size: u64,
    },
    /// An object's bytes do not hash to its name.
    ObjectMismatch,
    /// A pack is damaged: what is wrong with it.
    Pack(String),
    /// An object changed while it was read, or is not a regular file.
    ObjectChanged,
    /// A manifest object does not parse: checkpoint `Some(seq)`'s, or a
    /// migrated soul's.
    Manifest(Option<u64>, ManifestError),
    /// A migration journal's soul hash is not hex.
    JournalSoul(String),
    /// A checkpoint to restore does not verify.
    NotTrusted(u64),
    /// A checkpoint to read does not verify, though the head does under
    /// the same token: it was edited.
    CheckpointUnverified(u64),
    /// The journal names another soul than its checkpoint's.
    JournalNamesOtherSoul(u64),
    /// The soul a swap brought in does not hash to its target's.
    RestoredSoulDiffers(u64),
    /// The soul from before an interrupted swap is neither in `old/` nor
    /// in quarantine.
    PreviousSoulLost {
        /// The swap's event.
        event: String,
        /// Where it should have been.
        old: PathBuf,
        /// The soul.
        soul: PathBuf,
    },
    /// A checkpoint's `config` field is not hex.
    ConfigHashInvalid(u64),
    /// The config checkpoint `seq` was sealed with is missing or damaged.
    SealedConfigLost(u64),
    /// A manifest to stage has unsafe or malformed paths.
    UnsafeManifest,
    /// The parent of an entry to stage is not a directory.
    ParentNotDir(String),
    /// An object to stage is not its entry's size.
    EntryWrongSize(String),
    /// The head checkpoint's `format` is not a tag.
    FormatTag(String),
    /// A rekey's old credential finds a problem (its detail and message).
    RekeyUnverified(String),
    /// `op` (forget, prune) finds a problem (its detail and message).
    Unverified {
        /// The operation.
        op: &'static str,
        /// The problem.
        why: String,
    },
    /// The history's chain is broken or a line unreadable.
    HistoryBroken,
    /// A checkpoint's identity signature is wrong (why).
    Signature(&'static str),
    /// The identity file is not one.
    IdentityFile(IdentityFileError),
    /// The identity file does not open under the token.
    IdentityLocked,
    /// The identity file is missing, but checkpoint `seq` is signed.
    IdentityMissing(u64),
    /// The identity file holds another key than checkpoint `seq` names.
    IdentityOther(u64),
}

impl Damage {
    /// What is wrong, naming `path`.
    pub fn describe(&self, path: &Path) -> String {
        let p = path.display();
        match self {
            Damage::NotADirectory(what) => format!(
                "{p} is {what}, not a directory; the vault's directories are its own and never followed out (move it away after checking it)"
            ),
            Damage::NotRegular(what) => format!(
                "{p} is {what}, not a regular file; every vault file is a regular file written by selfsame (move it away after checking it)"
            ),
            Damage::TooBig { len, cap } => format!(
                "{p} is {len} bytes or more, more than such a file can be ({cap}); it was not written by selfsame"
            ),
            Damage::ConfigMissing => {
                format!("{p} is missing; the vault cannot be used without it")
            }
            Damage::FormatMissing => format!(
                "{p} is missing (it holds the vault format, \"{}\"); the vault is damaged or not a selfsame vault",
                crate::format::VAULT_FORMAT
            ),
            Damage::FormatInvalid => format!(
                "{p} does not hold a vault format (\"{}\")",
                crate::format::VAULT_FORMAT
            ),
            Damage::CheckpointsMissing => format!(
                "{p} is missing; the vault has lost its checkpoints (restore the vault from a backup)"
            ),
            Damage::Checkpoint(e) => format!("checkpoint {p} is unreadable: {e}"),
            Damage::CheckpointSeq(seq) => format!("checkpoint {p} says seq {seq}"),
            Damage::CheckpointExists => format!(
                "checkpoint {p} already exists; another writer sealed at the same time"
            ),
            Damage::HeadInvalid => format!("{p} does not hold a seq"),
            Damage::HeadAhead(h) => {
                format!("HEAD names checkpoint {h} but it is missing (rolled back?)")
            }
            Damage::QuarantineInvalid(what) => format!(
                "{p} is {what}; restore, rollback and migrate move soul states there and never follow it out of the vault. Move it aside (check what it holds), make a directory in its place (`mkdir {p}`), then run the command again"
            ),
            Damage::LineForged(n) => format!(
                "{p} line {n} has no valid MAC: it was not written by selfsame with this bot's token (forged or edited); nothing was sealed"
            ),
            Damage::Journal(why) => format!(
                "{p}: {why}; it was not written by selfsame with this bot's token. Move it out of run/ (and {}/ out of the soul) after checking them",
                crate::format::journal::WORK_DIR
            ),
            Damage::WorkDir {
                event,
                why,
                work,
                journal,
                quarantine,
            } => format!(
                "{p} is not the directory the interrupted {event} made ({why}), so it is neither finished nor undone, and nothing was touched. To clear it: check what they hold, then move {} out of the soul and {} into {}/",
                work.display(),
                journal.display(),
                quarantine.display()
            ),
            Damage::ObjectSize { len, size } => {
                format!("object {p} is {len} bytes, but its manifest says {size}")
            }
            Damage::ObjectMismatch => format!("object {p} does not match its hash"),
            Damage::Pack(what) => format!("pack {p} is damaged: {what}"),
            Damage::ObjectChanged => {
                format!("object {p} changed while it was read, or is not a regular file")
            }
            Damage::Manifest(Some(seq), e) => format!("manifest of checkpoint {seq}: {e}"),
            Damage::Manifest(None, e) => format!("manifest of the migrated soul: {e}"),
            Damage::JournalSoul(hex) => format!("migration journal: bad soul hash {hex:?}"),
            Damage::CheckpointUnverified(seq) => format!(
                "{p}: checkpoint {seq} does not verify under this token, which the head verifies: it was edited or damaged (see `selfsame verify`)"
            ),
            Damage::NotTrusted(seq) => {
                format!("checkpoint {seq} does not verify; it cannot be restored")
            }
            Damage::JournalNamesOtherSoul(seq) => {
                format!("the restore journal names a soul other than checkpoint {seq}'s")
            }
            Damage::RestoredSoulDiffers(seq) => format!(
                "the restored soul does not match checkpoint {seq} (something wrote to the soul during the restore?)"
            ),
            Damage::PreviousSoulLost { event, old, soul } => format!(
                "the soul from before the interrupted {event} is neither in {} nor in {p}; it cannot be put back. Find it, put its entries into {}",
                old.display(),
                soul.display()
            ),
            Damage::ConfigHashInvalid(seq) => {
                format!("checkpoint {seq} records a config hash that is not hex")
            }
            Damage::SealedConfigLost(seq) => format!(
                "config.toml differs from the config checkpoint {seq} was sealed with, and that one ({p}) is missing or damaged, so a restore cannot act on it: put config.toml back as it was sealed, or adopt it"
            ),
            Damage::UnsafeManifest => "restore: the manifest has unsafe or malformed paths".into(),
            Damage::ParentNotDir(entry) => {
                format!("restore: parent of {entry} is not a directory")
            }
            Damage::EntryWrongSize(entry) => format!("object for {entry} has the wrong size"),
            Damage::FormatTag(e) => format!("head checkpoint: {e}"),
            Damage::HistoryBroken => format!("{p} is damaged"),
            Damage::Signature(why) => format!("checkpoint {p}: {why}"),
            Damage::IdentityFile(e) => format!("identity file {p} is unreadable: {e}"),
            Damage::IdentityLocked => format!(
                "identity file {p} does not open under this token (it was sealed under another token, or edited); put back a copy that does, or import the owner's exported identity"
            ),
            Damage::IdentityMissing(seq) => format!(
                "identity file {p} is missing, but checkpoint {seq} is signed by an identity key; put it back, or import the owner's exported identity"
            ),
            Damage::IdentityOther(seq) => format!(
                "identity file {p} holds another identity key than the one checkpoint {seq} is signed by; put back the one that signed it"
            ),
            Damage::RekeyUnverified(why) => format!(
                "the vault does not verify under the old token ({why}); a rekey vouches only for a chain that does"
            ),
            Damage::Unverified { op, why } => format!(
                "{p}: the vault does not verify ({why}); {op} changes nothing in a vault that does not"
            ),
        }
    }
}

impl Error {
    /// The damage at `path`.
    pub(crate) fn corrupt(path: &Path, damage: Damage) -> Error {
        Error::Corrupt {
            path: path.to_owned(),
            damage: Box::new(damage),
        }
    }

    /// The process exit code for this error (DESIGN.md: 2 usage or config,
    /// 4 identity, 5 damaged vault, 75 busy, 1 anything else).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NoVault { .. }
            | Error::VaultExists(_)
            | Error::NoSoul(_)
            | Error::Config { .. }
            | Error::ConfigNotText { .. }
            | Error::Usage(_)
            | Error::Refused(_)
            | Error::Token(_)
            | Error::NoSuchCheckpoint(_)
            | Error::Forgotten { .. }
            | Error::NoSuchPath { .. }
            | Error::NotAFile { .. }
            | Error::Field(_)
            | Error::InTheWay { .. }
            | Error::Import(_)
            | Error::NoCommand => 2,
            Error::Identity(_) => 4,
            Error::Corrupt { .. } | Error::ObjectMissing { .. } => 5,
            Error::Remote { problem, .. } => match problem {
                RemoteProblem::NotConfigured | RemoteProblem::NoCredentials => 2,
                RemoteProblem::Key(_) => 4,
                RemoteProblem::Damaged(_)
                | RemoteProblem::Forked { .. }
                | RemoteProblem::Ahead { .. }
                | RemoteProblem::LocalDamaged(_) => 5,
                _ => 1,
            },
            Error::Busy { .. } => 75,
            _ => 1,
        }
    }
}

/// A path as it appears in a message: whole when it is of a sensible
/// length, else its start and end around `…` with its length, so that a
/// path of kilobytes does not become a message of kilobytes.
pub fn shorten(path: &str) -> String {
    const KEEP: usize = 100;
    if path.len() <= 2 * KEEP + 40 {
        return path.to_owned();
    }
    let mut head = KEEP;
    while !path.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = path.len() - KEEP;
    while !path.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{}…{} ({} bytes)", &path[..head], &path[tail..], path.len())
}

/// Attaches a path to an I/O error.
pub trait IoContext<T> {
    /// Wraps the error as [`Error::Io`] with `path`.
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }
}
