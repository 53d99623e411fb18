use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;

use serde::Deserialize;
use serde_json::Value;

use super::super::diag::{Diagnostic, Mark};
use super::super::yaml::parse;
use super::{Spanned, from_node};

#[derive(Debug, Deserialize, PartialEq)]
struct Retry {
    attempts: u32,
    #[serde(default)]
    backoff: Option<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code, reason = "some fields are only read for their diagnostics")]
struct Step {
    id: Spanned<String>,
    #[serde(default)]
    uses: Option<String>,
    #[serde(default)]
    retry: Option<Retry>,
    #[serde(default)]
    with: HashMap<String, Spanned<Value>>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct Webhook {
    path: String,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
enum Trigger {
    Webhook(Webhook),
    Manual,
    Cron { schedule: String },
}

#[derive(Debug, Deserialize)]
#[allow(dead_code, reason = "some fields are only read for their diagnostics")]
struct Workflow {
    name: String,
    trigger: Spanned<Trigger>,
    #[serde(default)]
    timeout: Option<String>,
    steps: Vec<Spanned<Step>>,
}

#[derive(Debug, Deserialize)]
struct Job {
    name: String,
    #[serde(default)]
    retry: Option<u32>,
    #[serde(default)]
    timeout: Option<String>,
}

fn mark(line: usize, col: usize) -> Mark {
    Mark { line, col }
}

/// Parses `src` and deserializes it, returning the value and the diagnostics.
fn read<T: serde::de::DeserializeOwned>(src: &str) -> (Option<T>, Vec<Diagnostic>) {
    let node = match parse(src) {
        Ok(node) => node,
        Err(diags) => panic!("expected {src:?} to parse, got {diags:?}"),
    };
    let mut diags = Vec::new();
    let value = from_node(&node, &mut diags);
    (value, diags)
}

fn read_ok<T: serde::de::DeserializeOwned>(src: &str) -> T {
    match read(src) {
        (Some(value), diags) if diags.is_empty() => value,
        (_, diags) => panic!("expected {src:?} to deserialize, got {diags:?}"),
    }
}

/// Deserializes `src`, expecting failure, and returns the diagnostics.
fn read_err<T: serde::de::DeserializeOwned + std::fmt::Debug>(src: &str) -> Vec<Diagnostic> {
    let (value, diags) = read::<T>(src);
    assert!(value.is_none(), "expected no value, got {value:?}");
    assert!(!diags.is_empty(), "expected diagnostics for {src:?}");
    diags
}

fn assert_diag(diag: &Diagnostic, at: Mark, path: &str, message: &str) {
    assert_eq!(
        (diag.mark, diag.path.as_str(), diag.message.as_str()),
        (at, path, message),
        "diagnostic {diag}"
    );
}

#[test]
fn misspelt_fields_all_reported() {
    let diags = read_err::<Job>("name: demo\nretyr: 3\n  # comment\ntimout: 10s\n");
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(2, 1),
        "retyr",
        "unknown field `retyr`, did you mean `retry`?",
    );
    assert_diag(
        &diags[1],
        mark(4, 1),
        "timout",
        "unknown field `timout`, did you mean `timeout`?",
    );
}

#[test]
fn unknown_field_lists_expected() {
    let diags = read_err::<Job>("name: demo\ncolour: red\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(2, 1),
        "colour",
        "unknown field `colour`, expected one of `name`, `retry`, `timeout`",
    );
}

#[test]
fn unknown_field_in_nested_list() {
    let src =
        "name: w\ntrigger: manual\nsteps:\n  - id: a\n  - id: b\n    retyr:\n      attempts: 2\n";
    let diags = read_err::<Workflow>(src);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(6, 5),
        "steps[1].retyr",
        "unknown field `retyr`, did you mean `retry`?",
    );
}

#[test]
fn unknown_fields_at_every_level() {
    let src = "name: w\nnmae: x\ntrigger: manual\nsteps:\n  - id: a\n    retry: {attempts: 1, atempts: 2}\n";
    let diags = read_err::<Workflow>(src);
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(2, 1),
        "nmae",
        "unknown field `nmae`, did you mean `name`?",
    );
    assert_diag(
        &diags[1],
        mark(6, 26),
        "steps[0].retry.atempts",
        "unknown field `atempts`, did you mean `attempts`?",
    );
}

#[test]
fn type_mismatch_at_value() {
    let diags = read_err::<Job>("name: [a, b]\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 7),
        "name",
        "expected a string, found a list",
    );
}

#[test]
fn integer_for_string_is_not_converted() {
    let diags = read_err::<Job>("name: 42\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 7),
        "name",
        "expected a string, found an integer; quote it",
    );
}

#[test]
fn number_and_boolean_for_string_rejected() {
    let diags = read_err::<Vec<String>>("[1.5, true, ~]\n");
    let messages: Vec<&str> = diags.iter().map(|diag| diag.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "expected a string, found a number; quote it",
            "expected a string, found a boolean; quote it",
            "expected a string, found null",
        ]
    );
    assert_eq!(diags[1].path, "[1]");
}

#[test]
fn quoted_number_and_leading_zeros_are_strings() {
    let value: BTreeMap<String, String> = read_ok("sku: 00123\nzip: 05069\nn: \"42\"\n");
    assert_eq!(value["sku"], "00123");
    assert_eq!(value["zip"], "05069");
    assert_eq!(value["n"], "42");
}

#[test]
fn sibling_mismatches_all_reported() {
    let src = "name: w\ntrigger: manual\ntimeout: 30\nsteps:\n  - id: a\n    retry: {attempts: x, backoff: 5}\n";
    let diags = read_err::<Workflow>(src);
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(3, 10),
        "timeout",
        "expected a string, found an integer; quote it",
    );
    assert_diag(
        &diags[1],
        mark(6, 23),
        "steps[0].retry.attempts",
        "expected an integer, found a string",
    );
    assert_diag(
        &diags[2],
        mark(6, 35),
        "steps[0].retry.backoff",
        "expected a string, found an integer; quote it",
    );
}

#[test]
fn error_in_list_keeps_earlier_diagnostics() {
    let src = "- id: a\n  colour: red\n- id: [b]\n- id: c\n  retry: 1\n";
    let diags = read_err::<Vec<Step>>(src);
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(2, 3),
        "[0].colour",
        "unknown field `colour`, expected one of `id`, `uses`, `retry`, `with`",
    );
    assert_diag(
        &diags[1],
        mark(3, 7),
        "[1].id",
        "expected a string, found a list",
    );
    assert_diag(
        &diags[2],
        mark(5, 10),
        "[2].retry",
        "expected a map, found an integer",
    );
}

#[test]
fn spanned_string_has_value_mark_and_path() {
    let src = "name: w\ntrigger: manual\nsteps:\n  - id: fetch\n    uses: http\n";
    let workflow: Workflow = read_ok(src);
    let id = &workflow.steps[0].id;
    assert_eq!(id.value, "fetch");
    assert_eq!(id.mark, mark(4, 9));
    assert_eq!(id.path, "steps[0].id");
    assert_eq!(id.len(), 5, "Spanned derefs to its value");
}

#[test]
fn spanned_struct_has_map_mark() {
    let src = "name: w\ntrigger:\n  webhook:\n    path: /x\nsteps:\n  - id: a\n";
    let workflow: Workflow = read_ok(src);
    assert_eq!(workflow.trigger.mark, mark(3, 3));
    assert_eq!(workflow.trigger.path, "trigger");
    assert_eq!(workflow.steps[0].mark, mark(6, 5));
    assert_eq!(workflow.steps[0].path, "steps[0]");
}

#[test]
fn spanned_values_in_map() {
    let step: Step = read_ok("id: a\nwith:\n  url: http://x\n  count: 3\n");
    let url = &step.with["url"];
    assert_eq!(url.value, Value::from("http://x"));
    assert_eq!(url.mark, mark(3, 8));
    assert_eq!(url.path, "with.url");
    assert_eq!(step.with["count"].value, Value::from(3));
}

#[test]
fn spanned_rejects_other_deserializers() {
    let result = serde_json::from_str::<Spanned<String>>("\"x\"");
    assert!(result.is_err());
}

#[test]
fn json_value_keeps_types_and_order() {
    let src = "b: 1\na:\n  z: [1, 2.5, x, true, ~]\n  y: {}\nc: \"07\"\n";
    let value: Value = read_ok(src);
    assert_eq!(
        value.to_string(),
        r#"{"b":1,"a":{"z":[1,2.5,"x",true,null],"y":{}},"c":"07"}"#
    );
}

#[test]
fn json_value_field_round_trip() {
    #[derive(Debug, Deserialize)]
    struct Holder {
        body: Value,
    }
    let src = "body:\n  zeta: 1\n  alpha:\n    nested: [a, {k: v}]\n  mid: 00123\n";
    let holder: Holder = read_ok(src);
    let text = holder.body.to_string();
    assert_eq!(
        text,
        r#"{"zeta":1,"alpha":{"nested":["a",{"k":"v"}]},"mid":"00123"}"#
    );
    let node = parse(src).expect("parses");
    assert_eq!(node.get("body").expect("body").to_json(), holder.body);
}

#[test]
fn enum_externally_tagged() {
    let webhook: Trigger = read_ok("webhook: { path: /x }\n");
    assert_eq!(
        webhook,
        Trigger::Webhook(Webhook {
            path: "/x".to_owned()
        })
    );
    let manual: Trigger = read_ok("manual\n");
    assert_eq!(manual, Trigger::Manual);
    let manual_map: Trigger = read_ok("manual: ~\n");
    assert_eq!(manual_map, Trigger::Manual);
    let cron: Trigger = read_ok("cron: {schedule: '* * * * *'}\n");
    assert_eq!(
        cron,
        Trigger::Cron {
            schedule: "* * * * *".to_owned()
        }
    );
}

#[test]
fn enum_inside_struct_field() {
    let src = "name: w\ntrigger: { webhook: { path: /x } }\nsteps: []\n";
    let workflow: Workflow = read_ok(src);
    assert_eq!(
        workflow.trigger.value,
        Trigger::Webhook(Webhook {
            path: "/x".to_owned()
        })
    );
}

#[test]
fn enum_unknown_variant_suggests() {
    let diags = read_err::<Workflow>("name: w\ntrigger: { webhok: { path: /x } }\nsteps: []\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(2, 12),
        "trigger",
        "unknown variant `webhok`, did you mean `webhook`?",
    );
}

#[test]
fn enum_unknown_variant_lists_expected() {
    let diags = read_err::<Trigger>("schedule\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 1),
        "",
        "unknown variant `schedule`, expected one of `webhook`, `manual`, `cron`",
    );
}

#[test]
fn enum_wrong_shape() {
    let diags = read_err::<Trigger>("{webhook: {path: /x}, manual: ~}\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    let expected = "expected one of `webhook`, `manual`, `cron`, or a map with one of them as its only key, found a map with 2 keys";
    assert_diag(&diags[0], mark(1, 1), "", expected);
}

#[test]
fn enum_variant_value_problems() {
    let diags = read_err::<Vec<Trigger>>("- webhook\n- manual: {x: 1}\n- webhook: {path: 3}\n");
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 3),
        "[0]",
        "variant `webhook` needs a value; write it as `webhook: VALUE`",
    );
    assert_diag(
        &diags[1],
        mark(2, 11),
        "[1].manual",
        "variant `manual` takes no value; write just `manual`",
    );
    assert_diag(
        &diags[2],
        mark(3, 19),
        "[2].webhook.path",
        "expected a string, found an integer; quote it",
    );
}

#[test]
fn missing_field_at_struct() {
    let diags = read_err::<Workflow>("name: w\ntrigger: manual\nsteps:\n  - uses: http\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(&diags[0], mark(4, 5), "steps[0]", "missing field `id`");
}

#[test]
fn missing_field_in_every_element() {
    let src = "name: w\ntrigger: manual\nsteps:\n  - uses: a\n  - id: ok\n  - uses: b\n    colour: red\n  - uses: c\n";
    let diags = read_err::<Workflow>(src);
    assert_eq!(diags.len(), 4, "{diags:?}");
    assert_diag(&diags[0], mark(4, 5), "steps[0]", "missing field `id`");
    assert_diag(&diags[1], mark(6, 5), "steps[2]", "missing field `id`");
    assert_eq!(diags[2].path, "steps[2].colour");
    assert_diag(&diags[3], mark(8, 5), "steps[3]", "missing field `id`");
}

#[test]
fn element_reread_after_failure_below() {
    // The first run stops `steps` at its failed element and then finds `name`
    // missing. The workflow is read again so that `steps[1]` is checked too.
    let src = "- trigger: manual\n  steps:\n    - uses: a\n    - id: b\n      colour: red\n";
    let diags = read_err::<Vec<Workflow>>(src);
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_diag(&diags[0], mark(1, 3), "[0]", "missing field `name`");
    assert_diag(&diags[1], mark(3, 7), "[0].steps[0]", "missing field `id`");
    assert_eq!(diags[2].path, "[0].steps[1].colour");
}

#[test]
fn failed_field_does_not_hide_later_fields() {
    let src = "trigger: { webhok: {} }\nname: 7\nsteps:\n  - id: a\n    retyr: 1\n";
    let diags = read_err::<Workflow>(src);
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 12),
        "trigger",
        "unknown variant `webhok`, did you mean `webhook`?",
    );
    assert_diag(
        &diags[1],
        mark(2, 7),
        "name",
        "expected a string, found an integer; quote it",
    );
    assert_eq!(diags[2].path, "steps[0].retyr");
}

#[test]
fn missing_top_level_field() {
    let diags = read_err::<Job>("retry: 3\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(&diags[0], mark(1, 1), "", "missing field `name`");
}

#[test]
fn top_level_wrong_type() {
    let diags = read_err::<Job>("- a\n- b\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(&diags[0], mark(1, 1), "", "expected a map, found a list");
}

#[test]
fn anchors_and_aliases_deserialize() {
    let src = "defaults: &retry {attempts: 3}\nfirst: *retry\nsecond: *retry\n";
    let value: HashMap<String, Retry> = read_ok(src);
    let expected = Retry {
        attempts: 3,
        backoff: None,
    };
    assert_eq!(value["first"], expected);
    assert_eq!(value["second"], expected);
}

#[test]
fn alias_problem_points_at_anchor() {
    let diags = read_err::<HashMap<String, Retry>>("a: &r {attempts: x}\nb: *r\n");
    assert!(!diags.is_empty());
    assert_eq!(diags[0].mark, mark(1, 18));
    assert_eq!(diags[0].message, "expected an integer, found a string");
}

#[test]
fn integers_are_range_checked() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code, reason = "only read for its diagnostics")]
    struct Sizes {
        small: u8,
        count: u32,
        signed: i8,
    }
    let diags = read_err::<Sizes>("small: 300\ncount: -1\nsigned: -129\n");
    assert_eq!(diags.len(), 3, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 8),
        "small",
        "expected an integer from 0 to 255, found 300",
    );
    assert_diag(
        &diags[1],
        mark(2, 8),
        "count",
        "expected an integer from 0 to 4294967295, found -1",
    );
    assert_diag(
        &diags[2],
        mark(3, 9),
        "signed",
        "expected an integer from -128 to 127, found -129",
    );
}

#[test]
fn integer_types_read() {
    let value: (u64, i128, u128, i16) = read_ok("[9223372036854775807, -5, 7, -300]\n");
    assert_eq!(value, (9_223_372_036_854_775_807, -5, 7, -300));
}

#[test]
fn floats_accept_integers() {
    let value: Vec<f64> = read_ok("[2, 1.5, -.inf]\n");
    assert_eq!(value, [2.0, 1.5, f64::NEG_INFINITY]);
    let single: f32 = read_ok("0.25\n");
    assert_eq!(single, 0.25);
}

#[test]
fn float_rejects_string() {
    let diags = read_err::<f64>("\"1.5\"\n");
    assert_eq!(diags[0].message, "expected a number, found a string");
}

#[test]
fn boolean_rejects_yes() {
    let diags = read_err::<HashMap<String, bool>>("enabled: yes\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 10),
        "enabled",
        "expected a boolean, found a string",
    );
}

#[test]
fn option_reads_null_as_none() {
    let value: Vec<Option<u32>> = read_ok("[~, 3, null, ]\n");
    assert_eq!(value, [None, Some(3), None]);
}

#[test]
fn unit_and_char_and_newtype() {
    #[derive(Debug, Deserialize, PartialEq)]
    struct Meters(f64);
    #[derive(Debug, Deserialize, PartialEq)]
    struct Marker;
    let value: ((), char, Meters, Marker) = read_ok("[~, x, 2, null]\n");
    assert_eq!(value, ((), 'x', Meters(2.0), Marker));
    let diags = read_err::<char>("xy\n");
    assert_eq!(
        diags[0].message,
        "expected a single character, found a string"
    );
}

#[test]
fn tuple_length_is_checked() {
    let diags = read_err::<(String, u32)>("[a]\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(1, 1));
    assert!(
        diags[0].message.starts_with("invalid length 1"),
        "{}",
        diags[0].message
    );
}

#[test]
fn integer_map_keys_parse() {
    let value: BTreeMap<u16, String> = read_ok("200: ok\n404: missing\n");
    assert_eq!(value[&200], "ok");
    assert_eq!(value[&404], "missing");
    let diags = read_err::<BTreeMap<u16, String>>("200: ok\nabc: bad\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(2, 1));
    assert_eq!(diags[0].path, "abc");
    assert!(
        diags[0]
            .message
            .starts_with("invalid key: `abc` is not a valid integer"),
        "{}",
        diags[0].message
    );
}

#[test]
fn boolean_and_enum_map_keys() {
    #[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
    #[serde(rename_all = "snake_case")]
    enum Method {
        Get,
        Post,
    }
    let flags: BTreeMap<bool, u8> = read_ok("true: 1\nfalse: 0\n");
    assert_eq!(flags[&true], 1);
    let methods: BTreeMap<Method, u8> = read_ok("get: 1\npost: 2\n");
    assert_eq!(methods[&Method::Post], 2);
}

#[test]
fn map_value_error_keeps_other_entries() {
    let diags = read_err::<BTreeMap<String, u32>>("a: x\nb: 2\nc: [1]\n");
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_diag(
        &diags[0],
        mark(1, 4),
        "a",
        "expected an integer, found a string",
    );
    assert_diag(
        &diags[1],
        mark(3, 4),
        "c",
        "expected an integer, found a list",
    );
}

#[test]
fn map_entry_failure_reported_once() {
    let diags = read_err::<BTreeMap<String, Retry>>("a: {backoff: x}\nb: {}\nc: {attempts: 1}\n");
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_diag(&diags[0], mark(1, 4), "a", "missing field `attempts`");
    assert_diag(&diags[1], mark(2, 4), "b", "missing field `attempts`");
}

#[test]
fn struct_default_attribute() {
    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Limits {
        max_body: u64,
        concurrency: u32,
    }
    let limits: Limits = read_ok("concurrency: 4\n");
    assert_eq!(limits.max_body, 0);
    assert_eq!(limits.concurrency, 4);
}

#[test]
fn rename_all_and_alias() {
    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    struct Hook {
        dedup_header: String,
        #[serde(alias = "secret_ref")]
        secret: String,
    }
    let hook: Hook = read_ok("dedup_header: X-Id\nsecret_ref: s\n");
    assert_eq!(hook.dedup_header, "X-Id");
    assert_eq!(hook.secret, "s");
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(untagged)]
enum Size {
    Bytes(u64),
    Text(String),
}

#[test]
fn untagged_enum_reads() {
    let sizes: Vec<Size> = read_ok("[1024, 10MiB]\n");
    assert_eq!(sizes, [Size::Bytes(1024), Size::Text("10MiB".to_owned())]);
}

#[test]
fn untagged_enum_mismatch_reported_at_value() {
    let diags = read_err::<HashMap<String, Size>>("size: [1]\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(1, 7));
    assert_eq!(diags[0].path, "size");
}

#[test]
fn spanned_inside_untagged_fails_cleanly() {
    #[derive(Debug, Deserialize)]
    #[serde(untagged)]
    #[allow(dead_code)]
    enum Either {
        Text(Spanned<String>),
        Map(Spanned<HashMap<String, String>>),
    }
    for src in ["x\n", "{a: b}\n"] {
        let diags = read_err::<Either>(src);
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert_eq!(diags[0].mark, mark(1, 1));
    }
}

#[test]
fn flatten_skips_unknown_field_check() {
    #[derive(Debug, Deserialize)]
    struct Inner {
        b: u32,
    }
    #[derive(Debug, Deserialize)]
    struct Outer {
        a: u32,
        #[serde(flatten)]
        inner: Inner,
    }
    let outer: Outer = read_ok("a: 1\nb: 2\nunknown: 3\n");
    assert_eq!((outer.a, outer.inner.b), (1, 2));
}

#[test]
fn placeholder_rejected_by_type_reports_once() {
    let diags = read_err::<HashMap<String, NonZeroU32>>("n: x\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].message, "expected an integer, found a string");
}

#[test]
fn custom_error_positioned_at_value() {
    let diags = read_err::<HashMap<String, NonZeroU32>>("ok: 1\nn: 0\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(2, 4));
    assert_eq!(diags[0].path, "n");
    assert!(diags[0].message.contains("nonzero"), "{}", diags[0].message);
}

#[test]
fn ignored_any_accepts_anything() {
    let value: Vec<serde::de::IgnoredAny> = read_ok("[1, [2], {a: b}]\n");
    assert_eq!(value.len(), 3);
}

#[test]
fn diagnostics_sorted_and_appended() {
    let node = parse("timout: 1\nname: [x]\nretyr: 2\n").expect("parses");
    let earlier = Diagnostic::new(mark(9, 9), "", "from before");
    let mut diags = vec![earlier.clone()];
    let job: Option<Job> = from_node(&node, &mut diags);
    assert!(job.is_none());
    let lines: Vec<usize> = diags.iter().map(|diag| diag.mark.line).collect();
    assert_eq!(lines, [9, 1, 2, 3]);
    assert_eq!(diags[0], earlier);
}

#[test]
fn success_adds_no_diagnostics() {
    let node = parse("name: demo\nretry: 2\n").expect("parses");
    let mut diags = Vec::new();
    let job: Option<Job> = from_node(&node, &mut diags);
    assert!(diags.is_empty(), "{diags:?}");
    let job = job.expect("job");
    assert_eq!(
        (job.name.as_str(), job.retry, job.timeout),
        ("demo", Some(2), None)
    );
}
