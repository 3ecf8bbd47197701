//! `Input<T>`: a request field that remembers whether it was missing, null, well-typed or
//! of the wrong type. Deserialising a body never fails on a field's type, so validation can
//! name every bad field at once instead of serde's first error.

use serde::de::{Deserialize, DeserializeOwned, Deserializer};

#[derive(Debug, Clone, Default, PartialEq)]
pub enum Input<T> {
    #[default]
    Missing,
    Null,
    Value(T),
    /// The JSON value had the wrong type; the string says what was expected.
    Invalid(String),
}

impl<'de, T: DeserializeOwned + Expected> Deserialize<'de> for Input<T> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(de)?;
        if value.is_null() {
            return Ok(Input::Null);
        }
        // PostgreSQL text cannot hold U+0000: a field carrying one would fail its query as a
        // 500, so it is a bad field like any other. Fields a body does not define are not read.
        if contains_nul(&value) {
            return Ok(Input::Invalid(
                "must not contain the NUL character (U+0000)".into(),
            ));
        }
        if value.is_f64() {
            if let Some(n) = integer(&value) {
                value = n.into();
            }
        }
        Ok(match serde_json::from_value::<T>(value) {
            Ok(v) => Input::Value(v),
            Err(_) => Input::Invalid(format!("must be {}", T::EXPECTED)),
        })
    }
}

fn contains_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(contains_nul),
        serde_json::Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

/// JSON (and JSON Schema) make no difference between `3` and `3.0`, and some clients send
/// every number as a float; a float with no fractional part that fits is that integer.
fn integral_f64(x: f64) -> Option<i64> {
    // 2^63 is exactly representable; every f64 below it in magnitude fits in an i64.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    (x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x)).then_some(x as i64)
}

/// An integer from a JSON value, `3.0` included.
pub fn integer(value: &serde_json::Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().and_then(integral_f64))
}

/// How a type is described to a client that sent the wrong one.
pub trait Expected {
    const EXPECTED: &'static str;
}

impl Expected for String {
    const EXPECTED: &'static str = "a string";
}
impl Expected for i64 {
    const EXPECTED: &'static str = "an integer";
}
impl Expected for i32 {
    const EXPECTED: &'static str = "an integer in range";
}
impl Expected for bool {
    const EXPECTED: &'static str = "a boolean";
}
impl Expected for uuid::Uuid {
    const EXPECTED: &'static str = "a UUID string";
}
impl<T: Expected> Expected for Vec<T> {
    const EXPECTED: &'static str = "an array";
}
impl Expected for serde_json::Value {
    const EXPECTED: &'static str = "a JSON value";
}

impl<T> Input<T> {
    pub fn is_missing(&self) -> bool {
        matches!(self, Input::Missing)
    }

    /// A required field: missing or null is an error, as is a wrong type.
    pub fn required(self) -> Result<T, String> {
        match self {
            Input::Value(v) => Ok(v),
            Input::Missing | Input::Null => Err("is required".into()),
            Input::Invalid(m) => Err(m),
        }
    }

    /// An optional field that may not be null: `Ok(None)` only when it is absent.
    pub fn optional(self) -> Result<Option<T>, String> {
        match self {
            Input::Value(v) => Ok(Some(v)),
            Input::Missing => Ok(None),
            Input::Null => Err("must not be null".into()),
            Input::Invalid(m) => Err(m),
        }
    }

    /// A field where absent means "leave alone" and null means "clear":
    /// `Ok(None)` absent, `Ok(Some(None))` null, `Ok(Some(Some(v)))` a value.
    pub fn patch(self) -> Result<Option<Option<T>>, String> {
        match self {
            Input::Value(v) => Ok(Some(Some(v))),
            Input::Missing => Ok(None),
            Input::Null => Ok(Some(None)),
            Input::Invalid(m) => Err(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default)]
        a: Input<String>,
        #[serde(default)]
        b: Input<i64>,
        #[serde(default)]
        c: Input<bool>,
    }

    #[test]
    fn keeps_every_state() {
        let b: Body = serde_json::from_str(r#"{"a": 5, "b": null}"#).unwrap();
        assert_eq!(b.a, Input::Invalid("must be a string".into()));
        assert_eq!(b.b, Input::Null);
        assert_eq!(b.c, Input::Missing);
        assert!(b.a.required().is_err());
        assert_eq!(b.b.patch(), Ok(Some(None)));
        assert_eq!(b.c.optional(), Ok(None));
    }

    #[test]
    fn nul_characters_make_a_field_invalid() {
        let b: Body = serde_json::from_str(r#"{"a": "x\u0000", "b": 1}"#).unwrap();
        assert!(matches!(b.a, Input::Invalid(m) if m.contains("U+0000")));
        assert_eq!(b.b, Input::Value(1));
        let list: Input<Vec<serde_json::Value>> =
            serde_json::from_str(r#"["ok", {"k": ["\u0000"]}]"#).unwrap();
        assert!(matches!(list, Input::Invalid(_)));
        // An escaped backslash followed by "u0000" is six ordinary characters.
        let b: Body = serde_json::from_str(r#"{"a": "\\u0000"}"#).unwrap();
        assert_eq!(b.a, Input::Value("\\u0000".into()));
        // Fields the body does not define are never read.
        let b: Body = serde_json::from_str(r#"{"x\u0000": "\u0000", "a": "fine"}"#).unwrap();
        assert_eq!(b.a, Input::Value("fine".into()));
    }

    #[test]
    fn integral_floats_are_integers() {
        let b: Body = serde_json::from_str(r#"{"b": 3.0}"#).unwrap();
        assert_eq!(b.b, Input::Value(3));
        let b: Body = serde_json::from_str(r#"{"b": -1e3}"#).unwrap();
        assert_eq!(b.b, Input::Value(-1000));
        for bad in ["3.5", "1e19", "-1e19", "9223372036854775808.0"] {
            let b: Body = serde_json::from_str(&format!(r#"{{"b": {bad}}}"#)).unwrap();
            assert!(matches!(b.b, Input::Invalid(_)), "{bad}");
        }
        assert_eq!(integer(&serde_json::json!(i64::MIN as f64)), Some(i64::MIN));
        assert_eq!(integer(&serde_json::json!(i64::MAX)), Some(i64::MAX));
        assert_eq!(integer(&serde_json::json!("3")), None);
    }
}
