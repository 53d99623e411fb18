use serde_json::json;

use super::{eval, render};
use crate::expr::EvalError;

fn runtime_message(source: &str) -> String {
    match eval(source) {
        Err(EvalError::Runtime(message)) => message,
        other => panic!("{source} should end with EvalError::Runtime, got {other:?}"),
    }
}

#[test]
fn price_with_tax_rounds_to_cents() {
    let output = eval("(decimal(\"24.50\") * 1.19).round_money(2)");
    assert_eq!(output, Ok(json!("29.16")));
}

#[test]
fn binary_float_product_loses_cent() {
    // 24.50 * 1.19 in binary floating point is 29.154999999999998.
    assert_eq!(
        eval("decimal(24.50 * 1.19).round_money(2)"),
        Ok(json!("29.15"))
    );
}

#[test]
fn decimal_accepts_string_integer_float_and_decimal() {
    let cases = [
        ("decimal(\"24.50\")", "24.50"),
        ("decimal(\"-0.5\")", "-0.5"),
        ("decimal(\"+8.42\")", "8.42"),
        ("decimal(\".5\")", "0.5"),
        ("decimal(7)", "7"),
        ("decimal(1.19)", "1.19"),
        ("decimal(0.1 + 0.2)", "0.30000000000000004"),
        ("decimal(decimal(\"3.10\"))", "3.10"),
    ];
    for (source, expected) in cases {
        assert_eq!(eval(source), Ok(json!(expected)), "source {source}");
    }
}

#[test]
fn invalid_decimal_text_names_value() {
    let message = runtime_message("decimal(\"12,50\")");
    assert!(message.contains("\"12,50\""), "message: {message}");
}

#[test]
fn decimal_rejects_text_other_than_digits_and_dot() {
    for text in [
        "1_99", "1,99", "2.45e1", "1E3", " 8.42", "8.42 ", "1 000", "1.2.3", ".", "-", "", "0x10",
        "++1", "NaN", "inf",
    ] {
        let message = runtime_message(&format!("decimal({text:?})"));
        assert!(
            message.contains(&format!("{text:?}")),
            "{text:?}: {message}"
        );
        assert!(
            message.contains("plain digits with a dot"),
            "{text:?}: {message}"
        );
    }
}

#[test]
fn decimal_rejects_other_types() {
    let message = runtime_message("decimal([1])");
    assert!(message.contains("`array`"), "message: {message}");
}

#[test]
fn mixed_arithmetic_is_exact() {
    let cases = [
        ("decimal(\"24.50\") * 1.19", "29.1550"),
        ("1.19 * decimal(\"24.50\")", "29.1550"),
        ("decimal(\"0.10\") + 0.2", "0.30"),
        ("0.2 + decimal(\"0.10\")", "0.30"),
        ("decimal(\"1.00\") - 0.99", "0.01"),
        ("1.0 - decimal(\"0.99\")", "0.01"),
        // rust_decimal keeps two places here: 10 / 4 is 2.50.
        ("decimal(\"10\") / 4.0", "2.50"),
        ("10.0 / decimal(\"4\")", "2.50"),
        ("decimal(\"10.5\") % 3.0", "1.5"),
        ("10.5 % decimal(\"3\")", "1.5"),
        ("decimal(\"1.5\") * 2", "3.0"),
    ];
    for (source, expected) in cases {
        assert_eq!(eval(source), Ok(json!(expected)), "source {source}");
    }
}

#[test]
fn mixed_comparison_is_exact() {
    let cases = [
        ("decimal(\"1.19\") == 1.19", true),
        ("1.19 == decimal(\"1.19\")", true),
        ("decimal(\"1.19\") != 1.19", false),
        ("decimal(\"2\") < 2.5", true),
        ("2.5 < decimal(\"2\")", false),
        ("decimal(\"2\") <= 2.0", true),
        ("decimal(\"2\") > 1.999", true),
        ("1.999 >= decimal(\"2\")", false),
        ("decimal(\"2\") != 2.5", true),
        ("decimal(\"1\") < 1e300", true),
    ];
    for (source, expected) in cases {
        assert_eq!(eval(source), Ok(json!(expected)), "source {source}");
    }
}

#[test]
fn compound_assignment_mixes_float() {
    assert_eq!(
        eval("let x = decimal(\"1.10\"); x += 0.2; x"),
        Ok(json!("1.30"))
    );
    assert_eq!(
        eval("let x = decimal(\"3\"); x *= 0.5; x"),
        Ok(json!("1.5"))
    );
}

#[test]
fn builtin_round_is_bankers() {
    assert_eq!(eval("decimal(\"29.165\").round(2)"), Ok(json!("29.16")));
    assert_eq!(eval("decimal(\"29.175\").round(2)"), Ok(json!("29.18")));
}

#[test]
fn round_money_rounds_half_away() {
    assert_eq!(
        eval("decimal(\"29.165\").round_money(2)"),
        Ok(json!("29.17"))
    );
    assert_eq!(
        eval("decimal(\"-29.165\").round_money(2)"),
        Ok(json!("-29.17"))
    );
    assert_eq!(
        eval("decimal(\"29.164\").round_money(2)"),
        Ok(json!("29.16"))
    );
    assert_eq!(eval("round_money(decimal(\"0.5\"), 0)"), Ok(json!("1")));
}

#[test]
fn round_money_rejects_negative_places() {
    let message = runtime_message("decimal(\"1.5\").round_money(-1)");
    assert!(message.contains("-1"), "message: {message}");
}

#[test]
fn rounding_to_step_supports_charm_prices() {
    let cases = [
        ("decimal(\"12.30\").ceil_to(decimal(\"0.5\"))", "12.5"),
        ("decimal(\"12.30\").floor_to(1)", "12"),
        ("decimal(\"12.30\").ceil_to(0.25)", "12.50"),
        ("decimal(\"23.40\").ceiling() - decimal(\"0.01\")", "23.99"),
        ("decimal(\"23.40\").floor()", "23"),
    ];
    for (source, expected) in cases {
        assert_eq!(eval(source), Ok(json!(expected)), "source {source}");
    }
}

#[test]
fn rounding_step_must_be_positive() {
    let message = runtime_message("decimal(\"12.30\").ceil_to(0)");
    assert!(message.contains("greater than zero"), "message: {message}");
}

#[test]
fn division_by_zero_is_runtime_error() {
    let message = runtime_message("decimal(\"1\") / 0.0");
    assert!(message.contains("division by zero"), "message: {message}");
}

#[test]
fn float_infinity_is_not_a_decimal() {
    let message = runtime_message("decimal(\"1\") + 1e400");
    assert!(
        message.contains("cannot be converted to a decimal"),
        "message: {message}"
    );
}

#[test]
fn decimal_interpolates_in_plain_form() {
    let output = render("Total: ${{ (decimal(\"24.50\") * 1.19).round_money(2) }} EUR");
    assert_eq!(output, Ok(json!("Total: 29.16 EUR")));
}
