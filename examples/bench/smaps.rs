//! Where a process's resident memory is: `/proc/PID/smaps` summed by mapping kind
//! (the binary's code, read-only and writable pages, each shared library, the heap,
//! the other anonymous memory: thread stacks and malloc arenas).

/// Resident KiB by kind, largest first, or nothing when smaps cannot be read.
pub(crate) fn rss_by_mapping(pid: u32) -> Vec<(String, u64)> {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else {
        return Vec::new();
    };
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut sums: Vec<(String, u64)> = Vec::new();
    let mut kind = String::new();
    for line in text.lines() {
        if let Some(rss) = line.strip_prefix("Rss:") {
            let kib = rss
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            match sums.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, sum)) => *sum += kib,
                None => sums.push((kind.clone(), kib)),
            }
        } else if let Some(header) = mapping_header(line) {
            kind = kind_of(header, &exe, &kind);
        }
    }
    sums.retain(|(_, kib)| *kib > 0);
    sums.sort_by_key(|(_, kib)| std::cmp::Reverse(*kib));
    sums
}

/// `(permissions, path)` of a mapping's first line (`start-end perms offset dev inode path`).
fn mapping_header(line: &str) -> Option<(&str, &str)> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    if !range.contains('-') || !range.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return None;
    }
    let perms = fields.next()?;
    let path = fields.nth(3).unwrap_or("").trim();
    Some((perms, path))
}

/// The kind of a mapping; `previous` is the kind of the one before it (the
/// binary's `.bss` is the anonymous mapping right after its writable pages).
fn kind_of((perms, path): (&str, &str), exe: &str, previous: &str) -> String {
    if !exe.is_empty() && path == exe {
        return match perms {
            "r-xp" => "binary code",
            "r--p" => "binary read-only (incl. relocated)",
            _ => "binary data",
        }
        .into();
    }
    match path {
        "" if previous == "binary data" => "binary .bss".into(),
        "" => "anonymous (thread stacks, malloc arenas)".into(),
        "[heap]" => "heap".into(),
        "[stack]" => "main stack".into(),
        _ if path.starts_with('[') => "kernel ([vdso] ...)".into(),
        _ => match path.rsplit('/').next() {
            Some(name) if name.contains(".so") => name.to_owned(),
            _ => "other files".into(),
        },
    }
}
