//! Rhai expressions, templates and scripts for workflows.
//!
//! One [`ScriptEngine`] is built at startup and shared by every run and thread. Workflow
//! loading compiles each script ([`ScriptEngine::compile_script`]) and each templated value
//! ([`ScriptEngine::compile_template`], [`ScriptEngine::compile_value`]) once, and runs only
//! evaluate the compiled form against a [`Context`] containing `trigger`, `steps`, `vars` and the
//! other top-level values.
//!
//! - Templates: `"${{ steps.fetch.output.total }}"` renders to the typed value, and
//!   `"Order ${{ trigger.body.id }} shipped"` renders to text. See [`template`].
//! - Scripts: the value of the last expression is the output. `skip(reason)` and
//!   `fail(reason)` end the evaluation with [`EvalError::Skip`] and [`EvalError::Fail`].
//! - Values: JSON converts to Rhai values and back, see [`json_to_dynamic`] and
//!   [`dynamic_to_json`]. Rhai maps sort their keys, so objects come back with sorted keys.
//! - Money: `decimal("24.50") * 1.19` is exact, and `round_money(2)` rounds halves away from
//!   zero. See [`money`].
//! - Catalog data: `gtin_valid(code)` checks a GTIN's check digit, `collapse_whitespace(text)`
//!   tidies titles, and `warn(message)` logs a warning. See [`catalog`].
//! - Sandbox: every evaluation is bounded by [`Limits`], whose notes list the gaps that Rhai
//!   leaves. `import` and `eval` are rejected at compile time and `sleep` fails at run time.
//!   `print` and `debug` go to `tracing` at debug level. Rhai 1.27's standard packages have no
//!   file or network functions, and this module adds none.

pub mod catalog;
mod engine;
mod error;
pub mod money;
mod scan;
pub mod template;
pub mod value;

#[cfg(test)]
mod tests;

pub use engine::{Context, Limits, Script, ScriptEngine};
pub use error::{CompileError, EvalError};
pub use template::{Template, ValueTemplate, referenced_secrets};
pub use value::{dynamic_to_json, json_to_dynamic};
