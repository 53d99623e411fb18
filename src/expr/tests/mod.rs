//! Tests for the `expr` module, one file per source file, with shared helpers here.

mod catalog;
mod engine;
mod money;
mod sandbox;
mod secrets;
mod template;
mod value;

use serde_json::Value;

use super::{Context, EvalError, Limits, ScriptEngine};

fn engine() -> ScriptEngine {
    ScriptEngine::new(Limits::default())
}

/// Compiles and evaluates `source`, panicking when it does not compile.
fn eval_with(engine: &ScriptEngine, source: &str, ctx: &Context) -> Result<Value, EvalError> {
    let script = engine
        .compile_script(source)
        .unwrap_or_else(|error| panic!("script {source:?} does not compile: {error}"));
    engine.eval_script(&script, ctx)
}

fn eval(source: &str) -> Result<Value, EvalError> {
    eval_with(&engine(), source, &Context::new())
}

/// Compiles and renders a template, panicking when it does not compile.
fn render_with(engine: &ScriptEngine, text: &str, ctx: &Context) -> Result<Value, EvalError> {
    let template = engine
        .compile_template(text)
        .unwrap_or_else(|error| panic!("template {text:?} does not compile: {error}"));
    engine.render(&template, ctx)
}

fn render(text: &str) -> Result<Value, EvalError> {
    render_with(&engine(), text, &Context::new())
}
