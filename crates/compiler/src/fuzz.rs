//! Fuzz targets for the parsers and transforms a pull request feeds: the
//! YAML reader, the value merge, clusterctl substitution, address parsing
//! and RFC 6902 / merge patches. Property-based (proptest, on stable Rust):
//! each target runs `KILN_FUZZ_CASES` random inputs (default 2,000; `make
//! fuzz` runs many more) and checks that nothing panics and that what is
//! returned keeps its promise. A failure shrinks to its smallest input;
//! each one found becomes a regression case below.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};

use crate::load::kinds::PatchOp;
use crate::merge::{merge, Layer};
use crate::render::{envsubst, patch};
use crate::resolve::net::{parse_ip, IpNet};
use crate::yaml::{parse_documents, to_yaml, Document};

fn runner() -> TestRunner {
    let cases = std::env::var("KILN_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2000);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// Text that looks like YAML more often than random bytes would.
fn yamlish() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "a",
        "b: ",
        "- ",
        "\n",
        "  ",
        "{",
        "}",
        "[",
        "]",
        ",",
        "&x ",
        "*x",
        "<<: ",
        "!!str ",
        "'",
        "\"",
        "|",
        ">",
        "---\n",
        "...\n",
        "#",
        "\t",
        ":",
        "? ",
        "1",
        "0x1F",
        "true",
        "null",
        "~",
        "é",
        "\u{feff}",
        "\r\n",
        "%YAML 1.2\n",
    ]);
    prop_oneof![
        prop::collection::vec(atoms, 0..40).prop_map(|parts| parts.concat()),
        any::<String>(),
    ]
}

/// Positions an error points at lie within the text (so the caret lands
/// on a line that exists).
#[test]
fn the_yaml_reader_never_panics_and_points_inside_the_text() {
    runner()
        .run(&yamlish(), |text| {
            if let Err(e) = parse_documents(&text) {
                let lines = text.split('\n').count() as u32;
                prop_assert!(e.pos.line >= 1 && e.pos.line <= lines + 1, "{:?} in {:?}", e.pos, text);
            }
            Ok(())
        })
        .unwrap();
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        "[a-c]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-c]{1,2}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn object() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-c]{1,2}", json_value(), 0..4).prop_map(|m| m.into_iter().collect())
}

/// The merge: the last layer wins for every key it sets to a non-null
/// scalar, and `null` removes.
#[test]
fn the_merge_never_panics_and_the_top_layer_wins() {
    runner()
        .run(&(object(), object()), |(low, high)| {
            let layer = |name: &str, m: &Map<String, Value>| Layer {
                name: name.into(),
                file: name.into(),
                doc: Document::from_value(Value::Object(m.clone())),
            };
            let merged = merge(&[layer("low", &low), layer("high", &high)]);
            for (k, v) in &high {
                match v {
                    Value::Null => prop_assert!(!merged.contains_key(k)),
                    Value::Object(_) => {}
                    v => prop_assert_eq!(merged.get(k), Some(v)),
                }
            }
            Ok(())
        })
        .unwrap();
}

/// clusterctl substitution: never panics; text without `$` is unchanged.
#[test]
fn substitution_never_panics() {
    let vars: BTreeMap<String, String> =
        [("A".to_string(), "x".to_string()), ("B_C".to_string(), String::new())].into();
    let text = prop::collection::vec(
        prop::sample::select(vec![
            "$", "{", "}", "A", "B_C", ":=", ":-", ":?", "$$", "x", "\n", "${", "é",
        ]),
        0..20,
    )
    .prop_map(|p| p.concat());
    runner()
        .run(&text, |text| {
            let out = envsubst::substitute(&text, &vars);
            if !text.contains('$') {
                prop_assert_eq!(out.ok(), Some(text.clone()));
            }
            Ok(())
        })
        .unwrap();
}

/// Address parsing: never panics; what parses prints back as it reads.
#[test]
fn address_parsing_never_panics_and_round_trips() {
    let text = prop_oneof![
        "[0-9./:a-fA-F-]{0,20}",
        (any::<[u8; 4]>(), 0u8..40).prop_map(|(o, p)| format!("{}.{}.{}.{}/{p}", o[0], o[1], o[2], o[3])),
        any::<[u8; 6]>().prop_map(|m| m.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join("-")),
    ];
    runner()
        .run(&text, |text| {
            if let Ok(net) = IpNet::parse(&text) {
                prop_assert_eq!(IpNet::parse(&net.to_string()).ok(), Some(net));
            }
            if let Ok(ip) = parse_ip(&text) {
                prop_assert_eq!(ip.to_string().parse().ok(), Some(ip));
            }
            if let Some(mac) = kiln_plan::Mac::parse(&text) {
                prop_assert_eq!(kiln_plan::Mac::parse(&mac.to_string()), Some(mac));
            }
            Ok(())
        })
        .unwrap();
}

/// RFC 6902 and merge patches: never panic, and a failed operation says
/// which one.
#[test]
fn patches_never_panic() {
    let pointer = prop::collection::vec(
        prop::sample::select(vec!["a", "b", "0", "1", "-", "~0", "~1", ""]),
        0..4,
    )
    .prop_map(|parts| parts.iter().map(|p| format!("/{p}")).collect::<String>());
    let op = (
        prop::sample::select(vec!["add", "remove", "replace", "move", "copy", "test"]),
        pointer.clone(),
        pointer,
        json_value(),
    )
        .prop_map(|(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}));
    runner()
        .run(
            &(json_value(), prop::collection::vec(op, 0..4), json_value()),
            |(target, ops, merge_patch)| {
                let ops: Vec<PatchOp> = ops.into_iter().filter_map(|o| serde_json::from_value(o).ok()).collect();
                let mut doc = target.clone();
                if let Err((i, _)) = patch::apply_ops(&mut doc, &ops) {
                    prop_assert!(i < ops.len());
                }
                let mut doc = target;
                patch::merge(&mut doc, &merge_patch);
                Ok(())
            },
        )
        .unwrap();
}

/// What the writer writes, the reader reads (the property test against
/// PyYAML is in tests/yaml_roundtrip.rs).
#[test]
fn written_yaml_reads_back() {
    runner()
        .run(&object(), |m| {
            let v = Value::Object(m);
            let back = parse_documents(&to_yaml(&v)).map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(&back[0].value, &v);
            Ok(())
        })
        .unwrap();
}
