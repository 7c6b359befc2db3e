//! Ctrl-C (SIGINT) during a command that writes the vault.
//!
//! Without a handler SIGINT kills the process at once. Every write is
//! crash-safe, so nothing sealed would be lost, but the seal itself would be
//! (and its temp files left behind). So the first SIGINT is noted and the
//! command finishes; the person at the terminal is told so on stderr. Then,
//! once its output is written, the process ends by SIGINT after all, so a
//! shell script around it stops as it would have (exit status 130: a wake
//! that finished still does not let `start.sh` start the agent). A second
//! SIGINT stops the process at once.

use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::SIGINT;
use signal_hook::iterator::Signals;
use signal_hook::low_level::emulate_default_handler;

use crate::output::errln;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// From now on, the first SIGINT lets `what` (e.g. "the seal") finish.
/// Without a handler (it could not be installed) SIGINT keeps its default.
pub fn finish_first(what: &'static str) {
    let Ok(mut signals) = Signals::new([SIGINT]) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            // A migration runs in a process group of its own, which the
            // terminal's Ctrl-C does not reach: it is stopped here, and
            // fails like any killed migration before the command goes on.
            selfsame::ops::migrate::kill_running();
            if INTERRUPTED.swap(true, Ordering::SeqCst) {
                errln!("selfsame: stopping at once; nothing sealed is lost");
                let _ = emulate_default_handler(SIGINT);
            } else {
                errln!(
                    "selfsame: interrupted: finishing {what} first, so that the vault is left whole; Ctrl-C again stops at once (nothing sealed is lost either way)"
                );
            }
        }
    });
}

/// Ends the process with `code`, or by SIGINT when one was noted.
pub fn exit(code: i32) -> ! {
    if INTERRUPTED.load(Ordering::SeqCst) {
        let _ = emulate_default_handler(SIGINT);
    }
    std::process::exit(code)
}
