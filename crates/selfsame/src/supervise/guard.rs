//! The supervisor's guard on the protected paths while the agent runs:
//! a stat-based look every `protect_interval`, and at each heartbeat and
//! the stop; a change is put back (`protected = "revert"`) or the agent is
//! stopped (`"halt"`), and the owner is alerted with the diff.

use std::time::Duration;

use super::alert::Alert;
use super::child::Ended;
use super::{Next, Outcome, Supervisor};
use crate::ops::protect::{Reverted, Watch};
use crate::verdict::{ProtectPolicy, Verdict};

impl Supervisor<'_> {
    /// Starts watching the head's protected paths (after each wake).
    pub(super) fn watch_protected(&mut self) {
        self.watch = match Watch::new(self.vault, self.cred) {
            Ok(w) => w,
            Err(e) => {
                self.log
                    .line(&format!("cannot watch the protected paths: {e}"));
                None
            }
        };
    }

    /// The `[policy] protected` in force (flags over config).
    fn protect_policy(&self) -> ProtectPolicy {
        match self.opts.wake.policies {
            Some(p) => p.protected,
            None => self
                .vault
                .config
                .policies(&self.vault.config_path())
                .map(|p| p.protected)
                .unwrap_or_default(),
        }
    }

    /// One look at the protected paths, acting on a change by the policy.
    /// Returns whether the agent must be stopped (`halt`; then
    /// `self.halt` says why).
    pub(super) fn check_protected(&mut self) -> bool {
        let Some(watch) = self.watch.as_mut() else {
            return false;
        };
        match watch.check() {
            Ok(None) => false,
            Ok(Some(_)) => match self.protect_policy() {
                ProtectPolicy::Revert => {
                    self.revert_protected();
                    false
                }
                ProtectPolicy::Halt => self.halt_on_protected(),
            },
            Err(e) => {
                self.log
                    .line(&format!("could not look at the protected paths: {e}"));
                false
            }
        }
    }

    fn revert_protected(&mut self) {
        let watch = self.watch.as_mut().expect("checked by the caller");
        match watch.revert(self.vault, self.cred) {
            Ok(Some(r)) => self.alert_reverted(&r, "while the agent ran"),
            Ok(None) => {}
            Err(e) => {
                let message = format!(
                    "a protected path changed while the agent ran, and putting the approved version back failed: {e}"
                );
                self.alert(Alert {
                    event: "halt".into(),
                    verdict: Some(Verdict::Tampered.as_str().into()),
                    detail: Some("protected-changed".into()),
                    message,
                    next: self.next(&Next::Error),
                    ..self.alert_base()
                });
            }
        }
    }

    /// Under `halt`: confirms the change under the lock, saves its patch,
    /// alerts; the caller stops the agent.
    fn halt_on_protected(&mut self) -> bool {
        let watch = self.watch.as_mut().expect("checked by the caller");
        let finding = match watch.confirm(self.vault, self.cred) {
            Ok(Some(f)) => f,
            Ok(None) => return false,
            Err(e) => {
                self.log
                    .line(&format!("could not look at the protected paths: {e}"));
                return false;
            }
        };
        let (diff, file) = match finding.save_patch(self.vault) {
            Ok((d, f)) => (d, Some(f)),
            Err(e) => {
                self.log.line(&format!("could not save the diff: {e}"));
                (finding.patch(self.vault).unwrap_or_default(), None)
            }
        };
        let why = format!(
            "protected {} changed while the agent ran (checkpoint {}); by `protected = \"halt\"` the agent is stopped and nothing is adopted",
            finding.paths().join(", "),
            finding.seq
        );
        let alert = Alert {
            event: "halt".into(),
            verdict: Some(Verdict::Tampered.as_str().into()),
            detail: Some("protected-changed".into()),
            seq: Some(finding.seq),
            message: why.clone(),
            changes: finding.changes.summarize(),
            next: self.next(&Next::Halted(
                Verdict::Tampered,
                Some(crate::verdict::Detail::ProtectedChanged),
            )),
            ..self.alert_base()
        }
        .with_diff(diff, file);
        self.alert(alert);
        self.halt = Some(why);
        true
    }

    /// Alerts the owner that protected paths were put back, with the diff.
    pub(super) fn alert_reverted(&mut self, r: &Reverted, when: &str) {
        let message = format!(
            "protected {} changed {when}: the approved version (checkpoint {}) is back; the changed one is in {}",
            r.paths.join(", "),
            r.seq,
            r.quarantine
        );
        self.log.line(&message);
        let alert = Alert {
            event: "revert".into(),
            verdict: Some(Verdict::Tampered.as_str().into()),
            detail: Some("protected-changed".into()),
            seq: Some(r.seq),
            message,
            changes: r.changes.summarize(),
            next: self.next(&Next::Reverted {
                quarantine: r.quarantine.clone(),
            }),
            ..self.alert_base()
        }
        .with_diff(r.diff.clone(), Some(r.diff_file.clone()));
        self.alert(alert);
    }

    /// The agent was stopped for a protected change: its memory is sealed
    /// `rest` when it exited cleanly (the checkpoint keeps the approved
    /// protected versions), else the exit is recorded as a crash.
    pub(super) fn halted(&self, why: String, ended: Ended, seq: u64, ran: Duration) -> Outcome {
        if ended.is_clean() {
            if let Err(e) = self.seal_rest() {
                self.log.line(&format!("the rest seal failed: {e}"));
            }
        } else {
            self.record_crash(ended, seq, ran, Some("halt"));
        }
        Outcome {
            exit_code: Verdict::Tampered.exit_code(),
            message: format!("halted: {why}"),
        }
    }
}
