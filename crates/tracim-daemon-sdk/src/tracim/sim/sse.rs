//! One live stream of the simulator: the first body (comment, `stream-open`, the backlog
//! unordered and without `event:` lines), then live messages and keep-alives, as HTTP
//! chunks cut as configured, until the test or a logout ends it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use super::Shared;
use super::Split;
use super::http::{head, write_chunked, write_raw};

/// What a test (or a logout) tells an open stream.
pub(crate) enum Command {
    /// A live message's TLM text.
    Message(Arc<str>),
    /// End the body cleanly and close.
    Close,
    /// Drop the connection after this many more body bytes.
    CutAfter(usize),
    /// `event: stream-error`, then close.
    Error,
}

/// A stream accepted by the routes, to be served.
pub(crate) struct Open {
    pub id: u64,
    pub first_body: String,
    pub rx: mpsc::UnboundedReceiver<Command>,
    pub ready: Arc<AtomicBool>,
    pub keep_alive: Duration,
}

pub(crate) async fn serve(
    mut reader: OwnedReadHalf,
    mut writer: OwnedWriteHalf,
    open: Open,
    shared: &Shared,
    split: Split,
    mut rng: StdRng,
) -> std::io::Result<()> {
    let result = run(
        &mut reader,
        &mut writer,
        open.first_body,
        open.rx,
        &open.ready,
        open.keep_alive,
        &split,
        &mut rng,
    )
    .await;
    shared.state().streams.retain(|s| s.id != open.id);
    result
}

#[allow(clippy::too_many_arguments)]
async fn run(
    reader: &mut OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
    first_body: String,
    mut rx: mpsc::UnboundedReceiver<Command>,
    ready: &AtomicBool,
    keep_alive: Duration,
    split: &Split,
    rng: &mut StdRng,
) -> std::io::Result<()> {
    let headers = [
        ("Content-Type", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("Transfer-Encoding", "chunked"),
        ("Connection", "close"),
    ]
    .map(|(n, v)| (n.to_string(), v.to_string()));
    let mut start = head(200, &headers);
    start.extend_from_slice(b"\r\n");
    write_raw(writer, &start, split, rng).await?;
    let mut budget: Option<usize> = None;
    if !write_chunked(writer, first_body.as_bytes(), split, rng, &mut budget).await? {
        return Ok(());
    }
    ready.store(true, Ordering::Release);
    let mut peer = [0u8; 512];
    loop {
        let text = tokio::select! {
            command = rx.recv() => match command {
                Some(Command::Message(tlm)) => format!("event: message\ndata: {tlm}\n\n"),
                Some(Command::CutAfter(n)) => {
                    if n == 0 {
                        return Ok(());
                    }
                    budget = Some(n);
                    continue;
                }
                Some(Command::Error) => {
                    let text = "event: stream-error\ndata: {\"error\": \"too many online users\"}\n\n";
                    if write_chunked(writer, text.as_bytes(), split, rng, &mut budget).await? {
                        writer.write_all(b"0\r\n\r\n").await?;
                    }
                    return Ok(());
                }
                Some(Command::Close) | None => {
                    writer.write_all(b"0\r\n\r\n").await?;
                    writer.flush().await?;
                    return Ok(());
                }
            },
            _ = tokio::time::sleep(keep_alive) => "event: keep-alive\ndata:\n\n".to_string(),
            read = reader.read(&mut peer) => match read {
                // The client went away (or sent something after its request: it may not).
                Ok(_) | Err(_) => return Ok(()),
            },
        };
        if !write_chunked(writer, text.as_bytes(), split, rng, &mut budget).await? {
            return Ok(());
        }
    }
}
