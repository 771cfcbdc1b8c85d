//! kiln's YAML writer keeps its promise: whatever value it writes, kiln's
//! own reader and a YAML 1.1 reader (PyYAML, as Python tooling and older
//! Kubernetes clients read YAML) both read back exactly that value.

use std::process::Command;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Number, Value};

use kiln_compiler::yaml::{parse_values, to_yaml};

/// Characters that make YAML writers stumble, mixed with plain ones.
const TRICKY: &[&str] = &[
    "a",
    "b",
    "z",
    "0",
    "1",
    "9",
    " ",
    "  ",
    "\n",
    "\n\n",
    "\t",
    "\r",
    ":",
    ": ",
    "#",
    " #",
    "-",
    "- ",
    "?",
    ",",
    "[",
    "]",
    "{",
    "}",
    "&",
    "*",
    "!",
    "|",
    ">",
    "'",
    "\"",
    "%",
    "@",
    "`",
    "\\",
    "<<",
    "=",
    "~",
    ".",
    "e",
    "x",
    "0x",
    "0o",
    "_",
    "+",
    "no",
    "yes",
    "on",
    "off",
    "y",
    "n",
    "null",
    "true",
    "False",
    "NULL",
    ".inf",
    ".NaN",
    "2026-11-29",
    "1e3",
    "1.5",
    "012",
    "1:30",
    "---",
    "...",
    "\u{85}",
    "\u{2028}",
    "\u{2029}",
    "\u{feff}",
    "\u{7f}",
    "\u{1b}",
    "é",
    "日本",
    "😀",
    "\u{a0}",
];

fn tricky_string() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(TRICKY), 0..8).prop_map(|parts| parts.concat())
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        (-1e300f64..1e300).prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        (-1000i64..1000, 1u32..6)
            .prop_map(|(n, d)| Number::from_f64(n as f64 / 10f64.powi(d as i32)).map_or(Value::Null, Value::Number)),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((tricky_string(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Documents are mappings or sequences (as kiln writes them), or a lone
/// scalar.
fn document() -> impl Strategy<Value = Value> {
    prop_oneof![
        tricky_string().prop_map(Value::String),
        prop::collection::vec((tricky_string(), value()), 1..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        prop::collection::vec(value(), 1..6).prop_map(Value::Array),
    ]
}

/// Equal as data, floats compared as the numbers they are.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        // Integers stay integers (a u64 read back as a float is wrong).
        (Value::Number(x), Value::Number(y)) => x == y || (x.is_f64() && y.is_f64() && x.as_f64() == y.as_f64()),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((ka, va), (kb, vb))| ka == kb && same(va, vb))
        }
        _ => a == b,
    }
}

#[test]
fn kilns_reader_reads_back_what_the_writer_wrote() {
    let mut runner = TestRunner::new(Config {
        cases: 3000,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&document(), |v| {
            let text = to_yaml(&v);
            let back = parse_values(&text).map_err(|e| TestCaseError::fail(format!("{e:?}\n{text}")))?;
            prop_assert_eq!(back.len(), 1, "{}", text);
            prop_assert!(
                same(&back[0].value, &v),
                "wrote {v}\nas\n{text}\nread {}",
                back[0].value
            );
            Ok(())
        })
        .unwrap();
}

/// The cases the issue named, and the ones the property test found.
#[test]
fn known_traps_round_trip() {
    for s in [
        "a\n\n",
        "a\n\n\n",
        "<<",
        "=",
        "x\u{2028}y",
        "x\u{2029}y",
        "x\u{85}y",
        "\u{feff}x",
        "1e3",
        "+.NaN",
        "-.inf",
        "---",
        "a\tb",
    ] {
        let v = serde_json::json!({ "k": s, s: [s] });
        let text = to_yaml(&v);
        let back = parse_values(&text).unwrap();
        assert_eq!(back[0].value, v, "{text}");
        assert!(
            pyyaml(std::slice::from_ref(&v))[0] == v,
            "PyYAML read {text:?} otherwise"
        );
    }
    let v = serde_json::json!({"big": 1e20, "small": -2.5e-7});
    assert_eq!(pyyaml(std::slice::from_ref(&v))[0], v, "{}", to_yaml(&v));
}

/// Traps the first property test missed: YAML 1.1 timestamps with a
/// one-digit month or day, a multi-line string as the whole document (a
/// block scalar needs indentation), an integer above i64::MAX, and keys past
/// the 1024-character limit of implicit keys.
#[test]
fn more_traps_round_trip() {
    let values = [
        serde_json::json!({"a": "2001-1-1 1:11:11", "b": "2001-1-1t1:11:11", "2001-1-1\t1:11:11": ["2001-12-1T1:11:11Z"]}),
        serde_json::json!("line1\nline2\n"),
        serde_json::json!("line1\nline2"),
        serde_json::json!({"max": u64::MAX, "min": i64::MIN, "list": [9_223_372_036_854_775_808u64]}),
        serde_json::json!({"x".repeat(1023): 1, "y".repeat(1024): [1, 2], "z".repeat(1100): {"a": "b"}}),
        serde_json::json!([{"\u{85}".repeat(400): "v", "k": "v"}]),
    ];
    let python = pyyaml(&values);
    for (v, py) in values.iter().zip(&python) {
        let text = to_yaml(v);
        let back = parse_values(&text).map_err(|e| format!("{e:?}\n{text}")).unwrap();
        assert_eq!(back[0].value, *v, "kiln read {text:?} otherwise");
        assert_eq!(py, v, "PyYAML read {text:?} otherwise");
    }
}

/// What PyYAML (`yaml.safe_load`, YAML 1.1) reads from each document kiln
/// writes, in one Python process.
fn pyyaml(values: &[Value]) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    for (i, v) in values.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i:05}.yaml")), to_yaml(v)).unwrap();
    }
    let script = r#"
import json, os, sys, yaml
d = sys.argv[1]
out = [yaml.safe_load(open(os.path.join(d, f), "rb")) for f in sorted(os.listdir(d))]
json.dump(out, sys.stdout)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .output()
        .expect("python3 is needed");
    assert!(
        out.status.success(),
        "PyYAML (pip install pyyaml; .ci/deps installs it) failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_yaml_1_1_reader_reads_back_what_the_writer_wrote() {
    let mut runner = TestRunner::new(Config::default());
    let values: Vec<Value> = (0..2000)
        .map(|_| document().new_tree(&mut runner).unwrap().current())
        .collect();
    let read = pyyaml(&values);
    let wrong: Vec<String> = values
        .iter()
        .zip(&read)
        .filter(|(v, r)| !same(v, r))
        .take(5)
        .map(|(v, r)| format!("wrote {v}\nas\n{}\nPyYAML read {r}", to_yaml(v)))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
}
