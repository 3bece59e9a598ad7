//! A hook's pipes: the event written to its stdin, and its output logged line by
//! line within the run's allowance, control characters escaped, its end kept for
//! the journal.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tracing::{debug, info, warn};

use super::{Label, MAX_LINE, MAX_RUN_OUTPUT, OUTPUT_TAIL};

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
}

impl OutputBudget {
    pub(super) fn new(bytes: usize) -> Self {
        OutputBudget {
            left: AtomicUsize::new(bytes),
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
}

/// The end of one stream's output, as logged (escaped, long lines cut), whether or
/// not the line was logged: what the journal keeps of a run. Shared with the
/// run, so that a reader given up on at the drain deadline still leaves its part.
#[derive(Default)]
pub(super) struct Tail {
    text: String,
}

impl Tail {
    fn push(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
        // Trimmed in steps, not per line, so that keeping the end stays cheap.
        if self.text.len() > 2 * OUTPUT_TAIL {
            let keep = crate::text::tail(&self.text, OUTPUT_TAIL).len();
            self.text.drain(..self.text.len() - keep);
        }
    }

    /// The last [`OUTPUT_TAIL`] bytes, starting on a character boundary.
    pub(super) fn take(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        let keep = crate::text::tail(&text, OUTPUT_TAIL).len();
        text[text.len() - keep..].to_owned()
    }
}

/// Escapes what a terminal or a log reader could take for a command: every C0
/// control character but tab as `\xNN`, DEL as `\x7f`, and the C1 controls (which
/// some terminals obey too) as `\u{NN}`. Backslashes are left alone: the escape is
/// for safety, not for reading the bytes back.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    let is_control = |c: char| (c < ' ' && c != '\t') || ('\u{7f}'..='\u{9f}').contains(&c);
    if !text.contains(is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if !is_control(c) {
            out.push(c);
        } else if c <= '\u{7f}' {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// Logs each line of one stream, control characters escaped, a line cut at
/// [`MAX_LINE`] and the run's logged output capped at [`MAX_RUN_OUTPUT`] (each
/// stream says once when its output goes past it); reading goes on past the cap so
/// the hook never blocks on a full pipe, and the stream's end is kept in `tail`.
pub(super) async fn log_output(
    mut receiver: pipe::Receiver,
    stream: &'static str,
    label: Label,
    budget: Arc<OutputBudget>,
    tail: Arc<Mutex<Tail>>,
) {
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut cut = false;
    let mut capped_said = false;
    let mut buf = vec![0u8; 8192];
    let mut emit = |line: &mut Vec<u8>, cut: &mut bool| {
        let text = String::from_utf8_lossy(line);
        let text = escape_controls(text.trim_end_matches('\r'));
        let text = if *cut {
            Cow::Owned(format!("{text} [line cut at {MAX_LINE} bytes]"))
        } else {
            text
        };
        let allowed = budget.take(line.len());
        match allowed {
            Some(n) if n == line.len() => {
                info!(hook = %label.hook, event_id = label.event_id, stream, "{text}");
            }
            // The allowance ends inside this line: its start is logged.
            Some(n) => {
                let part = String::from_utf8_lossy(&line[..n]);
                let part = escape_controls(&part);
                info!(hook = %label.hook, event_id = label.event_id, stream, "{part}");
            }
            None => {}
        }
        if allowed.is_none_or(|n| n < line.len()) && !capped_said {
            capped_said = true;
            warn!(hook = %label.hook, event_id = label.event_id, stream, "{stream} output past {} KiB of this run not logged", MAX_RUN_OUTPUT / 1024);
        }
        crate::lock(&tail).push(&text);
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
    fn output_budget_is_shared() {
        let budget = OutputBudget::new(10);
        assert_eq!(budget.take(3), Some(3)); // 4 with the newline
        assert_eq!(budget.take(10), Some(6));
        assert_eq!(budget.take(0), None);
    }

    #[test]
    fn controls_are_escaped_and_the_rest_left_alone() {
        assert!(matches!(
            escape_controls("plain\ttext é ✅"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            escape_controls("\u{1b}[31mred\0\u{7}x\u{7f}\u{9b}2J\u{8}"),
            "\\x1b[31mred\\x00\\x07x\\x7f\\u{9b}2J\\x08"
        );
    }

    #[test]
    fn a_tail_keeps_the_last_8_kib_on_a_char_boundary() {
        let mut tail = Tail::default();
        for i in 0..10_000 {
            tail.push(&format!("line {i} é"));
        }
        let text = tail.take();
        assert!(
            text.len() <= OUTPUT_TAIL && text.len() > OUTPUT_TAIL - 20,
            "{}",
            text.len()
        );
        assert!(text.ends_with("line 9999 é\n"), "{text:?}");
        let mut small = Tail::default();
        small.push("only");
        assert_eq!(small.take(), "only\n");
    }
}
