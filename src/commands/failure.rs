//! What a failed command hands `main`: the lines to print before exiting 1.

use crate::config::ConfigError;

/// Why a command failed: lines for stderr.
#[derive(Debug)]
pub struct Failure {
    /// What to print, one line each.
    pub lines: Vec<String>,
}

impl Failure {
    pub(crate) fn new(line: impl Into<String>) -> Self {
        Failure {
            lines: vec![line.into()],
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        let mut lines = e.lines();
        if let ConfigError::Read { source, .. } = &e
            && source.kind() == std::io::ErrorKind::NotFound
        {
            lines.push("No config yet? `tracim-hooks init` writes a commented one there.".into());
        }
        Failure { lines }
    }
}

/// Prints how one run of a foreground command (`test --run`, `replay` without a
/// service) ended, and notes it in `problems` when it failed for good.
pub(super) fn say_report(
    out: &mut impl std::io::Write,
    report: &crate::supervisor::RunReport,
    problems: &mut Vec<String>,
) {
    let status = report.status();
    let _ = writeln!(
        out,
        "ran {} for event {}: {status}",
        report.hook, report.event_id
    );
    if !report.success() && !report.will_retry {
        problems.push(format!(
            "hook `{}` failed for event {}: {status}",
            report.hook, report.event_id
        ));
    }
}
