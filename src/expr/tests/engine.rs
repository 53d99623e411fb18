use std::thread;
use std::time::Instant;

use serde_json::json;

use super::{engine, eval, eval_with};
use crate::expr::{Context, EvalError, Script, ScriptEngine};

fn order_context() -> Context {
    let mut ctx = Context::new();
    ctx.set(
        "trigger",
        &json!({"body": {"id": "A-1", "line_items": [{"qty": 2}, {"qty": 3}]}}),
    );
    ctx.set("vars", &json!({"currency": "EUR"}));
    ctx
}

#[test]
fn script_returns_last_expression() {
    assert_eq!(eval("let x = 2; x * 21"), Ok(json!(42)));
}

#[test]
fn script_reads_context_variables() {
    let engine = engine();
    let ctx = order_context();
    let source = "let total = 0; for item in trigger.body.line_items { total += item.qty } total";
    assert_eq!(eval_with(&engine, source, &ctx), Ok(json!(5)));
    assert_eq!(eval_with(&engine, "vars.currency", &ctx), Ok(json!("EUR")));
}

#[test]
fn script_changes_stay_local() {
    let engine = engine();
    let ctx = order_context();
    let changed = eval_with(&engine, "vars.currency = \"USD\"; vars.currency", &ctx);
    assert_eq!(changed, Ok(json!("USD")));
    assert_eq!(eval_with(&engine, "vars.currency", &ctx), Ok(json!("EUR")));
}

#[test]
fn context_set_replaces_value() {
    let mut ctx = Context::new();
    ctx.set("index", &json!(1));
    ctx.set("index", &json!(2));
    ctx.set_dynamic("item", rhai::Dynamic::from_int(40));
    assert_eq!(eval_with(&engine(), "index + item", &ctx), Ok(json!(42)));
}

#[test]
fn script_output_can_be_object() {
    let output = eval("#{total: 5, tags: [\"a\"], note: ()}");
    assert_eq!(output, Ok(json!({"note": null, "tags": ["a"], "total": 5})));
}

#[test]
fn skip_ends_with_reason() {
    assert_eq!(
        eval("skip(\"no line items\"); 1"),
        Err(EvalError::Skip("no line items".into()))
    );
}

#[test]
fn fail_ends_with_reason() {
    assert_eq!(
        eval("fail(\"total is negative\")"),
        Err(EvalError::Fail("total is negative".into()))
    );
}

#[test]
fn skip_reason_may_be_any_value() {
    assert_eq!(eval("skip(42)"), Err(EvalError::Skip("42".into())));
}

#[test]
fn skip_inside_function_ends_script() {
    let source = "fn check(n) { if n == 0 { skip(\"empty\") } n } check(0); 1";
    assert_eq!(eval(source), Err(EvalError::Skip("empty".into())));
}

#[test]
fn fail_inside_closure_ends_script() {
    let source = "[1, 2].map(|x| if x == 2 { fail(\"bad item\") } else { x })";
    assert_eq!(eval(source), Err(EvalError::Fail("bad item".into())));
}

#[test]
fn try_catch_cannot_swallow_skip() {
    let source = "try { skip(\"stop\") } catch (error) { 1 }";
    assert_eq!(eval(source), Err(EvalError::Skip("stop".into())));
    let nested = "fn f() { fail(\"stop\") } try { f() } catch { 1 }";
    assert_eq!(eval(nested), Err(EvalError::Fail("stop".into())));
}

#[test]
fn throw_is_runtime_error() {
    let Err(EvalError::Runtime(message)) = eval("throw \"boom\"") else {
        panic!("throw should end with EvalError::Runtime");
    };
    assert!(message.contains("boom"), "message: {message}");
    assert!(message.contains("line 1"), "message: {message}");
}

#[test]
fn thrown_text_skip_is_not_a_skip() {
    let result = eval("throw \"skip\"");
    assert!(
        matches!(result, Err(EvalError::Runtime(_))),
        "result: {result:?}"
    );
}

#[test]
fn compile_error_has_position() {
    let error = engine()
        .compile_script("let x = 1;\nlet y = ;")
        .expect_err("script has a syntax error");
    assert_eq!(error.line, 2);
    assert_eq!(error.col, 9);
    assert!(
        error.message.starts_with("script does not compile: "),
        "message: {}",
        error.message
    );
    assert!(error.to_string().ends_with("(line 2, column 9)"));
}

#[test]
fn referenced_roots_lists_context_variables() {
    let source = "let x = 1; let f = |q| q + x; trigger.a + f(steps.fetch.output) + x + trigger.b";
    let script = engine().compile_script(source).expect("script compiles");
    assert_eq!(script.referenced_roots(), ["trigger", "steps"]);
}

#[test]
fn referenced_roots_empty_for_local_code() {
    let script = engine()
        .compile_script("fn double(n) { n * 2 } let x = 4; double(x)")
        .expect("script compiles");
    assert!(script.referenced_roots().is_empty());
}

#[test]
fn script_keeps_source() {
    let script = engine().compile_script("1 + 1").expect("script compiles");
    assert_eq!(script.source(), "1 + 1");
}

#[test]
fn limits_returns_configured_limits() {
    let limits = crate::expr::Limits {
        max_operations: 10,
        ..Default::default()
    };
    assert_eq!(ScriptEngine::new(limits.clone()).limits(), &limits);
}

#[test]
fn engine_and_script_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ScriptEngine>();
    assert_send_sync::<Script>();
    assert_send_sync::<crate::expr::Template>();
    assert_send_sync::<crate::expr::ValueTemplate>();
    assert_send_sync::<Context>();
}

#[test]
fn engine_is_shared_across_threads() {
    let engine = engine();
    let script = engine
        .compile_script("let sum = 0; for n in 0..item { sum += n } sum + index")
        .expect("script compiles");
    let workers: Vec<_> = (0..4)
        .map(|worker| {
            let engine = engine.clone();
            let script = script.clone();
            thread::spawn(move || {
                for round in 0..200_i64 {
                    let mut ctx = Context::new();
                    ctx.set("item", &json!(round));
                    ctx.set("index", &json!(worker));
                    let expected = round * (round - 1) / 2 + worker;
                    let output = engine.eval_script(&script, &ctx);
                    assert_eq!(output, Ok(json!(expected)), "worker {worker} round {round}");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker thread panicked");
    }
}

/// Prints the cost of one evaluation of a compiled script. Run it in a release build with
/// `cargo test --release -- --ignored --nocapture eval_cost`.
#[test]
#[ignore = "measurement, prints a number"]
fn eval_cost_of_compiled_script() {
    let engine = engine();
    let script = engine
        .compile_script("trigger.body.line_items[0].qty * 2 + 1")
        .expect("script compiles");
    let ctx = order_context();
    let rounds = 200_000;
    let started = Instant::now();
    for _ in 0..rounds {
        let output = engine.eval_script(&script, &ctx);
        assert_eq!(output, Ok(json!(5)));
    }
    let per_eval = started.elapsed() / rounds;
    println!("eval_script on a 2-line-item context: {per_eval:?} per evaluation");
    let started = Instant::now();
    let _ = crate::expr::ScriptEngine::new(crate::expr::Limits::default());
    println!("ScriptEngine::new: {:?}", started.elapsed());
}

#[test]
fn shared_values_read_but_never_change() {
    let engine = ScriptEngine::new(crate::expr::Limits::default());
    let mut ctx = Context::new();
    ctx.set_shared(
        "trigger",
        &serde_json::json!({ "body": { "items": [1, 2, 3], "x": 1 } }),
    );

    let read = engine
        .compile_script("trigger.body.items.len() + trigger.body.x")
        .expect("compiles");
    assert_eq!(engine.eval_script(&read, &ctx), Ok(serde_json::json!(4)));

    let write = engine
        .compile_script("trigger.body.x = 5; trigger.body.x")
        .expect("compiles");
    assert!(
        engine.eval_script(&write, &ctx).is_err(),
        "a shared value must not change"
    );

    let copy = engine
        .compile_script("let body = trigger.body; body.x = 7; body.x")
        .expect("compiles");
    assert_eq!(engine.eval_script(&copy, &ctx), Ok(serde_json::json!(7)));
    assert_eq!(
        engine.eval_script(&read, &ctx),
        Ok(serde_json::json!(4)),
        "the copy left the original alone"
    );

    let push = engine
        .compile_script("trigger.body.items.push(4); 0")
        .expect("compiles");
    assert!(
        engine.eval_script(&push, &ctx).is_err(),
        "methods that change a shared value fail"
    );
    assert_eq!(engine.eval_script(&read, &ctx), Ok(serde_json::json!(4)));
}
