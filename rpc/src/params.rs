//! Route arguments: their declared kinds, and their decoding from JSON-RPC
//! params (named object or positional array) and from URI query strings,
//! following CometBFT's `libs/json` decoding and its URI rules.

use base64::Engine as _;
use serde_json::Value;

/// The Go type of an argument, which decides how it is decoded.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArgKind {
    /// `int64`/`int` (pointer or not): a JSON string of digits (numbers are
    /// also accepted); in a URI, bare digits.
    Int,
    /// `bool`.
    Bool,
    /// `string`.
    Str,
    /// `[]byte` (e.g. `types.Tx`): base64 in JSON.
    Bytes,
    /// `bytes.HexBytes` (e.g. abci_query `data`): hex in JSON.
    HexBytes,
}

impl ArgKind {
    fn go_kind(self) -> &'static str {
        match self {
            ArgKind::Int => "int64",
            ArgKind::Bool => "bool",
            ArgKind::Str => "string",
            ArgKind::Bytes | ArgKind::HexBytes => "slice",
        }
    }
}

/// A declared argument of a route.
#[derive(Clone, Copy, Debug)]
pub struct Param {
    /// Argument name.
    pub name: &'static str,
    /// Its kind.
    pub kind: ArgKind,
}

/// A decoded argument value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ArgValue {
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
}

/// The decoded arguments of one call; an argument left out, `null` or empty
/// is absent (Go's zero value / nil pointer).
#[derive(Clone, Debug, Default)]
pub struct Args {
    values: Vec<(&'static str, Option<ArgValue>)>,
    /// Whether params were supplied at all (CometBFT does not cache calls
    /// without params to routes with default-sensitive arguments).
    pub supplied: bool,
}

impl Args {
    fn get(&self, name: &str) -> Option<&ArgValue> {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.as_ref())
    }

    /// Whether `name` was given a non-zero value.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// An integer argument, `None` when absent.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(ArgValue::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// A boolean argument, `false` when absent.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.get(name), Some(ArgValue::Bool(true)))
    }

    /// A string argument, empty when absent.
    pub fn string(&self, name: &str) -> String {
        match self.get(name) {
            Some(ArgValue::Str(s)) => s.clone(),
            _ => String::new(),
        }
    }

    /// A bytes argument, empty when absent.
    pub fn bytes(&self, name: &str) -> Vec<u8> {
        match self.get(name) {
            Some(ArgValue::Bytes(b)) => b.clone(),
            _ => Vec::new(),
        }
    }
}

/// Why arguments could not be decoded; the text becomes the error's `data`.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParamsError(pub String);

fn err(msg: impl Into<String>) -> ParamsError {
    ParamsError(msg.into())
}

/// Decodes one JSON value as CometBFT's `libs/json` would for `kind`.
fn from_json(kind: ArgKind, v: &Value) -> Result<Option<ArgValue>, ParamsError> {
    if v.is_null() {
        return Ok(None);
    }
    let value = match (kind, v) {
        (ArgKind::Int, Value::String(s)) => ArgValue::Int(
            s.parse::<i64>()
                .map_err(|e| err(format!("invalid 64-bit integer {s:?}: {e}")))?,
        ),
        (ArgKind::Int, Value::Number(n)) => ArgValue::Int(
            n.as_i64()
                .ok_or_else(|| err(format!("invalid 64-bit integer encoding {n}")))?,
        ),
        (ArgKind::Bool, Value::Bool(b)) => ArgValue::Bool(*b),
        (ArgKind::Str, Value::String(s)) => ArgValue::Str(s.clone()),
        (ArgKind::Bytes, Value::String(s)) => ArgValue::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| err(format!("illegal base64 data: {e}")))?,
        ),
        (ArgKind::HexBytes, Value::String(s)) => ArgValue::Bytes(
            hex::decode(s).map_err(|e| err(format!("invalid hex string {s:?}: {e}")))?,
        ),
        (kind, other) => {
            return Err(err(format!(
                "cannot unmarshal {} into Go value of type {}",
                json_type(other),
                kind.go_kind()
            )))
        }
    };
    Ok(Some(value))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decodes JSON-RPC `params` (absent, `null`, an object by name, or an
/// array by position) for the declared arguments.
pub fn from_json_params(decl: &[Param], params: Option<&Value>) -> Result<Args, ParamsError> {
    let mut args = Args {
        values: Vec::with_capacity(decl.len()),
        supplied: params.is_some(),
    };
    match params {
        None | Some(Value::Null) => {
            args.values.extend(decl.iter().map(|p| (p.name, None)));
        }
        Some(Value::Object(map)) => {
            for p in decl {
                let v = match map.get(p.name) {
                    Some(v) => from_json(p.kind, v)?,
                    None => None,
                };
                args.values.push((p.name, v));
            }
        }
        Some(Value::Array(items)) => {
            if items.len() != decl.len() {
                let names: Vec<_> = decl.iter().map(|p| p.name).collect();
                return Err(err(format!(
                    "expected {} parameters ({:?}), got {}",
                    decl.len(),
                    names,
                    items.len()
                )));
            }
            for (p, v) in decl.iter().zip(items) {
                args.values.push((p.name, from_json(p.kind, v)?));
            }
        }
        Some(other) => {
            return Err(err(format!(
                "unknown type for JSON params: {}. Expected map or array",
                json_type(other)
            )))
        }
    }
    Ok(args)
}

/// Decodes one URI argument by CometBFT's rules: digits for integers,
/// `0x..` hex for bytes and strings, `"quoted"` raw bytes, else JSON.
fn from_uri(kind: ArgKind, arg: &str) -> Result<Option<ArgValue>, ParamsError> {
    let is_int = {
        let digits = arg.strip_prefix('-').unwrap_or(arg);
        !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
    };
    let is_quoted = arg.len() >= 2 && arg.starts_with('"') && arg.ends_with('"');
    let is_hex = arg.len() >= 2 && arg.as_bytes()[..2].eq_ignore_ascii_case(b"0x");

    if is_int && kind == ArgKind::Int {
        return from_json(kind, &Value::String(arg.to_owned()));
    }
    if is_hex {
        let bytes = match kind {
            ArgKind::Str | ArgKind::Bytes | ArgKind::HexBytes => {
                hex::decode(&arg[2..]).map_err(|e| err(format!("encoding/hex: {e}")))?
            }
            other => {
                return Err(err(format!(
                    "got a hex string arg, but expected '{}'",
                    other.go_kind()
                )))
            }
        };
        return Ok(Some(if kind == ArgKind::Str {
            ArgValue::Str(
                String::from_utf8(bytes).map_err(|_| err("hex string arg is not valid UTF-8"))?,
            )
        } else {
            ArgValue::Bytes(bytes)
        }));
    }
    if is_quoted && matches!(kind, ArgKind::Bytes | ArgKind::HexBytes) {
        let s: String = serde_json::from_str(arg).map_err(|e| err(e.to_string()))?;
        return Ok(Some(ArgValue::Bytes(s.into_bytes())));
    }
    let v: Value = serde_json::from_str(arg).map_err(|e| err(e.to_string()))?;
    from_json(kind, &v)
}

/// Decodes a raw URI query string (`a=1&b=%22x%22`) for the declared
/// arguments; the first value of a name wins, empty values are absent.
pub fn from_query(decl: &[Param], query: Option<&str>) -> Result<Args, ParamsError> {
    let pairs = query.map(parse_query).unwrap_or_default();
    let mut args = Args {
        values: Vec::with_capacity(decl.len()),
        supplied: true,
    };
    for p in decl {
        let raw = pairs
            .iter()
            .find(|(k, _)| k == p.name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let v = if raw.is_empty() {
            None
        } else {
            from_uri(p.kind, raw)?
        };
        args.values.push((p.name, v));
    }
    Ok(args)
}

/// Splits and percent-decodes a query string as Go's `url.ParseQuery` does
/// (`+` is a space; pairs with bad escapes or `;` are skipped).
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|kv| !kv.is_empty() && !kv.contains(';'))
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((unescape(k)?, unescape(v)?))
        })
        .collect()
}

fn unescape(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECL: &[Param] = &[
        Param {
            name: "path",
            kind: ArgKind::Str,
        },
        Param {
            name: "data",
            kind: ArgKind::HexBytes,
        },
        Param {
            name: "height",
            kind: ArgKind::Int,
        },
        Param {
            name: "prove",
            kind: ArgKind::Bool,
        },
    ];

    #[test]
    fn uri_rules() {
        let a = from_query(
            DECL,
            Some("path=%22/store%22&data=%22k1%22&height=5&prove=true"),
        )
        .expect("valid");
        assert_eq!(a.string("path"), "/store");
        assert_eq!(a.bytes("data"), b"k1");
        assert_eq!(a.int("height"), Some(5));
        assert!(a.bool("prove"));
        let a = from_query(DECL, Some("data=0x6B31")).expect("valid");
        assert_eq!(a.bytes("data"), b"k1");
        assert!(from_query(DECL, Some("height=0x10")).is_err());
        assert!(from_query(DECL, Some("height=abc")).is_err());
        assert!(from_query(DECL, Some("data=0xZZ")).is_err());
        assert!(from_query(DECL, Some("path=%ZZ"))
            .expect("skipped")
            .string("path")
            .is_empty());
    }

    #[test]
    fn json_rules() {
        let v: Value = serde_json::json!({"data": "6b31", "height": "7"});
        let a = from_json_params(DECL, Some(&v)).expect("valid");
        assert_eq!(a.bytes("data"), b"k1");
        assert_eq!(a.int("height"), Some(7));
        let v: Value = serde_json::json!(["/p", "6B31", "3", false]);
        let a = from_json_params(DECL, Some(&v)).expect("valid");
        assert_eq!(a.string("path"), "/p");
        assert!(from_json_params(DECL, Some(&serde_json::json!([1]))).is_err());
        assert!(from_json_params(DECL, Some(&serde_json::json!({"height": "x"}))).is_err());
        assert!(from_json_params(DECL, Some(&serde_json::json!(5))).is_err());
    }
}
