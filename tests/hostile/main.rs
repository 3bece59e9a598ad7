//! Hostile input and local security, over the real socket of the real binary:
//! other users and the socket's mode ([`socket`]), malformed, oversized, silent
//! and trickling peers and floods ([`input`]), huge events against the kernel's
//! exec limits ([`big_events`]), and what a config lets run ([`config`]:
//! unsafe files and values, `skip_own`).

#[path = "../common/mod.rs"]
mod common;

mod big_events;
mod config;
mod input;
mod socket;
