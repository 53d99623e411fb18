use super::*;

fn parse_ok(src: &str) -> Node {
    match parse(src) {
        Ok(node) => node,
        Err(diags) => panic!("expected {src:?} to parse, got {diags:?}"),
    }
}

fn parse_err(src: &str) -> Vec<Diagnostic> {
    match parse(src) {
        Ok(node) => panic!("expected {src:?} to fail, got {node:?}"),
        Err(diags) => diags,
    }
}

/// Returns the scalar at `key` of the top-level map.
fn scalar_at(root: &Node, key: &str) -> Scalar {
    match root.get(key).map(|node| &node.kind) {
        Some(NodeKind::Scalar(scalar)) => scalar.clone(),
        other => panic!("expected a scalar at {key}, got {other:?}"),
    }
}

fn string(text: &str) -> Scalar {
    Scalar::Str(text.to_owned())
}

fn mark(line: usize, col: usize) -> Mark {
    Mark { line, col }
}

fn entries(node: &Node) -> &[(Key, Node)] {
    match &node.kind {
        NodeKind::Map(entries) => entries,
        other => panic!("expected a map, got {other:?}"),
    }
}

fn items(node: &Node) -> &[Node] {
    match &node.kind {
        NodeKind::Seq(items) => items,
        other => panic!("expected a list, got {other:?}"),
    }
}

#[test]
fn country_codes_stay_strings() {
    let root = parse_ok("countries: [SE, NO, FI]\n");
    let countries = root.get("countries").expect("countries");
    let values: Vec<&NodeKind> = items(countries).iter().map(|node| &node.kind).collect();
    assert_eq!(
        values,
        [
            &NodeKind::Scalar(string("SE")),
            &NodeKind::Scalar(string("NO")),
            &NodeKind::Scalar(string("FI")),
        ]
    );
}

#[test]
fn yaml11_booleans_stay_strings() {
    let root = parse_ok("on: yes\noff: NO\ny: n\nYes: On\n");
    let names: Vec<&str> = entries(&root)
        .iter()
        .map(|(key, _)| key.name.as_str())
        .collect();
    assert_eq!(names, ["on", "off", "y", "Yes"]);
    assert_eq!(scalar_at(&root, "on"), string("yes"));
    assert_eq!(scalar_at(&root, "off"), string("NO"));
    assert_eq!(scalar_at(&root, "y"), string("n"));
    assert_eq!(scalar_at(&root, "Yes"), string("On"));
}

#[test]
fn booleans_follow_core_schema() {
    let root = parse_ok("a: true\nb: True\nc: TRUE\nd: false\ne: False\nf: FALSE\ng: tRUE\n");
    for key in ["a", "b", "c"] {
        assert_eq!(scalar_at(&root, key), Scalar::Bool(true), "key {key}");
    }
    for key in ["d", "e", "f"] {
        assert_eq!(scalar_at(&root, key), Scalar::Bool(false), "key {key}");
    }
    assert_eq!(scalar_at(&root, "g"), string("tRUE"));
}

#[test]
fn nulls_follow_core_schema() {
    let root = parse_ok("a: null\nb: Null\nc: NULL\nd: ~\ne:\nf: nil\ng: 'null'\n");
    for key in ["a", "b", "c", "d", "e"] {
        assert_eq!(scalar_at(&root, key), Scalar::Null, "key {key}");
    }
    assert_eq!(scalar_at(&root, "f"), string("nil"));
    assert_eq!(scalar_at(&root, "g"), string("null"));
}

#[test]
fn leading_zeros_stay_strings() {
    let root =
        parse_ok("sku: 00123\nzip: 05069\nneg: -007\nfloat: 01.5\nzero: 0\nminus_zero: -0\n");
    assert_eq!(scalar_at(&root, "sku"), string("00123"));
    assert_eq!(scalar_at(&root, "zip"), string("05069"));
    assert_eq!(scalar_at(&root, "neg"), string("-007"));
    assert_eq!(scalar_at(&root, "float"), string("01.5"));
    assert_eq!(scalar_at(&root, "zero"), Scalar::Int(0));
    assert_eq!(scalar_at(&root, "minus_zero"), Scalar::Int(0));
}

#[test]
fn decimal_integers_are_ints() {
    let root = parse_ok("n: 42\nneg: -17\nplus: +5\nmin: -9223372036854775808\n");
    assert_eq!(scalar_at(&root, "n"), Scalar::Int(42));
    assert_eq!(scalar_at(&root, "neg"), Scalar::Int(-17));
    assert_eq!(scalar_at(&root, "plus"), Scalar::Int(5));
    assert_eq!(scalar_at(&root, "min"), Scalar::Int(i64::MIN));
}

#[test]
fn oversized_integer_stays_string() {
    let root = parse_ok("big: 9223372036854775808\n");
    assert_eq!(scalar_at(&root, "big"), string("9223372036854775808"));
}

#[test]
fn hex_and_octal_stay_strings() {
    let root = parse_ok("hex: 0x1F\noctal: 0o17\nunderscore: 1_000\n");
    assert_eq!(scalar_at(&root, "hex"), string("0x1F"));
    assert_eq!(scalar_at(&root, "octal"), string("0o17"));
    assert_eq!(scalar_at(&root, "underscore"), string("1_000"));
}

#[test]
fn floats_follow_core_schema() {
    let src = "a: 1.5\nb: -2.0e3\nc: .5\nd: 1e3\ne: 1.\nf: +.25\ng: 2E-2\n";
    let root = parse_ok(src);
    assert_eq!(scalar_at(&root, "a"), Scalar::Float(1.5));
    assert_eq!(scalar_at(&root, "b"), Scalar::Float(-2000.0));
    assert_eq!(scalar_at(&root, "c"), Scalar::Float(0.5));
    assert_eq!(scalar_at(&root, "d"), Scalar::Float(1000.0));
    assert_eq!(scalar_at(&root, "e"), Scalar::Float(1.0));
    assert_eq!(scalar_at(&root, "f"), Scalar::Float(0.25));
    assert_eq!(scalar_at(&root, "g"), Scalar::Float(0.02));
}

#[test]
fn special_floats_resolve() {
    let root = parse_ok("a: .inf\nb: -.inf\nc: .NaN\nd: +.INF\n");
    assert_eq!(scalar_at(&root, "a"), Scalar::Float(f64::INFINITY));
    assert_eq!(scalar_at(&root, "b"), Scalar::Float(f64::NEG_INFINITY));
    assert!(matches!(scalar_at(&root, "c"), Scalar::Float(value) if value.is_nan()));
    assert_eq!(scalar_at(&root, "d"), Scalar::Float(f64::INFINITY));
}

#[test]
fn float_lookalikes_stay_strings() {
    let root = parse_ok("a: 1.2.3\nb: .\nc: 1e\nd: 1e999\ne: -.nan\nf: e3\ng: 1.5x\n");
    for (key, text) in [
        ("a", "1.2.3"),
        ("b", "."),
        ("c", "1e"),
        ("d", "1e999"),
        ("e", "-.nan"),
        ("f", "e3"),
        ("g", "1.5x"),
    ] {
        assert_eq!(scalar_at(&root, key), string(text), "key {key}");
    }
}

#[test]
fn quoted_scalars_are_strings() {
    let src = "a: \"42\"\nb: 'true'\nc: |\n  7\nd: >\n  null\ne: !!str 12\nf: !!str yes\n";
    let root = parse_ok(src);
    assert_eq!(scalar_at(&root, "a"), string("42"));
    assert_eq!(scalar_at(&root, "b"), string("true"));
    assert_eq!(scalar_at(&root, "c"), string("7\n"));
    assert_eq!(scalar_at(&root, "d"), string("null\n"));
    assert_eq!(scalar_at(&root, "e"), string("12"));
    assert_eq!(scalar_at(&root, "f"), string("yes"));
}

#[test]
fn other_tags_are_ignored() {
    let root = parse_ok("a: !!int 12\nb: !custom 1.5\n");
    assert_eq!(scalar_at(&root, "a"), Scalar::Int(12));
    assert_eq!(scalar_at(&root, "b"), Scalar::Float(1.5));
}

#[test]
fn keys_are_source_text() {
    let root = parse_ok("200: ok\ntrue: yes\nnull: x\n1.50: y\n~: z\n\"q\": w\n");
    let names: Vec<&str> = entries(&root)
        .iter()
        .map(|(key, _)| key.name.as_str())
        .collect();
    assert_eq!(names, ["200", "true", "null", "1.50", "~", "q"]);
}

#[test]
fn marks_are_one_based() {
    let root = parse_ok("a: 1\nbb:\n  c: x\n");
    let (a_key, a_value) = &entries(&root)[0];
    assert_eq!(root.mark, mark(1, 1));
    assert_eq!(a_key.mark, mark(1, 1));
    assert_eq!(a_value.mark, mark(1, 4));
    let (bb_key, bb_value) = &entries(&root)[1];
    assert_eq!(bb_key.mark, mark(2, 1));
    assert_eq!(
        bb_value.mark,
        mark(3, 3),
        "a block map starts at its first key"
    );
    let (c_key, c_value) = &entries(bb_value)[0];
    assert_eq!(c_key.mark, mark(3, 3));
    assert_eq!(c_value.mark, mark(3, 6));
}

#[test]
fn sequence_marks_point_at_dash_or_bracket() {
    let src = "indented:\n  - 1\nflush:\n- 2\nspaced:\n-   3\nflow: [4]\nempty_first:\n-\n  k: 5\n";
    let root = parse_ok(src);
    assert_eq!(root.get("indented").expect("indented").mark, mark(2, 3));
    assert_eq!(root.get("flush").expect("flush").mark, mark(4, 1));
    assert_eq!(root.get("spaced").expect("spaced").mark, mark(6, 1));
    assert_eq!(root.get("flow").expect("flow").mark, mark(7, 7));
    assert_eq!(
        root.get("empty_first").expect("empty_first").mark,
        mark(9, 1)
    );
    let spaced = root.get("spaced").expect("spaced");
    assert_eq!(items(spaced)[0].mark, mark(6, 5));
}

#[test]
fn flow_map_mark_points_at_brace() {
    let root = parse_ok("with: {url: x}\nempty: {}\n");
    let with = root.get("with").expect("with");
    assert_eq!(with.mark, mark(1, 7));
    assert_eq!(entries(with)[0].0.mark, mark(1, 8));
    assert_eq!(root.get("empty").expect("empty").mark, mark(2, 8));
}

#[test]
fn nested_list_of_maps_marks() {
    let root = parse_ok("steps:\n  - id: a\n    uses: b\n  - id: c\n");
    let steps = items(root.get("steps").expect("steps"));
    assert_eq!(steps[0].mark, mark(2, 5));
    assert_eq!(steps[1].mark, mark(4, 5));
    let (uses_key, uses_value) = &entries(&steps[0])[1];
    assert_eq!(uses_key.mark, mark(3, 5));
    assert_eq!(uses_value.mark, mark(3, 11));
}

#[test]
fn columns_count_characters() {
    let root = parse_ok("é: ü\nnext:\n- x\n");
    assert_eq!(root.get("é").expect("é").mark, mark(1, 4));
    assert_eq!(root.get("next").expect("next").mark, mark(3, 1));
}

#[test]
fn empty_value_points_at_key() {
    let root = parse_ok("a:\nb: 1\n");
    assert_eq!(root.get("a").expect("a").mark, mark(1, 1));
}

#[test]
fn literal_block_mark_is_first_content_line() {
    let root = parse_ok("script: |\n  let x = 1;\n");
    assert_eq!(root.get("script").expect("script").mark, mark(2, 3));
}

#[test]
fn duplicate_keys_all_reported() {
    let src = "name: a\nsteps:\n  - id: x\n    with:\n      retry: 1\n      url: u\n      retry: 2\nname: b\n";
    let diags = parse_err(src);
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_eq!(diags[0].mark, mark(7, 7));
    assert_eq!(diags[0].path, "steps[0].with");
    assert_eq!(diags[0].message, "duplicate key `retry` (first at line 5)");
    assert_eq!(diags[1].mark, mark(8, 1));
    assert_eq!(diags[1].path, "");
    assert_eq!(diags[1].message, "duplicate key `name` (first at line 1)");
}

#[test]
fn syntax_error_has_position() {
    let diags = parse_err("a: [1, 2\nb: 2\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(2, 2));
    assert!(
        diags[0].message.starts_with("invalid YAML: "),
        "{}",
        diags[0].message
    );
}

#[test]
fn syntax_error_keeps_earlier_duplicates() {
    let diags = parse_err("a: 1\na: 2\nb: [\n");
    assert_eq!(diags.len(), 2, "{diags:?}");
    assert_eq!(diags[0].message, "duplicate key `a` (first at line 1)");
    assert!(
        diags[1].message.starts_with("invalid YAML: "),
        "{}",
        diags[1].message
    );
}

#[test]
fn unknown_alias_is_syntax_error() {
    let diags = parse_err("a: *nope\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(1, 4));
}

#[test]
fn empty_document_is_null() {
    for src in ["", "\n", "# only a comment\n"] {
        let root = parse_ok(src);
        assert_eq!(root.kind, NodeKind::Scalar(Scalar::Null), "source {src:?}");
        assert_eq!(root.mark, mark(1, 1), "source {src:?}");
    }
}

#[test]
fn explicit_document_start_is_one_document() {
    let root = parse_ok("---\na: 1\n...\n");
    assert_eq!(scalar_at(&root, "a"), Scalar::Int(1));
}

#[test]
fn multiple_documents_rejected() {
    let diags = parse_err("a: 1\n---\nb: 2\n---\nc: 3\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(2, 1));
    assert!(
        diags[0].message.contains("only one YAML document"),
        "{}",
        diags[0].message
    );
}

#[test]
fn anchors_and_aliases_copy_nodes() {
    let src = "base: &base\n  url: http://x\n  tries: 3\nname: &n job\nfirst: *base\nsecond: *n\n*n : key\n";
    let root = parse_ok(src);
    let base = root.get("base").expect("base");
    assert_eq!(root.get("first"), Some(base));
    assert_eq!(scalar_at(&root, "second"), string("job"));
    assert_eq!(scalar_at(&root, "job"), string("key"));
}

#[test]
fn anchored_number_keeps_source_text_as_key() {
    let root = parse_ok("a: &v 1.50\n*v : x\n");
    assert_eq!(scalar_at(&root, "a"), Scalar::Float(1.5));
    assert_eq!(scalar_at(&root, "1.50"), string("x"));
}

#[test]
fn alias_inside_its_anchor_rejected() {
    let diags = parse_err("a: &x [1, *x]\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].path, "a[1]");
    assert_eq!(diags[0].mark, mark(1, 11));
}

#[test]
fn alias_expansion_is_limited() {
    let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for level in 1..8 {
        let previous = level - 1;
        let row = format!("*a{previous}, ").repeat(10);
        src.push_str(&format!(
            "a{level}: &a{level} [{}]\n",
            row.trim_end_matches(", ")
        ));
    }
    let diags = parse_err(&src);
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert!(
        diags[0]
            .message
            .starts_with("aliases expand to more than 100000 nodes"),
        "{}",
        diags[0].message
    );
}

#[test]
fn merge_keys_rejected() {
    let diags = parse_err("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(3, 3));
    assert_eq!(diags[0].path, "use");
    assert_eq!(
        diags[0].message,
        "merge keys (`<<`) are not supported; write the keys out"
    );
}

#[test]
fn quoted_merge_key_is_plain_key() {
    let root = parse_ok("\"<<\": 1\n");
    assert_eq!(scalar_at(&root, "<<"), Scalar::Int(1));
}

#[test]
fn complex_keys_rejected() {
    let diags = parse_err("? [a, b]\n: 1\nc: 2\n");
    assert_eq!(diags.len(), 1, "{diags:?}");
    assert_eq!(diags[0].mark, mark(1, 3));
    assert_eq!(diags[0].message, "a map key must be a string, found a list");
}

#[test]
fn to_json_keeps_key_order() {
    let root = parse_ok("b: 1\na:\n  z: [1, 2.5, x]\n  y: null\n");
    let json = root.to_json().to_string();
    assert_eq!(json, r#"{"b":1,"a":{"z":[1,2.5,"x"],"y":null}}"#);
}

#[test]
fn to_json_maps_infinity_to_null() {
    let root = parse_ok("a: .inf\n");
    assert_eq!(root.to_json().to_string(), r#"{"a":null}"#);
}

#[test]
fn type_names() {
    let root = parse_ok("a: ~\nb: true\nc: 1\nd: 1.5\ne: x\nf: []\ng: {}\n");
    let names: Vec<&str> = entries(&root)
        .iter()
        .map(|(_, value)| value.type_name())
        .collect();
    assert_eq!(
        names,
        [
            "null", "boolean", "integer", "number", "string", "list", "map"
        ]
    );
}

#[test]
fn get_on_non_map_is_none() {
    let root = parse_ok("[1, 2]\n");
    assert_eq!(root.get("a"), None);
}
