//! Durations as hooks.toml writes them: `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"30d"`.

use std::time::Duration;

use serde::Deserialize;

/// A duration written `"500ms"`, `"30s"`, `"5m"` or `"1h"`.
#[derive(Debug, Clone, Copy)]
pub(super) struct HumanDuration(pub(super) Duration);

/// A duration that must not be zero: a time limit, or a period that drives a timer.
#[derive(Debug, Clone, Copy)]
pub(super) struct NonZeroDuration(pub(super) Duration);

impl<'de> Deserialize<'de> for NonZeroDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let HumanDuration(duration) = HumanDuration::deserialize(d)?;
        if duration.is_zero() {
            return Err(serde::de::Error::custom(
                "this duration must be more than 0",
            ));
        }
        Ok(NonZeroDuration(duration))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Writes a duration the way hooks.toml takes it: `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
pub fn format_duration(duration: Duration) -> String {
    let ms = duration.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// A duration that hooks.toml does not take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a whole number followed by a unit.
    #[error(
        "invalid duration `{0}`: write a whole number and a unit, like \"500ms\", \"30s\", \"5m\" or \"1h\""
    )]
    Invalid(String),
    /// Over a year.
    #[error("duration `{0}` is too long: at most 365 days")]
    TooLong(String),
}

/// Parses `"500ms"`, `"30s"`, `"5m"`, `"1h"`.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let bad = || DurationError::Invalid(text.to_owned());
    let n: u64 = number.parse().map_err(|_| bad())?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    // A year is longer than any time limit needs; beyond it sums could overflow.
    const MAX_MS: u64 = 365 * 24 * 3_600_000;
    match n.checked_mul(unit_ms) {
        Some(ms) if ms <= MAX_MS => Ok(Duration::from_millis(ms)),
        _ => Err(DurationError::TooLong(text.to_owned())),
    }
}
