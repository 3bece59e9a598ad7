//! Text rules shared by the process layer and the journal: how much of a run's
//! output is kept, and cutting text at a character boundary.

/// How much of each stream's output a run keeps: the last 8 KiB.
pub const OUTPUT_TAIL: usize = 8 * 1024;

/// The last `max` bytes of `text`, starting on a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_keep_the_end_on_a_char_boundary() {
        assert_eq!(tail("abc", 8), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        // "é" is two bytes: a cut inside it moves forward past it.
        assert_eq!(tail("aéb", 2), "b");
        assert_eq!(tail("aéb", 3), "éb");
    }
}
