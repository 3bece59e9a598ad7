//! `pow`, the one libm function the runner calls, defined in the binary so that
//! the loader does not map glibc's `libm.so.6` into it (issue 16: idle memory).
//!
//! Only tokio's multi-threaded scheduler calls it (`f64::powf`, in the moving
//! average of task poll times that tunes how often a worker looks at the global
//! queue). Loading libm for that costs the idle runner about 0.5 MiB of resident
//! pages: its symbol tables read at each start (the binary is linked with
//! `-z now`), its IFUNC resolvers, and the pages the kernel maps around them. The
//! linker resolves the call to this definition, and with `--as-needed` (rustc's
//! default) `libm.so.6` is no longer a dependency. `libm` is the rust-lang port of
//! musl's math library; its `pow` is within 1 ulp, which the scheduler's estimate
//! does not notice. Another libm function called one day brings the library back:
//! no harm, only the memory.
//!
//! The library crate (tests, examples) keeps glibc's.

/// C's `double pow(double x, double y)`.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}
