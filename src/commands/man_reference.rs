//! The man page's HOOKS.TOML section: the README's "hooks.toml" section turned
//! into roff, and its FILES section.
//!
//! Hand-written rather than through a markdown parser: the section uses headings,
//! paragraphs, code blocks, lists and pipe tables with inline code, and this reads
//! just those line by line (anything else comes out as plain text). The `roff`
//! crate does the escaping.

use clap_mangen::roff::{Inline, Roff, bold, roman};

/// The README, whose "## hooks.toml" section is the reference.
const README: &str = include_str!("../../README.md");

/// The README's reference, from `## hooks.toml` to the next `## ` heading.
fn reference() -> &'static str {
    let Some(start) = README.find("\n## hooks.toml\n") else {
        return "";
    };
    let body = &README[start + "\n## hooks.toml\n".len()..];
    match body.find("\n## ") {
        Some(end) => &body[..end],
        None => body,
    }
}

/// `HOOKS.TOML`: the reference.
pub(super) fn hooks_toml() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["HOOKS.TOML"]);
    convert(reference(), &mut roff);
    roff
}

/// `FILES`: where things are by default.
pub(super) fn files() -> Roff {
    let mut roff = Roff::new();
    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "~/.config/tracim-hooks/hooks.toml",
            "the config (--config, $TRACIM_HOOKS_CONFIG)",
        ),
        (
            "~/.local/state/tracim-hooks/journal.db",
            "the journal of events and runs",
        ),
        (
            "~/.config/systemd/user/tracim-hooks.service",
            "the user unit `tracim-hooks service install` writes",
        ),
    ] {
        roff.control("TP", []);
        roff.text([bold(path)]);
        roff.text(inline(what));
    }
    roff
}

/// Markdown of the kinds the reference uses, as roff.
fn convert(markdown: &str, roff: &mut Roff) {
    let mut paragraph: Vec<&str> = Vec::new();
    let mut lines = markdown.lines();
    let flush = |paragraph: &mut Vec<&str>, roff: &mut Roff| {
        if !paragraph.is_empty() {
            roff.control("PP", []);
            roff.text(inline(&paragraph.join(" ")));
            paragraph.clear();
        }
    };
    while let Some(line) = lines.next() {
        let trimmed = line.trim();
        if trimmed.is_empty() {
            flush(&mut paragraph, roff);
        } else if let Some(heading) = trimmed.strip_prefix('#') {
            flush(&mut paragraph, roff);
            let heading = heading.trim_start_matches('#').trim();
            roff.control("SS", [strip_code(heading).as_str()]);
        } else if trimmed.starts_with("```") {
            flush(&mut paragraph, roff);
            roff.control("PP", [])
                .control("RS", ["4"])
                .control("nf", []);
            for code in lines.by_ref() {
                if code.trim_start().starts_with("```") {
                    break;
                }
                roff.text([roman(code)]);
            }
            roff.control("fi", []).control("RE", []);
        } else if trimmed.starts_with('|') {
            flush(&mut paragraph, roff);
            table_row(trimmed, roff);
        } else if let Some(item) = trimmed.strip_prefix("- ") {
            flush(&mut paragraph, roff);
            roff.control("IP", ["\\(bu", "2"]);
            roff.text(inline(item));
        } else {
            paragraph.push(trimmed);
        }
    }
    flush(&mut paragraph, roff);
}

/// A row of a `| key | default | meaning |` table as a tagged paragraph; the
/// header and the `| --- |` line are left out.
fn table_row(row: &str, roff: &mut Roff) {
    let cells = cells(row);
    let is_rule = cells
        .iter()
        .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')));
    if is_rule || cells.first().is_some_and(|c| *c == "key") {
        return;
    }
    let Some((key, rest)) = cells.split_first() else {
        return;
    };
    roff.control("TP", []);
    roff.text(inline(key));
    let text = match rest {
        ["", meaning] => meaning.to_string(),
        [default, meaning] => format!("{meaning} [default: {default}]"),
        _ => rest.join("; "),
    };
    roff.text(inline(&text));
}

/// The cells of a table row: split on `|` outside inline code.
fn cells(row: &str) -> Vec<&str> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = Vec::new();
    let (mut start, mut in_code) = (0, false);
    for (i, c) in inner.char_indices() {
        match c {
            '`' => in_code = !in_code,
            '|' if !in_code => {
                cells.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    cells.push(inner[start..].trim());
    cells
}

/// Inline markdown: `code` in bold, the rest roman.
fn inline(text: &str) -> Vec<Inline> {
    text.split('`')
        .enumerate()
        .filter(|(_, part)| !part.is_empty())
        .map(|(i, part)| if i % 2 == 1 { bold(part) } else { roman(part) })
        .collect()
}

fn strip_code(text: &str) -> String {
    text.replace('`', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_is_found_in_the_readme() {
        let text = reference();
        assert!(text.contains("### `[[hook]]`"), "{text}");
        assert!(!text.contains("\n## "), "ran past the section");
    }

    #[test]
    fn markdown_becomes_roff() {
        let mut roff = Roff::new();
        convert(
            "Intro `code` here\nand on.\n\n### `[daemon]`\n\n| key | default | meaning |\n| --- | --- | --- |\n\
             | `a` | `1` | the a, `x|y` |\n| `b` | | no default |\n\n```toml\n.dot = 1\n```\n- item\n",
            &mut roff,
        );
        let out = roff.to_roff();
        assert_eq!(
            out,
            ".PP\nIntro \\fBcode\\fR here and on.\n.SS [daemon]\n\
             .TP\n\\fBa\\fR\nthe a, \\fBx|y\\fR [default: \\fB1\\fR]\n\
             .TP\n\\fBb\\fR\nno default\n\
             .PP\n.RS 4\n.nf\n\\&.dot = 1\n.fi\n.RE\n.IP \\(bu 2\nitem\n",
            "{out}"
        );
    }
}
