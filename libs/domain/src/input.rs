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
        let value = serde_json::Value::deserialize(de)?;
        if value.is_null() {
            return Ok(Input::Null);
        }
        Ok(match serde_json::from_value::<T>(value) {
            Ok(v) => Input::Value(v),
            Err(_) => Input::Invalid(format!("must be {}", T::EXPECTED)),
        })
    }
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
}
