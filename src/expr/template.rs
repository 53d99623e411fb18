//! `${{ expr }}` templates. A string that is exactly one expression renders to the expression's
//! typed JSON value. Any other string with expressions renders to text, and a string without
//! `${{` is a literal. The `}}` that ends an expression is found with Rhai's string and brace
//! rules, so `${{ "}}" }}` and `${{ #{a: #{b: 1}} }}` work, and `${{ "${{" }}` renders a
//! literal `${{`.

use std::sync::Arc;

use rhai::AST;
use serde_json::Value;

use super::engine::{Context, ScriptEngine};
use super::error::{CompileError, EvalError};
use super::{scan, value};

const OPEN: &str = "${{";
const CLOSE: &str = "}}";

/// A compiled template string.
#[derive(Clone, Debug)]
pub struct Template {
    source: Arc<str>,
    parts: Arc<[Part]>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Expression(Expression),
}

#[derive(Debug)]
struct Expression {
    /// Expression text with surrounding whitespace trimmed, for error messages.
    source: String,
    ast: AST,
}

/// A JSON value whose strings were compiled as templates. Subtrees without any expression are
/// stored as one `Literal`.
#[derive(Clone, Debug)]
pub enum ValueTemplate {
    Literal(Value),
    Template(Template),
    Array(Vec<ValueTemplate>),
    Object(Vec<(String, ValueTemplate)>),
}

/// A piece of template text before compilation. `start` is the byte offset of the expression
/// text, just after `${{`.
enum Segment<'a> {
    Text(&'a str),
    Expression { start: usize, source: &'a str },
}

impl Template {
    /// True when the template contains no expression, so it renders to its own text.
    pub fn is_literal(&self) -> bool {
        !self
            .parts
            .iter()
            .any(|part| matches!(part, Part::Expression(_)))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Returns the names `X` read as `secrets.X` or `secrets["X"]` in the template's expressions.
    pub fn secrets(&self) -> Vec<String> {
        let mut names = Vec::new();
        for part in self.parts.iter() {
            if let Part::Expression(expression) = part {
                scan::secrets_in_code(&expression.source, &mut names);
            }
        }
        names
    }

    pub(super) fn render(&self, engine: &ScriptEngine, ctx: &Context) -> Result<Value, EvalError> {
        if let [Part::Expression(expression)] = &*self.parts {
            let output = expression.eval(engine, ctx)?;
            return value::dynamic_to_json(&output)
                .map_err(|error| expression.runtime_error(&error));
        }
        let mut text = String::new();
        for part in self.parts.iter() {
            match part {
                Part::Text(literal) => text.push_str(literal),
                Part::Expression(expression) => {
                    let output = expression.eval(engine, ctx)?;
                    let rendered = value::dynamic_to_text(&output)
                        .map_err(|error| expression.runtime_error(&error))?;
                    text.push_str(&rendered);
                }
            }
        }
        Ok(Value::String(text))
    }
}

impl Expression {
    fn eval(&self, engine: &ScriptEngine, ctx: &Context) -> Result<rhai::Dynamic, EvalError> {
        engine
            .eval_ast(&self.ast, ctx)
            .map_err(|error| match error {
                EvalError::Runtime(message) => self.runtime_error(&message),
                other => other,
            })
    }

    fn runtime_error(&self, message: &str) -> EvalError {
        EvalError::Runtime(format!("expression `{}` failed: {message}", self.source))
    }
}

impl ValueTemplate {
    /// Returns the names `X` read as `secrets.X` or `secrets["X"]` in the value's templates.
    pub fn secrets(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.collect_secrets(&mut names);
        names
    }

    fn collect_secrets(&self, names: &mut Vec<String>) {
        match self {
            ValueTemplate::Literal(_) => {}
            ValueTemplate::Template(template) => {
                for name in template.secrets() {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
            ValueTemplate::Array(items) => {
                items.iter().for_each(|item| item.collect_secrets(names))
            }
            ValueTemplate::Object(fields) => fields
                .iter()
                .for_each(|(_, field)| field.collect_secrets(names)),
        }
    }

    pub(super) fn render(&self, engine: &ScriptEngine, ctx: &Context) -> Result<Value, EvalError> {
        match self {
            ValueTemplate::Literal(literal) => Ok(literal.clone()),
            ValueTemplate::Template(template) => template.render(engine, ctx),
            ValueTemplate::Array(items) => items
                .iter()
                .map(|item| item.render(engine, ctx))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            ValueTemplate::Object(fields) => {
                let mut object = serde_json::Map::with_capacity(fields.len());
                for (key, field) in fields {
                    object.insert(key.clone(), field.render(engine, ctx)?);
                }
                Ok(Value::Object(object))
            }
        }
    }

    fn is_literal(&self) -> bool {
        matches!(self, ValueTemplate::Literal(_))
    }
}

/// Returns the names `X` used as `secrets.X` (also `secrets["X"]` with a literal) in a script or
/// template source, in order of first use. A source that contains `${{` is read as a template,
/// so only the text inside `${{ }}` is scanned.
pub fn referenced_secrets(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    if !source.contains(OPEN) {
        scan::secrets_in_code(source, &mut names);
        return names;
    }
    let (segments, unterminated) = split(source);
    for segment in segments {
        if let Segment::Expression { source, .. } = segment {
            scan::secrets_in_code(source, &mut names);
        }
    }
    if let Some(open) = unterminated {
        scan::secrets_in_code(&source[open + OPEN.len()..], &mut names);
    }
    names
}

pub(super) fn compile_template(
    engine: &ScriptEngine,
    text: &str,
) -> Result<Template, CompileError> {
    let (segments, unterminated) = split(text);
    if let Some(open) = unterminated {
        let (line, col) = scan::line_and_column(text, open);
        return Err(CompileError {
            message: "template has an unterminated `${{`: the closing `}}` is missing".into(),
            line,
            col,
        });
    }
    let mut parts = Vec::with_capacity(segments.len());
    for segment in segments {
        let part = match segment {
            Segment::Text(literal) => Part::Text(literal.to_string()),
            Segment::Expression { start, source } => {
                let origin = scan::line_and_column(text, start);
                Part::Expression(Expression {
                    source: source.trim().to_string(),
                    ast: engine.compile_expression(source, origin)?,
                })
            }
        };
        parts.push(part);
    }
    Ok(Template {
        source: text.into(),
        parts: parts.into(),
    })
}

/// Splits template text into literal text and expression text. The second value is the byte
/// offset of a `${{` that has no closing `}}`; splitting stops there.
fn split(text: &str) -> (Vec<Segment<'_>>, Option<usize>) {
    let mut segments = Vec::new();
    let mut position = 0;
    while let Some(found) = text[position..].find(OPEN) {
        let open = position + found;
        if open > position {
            segments.push(Segment::Text(&text[position..open]));
        }
        let start = open + OPEN.len();
        let Some(end) = scan::find_expression_end(text, start) else {
            return (segments, Some(open));
        };
        segments.push(Segment::Expression {
            start,
            source: &text[start..end],
        });
        position = end + CLOSE.len();
    }
    if position < text.len() {
        segments.push(Segment::Text(&text[position..]));
    }
    (segments, None)
}

pub(super) fn compile_value(
    engine: &ScriptEngine,
    value: &Value,
) -> Result<ValueTemplate, CompileError> {
    compile_node(engine, value, &mut String::new())
}

/// Compiles one node of a JSON value. `path` is the node's location, like `body.items[0]`,
/// and is added to the message of a compile error.
fn compile_node(
    engine: &ScriptEngine,
    value: &Value,
    path: &mut String,
) -> Result<ValueTemplate, CompileError> {
    let compiled = match value {
        Value::String(text) => {
            let template = compile_template(engine, text).map_err(|error| at_path(error, path))?;
            if template.is_literal() {
                ValueTemplate::Literal(value.clone())
            } else {
                ValueTemplate::Template(template)
            }
        }
        Value::Array(items) => {
            let mut compiled = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let length = path.len();
                path.push_str(&format!("[{index}]"));
                compiled.push(compile_node(engine, item, path)?);
                path.truncate(length);
            }
            if compiled.iter().all(ValueTemplate::is_literal) {
                ValueTemplate::Literal(value.clone())
            } else {
                ValueTemplate::Array(compiled)
            }
        }
        Value::Object(fields) => compile_object(engine, value, fields, path)?,
        _ => ValueTemplate::Literal(value.clone()),
    };
    Ok(compiled)
}

fn compile_object(
    engine: &ScriptEngine,
    value: &Value,
    fields: &serde_json::Map<String, Value>,
    path: &mut String,
) -> Result<ValueTemplate, CompileError> {
    let mut compiled = Vec::with_capacity(fields.len());
    for (key, field) in fields {
        let length = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
        compiled.push((key.clone(), compile_node(engine, field, path)?));
        path.truncate(length);
    }
    if compiled.iter().all(|(_, field)| field.is_literal()) {
        Ok(ValueTemplate::Literal(value.clone()))
    } else {
        Ok(ValueTemplate::Object(compiled))
    }
}

fn at_path(mut error: CompileError, path: &str) -> CompileError {
    if !path.is_empty() {
        error.message = format!("in `{path}`: {}", error.message);
    }
    error
}
