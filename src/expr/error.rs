//! Errors from compiling and evaluating Rhai code, and the conversion of Rhai's own errors into
//! them. `skip`, `fail` and the sandbox limits end an evaluation through Rhai's termination
//! error carrying a private [`Signal`] value, which a script cannot construct, catch or forge
//! with `throw`.

use rhai::{Dynamic, EvalAltResult, ParseError, ParseErrorType, Position};

use super::engine::Limits;

/// A script or template expression that Rhai cannot parse. `line` and `col` are 1-based and
/// relative to the script text or to the template string that was compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (line {line}, column {col})")]
pub struct CompileError {
    pub message: String,
    pub line: usize,
    pub col: usize,
}

/// Error that ended an evaluation without a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// The script called `skip(reason)`.
    #[error("script skipped: {0}")]
    Skip(String),
    /// The script called `fail(reason)`.
    #[error("script failed: {0}")]
    Fail(String),
    /// The evaluation hit a sandbox limit. The message names the limit and its value.
    #[error("{0}")]
    Limit(String),
    /// Any other error, with Rhai's message and position.
    #[error("{0}")]
    Runtime(String),
    /// An evaluation started with [`ScriptEngine::eval_script_briefly`](super::ScriptEngine::eval_script_briefly)
    /// needed more operations than its budget; evaluate it again where it may run long.
    #[error("script needs more than {0} operations")]
    OverBudget(u64),
}

/// Value carried by [`EvalAltResult::ErrorTerminated`] when this module ends an evaluation.
/// Rhai passes that error through script functions unchanged and `try`/`catch` cannot catch
/// it, so `skip`, `fail` and the limits always end the whole evaluation.
#[derive(Debug, Clone)]
pub(super) enum Signal {
    Skip(String),
    Fail(String),
    Limit(String),
    OverBudget(u64),
}

impl Signal {
    pub(super) fn into_dynamic(self) -> Dynamic {
        Dynamic::from(self)
    }

    pub(super) fn into_error(self) -> Box<EvalAltResult> {
        EvalAltResult::ErrorTerminated(self.into_dynamic(), Position::NONE).into()
    }
}

impl CompileError {
    /// Builds the error for Rhai's parse error `error` in `subject` (for example "script"). When
    /// the code starts at `origin` (1-based line and column) inside a larger text, the position
    /// is moved to be relative to that text.
    pub(super) fn from_parse(
        subject: &str,
        error: &ParseError,
        limits: &Limits,
        origin: (usize, usize),
    ) -> Self {
        let reason = match error.err_type() {
            ParseErrorType::ExprTooDeep => format!(
                "expression nesting is deeper than the limit of {} levels",
                limits.max_expr_depth
            ),
            other => other.to_string(),
        };
        let position = error.position();
        let (line, col) = match (position.line(), position.position()) {
            (Some(1), Some(col)) => (origin.0, origin.1 + col - 1),
            (Some(line), Some(col)) => (origin.0 + line - 1, col),
            (Some(line), None) => (origin.0 + line - 1, 1),
            _ => origin,
        };
        Self {
            message: format!("{subject} does not compile: {reason}"),
            line,
            col,
        }
    }
}

impl EvalError {
    /// Converts a Rhai evaluation error. Limit and signal errors raised inside a function
    /// pointer called by a native function arrive wrapped, so the wrapping is looked through.
    pub(super) fn from_rhai(error: EvalAltResult, limits: &Limits) -> Self {
        if let Some(mapped) = Self::from_system_error(innermost(&error), limits) {
            return mapped;
        }
        EvalError::Runtime(error.to_string())
    }

    fn from_system_error(error: &EvalAltResult, limits: &Limits) -> Option<Self> {
        let mapped = match error {
            EvalAltResult::ErrorTerminated(token, _) => match token.read_lock::<Signal>() {
                Some(signal) => match &*signal {
                    Signal::Skip(reason) => EvalError::Skip(reason.clone()),
                    Signal::Fail(reason) => EvalError::Fail(reason.clone()),
                    Signal::Limit(message) => EvalError::Limit(message.clone()),
                    Signal::OverBudget(budget) => EvalError::OverBudget(*budget),
                },
                None => return None,
            },
            EvalAltResult::ErrorTooManyOperations(_) => EvalError::Limit(format!(
                "script exceeded the limit of {} operations",
                limits.max_operations
            )),
            EvalAltResult::ErrorStackOverflow(_) => EvalError::Limit(format!(
                "script exceeded the limit of {} nested function calls",
                limits.max_call_depth
            )),
            EvalAltResult::ErrorDataTooLarge(description, _) => {
                EvalError::Limit(data_limit_message(description, limits))
            }
            _ => return None,
        };
        Some(mapped)
    }
}

/// Builds the message naming the size limit behind Rhai's `ErrorDataTooLarge`, whose text is
/// "Length of string", "Size of array/BLOB" or "Size of object map" in Rhai 1.27.
fn data_limit_message(description: &str, limits: &Limits) -> String {
    let lowered = description.to_lowercase();
    if lowered.contains("string") {
        format!(
            "script exceeded the limit of {} bytes in a string",
            limits.max_string_size
        )
    } else if lowered.contains("array") {
        format!(
            "script exceeded the limit of {} items in an array",
            limits.max_array_size
        )
    } else if lowered.contains("map") {
        format!(
            "script exceeded the limit of {} entries in a map",
            limits.max_map_size
        )
    } else {
        format!("script exceeded a size limit: {description}")
    }
}

fn innermost(error: &EvalAltResult) -> &EvalAltResult {
    match error {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _)
        | EvalAltResult::ErrorInModule(_, inner, _) => innermost(inner),
        other => other,
    }
}
