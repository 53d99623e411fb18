use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{eval, eval_with};
use crate::expr::{Context, EvalError, Limits, ScriptEngine};

fn limit_message(result: Result<serde_json::Value, EvalError>) -> String {
    match result {
        Err(EvalError::Limit(message)) => message,
        other => panic!("expected EvalError::Limit, got {other:?}"),
    }
}

#[test]
fn loop_hits_operation_limit() {
    let started = Instant::now();
    let message = limit_message(eval("loop {}"));
    assert_eq!(message, "script exceeded the limit of 1000000 operations");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn loop_hits_time_limit() {
    let limits = Limits {
        max_operations: 0,
        timeout: Duration::from_millis(200),
        ..Limits::default()
    };
    let engine = ScriptEngine::new(limits);
    let started = Instant::now();
    let message = limit_message(eval_with(&engine, "loop {}", &Context::new()));
    assert_eq!(message, "script ran longer than the 200ms time limit");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn operation_count_restarts_per_evaluation() {
    let limits = Limits {
        max_operations: 5_000,
        ..Limits::default()
    };
    let engine = ScriptEngine::new(limits);
    let source = "let n = 0; for i in 0..500 { n += i } n";
    for _ in 0..3 {
        assert_eq!(
            eval_with(&engine, source, &Context::new()),
            Ok(serde_json::json!(124_750))
        );
    }
}

#[test]
fn string_growth_hits_size_limit() {
    let message = limit_message(eval("let s = \"x\"; loop { s += s; }"));
    assert_eq!(
        message,
        "script exceeded the limit of 1048576 bytes in a string"
    );
}

#[test]
fn array_growth_hits_size_limit() {
    let limits = Limits {
        max_array_size: 1_000,
        ..Limits::default()
    };
    let engine = ScriptEngine::new(limits);
    let result = eval_with(&engine, "let a = []; loop { a.push(1); }", &Context::new());
    assert_eq!(
        limit_message(result),
        "script exceeded the limit of 1000 items in an array"
    );
}

#[test]
fn map_growth_hits_size_limit() {
    let limits = Limits {
        max_map_size: 1_000,
        ..Limits::default()
    };
    let engine = ScriptEngine::new(limits);
    // Rhai 1.27 checks a map's size when the map is passed to a function such as `len`, not
    // when `m[key] = value` adds an entry.
    let source = "let m = #{}; for i in 0..5000 { m[`k${i}`] = i; } m.len()";
    assert_eq!(
        limit_message(eval_with(&engine, source, &Context::new())),
        "script exceeded the limit of 1000 entries in a map"
    );
}

#[test]
fn recursion_hits_call_depth_limit() {
    let message = limit_message(eval("fn down(n) { down(n + 1) } down(0)"));
    assert_eq!(
        message,
        "script exceeded the limit of 32 nested function calls"
    );
}

#[test]
fn deep_expression_is_compile_error() {
    let source = format!("{}1{}", "[".repeat(100), "]".repeat(100));
    let error = super::engine()
        .compile_script(&source)
        .expect_err("nesting exceeds max_expr_depth");
    assert!(
        error.message.contains("limit of 64 levels"),
        "message: {}",
        error.message
    );
}

#[test]
fn import_is_rejected() {
    let error = super::engine()
        .compile_script("import \"x\" as y; y::f()")
        .expect_err("import is disabled");
    assert!(
        error.message.contains("import"),
        "message: {}",
        error.message
    );
}

#[test]
fn eval_is_rejected() {
    let error = super::engine()
        .compile_script("eval(\"40 + 2\")")
        .expect_err("eval is disabled");
    assert!(error.message.contains("eval"), "message: {}", error.message);
}

#[test]
fn sleep_is_rejected() {
    let started = Instant::now();
    for source in ["sleep(2)", "sleep(2.0)"] {
        let Err(EvalError::Runtime(message)) = eval(source) else {
            panic!("{source} should end with EvalError::Runtime");
        };
        assert!(message.contains("sleep"), "message: {message}");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// A `tracing` subscriber that stores the message of every event.
#[derive(Clone, Default)]
struct CapturedLog {
    messages: Arc<Mutex<Vec<String>>>,
}

struct MessageVisitor<'a>(&'a mut String);

impl tracing::field::Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.push_str(&format!("{value:?}"));
        }
    }
}

impl tracing::Subscriber for CapturedLog {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut message = String::new();
        event.record(&mut MessageVisitor(&mut message));
        if let Ok(mut messages) = self.messages.lock() {
            messages.push(message);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn print_and_debug_go_to_tracing() {
    let log = CapturedLog::default();
    let output = tracing::subscriber::with_default(log.clone(), || {
        eval("print(\"hello\"); debug(\"state\"); 7")
    });
    assert_eq!(output, Ok(serde_json::json!(7)));
    let messages = log.messages.lock().expect("log lock").clone();
    assert!(
        messages.iter().any(|m| m == "print: hello"),
        "log: {messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("state")),
        "log: {messages:?}"
    );
}

#[test]
fn zero_call_depth_rejects_function_calls() {
    let limits = Limits {
        max_call_depth: 0,
        ..Limits::default()
    };
    let engine = ScriptEngine::new(limits);
    let result = eval_with(&engine, "fn one() { 1 } one()", &Context::new());
    assert_eq!(
        limit_message(result),
        "script exceeded the limit of 0 nested function calls"
    );
}
