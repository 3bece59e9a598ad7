//! Build script: packs the runner's relative relocations (`DT_RELR`) when the C
//! library that will load it understands them.
//!
//! The binary is position-independent: its ten thousand relative relocations take
//! 248 KiB as RELA entries, which the loader reads at every start and which then stay
//! resident (issue 16 counts the idle runner's memory). Packed, they take 3 KiB.
//! glibc loads packed relocations from 2.36 on, and the linker marks such a binary as
//! needing `GLIBC_ABI_DT_RELR`, so that an older glibc refuses it: the flag is passed
//! only for a native build on a glibc that has it. The relocations themselves, and
//! RELRO, are unchanged.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let glibc_target =
        var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if glibc_target && var("HOST") == var("TARGET") && glibc_loads_relr() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the glibc this build runs on (the one a native build links against) is
/// 2.36 or later.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn glibc_loads_relr() -> bool {
    // SAFETY: gnu_get_libc_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(libc::gnu_get_libc_version()) };
    let mut numbers = version
        .to_str()
        .unwrap_or_default()
        .split('.')
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (2, 36)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn glibc_loads_relr() -> bool {
    false
}
