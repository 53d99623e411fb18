//! Shared state for validating one file: the script engine that compiles its
//! expressions, the environment its secrets come from, and the problems
//! found so far.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::Value;

use super::de::Spanned;
use super::diag::{Diagnostic, Mark};
use crate::expr::{CompileError, Context, Script, ScriptEngine, Template, ValueTemplate};

/// Snapshot of environment variables that secrets and connector settings
/// are read from. Tests pass their own instead of changing the process's.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    pub fn from_process() -> Self {
        Env {
            vars: std::env::vars().collect(),
        }
    }

    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Env {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Returns a copy with `name` set to `value`.
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_string(), value.to_string());
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

pub struct Checker<'a> {
    pub scripts: &'a ScriptEngine,
    pub env: &'a Env,
    pub diags: Vec<Diagnostic>,
    /// Secret values the file's expressions use, by name.
    pub secrets: BTreeMap<String, String>,
}

impl<'a> Checker<'a> {
    pub fn new(scripts: &'a ScriptEngine, env: &'a Env) -> Self {
        Checker {
            scripts,
            env,
            diags: Vec::new(),
            secrets: BTreeMap::new(),
        }
    }

    pub fn error(&mut self, mark: Mark, path: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic::new(mark, path, message));
    }

    pub fn template(&mut self, text: &Spanned<String>) -> Option<Template> {
        match self.scripts.compile_template(&text.value) {
            Ok(template) => {
                self.read_secrets(&template.secrets(), text.mark, &text.path);
                Some(template)
            }
            Err(error) => {
                self.compile_error(text.mark, &text.path, &error);
                None
            }
        }
    }

    pub fn value(&mut self, value: &Spanned<Value>) -> Option<ValueTemplate> {
        match self.scripts.compile_value(&value.value) {
            Ok(template) => {
                self.read_secrets(&template.secrets(), value.mark, &value.path);
                Some(template)
            }
            Err(error) => {
                self.compile_error(value.mark, &value.path, &error);
                None
            }
        }
    }

    pub fn script(&mut self, source: &Spanned<String>) -> Option<Script> {
        match self.scripts.compile_script(&source.value) {
            Ok(script) => {
                self.read_secrets(&script.secrets(), source.mark, &source.path);
                Some(script)
            }
            Err(error) => {
                let message = format!(
                    "{} (line {}, column {} of the script)",
                    error.message, error.line, error.col
                );
                self.error(source.mark, &source.path, message);
                None
            }
        }
    }

    /// Parses a duration such as `30s`, `5m` or `1h 30m`.
    pub fn duration(&mut self, text: &Spanned<String>) -> Option<Duration> {
        match humantime::parse_duration(text.value.trim()) {
            Ok(duration) => Some(duration),
            Err(error) => {
                let message = format!(
                    "invalid duration `{}`: {error}; write a number and a unit, such as `30s`, `5m` or `2h`",
                    text.value
                );
                self.error(text.mark, &text.path, message);
                None
            }
        }
    }

    /// Evaluates a template whose only inputs are secrets, at load time.
    pub fn render_with_secrets(&mut self, text: &Spanned<String>) -> Option<String> {
        let template = self.template(text)?;
        let mut context = Context::new();
        context.set("secrets", &secrets_value(&self.secrets));
        match self.scripts.render(&template, &context) {
            Ok(Value::String(rendered)) => Some(rendered),
            Ok(other) => Some(other.to_string()),
            Err(error) => {
                self.error(
                    text.mark,
                    &text.path,
                    format!("could not evaluate: {error}"),
                );
                None
            }
        }
    }

    fn read_secrets(&mut self, names: &[String], mark: Mark, path: &str) {
        for name in names {
            if self.secrets.contains_key(name) {
                continue;
            }
            match self.env.get(name) {
                Some(value) => {
                    self.secrets.insert(name.clone(), value.to_string());
                }
                None => self.error(
                    mark,
                    path,
                    format!("secret `{name}` is not set; export the environment variable {name}"),
                ),
            }
        }
    }

    fn compile_error(&mut self, mark: Mark, path: &str, error: &CompileError) {
        let message = format!("{} (column {} of the value)", error.message, error.col);
        self.error(mark, path, message);
    }
}

/// The `secrets` map as expressions see it.
pub fn secrets_value(secrets: &BTreeMap<String, String>) -> Value {
    Value::Object(
        secrets
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect(),
    )
}
