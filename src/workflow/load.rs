//! Loads workflow and connector files into a [`Registry`]. A file with
//! problems is left out and its problems are kept, so one broken file never
//! stops the others from running.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::checker::{Checker, Env};
use super::de::from_node_partial;
use super::diag::{Diagnostic, Mark};
use super::model::{Trigger, Workflow};
use super::raw::RawWorkflow;
use super::{validate, yaml};
use crate::connector::raw::RawConnector;
use crate::connector::{self, Connector};
use crate::engine::redact::Redactor;
use crate::expr::ScriptEngine;

/// Everything loaded from one directory: the runnable workflows and
/// connectors, and the problems of the files that were left out.
#[derive(Debug, Default)]
pub struct Registry {
    pub workflows: BTreeMap<String, Arc<Workflow>>,
    pub connectors: BTreeMap<String, Arc<Connector>>,
    /// Webhook path to workflow name.
    pub hooks: HashMap<String, String>,
    pub problems: Vec<Diagnostic>,
    /// Names of every workflow file being loaded, valid or not, so a `call`
    /// may name a workflow that is validated after its caller.
    pub declared_workflows: BTreeSet<String>,
    /// Names of connectors whose files have problems.
    pub broken_connectors: BTreeSet<String>,
    /// Masks every secret value that any loaded file reads.
    pub redactor: Redactor,
}

impl Registry {
    pub fn workflow(&self, name: &str) -> Option<&Arc<Workflow>> {
        self.workflows.get(name)
    }

    /// After a reload: keeps each workflow and connector of `previous`
    /// whose file now fails validation, so a broken edit leaves the last
    /// good version serving. Files that were removed are dropped.
    pub fn keep_previous(&mut self, previous: &Registry) -> Vec<String> {
        let broken: BTreeSet<&str> = self.problems.iter().map(|p| p.file.as_str()).collect();
        let is_broken = |file: &Path| broken.contains(file.display().to_string().as_str());
        let mut kept = Vec::new();
        for (name, connector) in &previous.connectors {
            if !self.connectors.contains_key(name) && is_broken(&connector.file) {
                self.connectors.insert(name.clone(), Arc::clone(connector));
                self.broken_connectors.remove(name);
                kept.push(format!("connector {name}"));
            }
        }
        for (name, workflow) in &previous.workflows {
            if !self.workflows.contains_key(name) && is_broken(&workflow.file) {
                if let Trigger::Webhook(hook) = &workflow.trigger {
                    self.hooks
                        .entry(hook.path.clone())
                        .or_insert_with(|| name.clone());
                }
                self.workflows.insert(name.clone(), Arc::clone(workflow));
                kept.push(format!("workflow {name}"));
            }
        }
        let secrets = self
            .workflows
            .values()
            .flat_map(|w| w.secrets.values().cloned())
            .chain(
                self.connectors
                    .values()
                    .flat_map(|c| c.secrets.values().cloned()),
            );
        self.redactor = Redactor::new(secrets.collect::<Vec<_>>());
        kept
    }
}

/// Loads `dir/connectors/*.yaml` and `dir/workflows/*.yaml`.
pub fn load_dir(dir: &Path, scripts: &ScriptEngine, env: &Env) -> Registry {
    let mut files = yaml_files(&dir.join("connectors"));
    files.extend(yaml_files(&dir.join("workflows")));
    load_files(&files, scripts, env)
}

/// Files named on the command line: directories are searched for
/// `connectors/` and `workflows/` (or YAML files directly inside them).
/// Connectors of `base_dir` are added when no connector file was named.
pub fn load_paths(
    paths: &[PathBuf],
    base_dir: &Path,
    scripts: &ScriptEngine,
    env: &Env,
) -> Registry {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let nested: Vec<PathBuf> = ["connectors", "workflows"]
                .iter()
                .map(|sub| path.join(sub))
                .filter(|sub| sub.is_dir())
                .collect();
            if nested.is_empty() {
                files.extend(yaml_files(path));
            } else {
                nested.iter().for_each(|sub| files.extend(yaml_files(sub)));
            }
        } else {
            files.push(path.clone());
        }
    }
    let mut registry = load_files(&files, scripts, env);
    if registry.connectors.is_empty() && !files.iter().any(|f| is_connector_file(f)) {
        let mut with_connectors = yaml_files(&base_dir.join("connectors"));
        with_connectors.extend(files);
        registry = load_files(&with_connectors, scripts, env);
    }
    registry
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let ext = path.extension().and_then(|e| e.to_str());
            path.is_file() && matches!(ext, Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    files
}

fn is_connector_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| yaml::parse(&text).ok())
        .is_some_and(|node| node.get("operations").is_some())
}

/// A parsed file waiting for validation.
struct Parsed {
    file: PathBuf,
    node: yaml::Node,
    /// Parsing found problems (such as duplicate keys), so the file is
    /// checked further but never loaded.
    rejected: bool,
    /// Hash of the file's text, recorded on runs as the workflow version.
    version: String,
}

pub fn load_files(files: &[PathBuf], scripts: &ScriptEngine, env: &Env) -> Registry {
    let mut registry = Registry::default();
    let mut connector_files = Vec::new();
    let mut workflow_files = Vec::new();
    for file in files {
        let (node, problems, version) = read_and_parse(file);
        let rejected = !problems.is_empty();
        registry.problems.extend(problems);
        let Some(node) = node else {
            continue;
        };
        let parsed = Parsed {
            file: file.clone(),
            node,
            rejected,
            version,
        };
        if parsed.node.get("operations").is_some() {
            connector_files.push(parsed);
        } else {
            workflow_files.push(parsed);
        }
    }

    let mut secrets = Vec::new();
    for parsed in &connector_files {
        if let Some(connector) = load_connector(parsed, &mut registry, scripts, env) {
            secrets.extend(connector.secrets.values().cloned());
            registry
                .connectors
                .insert(connector.name.clone(), Arc::new(connector));
        }
    }
    for parsed in &workflow_files {
        if let Some(yaml::NodeKind::Scalar(yaml::Scalar::Str(name))) =
            parsed.node.get("name").map(|n| &n.kind)
        {
            registry.declared_workflows.insert(name.clone());
        }
    }
    for parsed in &workflow_files {
        if let Some(workflow) = load_workflow(parsed, &mut registry, scripts, env) {
            secrets.extend(workflow.secrets.values().cloned());
            if let Trigger::Webhook(hook) = &workflow.trigger {
                registry
                    .hooks
                    .insert(hook.path.clone(), workflow.name.clone());
            }
            registry
                .workflows
                .insert(workflow.name.clone(), Arc::new(workflow));
        }
    }
    registry.redactor = Redactor::new(secrets);
    registry
}

fn read_and_parse(file: &Path) -> (Option<yaml::Node>, Vec<Diagnostic>, String) {
    let display = file.display().to_string();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(error) => {
            let message = format!("could not read the file: {error}");
            let problem = Diagnostic::new(Mark { line: 1, col: 1 }, "", message).in_file(&display);
            return (None, vec![problem], String::new());
        }
    };
    let (node, problems) = yaml::parse_lenient(&text);
    let problems = problems.into_iter().map(|d| d.in_file(&display)).collect();
    (node, problems, content_version(&text))
}

/// Returns the first 12 hex digits of the SHA-256 of a file's text.
fn content_version(text: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(text.as_bytes());
    hex::encode(&digest[..6])
}

fn load_connector(
    parsed: &Parsed,
    registry: &mut Registry,
    scripts: &ScriptEngine,
    env: &Env,
) -> Option<Connector> {
    let display = parsed.file.display().to_string();
    let mut checker = Checker::new(scripts, env);
    let raw: Option<RawConnector> = from_node_partial(&parsed.node, &mut checker.diags);
    let rejected = parsed.rejected || !checker.diags.is_empty();
    let connector = raw.and_then(|raw| {
        if crate::connector::native::operations(&raw.name.value).is_some() {
            let message = format!(
                "connector name `{}` is taken by the built-in connector; choose another name",
                raw.name.value
            );
            checker.error(raw.name.mark, &raw.name.path, message);
        }
        if registry.connectors.contains_key(&raw.name.value) {
            let message = format!(
                "connector `{}` is defined in another file too",
                raw.name.value
            );
            checker.error(raw.name.mark, &raw.name.path, message);
        }
        let connector = connector::validate(&raw, &mut checker);
        if connector.is_none() {
            registry.broken_connectors.insert(raw.name.value.clone());
        }
        connector
    });
    registry
        .problems
        .extend(checker.diags.into_iter().map(|d| d.in_file(&display)));
    connector.filter(|_| !rejected).map(|mut connector| {
        connector.file = parsed.file.clone();
        connector
    })
}

fn load_workflow(
    parsed: &Parsed,
    registry: &mut Registry,
    scripts: &ScriptEngine,
    env: &Env,
) -> Option<Workflow> {
    let display = parsed.file.display().to_string();
    let mut checker = Checker::new(scripts, env);
    let raw: Option<RawWorkflow> = from_node_partial(&parsed.node, &mut checker.diags);
    let rejected = parsed.rejected || !checker.diags.is_empty();
    let workflow = raw.and_then(|raw| {
        check_unique(&raw, registry, &mut checker);
        validate::validate(&raw, &parsed.file, registry, &mut checker)
    });
    registry
        .problems
        .extend(checker.diags.into_iter().map(|d| d.in_file(&display)));
    workflow.filter(|_| !rejected).map(|mut workflow| {
        workflow.version = parsed.version.clone();
        workflow
    })
}

fn check_unique(raw: &RawWorkflow, registry: &Registry, checker: &mut Checker<'_>) {
    if registry.workflows.contains_key(&raw.name.value) {
        let message = format!(
            "workflow `{}` is defined in another file too",
            raw.name.value
        );
        checker.error(raw.name.mark, &raw.name.path, message);
    }
    if let super::raw::RawTrigger::Webhook(hook) = &raw.trigger.value
        && let Some(other) = registry.hooks.get(&hook.path.value)
    {
        let message = format!(
            "webhook path `{}` is already used by workflow `{other}`",
            hook.path.value
        );
        checker.error(hook.path.mark, &hook.path.path, message);
    }
}
