use serde_json::json;

use super::eval;
use crate::expr::catalog::{collapse_whitespace, gtin_valid, plain_text};

#[test]
fn gtin_valid_accepts_each_length() {
    let valid = [
        "96385074",       // GTIN-8
        "036000291452",   // UPC-A, GTIN-12
        "4006381333931",  // EAN-13
        "00850012345695", // GTIN-14
        "0850012345671",  // EAN-13 with a leading zero
        "00000000",       // a weighted sum of zero needs the check digit zero
    ];
    for code in valid {
        assert!(gtin_valid(code), "{code} should be valid");
    }
}

#[test]
fn gtin_valid_rejects_wrong_check_digit() {
    let invalid = [
        "96385075",
        "036000291453",
        "4006381333932",
        "0850012345678",
        "00850012345692",
    ];
    for code in invalid {
        assert!(!gtin_valid(code), "{code} should be invalid");
    }
}

#[test]
fn gtin_valid_rejects_other_lengths_and_characters() {
    let malformed = [
        "",
        "4006381",
        "40063813339",
        "400638133393100",
        "4006381333931 ",
        " 4006381333931",
        "40063813-3931",
        "400638133393a",
        "４００６３８１３３３９３１",
    ];
    for code in malformed {
        assert!(!gtin_valid(code), "{code:?} should be invalid");
    }
}

#[test]
fn gtin_valid_in_scripts() {
    assert_eq!(eval(r#"gtin_valid("4006381333931")"#), Ok(json!(true)));
    assert_eq!(eval(r#"gtin_valid("4006381333932")"#), Ok(json!(false)));
    assert_eq!(eval("gtin_valid(())"), Ok(json!(false)));
    assert_eq!(eval("gtin_valid(4006381333931)"), Ok(json!(false)));
}

#[test]
fn collapse_whitespace_trims_and_joins() {
    let cases = [
        (
            "  Rechargeable   LED\theadlamp\n900lm ",
            "Rechargeable LED headlamp 900lm",
        ),
        ("\u{a0}Stirnlampe\u{2003}rot\u{a0}", "Stirnlampe rot"),
        ("one", "one"),
        ("   ", ""),
        ("", ""),
    ];
    for (text, expected) in cases {
        assert_eq!(collapse_whitespace(text), expected, "text {text:?}");
    }
}

#[test]
fn collapse_whitespace_in_scripts() {
    assert_eq!(
        eval(r#"collapse_whitespace("  COB  work\n headlamp ")"#),
        Ok(json!("COB work headlamp"))
    );
}

#[test]
fn warn_returns_its_message() {
    assert_eq!(
        eval(r#"warn("GTIN 123 is invalid")"#),
        Ok(json!("GTIN 123 is invalid"))
    );
}

#[test]
fn plain_text_cleans_supplier_titles() {
    let cases = [
        (
            "  <b>Super</b>&nbsp;headlamp \u{a0}\u{200b} bright  ",
            "Super headlamp bright",
        ),
        ("Head<br>lamp<p>900lm</p>", "Head lamp 900lm"),
        (
            "Tom &amp; Jerry &quot;Lamp&quot; &#39;XL&#39;",
            "Tom & Jerry \"Lamp\" 'XL'",
        ),
        ("&lt;b&gt; is text", "<b> is text"),
        ("&amp;lt; once", "&lt; once"),
        ("size < 5 cm & > 2 cm", "size < 5 cm & > 2 cm"),
        ("caf&#xE9; &#233;", "café é"),
        ("&unknown; &#xZZ; &", "&unknown; &#xZZ; &"),
        ("zero\u{feff}width\u{200d}join", "zerowidthjoin"),
        ("<!-- note -->Lamp", "Lamp"),
        ("", ""),
    ];
    for (text, expected) in cases {
        assert_eq!(plain_text(text), expected, "text {text:?}");
    }
}

#[test]
fn plain_text_in_scripts() {
    assert_eq!(
        eval(r#"plain_text("<i>COB</i>  work&nbsp;lamp")"#),
        Ok(json!("COB work lamp"))
    );
}
