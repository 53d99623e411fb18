//! YAML parsing into a tree that keeps the line and column of every key and
//! value, so that later checks can point at the exact spot in the file.
//!
//! Plain scalars are resolved with the YAML 1.2 core schema, not YAML 1.1:
//! `NO`, `yes`, `on` and `y` stay strings. Numbers with leading zeros
//! (`00123`) and integers that do not fit in an `i64` also stay strings, so
//! that nothing written in the file changes its value while being read.

use yaml_rust2::parser::Parser;
use yaml_rust2::scanner::Marker;

use super::diag::{Diagnostic, Mark};

mod builder;

use builder::Builder;

/// A resolved scalar value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// The shape of a node: a scalar, a list or a map.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// Entries in file order.
    Map(Vec<(Key, Node)>),
}

/// A YAML value with the position where it starts.
///
/// A node copied by an alias keeps the positions of the anchored node, so
/// they point to where the value was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub mark: Mark,
}

/// A map key, always a string, with the position of the key itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub mark: Mark,
}

/// Parses one YAML document.
///
/// Returns every problem found: each duplicate key (positioned at its second
/// occurrence, with the path of the map that contains it), merge keys (`<<`),
/// map keys that are lists or maps, and a second document in the same file.
/// A syntax error stops parsing, so at most one is returned, together with
/// the problems found before it. An empty document is a null node at 1:1.
pub fn parse(src: &str) -> Result<Node, Vec<Diagnostic>> {
    match parse_lenient(src) {
        (Some(node), diags) if diags.is_empty() => Ok(node),
        (_, diags) => Err(diags),
    }
}

/// Parses like [`parse`] but also returns the tree when the only problems
/// are duplicate or rejected keys (the first value of a duplicate key is
/// kept), so later checks can still report the file's other problems. The
/// tree is `None` after a syntax error.
pub fn parse_lenient(src: &str) -> (Option<Node>, Vec<Diagnostic>) {
    let mut builder = Builder::new(src);
    let mut parser = Parser::new_from_str(src);
    let mut syntax_error = false;
    if let Err(error) = parser.load(&mut builder, true) {
        let message = format!("invalid YAML: {}", error.info());
        builder
            .diags
            .push(Diagnostic::new(to_mark(*error.marker()), "", message));
        syntax_error = true;
    }
    let mut diags = builder.diags;
    diags.sort_by_key(|diagnostic| diagnostic.mark);
    if syntax_error {
        return (None, diags);
    }
    let root = builder.root.unwrap_or(Node {
        kind: NodeKind::Scalar(Scalar::Null),
        mark: Mark { line: 1, col: 1 },
    });
    (Some(root), diags)
}

impl Node {
    /// Converts the node to JSON, keeping the order of map keys.
    ///
    /// `.inf`, `-.inf` and `.nan` become `null` because JSON has no such numbers.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar(Scalar::Null) => Value::Null,
            NodeKind::Scalar(Scalar::Bool(value)) => Value::Bool(*value),
            NodeKind::Scalar(Scalar::Int(value)) => Value::from(*value),
            NodeKind::Scalar(Scalar::Float(value)) => {
                serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number)
            }
            NodeKind::Scalar(Scalar::Str(value)) => Value::String(value.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(key, value)| (key.name.clone(), value.to_json()))
                    .collect(),
            ),
        }
    }

    /// Returns the value of `key` if this node is a map that contains it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(candidate, _)| candidate.name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// Returns the name of the node's type as used in messages: "null",
    /// "boolean", "integer", "number", "string", "list" or "map".
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(Scalar::Null) => "null",
            NodeKind::Scalar(Scalar::Bool(_)) => "boolean",
            NodeKind::Scalar(Scalar::Int(_)) => "integer",
            NodeKind::Scalar(Scalar::Float(_)) => "number",
            NodeKind::Scalar(Scalar::Str(_)) => "string",
            NodeKind::Seq(_) => "list",
            NodeKind::Map(_) => "map",
        }
    }

    /// Counts this node and all nodes below it.
    fn count(&self) -> usize {
        match &self.kind {
            NodeKind::Scalar(_) => 1,
            NodeKind::Seq(items) => 1 + items.iter().map(Node::count).sum::<usize>(),
            NodeKind::Map(entries) => {
                1 + entries
                    .iter()
                    .map(|(_, value)| value.count())
                    .sum::<usize>()
            }
        }
    }
}

/// Converts a yaml-rust2 marker, whose line is 1-based and whose column is
/// 0-based (checked against yaml-rust2 0.10.4), to a 1-based [`Mark`].
fn to_mark(marker: Marker) -> Mark {
    Mark {
        line: marker.line(),
        col: marker.col() + 1,
    }
}

/// Resolves a plain (unquoted) scalar with the YAML 1.2 core schema, keeping
/// integers with leading zeros and integers that overflow `i64` as strings.
fn resolve_plain(text: &str) -> Scalar {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => Scalar::Null,
        "true" | "True" | "TRUE" => Scalar::Bool(true),
        "false" | "False" | "FALSE" => Scalar::Bool(false),
        _ => {
            if let Some(value) = parse_int(text) {
                Scalar::Int(value)
            } else if let Some(value) = parse_float(text) {
                Scalar::Float(value)
            } else {
                Scalar::Str(text.to_owned())
            }
        }
    }
}

/// Parses `[-+]?[0-9]+` without leading zeros (`0` and `-0` are fine).
fn parse_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if !is_digits(digits) || (digits.len() > 1 && digits.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

/// Parses the core schema floats: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`
/// plus `.inf`, `-.inf` and `.nan` in three spellings each.
///
/// Returns None for text without a `.` or exponent (an integer that
/// `parse_int` rejected), for a whole part with leading zeros such as `01.5`,
/// and for values too large for an `f64`, so that all of those stay strings.
fn parse_float(text: &str) -> Option<f64> {
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(special) = parse_special_float(text, unsigned) {
        return Some(special);
    }

    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (unsigned, None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (mantissa, None),
    };

    let fraction_digits = fraction.unwrap_or("");
    let valid_mantissa = (whole.is_empty() || is_digits(whole))
        && (fraction_digits.is_empty() || is_digits(fraction_digits))
        && !(whole.is_empty() && fraction_digits.is_empty());
    let valid_exponent =
        exponent.is_none_or(|e| is_digits(e.strip_prefix(['-', '+']).unwrap_or(e)));
    if !valid_mantissa || !valid_exponent {
        return None;
    }

    let integer_form = fraction.is_none() && exponent.is_none();
    let leading_zero = whole.len() > 1 && whole.starts_with('0');
    if integer_form || leading_zero {
        return None;
    }

    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

/// Parses `.inf` with an optional sign, and `.nan`, each in lower, title or upper case.
fn parse_special_float(text: &str, unsigned: &str) -> Option<f64> {
    if matches!(unsigned, ".inf" | ".Inf" | ".INF") {
        let negative = text.starts_with('-');
        return Some(if negative {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    matches!(text, ".nan" | ".NaN" | ".NAN").then_some(f64::NAN)
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests;
