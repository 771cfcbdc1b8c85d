//! YAML 1.2 (core schema) reader that keeps the source position of every node.
//!
//! Documents are read into `serde_json::Value`s (key order preserved) plus a
//! side table from JSON pointer to position, so schema errors, merge
//! provenance and reference errors can all point back at `file:line:column`.
//! Aliases are expanded under a node budget (alias bombs fail), duplicate
//! keys are errors, and quoted scalars are always strings.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

/// A 1-based line and column in a source file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    fn from_span(span: &Span) -> Pos {
        Pos {
            line: span.start.line() as u32,
            col: span.start.col() as u32 + 1,
        }
    }
}

/// Where a node sits: the position of its value and, for a mapping entry,
/// of its key.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Located {
    pub key: Option<Pos>,
    pub value: Pos,
}

/// One YAML document with the position of every node, by JSON pointer.
#[derive(Clone, Debug, Default)]
pub struct Document {
    pub value: Value,
    pub pos: Pos,
    positions: HashMap<String, Located>,
}

impl Document {
    /// A document made in memory (e.g. from `--set`), with no positions.
    pub fn from_value(value: Value) -> Document {
        Document {
            value,
            ..Document::default()
        }
    }

    /// Position of the node at `pointer`, or of its nearest ancestor.
    /// Points at the key of a mapping entry when `prefer_key` is set.
    pub fn locate(&self, pointer: &str, prefer_key: bool) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(loc) = self.positions.get(p) {
                return match (prefer_key, loc.key) {
                    (true, Some(key)) => key,
                    _ => loc.value,
                };
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return self.pos,
            }
        }
    }

    /// The sub-document at `pointer`: its value with positions re-rooted, so
    /// a section (e.g. `/spec/values`) can be handled as a document of its own.
    pub fn section(&self, pointer: &str) -> Option<Document> {
        let value = self.value.pointer(pointer)?.clone();
        let positions = self
            .positions
            .iter()
            .filter_map(|(k, v)| {
                let rest = k.strip_prefix(pointer)?;
                (rest.is_empty() || rest.starts_with('/')).then(|| (rest.to_string(), *v))
            })
            .collect();
        Some(Document {
            value,
            pos: self.locate(pointer, false),
            positions,
        })
    }
}

/// A YAML syntax or structure error at a position.
#[derive(Debug)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Most nodes one file may expand to, counting alias expansions.
const NODE_BUDGET: usize = 1_000_000;

/// Reads every document of a YAML stream, with the position of every node.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    read(text, true)
}

/// Reads every document of a YAML stream that kiln wrote itself (rendered
/// templates, the IPAM lock): only document positions are kept.
pub fn parse_values(text: &str) -> Result<Vec<Document>, YamlError> {
    read(text, false)
}

fn read(text: &str, track: bool) -> Result<Vec<Document>, YamlError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
        track,
    };
    let mut docs = Vec::new();
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => return Ok(docs),
            Event::DocumentStart(_) => {
                let (event, span) = reader.next()?;
                if matches!(event, Event::DocumentEnd) {
                    continue;
                }
                let mut doc = Document {
                    pos: Pos::from_span(&span),
                    ..Document::default()
                };
                let mut pointer = String::new();
                doc.value = reader.node(event, span, &mut pointer, &mut doc.positions)?;
                doc.positions.insert(
                    String::new(),
                    Located {
                        key: None,
                        value: doc.pos,
                    },
                );
                docs.push(doc);
            }
            other => {
                return Err(YamlError {
                    pos: Pos::from_span(&span),
                    message: format!("unexpected YAML event {other:?}"),
                })
            }
        }
    }
}

struct Reader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, (Value, usize)>,
    nodes: usize,
    /// Whether to record the position of every node.
    track: bool,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), YamlError> {
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(YamlError {
                pos: Pos {
                    line: e.marker().line() as u32,
                    col: e.marker().col() as u32 + 1,
                },
                message: e.info().to_string(),
            }),
            None => Err(YamlError {
                pos: Pos::default(),
                message: "unexpected end of YAML stream".into(),
            }),
        }
    }

    fn count(&mut self, n: usize, span: &Span) -> Result<(), YamlError> {
        self.nodes += n;
        if self.nodes > NODE_BUDGET {
            return Err(YamlError {
                pos: Pos::from_span(span),
                message: format!("document expands to more than {NODE_BUDGET} nodes (alias bomb?)"),
            });
        }
        Ok(())
    }

    fn node(
        &mut self,
        event: Event<'a>,
        span: Span,
        pointer: &mut String,
        positions: &mut HashMap<String, Located>,
    ) -> Result<Value, YamlError> {
        self.count(1, &span)?;
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, tag) => {
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                (scalar(&text, style, tag.as_deref(), &span)?, anchor)
            }
            Event::Alias(id) => {
                let (value, size) = self.anchors.get(&id).cloned().ok_or_else(|| YamlError {
                    pos: Pos::from_span(&span),
                    message: "alias to an unknown anchor".into(),
                })?;
                self.count(size, &span)?;
                (value, 0)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let len = pointer.len();
                    if self.track {
                        use std::fmt::Write;
                        let _ = write!(pointer, "/{}", items.len());
                    }
                    let pos = Pos::from_span(&span);
                    items.push(self.node(event, span, pointer, positions)?);
                    if self.track {
                        positions.insert(pointer.clone(), Located { key: None, value: pos });
                    }
                    pointer.truncate(len);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                loop {
                    let (event, key_span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key_pos = Pos::from_span(&key_span);
                    let key = match event {
                        Event::Scalar(text, ..) => text.into_owned(),
                        _ => {
                            return Err(YamlError {
                                pos: key_pos,
                                message: "mapping keys must be scalars".into(),
                            })
                        }
                    };
                    if map.contains_key(&key) {
                        return Err(YamlError {
                            pos: key_pos,
                            message: format!("duplicate key `{key}`"),
                        });
                    }
                    let (event, span) = self.next()?;
                    let len = pointer.len();
                    if self.track {
                        pointer.push('/');
                        pointer.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    }
                    let value_pos = Pos::from_span(&span);
                    let value = self.node(event, span, pointer, positions)?;
                    if self.track {
                        positions.insert(
                            pointer.clone(),
                            Located {
                                key: Some(key_pos),
                                value: value_pos,
                            },
                        );
                    }
                    pointer.truncate(len);
                    map.insert(key, value);
                }
                (Value::Object(map), anchor)
            }
            other => {
                return Err(YamlError {
                    pos: Pos::from_span(&span),
                    message: format!("unexpected YAML event {other:?}"),
                })
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, (value.clone(), node_count(&value)));
        }
        Ok(value)
    }
}

fn node_count(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(node_count).sum::<usize>(),
        Value::Object(map) => 1 + map.values().map(node_count).sum::<usize>(),
        _ => 1,
    }
}

/// Resolves a scalar by the YAML 1.2 core schema; quoted scalars and
/// `!!str` are strings.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>, span: &Span) -> Result<Value, YamlError> {
    if style != ScalarStyle::Plain || tag == Some("tag:yaml.org,2002:str") || tag == Some("!!str") {
        return Ok(Value::String(text.to_string()));
    }
    Ok(match text {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        _ => match number(text) {
            Some(Ok(n)) => Value::Number(n),
            Some(Err(())) => {
                return Err(YamlError {
                    pos: Pos::from_span(span),
                    message: format!("number `{text}` cannot be represented (quote it to keep it a string)"),
                })
            }
            None => Value::String(text.to_string()),
        },
    })
}

/// `None` when `text` is not a core-schema number; `Err` when it is one
/// that JSON cannot hold (inf, nan).
fn number(text: &str) -> Option<Result<Number, ()>> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'-' => (-1i64, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    let radix = |prefix: &str, radix: u32| {
        digits
            .strip_prefix(prefix)
            .filter(|d| !d.is_empty() && sign == 1 && digits.len() == text.len())
            .and_then(|d| i64::from_str_radix(d, radix).ok())
    };
    if let Some(n) = radix("0x", 16).or_else(|| radix("0o", 8)) {
        return Some(Ok(Number::from(n)));
    }
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // An integer too big for i64 may still fit u64 before it falls back
        // to a float.
        return Some(match (text.parse::<i64>(), text.parse::<u64>()) {
            (Ok(n), _) => Ok(Number::from(n)),
            (_, Ok(n)) => Ok(Number::from(n)),
            _ => text.parse::<f64>().ok().and_then(Number::from_f64).ok_or(()),
        });
    }
    if matches!(digits, ".inf" | ".Inf" | ".INF" | ".nan" | ".NaN" | ".NAN") {
        return Some(Err(()));
    }
    let float_like = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.bytes().next().is_some_and(|b| b.is_ascii_digit() || b == b'.');
    if float_like {
        return text.parse::<f64>().ok().map(|f| Number::from_f64(f).ok_or(()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_scalars() {
        let docs = parse_documents("a: 1\nb: '1'\nc: no\nd: 0x1f\ne: 1.5\nf: ~\ng: 0755\nh: 1_000\n").unwrap();
        let v = &docs[0].value;
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"], "1");
        assert_eq!(v["c"], "no");
        assert_eq!(v["d"], 31);
        assert_eq!(v["e"], 1.5);
        assert!(v["f"].is_null());
        assert_eq!(v["g"], 755);
        assert_eq!(v["h"], "1_000");
    }

    #[test]
    fn positions_and_duplicates() {
        let docs = parse_documents("---\nspec:\n  list:\n    - x: 1\n---\nk: v\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].locate("/spec/list/0/x", true), Pos { line: 4, col: 7 });
        assert_eq!(docs[0].locate("/spec/list/0/x", false), Pos { line: 4, col: 10 });
        let err = parse_documents("a: 1\na: 2\n").unwrap_err();
        assert_eq!(
            (err.pos, err.message.as_str()),
            (Pos { line: 2, col: 1 }, "duplicate key `a`")
        );
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse_documents(&text).unwrap_err().message.contains("alias bomb"));
    }
}
