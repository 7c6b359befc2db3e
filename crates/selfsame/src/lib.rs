//! selfsame proves that a long-lived agent is still itself after every
//! restart.
//!
//! The agent keeps who it is in a directory of state, its **soul**. selfsame
//! keeps a **vault** beside it: content-addressed snapshots of the soul,
//! checkpoints signed with a key derived from the agent's credential (a
//! Telegram bot token), and a hash-chained history. [`ops::seal`] records
//! the soul; [`ops::wake`] checks it on start and returns a [`Verdict`];
//! [`supervise::run`] does both around the agent's process.
//!
//! ```
//! use selfsame::{ops, Credential, Platform};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir(dir.path().join("soul"))?;
//! std::fs::write(dir.path().join("soul/memory.jsonl"), "{\"said\":\"hello\"}\n")?;
//! let token = Credential::parse(Platform::Telegram, "123456:example-secret")?;
//!
//! let init = ops::init::InitOptions::new("soul").shell("1.0.0");
//! let vault = ops::init::init(dir.path(), &token, &init)?;
//! let report = ops::wake::wake(&vault, &token, &ops::wake::WakeOptions::default())?;
//! assert_eq!(report.verdict, selfsame::Verdict::Verified);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The library is plumbing: it reads no environment variable (the caller
//! passes [`Settings`]), prints nothing (it reports through [`Progress`]
//! and returns reports), and names none of the CLI's commands: errors,
//! problems and verdicts are typed, with [`Advice`] for the caller to word.
//! `docs/ARCHITECTURE.md` shows its layers.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod crypto;
mod error;
mod format;
pub mod ops;
pub mod progress;
#[cfg(feature = "remote")]
mod remote;
mod settings;
mod soul;
pub mod supervise;
#[cfg(feature = "test-hooks")]
pub mod testing;
mod vault;
mod verdict;

pub use crypto::{
    Credential, CredentialError, DiscordToken, DiscordTokenError, Passphrase, Platform,
};
pub use error::{
    Damage, Error, ImportError, Left, LockName, Mismatch, Refusal, RemoteProblem, Result, Then,
};
pub use format::checkpoint::{CheckpointError, FieldError};
pub use format::identity::IdentityFileError;
pub use format::journal::JournalError;
pub use format::manifest::ManifestError;
pub use progress::{Phase, Progress, Silent};
pub use settings::Settings;
pub use soul::changes::{ChangeKind, ChangeSummary, Changes};
pub use vault::config::{Config, PolicyConfig, RemoteConfig, WitnessPolicy};
pub use vault::Vault;
pub use verdict::{Action, Advice, Detail, MigrationPolicy, Policies, ProtectPolicy, Verdict};
