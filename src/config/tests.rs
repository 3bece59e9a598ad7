//! Tests of loading and validating hooks.toml.

use super::*;
use std::path::Path;
use std::time::Duration;

use crate::hook::{Command, Mode, Output};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("hooks.toml"), text)
}

fn errors(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e.lines(),
    }
}

#[test]
fn the_example_config_is_valid() {
    let config = parse(EXAMPLE).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.hooks.is_empty());
}

#[test]
fn the_issue_example_parses_with_defaults_resolved() {
    let text = r#"
[daemon]
master_socket = "/tmp/m.sock"
socket = "/tmp/c.sock"

[defaults]
shell = ["/bin/bash", "-c"]
timeout = "60s"

[[hook]]
name = "notify-mention"
on = "mention.created"
run = 'notify-send "Tracim" "$TRACIM_FIELDS_AUTHOR_PUBLIC_NAME mentioned you"'

[[hook]]
name = "backup-notes"
on = ["content.created.html-document", "content.modified.*"]
exec = ["/usr/local/bin/backup-note", "--quiet"]
env = { BACKUP_DIR = "/srv/notes" }
cwd = "/srv"
timeout = "500ms"
"#;
    let config = parse(text).unwrap();
    assert_eq!(config.daemon.master_socket, PathBuf::from("/tmp/m.sock"));
    assert_eq!(config.daemon.max_message, 16 * 1024 * 1024);
    let [a, b] = &config.hooks[..] else { panic!() };
    assert_eq!(
        a.command,
        Command::Shell {
            shell: vec!["/bin/bash".into(), "-c".into()],
            script: r#"notify-send "Tracim" "$TRACIM_FIELDS_AUTHOR_PUBLIC_NAME mentioned you""#
                .into()
        }
    );
    assert_eq!(a.timeout, Duration::from_secs(60));
    assert_eq!(a.line, 10);
    assert_eq!(b.command.argv(), ["/usr/local/bin/backup-note", "--quiet"]);
    assert_eq!(
        b.env,
        [("BACKUP_DIR".to_string(), "/srv/notes".to_string())]
    );
    assert_eq!(b.timeout, Duration::from_millis(500));
    assert_eq!(b.mode, Mode::Parallel);
    assert_eq!(b.output, Output::Log);
}

#[test]
fn unknown_key_names_line_column_and_hook() {
    let text = "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\ntimeuot = \"1s\"\n";
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "hooks.toml:5:1: hook `a`: unknown key `timeuot` in [[hook]], expected one of `name`"
        ),
        "{errs:?}"
    );
    assert!(errs[0].contains("`where`"), "{errs:?}");
}

#[test]
fn all_unknown_keys_and_the_errors_behind_them_show_at_once() {
    let text = "[defaults]\ntimout = \"1s\"\nmax_paralel = 2\ntimeout = \"0s\"\n\n[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nwher = {}\ntimeout = \"0s\"\n\n[[hook]]\nname = \"a\"\non = \"y\"\nrun = \"true\"\nwhere = { fields.author.user_id = 2 }\ncwd = \"relative/dir\"\n";
    let errs = errors(text);
    let expect = [
        "hooks.toml:2:1: unknown key `timout` in [defaults]",
        "hooks.toml:3:1: unknown key `max_paralel` in [defaults]",
        "hooks.toml:4:11: this duration must be more than 0",
        "hooks.toml:10:1: hook `a`: unknown key `wher` in [[hook]]",
        "hooks.toml:11:11: hook `a`: this duration must be more than 0",
        "hooks.toml:14:1: hook `a`: duplicate hook name: the hook at line 6 has it already",
        "hooks.toml:17:35: hook `a`: `where` values must be a glob or a list of globs: write the value as text, like \"2\"",
        "hooks.toml:18:7: hook `a`: cwd must be an absolute path",
    ];
    assert_eq!(errs.len(), expect.len(), "{errs:#?}");
    for (err, want) in errs.iter().zip(expect) {
        assert!(err.starts_with(want), "{err}\nwanted: {want}");
    }
}

#[test]
fn every_hook_error_is_reported_at_once() {
    let text = r#"
[[hook]]
name = "both"
on = "x"
run = "true"
exec = ["true"]

[[hook]]
name = "neither"
on = "x"

[[hook]]
name = "badglob"
on = ["content.*", "a[b"]
run = "true"

[[hook]]
name = "both"
on = "y"
run = "true"
"#;
    let errs = errors(text);
    assert_eq!(errs.len(), 4, "{errs:#?}");
    assert!(
        errs.iter()
            .any(|e| e.starts_with("hooks.toml:5:7: hook `both`: give either")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("hooks.toml:9:8: hook `neither`: missing `run`")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("hooks.toml:14:6: hook `badglob`:") && e.contains("a[b")),
        "{errs:#?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("hooks.toml:18:1: hook `both`: duplicate hook name")),
        "{errs:#?}"
    );
}

#[test]
fn bad_values_point_at_the_value() {
    let errs = errors("[defaults]\ntimeout = \"ten seconds\"\n");
    assert!(
        errs[0].starts_with("hooks.toml:2:11: invalid duration `ten seconds`"),
        "{errs:?}"
    );
    let errs = errors("[defaults]\nmax_parallel = 0\n");
    assert!(
        errs[0].starts_with("hooks.toml:2:16: max_parallel must be at least 1"),
        "{errs:?}"
    );
    let errs = errors("[daemon]\nsocket = \"relative.sock\"\n");
    assert!(
        errs[0].starts_with("hooks.toml:2:10: socket must be an absolute path"),
        "{errs:?}"
    );
    let errs = errors("[bogus]\n");
    assert!(
        errs[0].starts_with("hooks.toml:1:2: unknown section `bogus`"),
        "{errs:?}"
    );
    let errs = errors("[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nmode = \"sometimes\"\n");
    assert!(
        errs[0].starts_with("hooks.toml:5:8: hook `a`: unknown variant `sometimes`"),
        "{errs:?}"
    );
    let errs =
        errors("[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nenv = { \"A=B\" = \"1\" }\n");
    assert!(
        errs[0].starts_with("hooks.toml:5:9: hook `a`: invalid environment variable name"),
        "{errs:?}"
    );
    let errs = errors(
        "[[hook]]\nname = \"a\"\non = \"x\"\nrun = \"true\"\nwhere = { \"fields.x\" = 3 }\n",
    );
    assert!(
        errs[0].starts_with("hooks.toml:5:24: hook `a`: `where` values must be"),
        "{errs:?}"
    );
}

#[test]
fn syntax_errors_have_a_position() {
    let errs = errors("[[hook]]\nname = \"a\nrun = 1\n");
    assert!(errs[0].starts_with("hooks.toml:2:"), "{errs:?}");
}

#[test]
fn where_accepts_quoted_and_dotted_keys() {
    let text = r#"
[[hook]]
name = "a"
on = "content.*"
run = "true"
where = { "fields.workspace.label" = "Eng*", fields.author.username = ["!bot", "!jdoe"] }
"#;
    let config = parse(text).unwrap();
    let paths: Vec<&str> = config.hooks[0]
        .conditions
        .iter()
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(paths, ["fields.workspace.label", "fields.author.username"]);
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("1.5s").is_err());
    assert!(parse_duration("-1s").is_err());
    assert_eq!(
        parse_duration("99999999999999999h"),
        Err(DurationError::TooLong("99999999999999999h".into()))
    );
    assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
    assert!(parse_duration("365d").is_ok());
    assert!(parse_duration("366d").is_err());
    assert!(parse_duration("8760h").is_ok());
    for text in ["0s", "500ms", "1500ms", "30s", "5m", "90s", "1h"] {
        assert_eq!(format_duration(parse_duration(text).unwrap()), text);
    }
}

#[test]
fn line_columns_count_characters() {
    let at = |text: &str, offset| validate::Parser::new(Path::new(""), text).line_column(offset);
    assert_eq!(at("ab\ncé d", 7), (2, 4));
    assert_eq!(at("ab\ncé d", 2), (1, 3));
    assert_eq!(at("ab\ncé d", 3), (2, 1));
    assert_eq!(at("", 0), (1, 1));
}

#[test]
fn unsafe_files_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooks.toml");
    std::fs::write(&path, EXAMPLE).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(
        err.contains("writable by group") && err.contains("chmod go-w"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o646)).unwrap();
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("writable by others"), "{err}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    Config::load(&path).unwrap();
}

#[test]
fn only_a_regular_file_of_bounded_size_is_read() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    // A directory.
    let err = Config::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("is a directory, not a regular file"), "{err}");
    // A FIFO with no writer: refused at once instead of hanging.
    let fifo = dir.path().join("fifo");
    let name = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(Config::load(&path).map(|_| ()).map_err(|e| e.to_string()));
    });
    let err = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading a FIFO hangs")
        .unwrap_err();
    assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    // A character device of mode 0600 (what /dev/zero is), where mknod is allowed.
    let device = dir.path().join("zero");
    let name = std::ffi::CString::new(device.as_os_str().as_bytes()).unwrap();
    // SAFETY: mknod with a valid path; makedev(1, 5) is /dev/zero.
    let made = unsafe { libc::mknod(name.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 5)) };
    if made == 0 {
        let err = Config::load(&device).unwrap_err().to_string();
        assert!(err.contains("is a character device"), "{err}");
    } else {
        eprintln!(
            "mknod not permitted here ({}): the device case is not checked",
            std::io::Error::last_os_error()
        );
    }
    // A file past the bound, sparse so the test stays small on disk.
    let big = dir.path().join("big.toml");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(load::MAX_CONFIG_BYTES + 1).unwrap();
    let err = Config::load(&big).unwrap_err().to_string();
    assert!(err.contains("a config may be at most 64 MiB"), "{err}");
}

#[test]
fn the_journal_table_and_its_defaults() {
    let config = parse("[[hook]]\nname = \"a\"\non = \"*\"\nrun = \"true\"\n").unwrap();
    assert_eq!(config.journal, crate::journal::JournalSettings::default());
    assert!(config.hooks[0].rerun_interrupted);

    let text = r#"
[journal]
enabled = false
path = "/srv/state/j.db"
retention = "7d"
max_events = 500
sync = "full"

[[hook]]
name = "a"
on = "*"
run = "true"
rerun_interrupted = false
"#;
    let config = parse(text).unwrap();
    let j = &config.journal;
    assert!(!j.enabled);
    assert_eq!(j.path, PathBuf::from("/srv/state/j.db"));
    assert_eq!(j.retention, Duration::from_secs(7 * 86_400));
    assert_eq!(j.max_events, 500);
    assert_eq!(j.sync, crate::journal::SyncMode::Full);
    assert!(!config.hooks[0].rerun_interrupted);
}

#[test]
fn journal_mistakes_point_at_their_place() {
    let text = "[journal]\npath = \"relative/j.db\"\nmax_events = 0\nretention = \"0s\"\nsync = \"fast\"\nsize = 3\n";
    let got = errors(text);
    assert!(
        got.iter()
            .any(|l| l.starts_with("hooks.toml:6:1: unknown key `size` in [journal]")),
        "{got:#?}"
    );
    // Serde stops at the first bad value of a table; the rest shows once it is fixed.
    assert!(
        got.iter().any(|l| l.starts_with("hooks.toml:4:")),
        "{got:#?}"
    );
    let got = errors("[journal]\npath = \"relative/j.db\"\nmax_events = 0\n");
    assert_eq!(
        got,
        vec![
            "hooks.toml:2:8: journal path must be an absolute path (or start with `~`), got `relative/j.db`",
            "hooks.toml:3:14: max_events must be at least 1",
        ]
    );
    let got = errors("[journal]\nsync = \"fast\"\n");
    assert!(
        got[0].starts_with("hooks.toml:2:8:") && got[0].contains("fast"),
        "{got:#?}"
    );
}

#[test]
fn tracim_table_parses_each_way_to_log_in_with_defaults() {
    let config = parse(
        r#"
[tracim]
url = "https://tracim.example.org/api"
username = "hooks"
password_file = "/home/me/.config/tracim-hooks/tracim-password"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t = config.tracim.expect("a [tracim]");
    assert_eq!(config.source, crate::source::Source::Daemon);
    assert_eq!(t.url.as_deref(), Some("https://tracim.example.org/api"));
    assert_eq!(t.catch_up_max, 1000);
    assert_eq!(t.catch_up_window, Duration::from_secs(7 * 86400));
    assert_eq!(t.stream_timeout, Duration::from_secs(45));
    assert!(matches!(
        t.login,
        crate::source::TracimLogin::Password { .. }
    ));

    let config = parse(
        "source = \"tracim\"\n[tracim]\nfrom_daemon_config = \"/home/me/.config/TracimDaemon/config.json\"\ncatch_up_max = 5\ncatch_up_window = \"2h\"\nstream_timeout = \"10s\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let t = config.tracim.expect("a [tracim]");
    assert_eq!(config.source, crate::source::Source::Tracim);
    assert_eq!((t.catch_up_max, t.url), (5, None));
    assert_eq!(t.catch_up_window, Duration::from_secs(7200));
    assert_eq!(t.stream_timeout, Duration::from_secs(10));
    assert!(parse("[tracim]\nurl = \"http://127.0.0.1:1/api\"\napi_login = \"hooks\"\napi_key_file = \"/k\"\n").is_ok());
}

#[test]
fn tracim_mistakes_are_reported_at_their_place() {
    let e = errors(
        "[tracim]\nurl = \"https://t/api\"\nusername = \"a\"\napi_login = \"b\"\napi_key_file = \"/k\"\npassword_file = \"/p\"\n",
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("hooks.toml:1:1:") && l.contains("one way to log in")),
        "{e:?}"
    );
    let e = errors("[tracim]\nurl = \"https://t/api\"\n");
    assert!(
        e.iter().any(|l| l.contains("needs a way to log in")),
        "{e:?}"
    );
    let e = errors("[tracim]\nusername = \"a\"\npassword_file = \"/p\"\n");
    assert!(e.iter().any(|l| l.contains("needs `url`")), "{e:?}");
    let e = errors("[tracim]\nurl = \"ftp://t\"\nusername = \"a\"\npassword_file = \"/p\"\n");
    assert!(e.iter().any(|l| l.starts_with("hooks.toml:2:7:")), "{e:?}");
    let e = errors(
        "[tracim]\nurl = \"https://t/api\"\nemail = \"a@b\"\npassword_file = \"rel/p\"\ncatch_up_max = 0\nfoo = 1\n",
    );
    assert!(e.iter().any(|l| l.contains("absolute path")), "{e:?}");
    assert!(
        e.iter()
            .any(|l| l.contains("unknown key `foo` in [tracim]")),
        "{e:?}"
    );
}

#[test]
fn source_tracim_needs_tracim_and_no_daemon() {
    let e = errors("source = \"tracim\"\n[daemon]\nsocket = \"/tmp/s.sock\"\n");
    assert!(
        e.iter()
            .any(|l| l.starts_with("hooks.toml:1:10:") && l.contains("needs a [tracim] table")),
        "{e:?}"
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("hooks.toml:2:2:") && l.contains("[daemon] has no use")),
        "{e:?}"
    );
    let e = errors("source = \"carrier-pigeon\"\n");
    assert!(
        e.iter().any(|l| l.contains("source must be \"daemon\"")),
        "{e:?}"
    );
}
