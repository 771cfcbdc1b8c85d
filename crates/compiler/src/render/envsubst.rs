//! clusterctl-style variable substitution for YAML templates under
//! `clusters/`: `${VAR}`, `${VAR:=default}`, `${VAR:-default}`; `$${` is a
//! literal `${`. Upstream cluster templates can be dropped in unchanged.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::yaml::Pos;

use super::templates::offset_pos;

/// Substitutes every variable in `text`; an unset variable without a
/// default is an error at its position.
pub(crate) fn substitute(text: &str, vars: &BTreeMap<String, String>) -> Result<String, (Pos, String)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let here = &rest[i..];
        if let Some(after) = here.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(body) = here.strip_prefix("${") else {
            out.push('$');
            rest = &here[1..];
            continue;
        };
        let offset = text.len() - here.len();
        let end = body
            .find('}')
            .ok_or_else(|| (offset_pos(text, offset), "unclosed `${`".to_string()))?;
        let expr = &body[..end];
        let (name, default) = match expr.find(":=").or_else(|| expr.find(":-")) {
            Some(j) => (&expr[..j], Some(&expr[j + 2..])),
            None => (expr, None),
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err((
                offset_pos(text, offset),
                format!("`${{{expr}}}` is not a variable reference"),
            ));
        }
        match (vars.get(name), default) {
            (Some(v), _) => out.push_str(v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                return Err((
                    offset_pos(text, offset),
                    format!("undefined variable `{name}` (set it in values or give `${{{name}:=default}}`)"),
                ))
            }
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Every scalar in `values` as a variable: camelCase path segments become
/// SCREAMING_SNAKE joined by `_` (`gcp.network.name` → `GCP_NETWORK_NAME`).
pub(crate) fn flatten_values(values: &Map<String, Value>, vars: &mut BTreeMap<String, String>) {
    fn walk(prefix: &str, value: &Value, vars: &mut BTreeMap<String, String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let name = screaming_snake(k);
                    let name = if prefix.is_empty() {
                        name
                    } else {
                        format!("{prefix}_{name}")
                    };
                    walk(&name, v, vars);
                }
            }
            Value::String(s) => {
                vars.insert(prefix.to_string(), s.clone());
            }
            Value::Number(_) | Value::Bool(_) => {
                vars.insert(prefix.to_string(), value.to_string());
            }
            Value::Null | Value::Array(_) => {}
        }
    }
    walk("", &Value::Object(values.clone()), vars);
}

/// `podCIDR` → `POD_CIDR`, `sshKeyName` → `SSH_KEY_NAME`, `ipv4` → `IPV4`.
fn screaming_snake(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase() || p.is_ascii_digit() || (p.is_ascii_uppercase() && next_lower)
            });
        if boundary || (c == '-' || c == '.') {
            out.push('_');
        }
        if c != '-' && c != '.' {
            out.push(c.to_ascii_uppercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_and_errors() {
        let vars = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(
            substitute("x: ${A} ${B:=2} ${C:-3} $${D} $x", &vars).unwrap(),
            "x: 1 2 3 ${D} $x"
        );
        let (pos, msg) = substitute("a: 1\nb: ${MISSING}\n", &vars).unwrap_err();
        assert_eq!((pos.line, pos.col), (2, 4));
        assert!(msg.contains("`MISSING`"));
    }

    #[test]
    fn names() {
        assert_eq!(screaming_snake("podCIDR"), "POD_CIDR");
        assert_eq!(screaming_snake("sshKeyName"), "SSH_KEY_NAME");
        assert_eq!(screaming_snake("machineType"), "MACHINE_TYPE");
        assert_eq!(screaming_snake("CIDRBlock"), "CIDR_BLOCK");
    }
}
