//! A hook's pipes: the event written to its stdin, and its output logged line by
//! line within the run's allowance.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tracing::{debug, info, warn};

use super::{Label, MAX_LINE, MAX_RUN_OUTPUT};

pub(super) async fn feed_stdin(mut sender: pipe::Sender, text: Arc<str>, label: Label) {
    let result = async {
        sender.write_all(text.as_bytes()).await?;
        sender.write_all(b"\n").await?;
        sender.flush().await
    }
    .await;
    // A hook that does not read its stdin is fine: the pipe just breaks.
    if let Err(e) = result {
        debug!(hook = %label.hook, event_id = label.event_id, error = %e, "stdin not fully read");
    }
}

/// The logged-output allowance of one run, shared by its stdout and stderr.
pub(super) struct OutputBudget {
    left: AtomicUsize,
    capped_said: AtomicBool,
}

impl OutputBudget {
    pub(super) fn new(bytes: usize) -> Self {
        OutputBudget {
            left: AtomicUsize::new(bytes),
            capped_said: AtomicBool::new(false),
        }
    }

    /// Charges a line of `len` bytes and its newline; returns how many of its
    /// bytes may be logged, `None` once nothing is left.
    fn take(&self, len: usize) -> Option<usize> {
        let mut granted = 0;
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (left > 0).then(|| {
                    granted = left.min(len + 1);
                    left - granted
                })
            })
            .ok()
            .map(|_| granted.min(len))
    }

    /// True the first time only: the cap is announced once per run.
    fn first_cap(&self) -> bool {
        !self.capped_said.swap(true, Ordering::Relaxed)
    }
}

/// Logs each line of one stream, a line cut at [`MAX_LINE`] and the run's logged
/// output capped at [`MAX_RUN_OUTPUT`]; reading goes on past the cap so the hook
/// never blocks on a full pipe.
pub(super) async fn log_output(
    mut receiver: pipe::Receiver,
    stream: &'static str,
    label: Label,
    budget: Arc<OutputBudget>,
) {
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    let mut buf = vec![0u8; 8192];
    let emit = |line: &mut Vec<u8>, cut: &mut bool| {
        let allowed = budget.take(line.len());
        if let Some(n) = allowed {
            let text = String::from_utf8_lossy(&line[..n]);
            let text = text.trim_end_matches('\r');
            if *cut {
                info!(hook = %label.hook, event_id = label.event_id, stream, "{text} [line cut at {MAX_LINE} bytes]");
            } else {
                info!(hook = %label.hook, event_id = label.event_id, stream, "{text}");
            }
        }
        if allowed.is_none_or(|n| n < line.len()) && budget.first_cap() {
            warn!(hook = %label.hook, event_id = label.event_id, stream, "output past {} KiB of this run not logged", MAX_RUN_OUTPUT / 1024);
        }
        line.clear();
        *cut = false;
    };
    loop {
        let n = match receiver.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for chunk in buf[..n].split_inclusive(|&b| b == b'\n') {
            let (content, ends_line) = match chunk.strip_suffix(b"\n") {
                Some(content) => (content, true),
                None => (chunk, false),
            };
            let room = MAX_LINE.saturating_sub(line.len());
            if content.len() > room {
                cut = true;
            }
            line.extend_from_slice(&content[..content.len().min(room)]);
            if ends_line {
                emit(&mut line, &mut cut);
            }
        }
    }
    if !line.is_empty() {
        emit(&mut line, &mut cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_budget_is_shared_and_said_once() {
        let budget = OutputBudget::new(10);
        assert_eq!(budget.take(3), Some(3)); // 4 with the newline
        assert_eq!(budget.take(10), Some(6));
        assert_eq!(budget.take(0), None);
        assert!(budget.first_cap());
        assert!(!budget.first_cap());
    }
}
