//! selfsame proves that a long-lived agent is still itself after every
//! restart.
//!
//! The agent keeps who it is in a directory of state, its **soul**. selfsame
//! keeps a **vault** beside it: content-addressed snapshots of the soul,
//! checkpoints signed with a key derived from the bot's token, and a
//! hash-chained history. [`ops::seal`] records the soul; [`ops::wake`]
//! checks it on start and returns a [`Verdict`].
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
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod crypto;
pub mod error;
pub mod format;
pub mod ops;
pub mod progress;
pub mod settings;
pub mod soul;
pub mod supervise;
pub mod vault;
pub mod verdict;

pub use crypto::{Credential, CredentialError, Platform};
pub use error::{Damage, Error, Left, LockName, Mismatch, Refusal, Result, Then};
pub use settings::Settings;
pub use vault::Vault;
pub use verdict::{Action, Advice, Detail, Verdict};
