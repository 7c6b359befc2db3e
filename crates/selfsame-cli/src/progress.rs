//! The CLI's progress bar: indicatif on stderr, only on a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use selfsame::progress::{Phase, Progress};

pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(style(Phase::Hash));
            b
        });
        Bar { bar }
    }
}

/// Bytes and their rate; a count of checkpoints for [`Phase::Scan`]; bytes
/// freed, with no total, for [`Phase::Delete`].
fn style(phase: Phase) -> ProgressStyle {
    let template = match phase {
        Phase::Scan => "{msg:>9} [{bar:30}] {pos}/{len} {eta}",
        Phase::Delete => "{msg:>9} {spinner} {bytes} freed {bytes_per_sec}",
        _ => "{msg:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    };
    ProgressStyle::with_template(template)
        .expect("valid template")
        .progress_chars("=> ")
}

impl Progress for Bar {
    fn start(&self, phase: Phase, _files: u64, bytes: u64) {
        if let Some(b) = &self.bar {
            b.reset();
            b.set_style(style(phase));
            b.set_length(bytes);
            b.set_message(match phase {
                Phase::Hash => "hashing",
                Phase::Restore => "restoring",
                Phase::Verify => "verifying",
                Phase::Upload => "uploading",
                Phase::Download => "downloading",
                Phase::Scan => "reading",
                Phase::Delete => "deleting",
            });
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
