//! The journal's own figures, run by hand (no test asserts on them):
//! `cargo run --release --example journal_bench -- [EVENTS]`.
//!
//! For sync normal and full: events per second committed, caller cost per event,
//! with no run per event (most events match no hook) and with one run that starts
//! and ends. Then the cost of opening a journal of EVENTS events (integrity check,
//! ids loaded) and the memory the ids take.

use std::time::Instant;

use tracim_hooks::journal::measure::{WriterFigures, measure_writer};
use tracim_hooks::journal::{JournalSettings, SyncMode, open};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn show(f: &WriterFigures) {
    println!(
        "sync {:<6} runs/event {}  {:>7} events  {:>9.0} events/s  caller {:>6.0} ns/event  file {:>6.1} MiB",
        format!("{:?}", f.sync).to_lowercase(),
        f.runs_per_event,
        f.events,
        f.events_per_sec(),
        f.caller_ns_per_event(),
        f.file_bytes as f64 / (1 << 20) as f64
    );
}

/// `journal_bench open PATH EVENTS`: the start cost and memory of a full journal,
/// in a process of its own so that the writer runs before do not blur its RSS.
fn open_only(path: &str, events: u64) -> Result<(), Box<dyn std::error::Error>> {
    let before = rss_kib();
    let start = Instant::now();
    let opened = open(&JournalSettings {
        max_events: events,
        ..JournalSettings::at(path)
    })?;
    let took = start.elapsed();
    let after = rss_kib();
    println!(
        "open of {events} events with 1 run each: {took:?}; RSS {before} -> {after} KiB (+{} KiB)",
        after.saturating_sub(before)
    );
    opened.journal.close()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("open") {
        let events = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0);
        return open_only(&args[2], events);
    }
    let events: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/src/samples/");
    let dir = tempfile::tempdir()?;
    // A typical TLM (a comment, ~0.8 KB) and the largest sample (a note's HTML,
    // ~23 KB), with fewer events so that the files stay a few GiB at most.
    for (name, count) in [
        ("content.created.comment.json", events),
        ("content.modified.html-document.json", events / 5),
    ] {
        let text = std::fs::read_to_string(format!("{fixtures}{name}"))?;
        println!("{name}: {} bytes", text.len());
        for sync in [SyncMode::Normal, SyncMode::Full] {
            for runs in [0, 1] {
                let sub = dir.path().join(format!("{name}-{sync:?}-{runs}"));
                show(&measure_writer(&sub, sync, count, runs, &text)?);
                if name.starts_with("content.modified") {
                    let _ = std::fs::remove_dir_all(&sub);
                }
            }
        }
    }
    let path = dir
        .path()
        .join("content.created.comment.json-Normal-1")
        .join("measure-Normal.db");
    let status = std::process::Command::new(std::env::current_exe()?)
        .arg("open")
        .arg(&path)
        .arg(events.to_string())
        .status()?;
    if !status.success() {
        return Err(format!("the open measurement failed: {status}").into());
    }
    Ok(())
}
