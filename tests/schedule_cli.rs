//! `tether next` and the fire times of `tether check`, run as real
//! processes on real files.

use std::process::{Command, Output};

use tempfile::TempDir;

const NIGHTLY: &str = "\
name: nightly
trigger:
  schedule:
    cron: \"30 2 * * *\"
    timezone: America/New_York
steps:
  - id: echo
    script: trigger.scheduled_at
";

const HOOK: &str = "\
name: hook
trigger:
  webhook:
    path: /hooks/hook
steps:
  - id: echo
    script: trigger.body
";

fn project() -> TempDir {
    let dir = TempDir::new().expect("project directory");
    let workflows = dir.path().join("workflows");
    std::fs::create_dir_all(&workflows).expect("workflows directory");
    std::fs::write(workflows.join("nightly.yaml"), NIGHTLY).expect("writing a workflow");
    std::fs::write(workflows.join("hook.yaml"), HOOK).expect("writing a workflow");
    dir
}

fn tether(project: &TempDir, args: &[&str]) -> (Output, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("--dir")
        .arg(project.path())
        .args(args)
        .env_remove("RUST_LOG")
        .env("TZ", "Asia/Tokyo")
        .output()
        .expect("running tether");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

#[test]
fn next_prints_utc_and_local() {
    let project = project();
    let args = [
        "next",
        "nightly",
        "--from",
        "2025-03-08T06:00:00Z",
        "--count",
        "3",
    ];
    let (output, stdout, stderr) = tether(&project, &args);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "nightly: cron `30 2 * * *` in America/New_York",
            "2025-03-08T07:30:00Z  2025-03-08T02:30:00-05:00 America/New_York",
            "2025-03-09T07:00:00Z  2025-03-09T03:00:00-04:00 America/New_York",
            "2025-03-10T06:30:00Z  2025-03-10T02:30:00-04:00 America/New_York",
        ]
    );
}

#[test]
fn next_defaults_to_five_times() {
    let project = project();
    let (output, stdout, stderr) = tether(&project, &["next", "nightly"]);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
}

#[test]
fn next_accepts_any_offset() {
    let project = project();
    let args = [
        "next",
        "nightly",
        "--from",
        "2025-03-08T01:00:00-05:00",
        "--count",
        "1",
    ];
    let (output, stdout, stderr) = tether(&project, &args);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(stdout.contains("2025-03-08T07:30:00Z"), "{stdout}");
}

#[test]
fn next_of_webhook_workflow_fails() {
    let project = project();
    let (output, _, stderr) = tether(&project, &["next", "hook"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("workflow `hook` has a webhook trigger, not a schedule"),
        "{stderr}"
    );
}

#[test]
fn next_of_unknown_workflow_lists_loaded() {
    let project = project();
    let (output, _, stderr) = tether(&project, &["next", "nighty"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("workflow `nighty` is not loaded"),
        "{stderr}"
    );
    assert!(stderr.contains("loaded: hook, nightly"), "{stderr}");
}

#[test]
fn next_rejects_invalid_from() {
    let project = project();
    let (output, _, stderr) = tether(&project, &["next", "nightly", "--from", "2025-03-08"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr.contains("invalid time `2025-03-08`"), "{stderr}");
}

#[test]
fn check_prints_fire_times_after_ok() {
    let project = project();
    let (output, stdout, stderr) = tether(&project, &["check"]);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert_eq!(lines[0], "ok: 2 workflows, 0 connectors");
    let prefix = "nightly (30 2 * * * in America/New_York) fires next at ";
    assert!(lines[1].starts_with(prefix), "{stdout}");
    let times: Vec<&str> = lines[1][prefix.len()..].split(", ").collect();
    assert_eq!(times.len(), 3, "{stdout}");
    for time in times {
        assert!(time.ends_with('Z'), "{time} is not UTC");
    }
}
