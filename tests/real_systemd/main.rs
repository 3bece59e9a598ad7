//! The service under a real systemd (see `boot`): installed with `service install
//! --now` for a throwaway user, it runs as `Type=notify`, registers with a
//! simulated TracimDaemon run by this test, runs hooks, reloads in place (a broken
//! config refused, the error in the journal with its line), comes back after a
//! `kill -9`, logs a failed run as a warning with its hook's fields, and stops
//! cleanly after unregistering.
//!
//! It needs root and boots a whole systemd, so it is ignored by default and
//! `.ci/run` runs it: `cargo test --test real_systemd -- --ignored`.

mod boot;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use boot::{Systemd, wait_for};
use serde_json::{Value, json};
use tracim_daemon_sdk::sim::{SimDaemon, SimOptions};

const UNIT: &str = "tracim-hooks.service";
/// Only reached when something hangs: the machine is shared and slow at times.
const WAIT: Duration = Duration::from_secs(60);

fn tlm(id: u64, event_type: &str) -> String {
    json!({
        "event_id": id,
        "event_type": event_type,
        "created": "2026-11-26T10:00:00.511Z",
        "read": null,
        "fields": {"author": {"user_id": 2}},
    })
    .to_string()
}

/// The hooks: one recording the events it gets, one failing.
fn config(dir: &Path, home: &Path, extra: &str) -> String {
    format!(
        "[daemon]\nmaster_socket = \"{master}\"\nsocket = \"{home}/run/tracim-hooks.sock\"\n\n\
         [[hook]]\nname = \"record\"\non = \"content.created.*\"\n\
         run = 'echo \"$TRACIM_EVENT_ID\" >> {home}/ran.txt'\n\n\
         [[hook]]\nname = \"fails\"\non = \"mention.created\"\n\
         run = 'echo \"no luck\" >&2; exit 3'\n{extra}",
        master = dir.join("daemon/master.sock").display(),
        home = home.display(),
    )
}

/// Entries whose MESSAGE contains `text`.
fn with_message<'a>(entries: &'a [Value], text: &str) -> Vec<&'a Value> {
    entries
        .iter()
        .filter(|e| e["MESSAGE"].as_str().is_some_and(|m| m.contains(text)))
        .collect()
}

/// Runs blocking work (commands, polls) off the runtime's workers, so that the
/// simulated daemon keeps answering meanwhile.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "boots a real systemd as root; .ci/run runs it with --ignored"]
async fn the_user_service_under_a_real_systemd() {
    let systemd = blocking(Systemd::boot);
    let (dir, home) = (systemd.dir.clone(), systemd.home.clone());

    // Shared with the namespace: the binary, the daemon's socket, the user's files.
    let bin = dir.join("bin/tracim-hooks");
    fs::create_dir_all(bin.parent().unwrap()).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_tracim-hooks"), &bin).unwrap();
    for path in [bin.parent().unwrap(), &bin] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::create_dir_all(dir.join("daemon")).unwrap();
    fs::set_permissions(dir.join("daemon"), fs::Permissions::from_mode(0o755)).unwrap();
    let master = dir.join("daemon/master.sock");
    let sim = SimDaemon::start(&master, SimOptions::default())
        .await
        .unwrap();
    // The daemon runs as root here; the user must be able to connect to it.
    fs::set_permissions(&master, fs::Permissions::from_mode(0o666)).unwrap();
    let socket = home.join("run/tracim-hooks.sock");
    let config_path = home.join("hooks.toml");
    fs::write(&config_path, config(&dir, &home, "")).unwrap();
    fs::create_dir_all(home.join("run")).unwrap();
    let chown = std::process::Command::new("chown")
        .args(["-R", &format!("{0}:{0}", systemd.uid)])
        .arg(&home)
        .status()
        .unwrap();
    assert!(chown.success());
    fs::set_permissions(home.join("run"), fs::Permissions::from_mode(0o700)).unwrap();

    // Installed and started in one command.
    let config_arg = config_path.to_str().unwrap();
    let bin_arg = bin.to_str().unwrap();
    let installed = blocking(|| {
        systemd.as_user(&[
            bin_arg, "--config", config_arg, "service", "install", "--now",
        ])
    });
    assert!(installed.ok, "service install --now: {}", installed.both());
    for said in [
        "Wrote ",
        "systemctl --user daemon-reload",
        "systemctl --user enable",
    ] {
        assert!(installed.stdout.contains(said), "{}", installed.both());
    }
    let unit_text = fs::read_to_string(home.join(".config/systemd/user").join(UNIT)).unwrap();
    assert!(
        unit_text.contains(&format!("ExecStart={bin_arg} --config {config_arg} run\n")),
        "{unit_text}"
    );

    // Active as Type=notify, and registered.
    let show = |name: &str| systemd.property(UNIT, name);
    blocking(|| {
        assert_eq!(show("Type"), "notify");
        assert_eq!(show("ActiveState"), "active", "{}", show("StatusText"));
    });
    assert!(
        sim.wait_for_client(&socket, WAIT).await,
        "it never registered"
    );
    let status = blocking(|| {
        wait_for(WAIT, || {
            Some(show("StatusText")).filter(|s| s.starts_with("registered with"))
        })
    });
    assert!(
        status.is_some(),
        "status line: {}",
        blocking(|| show("StatusText"))
    );
    let first_pid = blocking(|| show("MainPID"));

    // An event runs its hook.
    assert_eq!(
        sim.send_event(&tlm(1001, "content.created.file")).await.ok,
        1
    );
    let ran = blocking(|| {
        wait_for(WAIT, || {
            fs::read_to_string(home.join("ran.txt"))
                .ok()
                .filter(|t| t.lines().any(|l| l == "1001"))
        })
    });
    assert!(ran.is_some(), "the hook did not run for event 1001");

    // A reload keeps the process.
    fs::write(
        &config_path,
        config(
            &dir,
            &home,
            "\n[[hook]]\nname = \"third\"\non = \"x.y\"\nrun = 'true'\n",
        ),
    )
    .unwrap();
    let reloaded = blocking(|| systemd.as_user(&["systemctl", "--user", "reload", UNIT]));
    assert!(reloaded.ok, "{}", reloaded.both());
    let seen = blocking(|| {
        wait_for(WAIT, || {
            let entries = systemd.journal(UNIT, &[]);
            (!with_message(&entries, "configuration reloaded").is_empty()).then_some(())
        })
    });
    assert!(seen.is_some(), "no 'configuration reloaded' in the journal");
    blocking(|| assert_eq!(show("MainPID"), first_pid, "a reload restarted the process"));

    // A broken config on reload: refused, the process kept, the error in the
    // journal with its line.
    let broken = config(
        &dir,
        &home,
        "\n[[hook]]\nname = \"broken\"\non = \"x.y\"\nrun = 'true'\ntimeuot = \"1s\"\n",
    );
    let bad_line = broken
        .lines()
        .position(|l| l.starts_with("timeuot"))
        .unwrap()
        + 1;
    fs::write(&config_path, &broken).unwrap();
    let reloaded = blocking(|| systemd.as_user(&["systemctl", "--user", "reload", UNIT]));
    assert!(reloaded.ok, "{}", reloaded.both());
    let where_ = format!("{config_arg}:{bad_line}:");
    let refusal = blocking(|| {
        wait_for(WAIT, || {
            let entries = systemd.journal(UNIT, &["-p", "err"]);
            with_message(&entries, "reload refused")
                .iter()
                .find(|e| e["MESSAGE"].as_str().unwrap().contains(&where_))
                .map(|e| (*e).clone())
        })
    });
    let refusal = refusal.unwrap_or_else(|| {
        panic!(
            "no refusal naming {where_} at priority err: {:#?}",
            blocking(|| systemd.journal(UNIT, &[]))
        )
    });
    assert!(
        refusal["MESSAGE"].as_str().unwrap().contains("timeuot"),
        "{refusal}"
    );
    blocking(|| {
        assert_eq!(show("MainPID"), first_pid);
        assert_eq!(show("ActiveState"), "active");
    });
    // The hooks of before still run.
    assert_eq!(
        sim.send_event(&tlm(1002, "content.created.file")).await.ok,
        1
    );
    let ran = blocking(|| {
        wait_for(WAIT, || {
            fs::read_to_string(home.join("ran.txt"))
                .ok()
                .filter(|t| t.lines().any(|l| l == "1002"))
        })
    });
    assert!(
        ran.is_some(),
        "no run for event 1002 after the refused reload"
    );
    fs::write(&config_path, config(&dir, &home, "")).unwrap();

    // A failed run is a warning, with the run's fields.
    assert_eq!(sim.send_event(&tlm(1003, "mention.created")).await.ok, 1);
    let failed = blocking(|| {
        wait_for(WAIT, || {
            let entries = systemd.journal(UNIT, &["-p", "warning", "HOOK_NAME=fails"]);
            with_message(&entries, "run failed")
                .first()
                .map(|e| (*e).clone())
        })
    });
    let failed = failed.unwrap_or_else(|| {
        panic!(
            "no warning for the failed run: {:#?}",
            blocking(|| systemd.journal(UNIT, &["HOOK_NAME=fails"]))
        )
    });
    for (field, value) in [
        ("PRIORITY", "4"),
        ("HOOK_NAME", "fails"),
        ("EVENT_ID", "1003"),
        ("EVENT_TYPE", "mention.created"),
        ("EXIT_STATUS", "3"),
        ("EXIT_CODE", "exited"),
    ] {
        assert_eq!(failed[field], value, "{field} in {failed:#}");
    }
    // As the user reads it, with the command the README gives.
    let own = blocking(|| {
        wait_for(WAIT, || {
            let ran = systemd.as_user(&[
                "journalctl",
                "--user",
                "-u",
                "tracim-hooks",
                "-p",
                "warning",
                "HOOK_NAME=fails",
                "--no-pager",
                "-o",
                "cat",
            ]);
            (ran.ok && ran.stdout.contains("run failed")).then_some(())
        })
    });
    assert!(
        own.is_some(),
        "journalctl --user does not show the failed run: {}",
        blocking(|| systemd
            .as_user(&["journalctl", "--user", "--no-pager", "-n", "5"])
            .both()),
    );
    // Its output lines carry the same fields, at info.
    let output = blocking(|| systemd.journal(UNIT, &["HOOK_NAME=fails", "EVENT_ID=1003"]));
    let line = with_message(&output, "no luck");
    assert!(
        line.first()
            .is_some_and(|e| e["PRIORITY"] == "6" && e["EVENT_TYPE"] == "mention.created"),
        "{output:#?}"
    );

    // kill -9: systemd restarts it, and it registers again.
    let adds_before = sim.received_of("daemon_client_add").len();
    let killed = blocking(|| systemd.ns(&["kill", "-9", &first_pid]));
    assert!(killed.ok, "{}", killed.both());
    let second_pid = blocking(|| {
        wait_for(WAIT, || {
            Some(show("MainPID"))
                .filter(|p| p != &first_pid && p != "0" && show("ActiveState") == "active")
        })
    });
    assert!(second_pid.is_some(), "systemd did not restart it");
    blocking(|| assert_ne!(show("NRestarts"), "0"));
    assert!(
        sim.wait_until(WAIT, |sim| sim.received_of("daemon_client_add").len()
            > adds_before)
            .await,
        "it did not register again after the restart"
    );
    let status = blocking(|| {
        wait_for(WAIT, || {
            Some(show("StatusText")).filter(|s| s.starts_with("registered with"))
        })
    });
    assert!(
        status.is_some(),
        "status after restart: {}",
        blocking(|| show("StatusText"))
    );

    // stop: it unregisters, and the unit ends with Result=success.
    let deletes_before = sim.received_of("daemon_client_delete").len();
    let stopped = blocking(|| systemd.as_user(&["systemctl", "--user", "stop", UNIT]));
    assert!(stopped.ok, "{}", stopped.both());
    assert!(
        sim.wait_until(WAIT, |sim| sim.received_of("daemon_client_delete").len()
            > deletes_before)
            .await,
        "it stopped without unregistering"
    );
    blocking(|| {
        assert_eq!(show("Result"), "success");
        assert_eq!(show("ActiveState"), "inactive");
    });

    // uninstall removes the unit.
    let removed = blocking(|| systemd.as_user(&[bin_arg, "service", "uninstall"]));
    assert!(removed.ok, "service uninstall: {}", removed.both());
    assert!(!home.join(".config/systemd/user").join(UNIT).exists());
    drop(sim);
}
