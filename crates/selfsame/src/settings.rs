//! What the program around the library tells it, instead of the library
//! reading the environment: how long a writer waits for the vault lock and
//! the version of the shell it runs for.
//!
//! Test hooks exist only in builds with the `test-hooks` feature, which the
//! crates' tests enable through their dev-dependencies and a release build
//! never has: a clock that stands still, crash points (failpoints), and a
//! fixed identity seed and sealing nonce (for test vectors). In such a
//! build, and only there, [`Settings::default`] takes them from
//! `SELFSAME_NOW` (RFC 3339, or seconds since the Unix epoch),
//! `SELFSAME_FAILPOINT` (a point's name), `SELFSAME_IDENTITY_SEED` (64 hex
//! digits) and `SELFSAME_IDENTITY_NONCE` (24 hex digits), so that the tests
//! reach the hooks of the binary they run.

use std::time::{Duration, SystemTime};

/// How long a writer waits for the vault lock by default.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Settings of the process using a vault. [`crate::Vault::with_settings`]
/// attaches them; every operation on that vault obeys them.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long a writer waits for the vault lock before giving up with
    /// [`crate::Error::Busy`] (default 5 s).
    pub lock_wait: Duration,
    /// The version of the shell this process runs for: recorded by a seal
    /// that is not given one (a restore's, a migration's), else the head's.
    pub shell: Option<String>,
    clock: Clock,
    #[cfg(feature = "test-hooks")]
    failpoint: Option<String>,
    #[cfg(feature = "test-hooks")]
    seed: Option<[u8; 32]>,
    #[cfg(feature = "test-hooks")]
    nonce: Option<[u8; 12]>,
}

impl Default for Settings {
    fn default() -> Self {
        let s = Settings {
            lock_wait: DEFAULT_LOCK_WAIT,
            shell: None,
            clock: Clock::default(),
            #[cfg(feature = "test-hooks")]
            failpoint: None,
            #[cfg(feature = "test-hooks")]
            seed: None,
            #[cfg(feature = "test-hooks")]
            nonce: None,
        };
        #[cfg(feature = "test-hooks")]
        let s = s.with_test_env();
        s
    }
}

/// The clock: the system's, or a fixed time in tests.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Clock {
    #[cfg(feature = "test-hooks")]
    fixed: Option<SystemTime>,
}

impl Clock {
    /// The current time.
    pub(crate) fn now(self) -> SystemTime {
        #[cfg(feature = "test-hooks")]
        if let Some(t) = self.fixed {
            return t;
        }
        SystemTime::now()
    }
}

impl Settings {
    /// The clock every record's time comes from.
    pub(crate) fn clock(&self) -> Clock {
        self.clock
    }

    /// A named place where a test can make the process stop dead, as a
    /// crash or a power cut would: with the `test-hooks` feature and the
    /// point armed, it exits with status 97 at once, cleaning nothing up.
    /// Otherwise nothing.
    pub(crate) fn failpoint(&self, name: &str) {
        #[cfg(feature = "test-hooks")]
        if self.failpoint.as_deref() == Some(name) {
            eprintln!("selfsame: failpoint {name} fired");
            std::process::exit(FAILPOINT_EXIT);
        }
        let _ = name;
    }

    /// [`Settings::failpoint`] for the `n`th repetition of a step: the
    /// point named `name-n`.
    pub(crate) fn failpoint_at(&self, name: &str, n: u64) {
        #[cfg(feature = "test-hooks")]
        if let Some(armed) = &self.failpoint {
            let at = armed
                .strip_prefix(name)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.parse::<u64>().ok());
            if at == Some(n) {
                eprintln!("selfsame: failpoint {armed} fired");
                std::process::exit(FAILPOINT_EXIT);
            }
        }
        let _ = (name, n);
    }
}

impl Settings {
    /// The seed of a new identity key: 32 bytes from the operating
    /// system's random source (or the test hook's).
    pub(crate) fn new_seed(&self) -> std::io::Result<[u8; 32]> {
        #[cfg(feature = "test-hooks")]
        if let Some(seed) = self.seed {
            return Ok(seed);
        }
        random()
    }

    /// A nonce for sealing the identity seed: 12 random bytes (or the test
    /// hook's).
    pub(crate) fn new_nonce(&self) -> std::io::Result<[u8; 12]> {
        #[cfg(feature = "test-hooks")]
        if let Some(nonce) = self.nonce {
            return Ok(nonce);
        }
        random()
    }
}

/// `N` bytes from the operating system's random source.
fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::getrandom(&mut out).map_err(std::io::Error::from)?;
    Ok(out)
}

/// Exit status of a process stopped by a failpoint.
#[cfg(feature = "test-hooks")]
pub const FAILPOINT_EXIT: i32 = 97;

#[cfg(feature = "test-hooks")]
impl Settings {
    /// The hooks `SELFSAME_NOW` and `SELFSAME_FAILPOINT` ask for.
    fn with_test_env(mut self) -> Self {
        use std::time::UNIX_EPOCH;
        if let Ok(text) = std::env::var("SELFSAME_NOW") {
            let text = text.trim();
            let now = match text.parse::<u64>() {
                Ok(secs) => Some(UNIX_EPOCH + Duration::from_secs(secs)),
                Err(_) => humantime::parse_rfc3339(text).ok(),
            };
            if let Some(now) = now {
                self = self.with_now(now);
            }
        }
        if let Ok(name) = std::env::var("SELFSAME_FAILPOINT") {
            self = self.with_failpoint(&name);
        }
        let hex_var = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|t| hex::decode(t.trim()).ok())
        };
        if let Some(seed) = hex_var("SELFSAME_IDENTITY_SEED").and_then(|b| b.try_into().ok()) {
            self.seed = Some(seed);
        }
        if let Some(nonce) = hex_var("SELFSAME_IDENTITY_NONCE").and_then(|b| b.try_into().ok()) {
            self.nonce = Some(nonce);
        }
        self
    }

    /// Test hook: every new identity key has this seed, and every sealing
    /// of one this nonce (for test vectors).
    pub fn with_identity_entropy(mut self, seed: [u8; 32], nonce: [u8; 12]) -> Self {
        self.seed = Some(seed);
        self.nonce = Some(nonce);
        self
    }

    /// Test hook: the clock stands still at `now`.
    pub fn with_now(mut self, now: SystemTime) -> Self {
        self.clock.fixed = Some(now);
        self
    }

    /// Test hook: arms the failpoint `name` (see the README for the names).
    pub fn with_failpoint(mut self, name: &str) -> Self {
        self.failpoint = Some(name.to_owned());
        self
    }
}
