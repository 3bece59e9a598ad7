//! `init`: write the commented example config, never over an existing one unless forced.

use std::io::Write;
use std::path::Path;

use super::Failure;
use crate::config;

/// `init`: write the example config, never over an existing one unless forced.
pub(super) fn init(path: &Path, force: bool) -> Result<(), Failure> {
    if path.exists() && !force {
        return Err(Failure::new(format!(
            "{} already exists; keep it, or overwrite it with `tracim-hooks init --force`",
            path.display()
        )));
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::new(format!("cannot create {}: {e}", parent.display())))?;
    }
    write_private(path, config::EXAMPLE)
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", path.display())))?;
    println!("Wrote {}", path.display());
    println!();
    println!("Next steps:");
    println!(
        "  1. Edit it: each [[hook]] names event types (`on`) and a command (`run` or `exec`)."
    );
    println!("  2. Check it:              tracim-hooks check");
    println!(
        "  3. Try it on an event:    tracim-hooks test --sample mention.created   (or --sample all)"
    );
    println!(
        "     All hooks, all samples, through a simulated daemon: tracim-hooks demo --config {}",
        path.display()
    );
    println!(
        "  4. Run it as a service:   see \"Running as a systemd user service\" in the README."
    );
    Ok(())
}

/// Writes a file only its owner can write (the loader refuses anything wider).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    file.write_all(text.as_bytes())
}
