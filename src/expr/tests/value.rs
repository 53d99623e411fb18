use rhai::Dynamic;
use serde_json::{Value, json};

use super::{eval, eval_with};
use crate::expr::{Context, EvalError, dynamic_to_json, json_to_dynamic};

fn round_trip(value: &Value) -> Result<Value, String> {
    dynamic_to_json(&json_to_dynamic(value))
}

#[test]
fn big_integer_round_trips() {
    let cases = [
        json!(9007199254740993_i64),
        json!(6123456789012345_i64),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(-9007199254740993_i64),
        json!(0),
    ];
    for value in cases {
        let dynamic = json_to_dynamic(&value);
        assert!(dynamic.is_int(), "{value} should become INT");
        assert_eq!(round_trip(&value), Ok(value.clone()));
        assert_eq!(
            round_trip(&value).map(|v| v.to_string()),
            Ok(value.to_string())
        );
    }
}

#[test]
fn big_integer_survives_script() {
    let mut ctx = Context::new();
    ctx.set("trigger", &json!({"id": 6123456789012345_i64}));
    let output = eval_with(&super::engine(), "trigger.id", &ctx);
    assert_eq!(output, Ok(json!(6123456789012345_i64)));
    let incremented = eval_with(&super::engine(), "trigger.id + 1", &ctx);
    assert_eq!(incremented, Ok(json!(6123456789012346_i64)));
}

#[test]
fn unsigned_above_i64_becomes_string() {
    let value = json!(u64::MAX);
    let dynamic = json_to_dynamic(&value);
    assert!(dynamic.is_string());
    assert_eq!(dynamic_to_json(&dynamic), Ok(json!("18446744073709551615")));
}

#[test]
fn float_stays_float() {
    let dynamic = json_to_dynamic(&json!(1.25));
    assert!(dynamic.is_float());
    assert_eq!(round_trip(&json!(1.25)), Ok(json!(1.25)));
    assert_eq!(round_trip(&json!(-0.1)), Ok(json!(-0.1)));
}

#[test]
fn numeric_string_stays_string() {
    for text in ["00123", "1e3", "29.16", ""] {
        let dynamic = json_to_dynamic(&json!(text));
        assert!(dynamic.is_string(), "{text:?} should stay a string");
        assert_eq!(dynamic_to_json(&dynamic), Ok(json!(text)));
    }
}

#[test]
fn null_and_bool_round_trip() {
    assert!(json_to_dynamic(&Value::Null).is_unit());
    assert_eq!(round_trip(&Value::Null), Ok(Value::Null));
    assert_eq!(round_trip(&json!(true)), Ok(json!(true)));
    assert_eq!(round_trip(&json!(false)), Ok(json!(false)));
}

#[test]
fn object_becomes_map_with_sorted_keys() {
    let value = json!({"zeta": 1, "alpha": {"b": [1, "2"], "a": null}});
    let dynamic = json_to_dynamic(&value);
    assert!(dynamic.is_map());
    let back = dynamic_to_json(&dynamic).expect("converts back");
    assert_eq!(back, value);
    let keys: Vec<_> = back
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["alpha", "zeta"]);
}

#[test]
fn decimal_becomes_json_string() {
    let decimal = rust_decimal::Decimal::new(2916, 2);
    assert_eq!(
        dynamic_to_json(&Dynamic::from_decimal(decimal)),
        Ok(json!("29.16"))
    );
}

#[test]
fn char_becomes_string() {
    assert_eq!(dynamic_to_json(&Dynamic::from_char('x')), Ok(json!("x")));
}

#[test]
fn nan_and_infinity_are_errors() {
    for float in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let error = dynamic_to_json(&Dynamic::from_float(float)).expect_err("no JSON form");
        assert!(error.contains("NaN or infinity"), "error: {error}");
    }
}

#[test]
fn timestamp_output_is_error_naming_type() {
    let Err(EvalError::Runtime(message)) = eval("timestamp()") else {
        panic!("a timestamp output should end with EvalError::Runtime");
    };
    assert!(message.contains("`timestamp`"), "message: {message}");
}

#[test]
fn closure_output_is_error_naming_type() {
    let Err(EvalError::Runtime(message)) = eval("|x| x + 1") else {
        panic!("a function pointer output should end with EvalError::Runtime");
    };
    assert!(
        message.contains("cannot be converted to JSON"),
        "message: {message}"
    );
}

#[test]
fn captured_variable_converts() {
    assert_eq!(
        eval("let n = 41; let f = || n + 1; [n, f.call()]"),
        Ok(json!([41, 42]))
    );
}

#[test]
fn deep_nesting_is_error() {
    let mut value = Dynamic::UNIT;
    for _ in 0..200 {
        value = Dynamic::from_array(vec![value]);
    }
    let error = dynamic_to_json(&value).expect_err("nesting exceeds 128 levels");
    assert!(error.contains("128 levels"), "error: {error}");
}
