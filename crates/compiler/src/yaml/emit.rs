//! Deterministic YAML writer for rendered manifests.
//!
//! Block style, two-space indentation, keys in the order the value holds
//! them. Any string a YAML 1.1 or 1.2 reader could take for something else
//! (`no`, `on`, `0755`, `1e3`, dates, `null`) is double-quoted, so what Flux,
//! kubectl or Python read back is exactly the string that was rendered.

use serde_json::Value;

/// Writes one document (no `---` marker), ending in a newline.
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_seq(&mut out, items, 0),
        // A top-level block scalar is indented too: YAML 1.1 readers
        // require it.
        scalar => {
            write_scalar(&mut out, scalar, 2);
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (key, value)) in map.iter().enumerate() {
        // The first key of a map inside a sequence item sits after "- ".
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        let mut written = String::new();
        write_string(&mut written, key, indent, true);
        if written.chars().count() < IMPLICIT_KEY_LIMIT {
            out.push_str(&written);
        } else {
            out.push_str("? ");
            out.push_str(&written);
            out.push('\n');
            pad(out, indent);
        }
        out.push(':');
        write_child(out, value, indent);
    }
}

/// YAML readers look for the `:` of an implicit key within 1024
/// characters; a longer key is written explicitly (`? key` then `: value`).
const IMPLICIT_KEY_LIMIT: usize = 1024;

fn write_seq(out: &mut String, items: &[Value], indent: usize) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 || !out.ends_with("- ") {
            pad(out, indent);
        }
        out.push_str("- ");
        match item {
            Value::Object(map) if !map.is_empty() => write_map(out, map, indent + 2),
            Value::Array(inner) if !inner.is_empty() => write_seq(out, inner, indent + 2),
            scalar => {
                write_scalar(out, scalar, indent + 2);
                out.push('\n');
            }
        }
    }
}

/// The value after `key:`: nested collections on the next lines, scalars inline.
fn write_child(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_seq(out, items, indent + 2);
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar, indent + 2);
            out.push('\n');
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn write_scalar(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => write_string(out, s, indent, false),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// A number as both YAML 1.2 and YAML 1.1 readers take it: a float in
/// exponent form gets a dot and a signed exponent (`1.0e+20`), which
/// YAML 1.1 requires.
fn write_number(out: &mut String, n: &serde_json::Number) {
    let text = n.to_string();
    match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) if n.is_f64() => {
            let dot = if mantissa.contains('.') { "" } else { ".0" };
            let sign = if exponent.starts_with(['-', '+']) { "" } else { "+" };
            out.push_str(&format!("{mantissa}{dot}e{sign}{exponent}"));
        }
        _ => out.push_str(&text),
    }
}

fn write_string(out: &mut String, s: &str, indent: usize, is_key: bool) {
    if !is_key && s.contains('\n') && literal_block_ok(s) {
        out.push('|');
        if !s.ends_with('\n') {
            out.push('-');
        }
        let body = s.strip_suffix('\n').unwrap_or(s);
        for line in body.split('\n') {
            out.push('\n');
            if !line.is_empty() {
                pad(out, indent);
                out.push_str(line);
            }
        }
        return;
    }
    if needs_quotes(s) {
        write_double_quoted(out, s);
    } else {
        out.push_str(s);
    }
}

/// A double-quoted scalar with every character a reader could take for a
/// line break or drop escaped (`\N`, `\L`, `\P` for U+0085, U+2028, U+2029).
fn write_double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !printable(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Characters YAML allows raw in a scalar (its `c-printable`), less the
/// ones YAML 1.1 reads as line breaks and the byte-order mark.
fn printable(c: char) -> bool {
    !(c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}'))
}

/// A literal block keeps text verbatim unless its first line starts with a
/// space, it ends in more than one line break (keep-chomping is where
/// readers disagree), or it holds characters YAML does not allow raw.
fn literal_block_ok(s: &str) -> bool {
    !s.starts_with([' ', '\t', '\n'])
        && !s.ends_with("\n\n")
        && !s.contains('\r')
        && s.chars().all(|c| c == '\n' || c == '\t' || printable(c))
        && !s.lines().any(|l| l.ends_with([' ', '\t']) && l.trim().is_empty())
}

fn needs_quotes(s: &str) -> bool {
    if s.is_empty() || s != s.trim() {
        return true;
    }
    let first = s.chars().next().expect("not empty");
    // A leading `-` is only special as "- " or alone (numbers are caught
    // below); the other indicators always are.
    let plain_dash = first == '-' && s.len() > 1 && !s.starts_with("- ");
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) && !plain_dash {
        return true;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') || s.chars().any(|c| !printable(c) || c == '\u{85}') {
        return true;
    }
    // Document markers, and a tab anywhere (YAML 1.1 readers differ on it).
    if s.starts_with("---") || s.starts_with("...") || s.contains('\t') {
        return true;
    }
    let lower = s.to_ascii_lowercase();
    // `<<` (merge) and `=` (value) are keys of their own in YAML 1.1.
    let reserved = [
        "null", "~", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", "-.inf", "+.inf", ".nan", "<<", "=",
    ];
    let unsigned = lower.trim_start_matches(['+', '-']);
    reserved.contains(&lower.as_str()) || matches!(unsigned, ".inf" | ".nan") || looks_numeric(s) || looks_like_date(s)
}

/// Anything a YAML 1.1 or 1.2 reader might take for a number: digits with
/// signs, dots, exponents, underscores, `0x`/`0o`/`0b` prefixes, sexagesimal.
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let starts_numeric = body.starts_with(|c: char| c.is_ascii_digit()) || (body.starts_with('.') && body.len() > 1);
    starts_numeric
        && body
            .chars()
            .all(|c| c.is_ascii_hexdigit() || matches!(c, '.' | '_' | ':' | 'x' | 'o' | 'X' | 'O' | '+' | '-'))
}

fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    let long_form = b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-';
    long_form || looks_like_short_timestamp(s)
}

/// YAML 1.1's timestamp with a one-digit month or day and a time
/// (`2001-1-1 1:11:11`, `2001-1-1t1:11:11`): `YYYY-M-D` then `T`, `t` or
/// blanks.
fn looks_like_short_timestamp(s: &str) -> bool {
    let mut parts = s.splitn(3, '-');
    let (Some(year), Some(month), Some(rest)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits =
        |t: &str, n: std::ops::RangeInclusive<usize>| n.contains(&t.len()) && t.bytes().all(|b| b.is_ascii_digit());
    let day_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    digits(year, 4..=4)
        && digits(month, 1..=2)
        && (1..=2).contains(&day_len)
        && rest[day_len..].starts_with(['T', 't', ' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quotes_ambiguous_strings() {
        let v = json!({"a": "no", "b": "0755", "c": "1e3", "d": "2024-01-01", "e": "plain", "f": "", "g": "x: y", "h": "-v", "i": "-1"});
        assert_eq!(
            to_yaml(&v),
            "a: \"no\"\nb: \"0755\"\nc: \"1e3\"\nd: \"2024-01-01\"\ne: plain\nf: \"\"\ng: \"x: y\"\nh: -v\ni: \"-1\"\n"
        );
    }

    #[test]
    fn nested_and_blocks_round_trip() {
        let v = json!({"spec": {"list": [{"name": "a", "v": [1, 2]}, "s", []], "text": "line1\nline2\n", "empty": {}}});
        let text = to_yaml(&v);
        assert_eq!(
            text,
            "spec:\n  list:\n    - name: a\n      v:\n        - 1\n        - 2\n    - s\n    - []\n  text: |\n    line1\n    line2\n  empty: {}\n"
        );
        let back = crate::yaml::parse::parse_documents(&text).unwrap();
        assert_eq!(back[0].value, v);
    }
}
