//! `tether check` run as a real process on real files.

mod common;

use std::process::Command;

use common::*;

fn tether() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .env("SHOPIFY_WEBHOOK_SECRET", SHOPIFY_SECRET)
        .env("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN)
        .envs(CONNECTOR_SECRETS)
        .env_remove("RUST_LOG");
    command
}

#[test]
fn bundled_files_pass() {
    let output = tether()
        .arg("check")
        .arg("--dir")
        .arg(repo_root())
        .output()
        .expect("running tether check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("ok:"), "{stdout}");
}

#[test]
fn misspelt_field_and_duplicate_key_both_reported() {
    let project = Project::bundled();
    let text = "\
name: broken
trigger:
  webhook:
    path: /hooks/broken
steps:
  - id: first
    script: 1 + 1
    retyr: { attempts: 3 }
  - id: second
    uses: supplier.create_order
    with:
      reference: 1
      reference: 2
";
    project.add_workflow("broken.yaml", text);
    let file = project.path().join("workflows/broken.yaml");

    let output = tether()
        .arg("check")
        .arg(&file)
        .arg("--dir")
        .arg(project.path())
        .output()
        .expect("running tether check");
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert_eq!(output.status.code(), Some(1), "stdout: {stdout}");
    let shown = file.display().to_string();
    let misspelt =
        format!("{shown}:8:5: steps[0].retyr: unknown field `retyr`, did you mean `retry`?");
    assert!(
        stdout.contains(&misspelt),
        "expected `{misspelt}` in:\n{stdout}"
    );
    let duplicate = format!("{shown}:13:7: steps[1].with");
    assert!(
        stdout.contains(&duplicate),
        "expected `{duplicate}` in:\n{stdout}"
    );
    assert!(stdout.contains("duplicate key `reference`"), "{stdout}");
}

#[test]
fn missing_secret_is_named() {
    let output = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg("check")
        .arg("--dir")
        .arg(repo_root())
        .env_remove("SHOPIFY_WEBHOOK_SECRET")
        .env("SUPPLIER_API_TOKEN", SUPPLIER_TOKEN)
        .envs(CONNECTOR_SECRETS)
        .output()
        .expect("running tether check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout.contains("secret `SHOPIFY_WEBHOOK_SECRET` is not set"),
        "{stdout}"
    );
    assert!(stdout.contains("order-to-supplier.yaml:"), "{stdout}");
}
