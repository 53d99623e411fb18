//! A serde `Deserializer` over the YAML tree from [`super::yaml`] that
//! reports every problem as a [`Diagnostic`] with its position and field path,
//! instead of stopping at the first one.
//!
//! Recovery works in two ways. A scalar of the wrong type is reported and the
//! target gets a placeholder (0, "", false), so reading goes on. Some failures
//! stop serde: a missing field, an unknown enum variant, a string where a
//! struct belongs. Such a failure is reported, and the document is read again
//! with the failed list element or map entry left out. This repeats until a
//! run finds no new failure. [`from_node`] returns `None` whenever anything
//! was reported, so placeholders never reach the caller.
//!
//! Supported: the serde data model (`deserialize_any` included, so
//! `serde_json::Value` works), externally tagged enums, `#[serde(default)]`,
//! `rename`, `rename_all` and `alias`. For `#[serde(untagged)]` and internally
//! tagged enums and for structs with `#[serde(flatten)]`, serde buffers the
//! value before reading it. Problems inside such a value are then reported as
//! one message at the value, unknown fields in it are not reported, and a
//! [`Spanned`] inside it fails.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::diag::{Diagnostic, Mark, join_key, suggest};
use super::yaml::{Key, Node, NodeKind, Scalar};

mod access;
mod node;
#[cfg(test)]
mod tests;

use node::NodeDeserializer;

/// Maximum number of times [`from_node`] reads the document. A run after the
/// first happens only because an earlier run left out a failed list element
/// or map entry. When the limit is reached, problems in values that no run
/// has read yet are not reported.
const MAX_RUNS: usize = 100;

/// Struct name that [`Spanned`] passes to `deserialize_struct`. For this
/// name the deserializer returns the fields below instead of the node's map
/// entries.
const SPANNED_NAME: &str = "$__tether_spanned";
const SPANNED_LINE: &str = "$__tether_spanned_line";
const SPANNED_COL: &str = "$__tether_spanned_col";
const SPANNED_PATH: &str = "$__tether_spanned_path";
const SPANNED_VALUE: &str = "$__tether_spanned_value";
const SPANNED_FIELDS: &[&str] = &[SPANNED_LINE, SPANNED_COL, SPANNED_PATH, SPANNED_VALUE];

/// A value with the position and field path where it was written.
///
/// Only [`from_node`] can fill it in. Other deserializers, and serde's
/// buffering for untagged or internally tagged enums and flattened fields,
/// fail with an error. Serializing writes only the value.
#[derive(Debug, Clone, Default)]
pub struct Spanned<T> {
    pub value: T,
    pub mark: Mark,
    pub path: String,
}

impl<T> Deref for Spanned<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_struct(SPANNED_NAME, SPANNED_FIELDS, SpannedVisitor(PhantomData))
    }
}

struct SpannedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SpannedVisitor<T> {
    type Value = Spanned<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value read by tether's YAML deserializer")
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
        expect_spanned_key(&mut map, SPANNED_LINE)?;
        let line = map.next_value()?;
        expect_spanned_key(&mut map, SPANNED_COL)?;
        let col = map.next_value()?;
        expect_spanned_key(&mut map, SPANNED_PATH)?;
        let path = map.next_value()?;
        expect_spanned_key(&mut map, SPANNED_VALUE)?;
        let value = map.next_value()?;
        Ok(Spanned {
            value,
            mark: Mark { line, col },
            path,
        })
    }
}

fn expect_spanned_key<'de, A: de::MapAccess<'de>>(
    map: &mut A,
    expected: &str,
) -> Result<(), A::Error> {
    match map.next_key::<String>()? {
        Some(key) if key == expected => Ok(()),
        _ => Err(de::Error::custom(
            "Spanned<T> can only be read by `from_node`, and not inside untagged or internally tagged enums or flattened fields",
        )),
    }
}

/// Deserializes `node` into `T`, collecting problems into `diags` instead of
/// stopping at the first.
///
/// Reports every unknown field of every struct at its key, with the path of
/// the field ("unknown field `retyr`, did you mean `retry`?"), every type
/// mismatch at the value ("expected a string, found a list"), and missing
/// fields at the map that lacks them. Diagnostics are appended sorted by
/// position. Returns `None` if anything was recorded.
pub fn from_node<T: DeserializeOwned>(node: &Node, diags: &mut Vec<Diagnostic>) -> Option<T> {
    let before = diags.len();
    let value = from_node_partial(node, diags);
    value.filter(|_| diags.len() == before)
}

/// Like [`from_node`], but returns the value whenever one could be built,
/// even with problems recorded (an unknown field is left out, a failing
/// list element or map entry is dropped), so a caller can go on checking
/// the rest of the file. Such a value must not be used for anything else.
pub fn from_node_partial<T: DeserializeOwned>(
    node: &Node,
    diags: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut skipped = HashSet::new();
    let mut reported = Vec::new();
    let mut runs = 0;
    let result = loop {
        runs += 1;
        let run = Run::new(&skipped);
        let result = T::deserialize(NodeDeserializer::new(node, String::new(), &run));
        if let Err(error @ (Error::Custom(_) | Error::MissingField(_))) = &result {
            // This happens only when a `Deserialize` impl fails without
            // calling the deserializer.
            run.record(node.mark, "", error.to_string());
        }
        let (found, failed) = run.finish();
        for (address, failure_diags) in &failed {
            skipped.insert(*address);
            reported.extend_from_slice(failure_diags);
        }
        if failed.is_empty() || runs == MAX_RUNS {
            reported.extend(found);
            break result;
        }
    };
    if result.is_err() && reported.is_empty() {
        // Every error path records a diagnostic, so this is a safety net.
        reported.push(Diagnostic::new(
            node.mark,
            "",
            "the document could not be read",
        ));
    }
    reported.sort_by_key(|diagnostic| diagnostic.mark);
    diags.extend(reported);
    result.ok()
}

/// Error passed between the deserializer and serde's visitors.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// A message from serde or a `Deserialize` impl, not recorded yet.
    #[error("{0}")]
    Custom(String),
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// The problem is recorded. The enclosing list element or map entry is
    /// left out of the next run.
    #[error("the value could not be read")]
    Failed,
    /// A node below was left out of the next run. Nothing is recorded, and
    /// the enclosing values are read again in the next run.
    #[error("the value is read again in the next run")]
    Abandoned,
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(message: T) -> Self {
        Error::Custom(message.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        Error::MissingField(field)
    }
}

/// Lengths of a run's diagnostics and failures, taken before reading a list
/// element or map entry, so that what was added while reading it is known.
#[derive(Clone, Copy)]
struct Checkpoint {
    diags: usize,
    failed: usize,
}

/// State shared by all deserializers during one reading of the document.
struct Run<'a> {
    diags: RefCell<Vec<Diagnostic>>,
    /// List elements and map entry values that failed in earlier runs, by
    /// address. They are left out of this run.
    skipped: &'a HashSet<*const Node>,
    /// Nodes that failed in this run, each with the diagnostics recorded
    /// while reading it. Those diagnostics are final, because the node is
    /// left out of later runs.
    failed: RefCell<Vec<(*const Node, Vec<Diagnostic>)>>,
}

impl<'a> Run<'a> {
    fn new(skipped: &'a HashSet<*const Node>) -> Self {
        Self {
            diags: RefCell::new(Vec::new()),
            skipped,
            failed: RefCell::new(Vec::new()),
        }
    }

    fn record(&self, mark: Mark, path: &str, message: impl Into<String>) {
        self.diags
            .borrow_mut()
            .push(Diagnostic::new(mark, path, message));
    }

    fn is_skipped(&self, node: &Node) -> bool {
        self.skipped.contains(&std::ptr::from_ref(node))
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            diags: self.diags.borrow().len(),
            failed: self.failed.borrow().len(),
        }
    }

    /// Handles an error from reading the list element or map entry value
    /// `node`, which started at `checkpoint`.
    ///
    /// The node is left out of the next run and keeps the diagnostics
    /// recorded since `checkpoint`. The exception is a node with a failed
    /// node below it: its error may only be a consequence of that failure,
    /// so it is read again in the next run.
    fn fail(&self, node: &Node, path: &str, checkpoint: Checkpoint, error: Error) {
        if matches!(error, Error::Abandoned) || self.failed.borrow().len() > checkpoint.failed {
            return;
        }
        if let Error::Custom(_) | Error::MissingField(_) = error {
            self.record(node.mark, path, error.to_string());
        }
        let moved = self.diags.borrow_mut().split_off(checkpoint.diags);
        self.failed
            .borrow_mut()
            .push((std::ptr::from_ref(node), moved));
    }

    /// Returns the diagnostics not tied to a failed node, and the failed nodes.
    #[allow(clippy::type_complexity)]
    fn finish(self) -> (Vec<Diagnostic>, Vec<(*const Node, Vec<Diagnostic>)>) {
        (self.diags.into_inner(), self.failed.into_inner())
    }
}

/// Returns how a node's type reads in "found …": "null", "a string", "an integer" and so on.
fn describe(node: &Node) -> &'static str {
    match &node.kind {
        NodeKind::Scalar(Scalar::Null) => "null",
        NodeKind::Scalar(Scalar::Bool(_)) => "a boolean",
        NodeKind::Scalar(Scalar::Int(_)) => "an integer",
        NodeKind::Scalar(Scalar::Float(_)) => "a number",
        NodeKind::Scalar(Scalar::Str(_)) => "a string",
        NodeKind::Seq(_) => "a list",
        NodeKind::Map(_) => "a map",
    }
}

/// Formats names as "`a`, `b`, `c`".
fn name_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Message for a name that is not one of `expected`, with a suggestion when
/// one is close: "unknown field `retyr`, did you mean `retry`?".
fn unknown_name_message(kind: &str, name: &str, expected: &[&str]) -> String {
    if let Some(candidate) = suggest(name, expected) {
        format!("unknown {kind} `{name}`, did you mean `{candidate}`?")
    } else if expected.is_empty() {
        format!("unknown {kind} `{name}`, none are expected here")
    } else {
        format!(
            "unknown {kind} `{name}`, expected one of {}",
            name_list(expected)
        )
    }
}

/// Records every key of a struct's map that is not one of `fields`.
fn report_unknown_fields(run: &Run<'_>, path: &str, entries: &[(Key, Node)], fields: &[&str]) {
    for (key, _) in entries {
        if !fields.contains(&key.name.as_str()) {
            let message = unknown_name_message("field", &key.name, fields);
            run.record(key.mark, &join_key(path, &key.name), message);
        }
    }
}
