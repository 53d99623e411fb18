use serde_json::json;

use super::{engine, render, render_with};
use crate::expr::{Context, EvalError, ValueTemplate};

fn trigger_context() -> Context {
    let mut ctx = Context::new();
    ctx.set(
        "trigger",
        &json!({"id": 9007199254740993_u64, "body": {"name": "Ada", "tags": ["x", "y"]}}),
    );
    ctx
}

#[test]
fn single_expression_keeps_type() {
    let engine = engine();
    let ctx = trigger_context();
    let cases = [
        (
            "${{ trigger.body }}",
            json!({"name": "Ada", "tags": ["x", "y"]}),
        ),
        ("${{ trigger.body.tags }}", json!(["x", "y"])),
        ("${{ trigger.id }}", json!(9007199254740993_u64)),
        ("${{ 1.5 }}", json!(1.5)),
        ("${{ true }}", json!(true)),
        ("${{ () }}", json!(null)),
        ("${{ \"a\" }}", json!("a")),
    ];
    for (text, expected) in cases {
        assert_eq!(
            render_with(&engine, text, &ctx),
            Ok(expected),
            "template {text}"
        );
    }
}

#[test]
fn whitespace_inside_braces_is_allowed() {
    assert_eq!(render("${{40 + 2}}"), Ok(json!(42)));
    assert_eq!(render("${{   40 + 2 \n }}"), Ok(json!(42)));
}

#[test]
fn text_around_expression_makes_string() {
    assert_eq!(render(" ${{ 42 }}"), Ok(json!(" 42")));
    assert_eq!(render("${{ 42 }}!"), Ok(json!("42!")));
    assert_eq!(render("${{ 4 }}${{ 2 }}"), Ok(json!("42")));
}

#[test]
fn interpolation_formats_values() {
    let text = concat!(
        "s=${{ \"x\" }} i=${{ 9007199254740993 }} f=${{ 1.5 }} d=${{ decimal(\"1.50\") }} ",
        "u=${{ () }} b=${{ true }} m=${{ #{b: 1, a: [1, \"z\"]} }} c=${{ 'q' }}"
    );
    assert_eq!(
        render(text),
        Ok(json!(
            "s=x i=9007199254740993 f=1.5 d=1.50 u= b=true m={\"a\":[1,\"z\"],\"b\":1} c=q"
        ))
    );
}

#[test]
fn string_without_marker_is_literal() {
    let engine = engine();
    for text in ["plain text", "", "price: $ {{ x }}", "${ x }", "}}"] {
        let template = engine.compile_template(text).expect("literal compiles");
        assert!(template.is_literal(), "template {text:?}");
        assert_eq!(template.source(), text);
        assert_eq!(engine.render(&template, &Context::new()), Ok(json!(text)));
    }
}

#[test]
fn template_with_expression_is_not_literal() {
    let template = engine().compile_template("a ${{ 1 }}").expect("compiles");
    assert!(!template.is_literal());
}

#[test]
fn braces_in_string_literal_do_not_end_expression() {
    assert_eq!(render("${{ \"a}}b\" }}"), Ok(json!("a}}b")));
    assert_eq!(render("${{ #\"}}\"# }}"), Ok(json!("}}")));
    assert_eq!(render("${{ `x}}${1 + 1}` }}"), Ok(json!("x}}2")));
    assert_eq!(render("${{ '}' }}"), Ok(json!("}")));
}

#[test]
fn nested_map_literal_in_expression() {
    assert_eq!(render("${{ #{a: #{b: 1}} }}"), Ok(json!({"a": {"b": 1}})));
    assert_eq!(render("${{#{a: #{b: 1}}}}"), Ok(json!({"a": {"b": 1}})));
}

#[test]
fn marker_inside_string_renders_literally() {
    assert_eq!(render("${{ \"${{\" }} x }}"), Ok(json!("${{ x }}")));
}

#[test]
fn unterminated_expression_reports_column() {
    let error = engine()
        .compile_template("ab\ncd ${{ x + 1")
        .expect_err("the closing braces are missing");
    assert_eq!((error.line, error.col), (2, 4));
    assert!(
        error.message.contains("unterminated"),
        "message: {}",
        error.message
    );
}

#[test]
fn invalid_expression_reports_template_position() {
    let error = engine()
        .compile_template("total: ${{ 1 + * 2 }}")
        .expect_err("the expression is invalid");
    assert!(
        error
            .message
            .starts_with("expression `1 + * 2` does not compile: "),
        "message: {}",
        error.message
    );
    assert_eq!((error.line, error.col), (1, 16));
}

#[test]
fn invalid_expression_on_later_line_reports_template_line() {
    let error = engine()
        .compile_template("line one\nline two ${{ x. }}")
        .expect_err("the expression is invalid");
    assert_eq!(error.line, 2);
    assert!(error.col > 10, "column {}", error.col);
}

#[test]
fn statements_are_rejected_in_templates() {
    let result = engine().compile_template("${{ let x = 1; x }}");
    assert!(result.is_err(), "result: {result:?}");
}

#[test]
fn runtime_error_names_expression() {
    let Err(EvalError::Runtime(message)) = render("value: ${{ 1 / 0 }}") else {
        panic!("division by zero should end with EvalError::Runtime");
    };
    assert!(
        message.starts_with("expression `1 / 0` failed: "),
        "message: {message}"
    );
}

#[test]
fn skip_in_template_is_skip() {
    assert_eq!(
        render("${{ skip(\"not needed\") }}"),
        Err(EvalError::Skip("not needed".into()))
    );
}

#[test]
fn compile_value_templates_nested_strings() {
    let engine = engine();
    let value = json!({
        "url": "https://api.example/orders/${{ trigger.body.name }}",
        "id": "${{ trigger.id }}",
        "list": ["a", "${{ 1 + 1 }}", 3],
        "${{ key }}": "keys are not templated",
    });
    let template = engine.compile_value(&value).expect("value compiles");
    let rendered = engine
        .render_value(&template, &trigger_context())
        .expect("value renders");
    let expected = json!({
        "url": "https://api.example/orders/Ada",
        "id": 9007199254740993_u64,
        "list": ["a", 2, 3],
        "${{ key }}": "keys are not templated",
    });
    assert_eq!(rendered, expected);
    let keys: Vec<_> = rendered
        .as_object()
        .map(|object| object.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["url", "id", "list", "${{ key }}"]);
}

#[test]
fn compile_value_collapses_literals() {
    let value = json!({"a": [1, "x", null], "b": {"c": true}});
    let template = engine().compile_value(&value).expect("value compiles");
    assert!(
        matches!(&template, ValueTemplate::Literal(literal) if *literal == value),
        "template: {template:?}"
    );
}

#[test]
fn compile_value_error_names_path() {
    let value = json!({"body": {"items": ["ok", "${{ 1 + }}"]}});
    let error = engine()
        .compile_value(&value)
        .expect_err("the expression is invalid");
    assert!(
        error
            .message
            .starts_with("in `body.items[1]`: expression `1 +`"),
        "message: {}",
        error.message
    );
}
