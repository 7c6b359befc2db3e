//! The background push under `run`: after every seal the remote replica
//! is sent what it lacks, on a thread of its own, so a remote that is
//! slow or down never blocks or stops the agent. A failed push is tried
//! again with backoff a bounded number of times, then again at the next
//! seal or after a pause: it catches up once the remote answers.

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::crypto::Credential;
use crate::error::{Error, RemoteProblem};
use crate::ops::push::{push, Access};
use crate::vault::Vault;

/// How the background push retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRetry {
    /// Tries after a seal before waiting for the next seal or `pause`.
    pub tries: u32,
    /// The first wait between tries; it doubles (up to 30 s).
    pub backoff: Duration,
    /// After a round of failed tries, try again this much later (or at the
    /// next seal, whichever is first).
    pub pause: Duration,
}

impl Default for PushRetry {
    fn default() -> Self {
        PushRetry {
            tries: 5,
            backoff: Duration::from_secs(1),
            pause: Duration::from_secs(60),
        }
    }
}

/// What the push thread reports, for the supervisor to log or alert.
pub(crate) enum Report {
    /// One line for the log.
    Line(String),
    /// The remote refused: it is ahead or forked. Worth an alert.
    Refused(String),
}

enum Kick {
    Seal,
    Stop,
}

/// The push thread.
pub(crate) struct Pusher {
    kick: Sender<Kick>,
    reports: Receiver<Report>,
    thread: Option<JoinHandle<()>>,
}

impl Pusher {
    /// Starts the thread; it pushes once at once (the wake may have
    /// sealed), then after every [`Pusher::sealed`].
    pub(crate) fn start(
        vault: &Vault,
        cred: &Credential,
        access: &Access,
        retry: PushRetry,
    ) -> Pusher {
        let (kick, kicks) = channel();
        let (tell, reports) = channel();
        let (vault, cred, access) = (vault.clone(), cred.clone(), access.clone());
        let thread = std::thread::spawn(move || run(&vault, &cred, &access, retry, &kicks, &tell));
        let _ = kick.send(Kick::Seal);
        Pusher {
            kick,
            reports,
            thread: Some(thread),
        }
    }

    /// A seal wrote a checkpoint: push it.
    pub(crate) fn sealed(&self) {
        let _ = self.kick.send(Kick::Seal);
    }

    /// What the thread reported since the last call.
    pub(crate) fn reports(&self) -> Vec<Report> {
        self.reports.try_iter().collect()
    }

    /// Makes one last try (after the rest seal), waits for the thread,
    /// and returns what it reported.
    pub(crate) fn finish(mut self) -> Vec<Report> {
        let _ = self.kick.send(Kick::Seal);
        let _ = self.kick.send(Kick::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.reports()
    }
}

fn run(
    vault: &Vault,
    cred: &Credential,
    access: &Access,
    retry: PushRetry,
    kicks: &Receiver<Kick>,
    tell: &Sender<Report>,
) {
    let mut wanted = false;
    let mut failures = 0u32;
    let mut wait = retry.pause;
    loop {
        let stop = match kicks.recv_timeout(wait) {
            Ok(Kick::Seal) => {
                wanted = true;
                failures = 0;
                // Several seals queued up: one push sends them all.
                let mut stop = false;
                for k in kicks.try_iter() {
                    stop |= matches!(k, Kick::Stop);
                }
                stop
            }
            Ok(Kick::Stop) | Err(RecvTimeoutError::Disconnected) => true,
            Err(RecvTimeoutError::Timeout) => false,
        };
        if wanted {
            match push(vault, cred, access) {
                Ok(r) => {
                    wanted = false;
                    failures = 0;
                    if r.checkpoints > 0 {
                        let _ = tell.send(Report::Line(format!(
                            "push: sent checkpoints {}-{} to {} ({} objects)",
                            r.remote_before.map_or(1, |s| s + 1),
                            r.head,
                            r.url,
                            r.objects
                        )));
                    }
                }
                Err(
                    e @ Error::Remote {
                        problem: RemoteProblem::Forked { .. } | RemoteProblem::Ahead { .. },
                        ..
                    },
                ) => {
                    wanted = false;
                    let _ = tell.send(Report::Refused(format!("push refused: {e}")));
                }
                Err(e) => {
                    failures += 1;
                    let _ = tell.send(Report::Line(format!(
                        "push: try {failures} of {} failed: {e}",
                        retry.tries
                    )));
                }
            }
        }
        if stop {
            return;
        }
        wait = if wanted && failures > 0 && failures < retry.tries {
            (retry.backoff * 2u32.saturating_pow(failures - 1)).min(Duration::from_secs(30))
        } else {
            if wanted && failures >= retry.tries {
                failures = 0;
            }
            retry.pause
        };
    }
}
