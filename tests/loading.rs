//! Loading workflow files: YAML 1.1 surprises, references, expressions and
//! secrets, each reported with its position.

use std::path::PathBuf;

use serde_json::Value;
use tempfile::TempDir;
use tether::expr::{Limits, ScriptEngine};
use tether::workflow::{Env, Registry, load_files};

const CONNECTOR: &str = r#"
name: shop
config:
  base_url: "http://127.0.0.1:1"
auth: { bearer: "${{ secrets.SHOP_TOKEN }}" }
operations:
  update:
    method: POST
    path: /update
    body: "${{ input }}"
"#;

fn load(workflow: &str, env: &[(&str, &str)]) -> (Registry, PathBuf, TempDir) {
    let dir = TempDir::new().expect("temporary directory");
    let connector = dir.path().join("shop.yaml");
    std::fs::write(&connector, CONNECTOR).expect("writing the connector");
    let file = dir.path().join("flow.yaml");
    std::fs::write(&file, workflow).expect("writing the workflow");
    let scripts = ScriptEngine::new(Limits::default());
    let env = Env::from_pairs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let registry = load_files(&[connector, file.clone()], &scripts, &env);
    (registry, file, dir)
}

fn problems(registry: &Registry) -> Vec<String> {
    registry.problems.iter().map(ToString::to_string).collect()
}

const TOKEN: [(&str, &str); 1] = [("SHOP_TOKEN", "tok")];

#[test]
fn yaml_11_values_keep_their_text() {
    let (registry, _, _dir) = load(
        "name: flow\ntrigger: manual\nvars:\n  countries: [SE, NO, FI]\n  sku: 00123\n  zip: 05069\n  flag: yes\nsteps:\n  - id: one\n    script: vars\n",
        &TOKEN,
    );
    assert!(registry.problems.is_empty(), "{:?}", problems(&registry));
    let vars = &registry.workflow("flow").expect("loaded").vars;
    assert_eq!(vars["countries"][1], Value::String("NO".into()));
    assert_eq!(vars["sku"], Value::String("00123".into()));
    assert_eq!(vars["zip"], Value::String("05069".into()));
    assert_eq!(vars["flag"], Value::String("yes".into()));
}

#[test]
fn every_problem_reported_at_once() {
    let text = "\
name: flow
trigger: manual
steps:
  - id: one
    script: 'let x = ;'
  - id: one
    uses: shop.updat
  - id: three
    uses: nowhere.update
  - id: four
    uses: shop.update
    with:
      value: \"${{ steps.missing.output }}\"
      broken: \"${{ 1 + }}\"
";
    let (registry, file, _dir) = load(text, &TOKEN);
    let found = problems(&registry);
    let shown = file.display().to_string();
    let expect = |needle: &str| {
        assert!(
            found.iter().any(|p| p.contains(needle)),
            "expected `{needle}` in {found:#?}"
        );
    };
    expect(&format!("{shown}:5:13: steps[0].script:"));
    expect(&format!(
        "{shown}:6:9: steps[1].id: duplicate step id `one`"
    ));
    expect("connector `shop` has no operation `updat`; did you mean `update`?");
    expect(&format!(
        "{shown}:9:11: steps[2].uses: unknown connector `nowhere`"
    ));
    expect("`steps.missing` does not name an earlier step");
    expect(&format!("{shown}:14:15: steps[3].with.broken:"));
    assert!(registry.workflow("flow").is_none());
}

#[test]
fn missing_secret_named_in_error() {
    let (registry, _, _dir) = load(
        "name: flow\ntrigger: manual\nsteps:\n  - id: one\n    script: \"1\"\n",
        &[],
    );
    let found = problems(&registry);
    assert!(
        found
            .iter()
            .any(|p| p.contains("secret `SHOP_TOKEN` is not set")),
        "{found:#?}"
    );
}

#[test]
fn later_step_reference_rejected() {
    let text = "name: flow\ntrigger: manual\nsteps:\n  - id: one\n    script: steps.two.output\n  - id: two\n    script: \"2\"\n";
    let (registry, _, _dir) = load(text, &TOKEN);
    let found = problems(&registry);
    assert!(
        found
            .iter()
            .any(|p| p.contains("`steps.two` does not name an earlier step")),
        "{found:#?}"
    );
}

#[test]
fn secret_values_masked_by_redactor() {
    let (registry, _, _dir) = load(
        "name: flow\ntrigger: manual\nsteps:\n  - id: one\n    script: \"1\"\n",
        &[("SHOP_TOKEN", "tok_abcdef")],
    );
    assert!(registry.problems.is_empty(), "{:?}", problems(&registry));
    assert_eq!(
        registry.redactor.text("Bearer tok_abcdef"),
        "Bearer [redacted]"
    );
}
