//! Every byte the CLI prints goes through here.
//!
//! The Rust runtime ignores SIGPIPE, so a write into a closed pipe
//! (`selfsame log | head -1`) returns `EPIPE`, on which `println!` panics.
//! As in ripgrep, a broken pipe ends output quietly: later writes are
//! dropped, the command still finishes what it was doing, and the process
//! exits with the code the command would have had. Any other failed write
//! (`selfsame wake > /dev/full`) is kept and reported once, at the end, on
//! stderr with exit 1 ([`finish`]). Writes to stderr never fail loudly:
//! there is nowhere left to report that.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

enum State {
    Open,
    /// The reader went away: output ends quietly.
    Closed,
    /// A write failed otherwise; reported by [`finish`].
    Failed(io::Error),
}

static STATE: Mutex<State> = Mutex::new(State::Open);

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn record(state: &mut State, e: io::Error) {
    *state = if e.kind() == io::ErrorKind::BrokenPipe {
        State::Closed
    } else {
        State::Failed(e)
    };
}

/// Writes to stdout unless output has ended; see the module docs.
pub fn stdout(args: fmt::Arguments<'_>) {
    let mut state = state();
    if let State::Open = *state {
        if let Err(e) = io::stdout().lock().write_fmt(args) {
            record(&mut state, e);
        }
    }
}

/// `text` with every control character but tab and newline shown in
/// caret notation (`ESC` as `^[`, a carriage return as `^M`, DEL as `^?`),
/// so that bytes from a soul cannot move the cursor, erase a line or fake
/// one on the terminal of whoever reviews them.
pub fn visible(text: &str) -> std::borrow::Cow<'_, str> {
    shown(text, true)
}

/// [`visible`] for text that must stay on one line (a symlink's target):
/// a newline is shown as `^J` too.
pub fn visible_line(text: &str) -> std::borrow::Cow<'_, str> {
    shown(text, false)
}

fn shown(text: &str, newlines: bool) -> std::borrow::Cow<'_, str> {
    let hidden =
        |c: char| (c.is_control() && c != '\t' && !(newlines && c == '\n')) || c == '\u{7f}';
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\u{7f}' => out.push_str("^?"),
            c if hidden(c) && (c as u32) < 0x20 => {
                out.push('^');
                out.push(char::from(b'@' + c as u8));
            }
            c if hidden(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Writes raw bytes to stdout unless output has ended (`cat`).
pub fn stdout_bytes(bytes: &[u8]) {
    let mut state = state();
    if let State::Open = *state {
        if let Err(e) = io::stdout().lock().write_all(bytes) {
            record(&mut state, e);
        }
    }
}

/// Writes to stderr in one write, ignoring a failure.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_all(args.to_string().as_bytes());
}

/// Records the outcome of a write made to stdout by other means (clap's
/// help).
pub fn wrote(result: io::Result<()>) {
    if let Err(e) = result {
        let mut state = state();
        if let State::Open = *state {
            record(&mut state, e);
        }
    }
}

/// Flushes stdout and gives the exit code: `code`, or 1 after saying on
/// stderr that stdout could not be written.
pub fn finish(code: i32) -> i32 {
    let mut state = state();
    if let State::Open = *state {
        if let Err(e) = io::stdout().lock().flush() {
            record(&mut state, e);
        }
    }
    match std::mem::replace(&mut *state, State::Closed) {
        State::Failed(e) => {
            stderr(format_args!(
                "selfsame: error: cannot write to stdout: {e}\n"
            ));
            1
        }
        _ => code,
    }
}

/// `print!` through [`stdout`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!($($arg)*))
    };
}

/// `println!` through [`stdout`].
macro_rules! outln {
    () => {
        $crate::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` through [`stderr`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

#[cfg(test)]
mod tests {
    use super::{visible, visible_line};

    #[test]
    fn control_characters_are_shown_in_caret_notation() {
        assert_eq!(visible("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            visible("+obey evil\u{1b}[2K\r fine\u{7f}\u{85}"),
            "+obey evil^[[2K^M fine^?\\u{85}"
        );
        assert_eq!(visible("x\ry\rz"), "x^My^Mz");
        assert_eq!(visible_line("a\nb\tc"), "a^Jb\tc");
    }
}
