use serde_json::json;

use super::engine;
use crate::expr::referenced_secrets;

#[test]
fn secrets_found_by_property_and_index() {
    let source = "secrets.API_KEY + secrets[\"TOKEN\"] + secrets?.OPTIONAL + secrets?[\"MAYBE\"]";
    assert_eq!(
        referenced_secrets(source),
        ["API_KEY", "TOKEN", "OPTIONAL", "MAYBE"]
    );
}

#[test]
fn secrets_listed_once_in_order_of_use() {
    let source = "secrets.B + secrets.A + secrets.B + secrets . A";
    assert_eq!(referenced_secrets(source), ["B", "A"]);
}

#[test]
fn secrets_ignored_in_strings_and_comments() {
    let source = concat!(
        "let a = \"secrets.IN_STRING\"; // secrets.IN_LINE_COMMENT\n",
        "/* secrets.IN /* nested */ BLOCK_COMMENT secrets.IN_BLOCK */\n",
        "let b = #\"secrets.IN_RAW\"#; let c = x.secrets.MEMBER; let d = secrets[name];\n",
        "secrets.REAL"
    );
    assert_eq!(referenced_secrets(source), ["REAL"]);
}

#[test]
fn secrets_found_in_backtick_interpolation() {
    assert_eq!(
        referenced_secrets("`Bearer ${secrets.TOKEN} and secrets.TEXT`"),
        ["TOKEN"]
    );
}

#[test]
fn template_source_scans_only_expressions() {
    let text = "Use secrets.TEXT_ONLY here: ${{ secrets.TOKEN }} and ${{ secrets[\"KEY\"] }}";
    assert_eq!(referenced_secrets(text), ["TOKEN", "KEY"]);
}

#[test]
fn unterminated_template_still_scanned() {
    assert_eq!(referenced_secrets("x ${{ secrets.LATE"), ["LATE"]);
}

#[test]
fn compiled_forms_report_secrets() {
    let engine = engine();
    let script = engine
        .compile_script("let url = \"${{ secrets.NOT_A_TEMPLATE }}\"; secrets.DB_URL")
        .expect("script compiles");
    assert_eq!(script.secrets(), ["DB_URL"]);

    let template = engine
        .compile_template("Bearer ${{ secrets.TOKEN }}")
        .expect("template compiles");
    assert_eq!(template.secrets(), ["TOKEN"]);

    let value = json!({
        "headers": {"authorization": "Bearer ${{ secrets.TOKEN }}"},
        "body": ["${{ secrets.SIGNING_KEY }}", "${{ secrets.TOKEN }}", "secrets.PLAIN"],
    });
    let template = engine.compile_value(&value).expect("value compiles");
    assert_eq!(template.secrets(), ["TOKEN", "SIGNING_KEY"]);
}

#[test]
fn scanner_accepts_arbitrary_text() {
    let alphabet: Vec<char> = "${}}\"'`#/*\\\n .[]?:secrets_AXé€0".chars().collect();
    let engine = engine();
    // A fixed linear congruential generator keeps the cases the same on every run.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..2_000 {
        let mut text = String::new();
        for _ in 0..24 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            text.push(alphabet[(state >> 33) as usize % alphabet.len()]);
        }
        let _ = referenced_secrets(&text);
        let _ = engine.compile_template(&text);
    }
}
