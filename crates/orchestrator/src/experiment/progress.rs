//! Progress bars (indicatif) that share stderr with the tracing logs: log lines are written
//! while the bars are suspended, so neither garbles the other. Bars draw only on a terminal;
//! without one (CI, Slurm logs) the stages log their progress and ETA as tracing events.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static MULTI: OnceLock<MultiProgress> = OnceLock::new();

/// The process-wide bar set (hidden when stderr is not a terminal).
pub fn multi() -> &'static MultiProgress {
    MULTI.get_or_init(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
}

/// A bar of `len` items with ETA.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = multi().add(ProgressBar::new(len));
    let style = ProgressStyle::with_template(
        "{prefix:>9} [{bar:36}] {pos}/{len} {msg} elapsed {elapsed_precise}, ETA {eta_precise}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    pb.set_style(style);
    pb.set_prefix(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(500));
    pb
}

/// `tracing` writer that suspends the bars while a log line is written.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogWriter;

/// One log line's buffer; flushed to stderr on drop, with the bars suspended.
pub struct LineBuffer(Vec<u8>);

impl Write for LineBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineBuffer {
    fn drop(&mut self) {
        let bytes = std::mem::take(&mut self.0);
        let write = || {
            let mut e = std::io::stderr().lock();
            let _ = e.write_all(&bytes);
            let _ = e.flush();
        };
        match MULTI.get() {
            Some(m) => m.suspend(write),
            None => write(),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        LineBuffer(Vec::with_capacity(256))
    }
}
