//! Field validation that collects every bad field instead of stopping at the first.

use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request, as reported in a problem's `errors` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A checked value, or every reason it was refused. Parse, don't validate: a handler gets
/// its input's values only once every field has passed, so no "validated but missing"
/// state can be written down.
pub type Checked<T> = Result<T, Vec<FieldError>>;

/// One field's check, its message put under the field's name.
pub fn field<T>(name: &str, result: Result<T, String>) -> Checked<T> {
    result.map_err(|message| vec![FieldError::new(name, message)])
}

/// A rule with no value of its own: `Err` under `name` when `broken`.
pub fn rule(name: &str, broken: bool, message: &str) -> Checked<()> {
    if broken {
        Err(vec![FieldError::new(name, message)])
    } else {
        Ok(())
    }
}

/// Combines checks: all the values when every one passed, else all of their errors, in
/// order (so a request hears about every bad field at once).
pub trait AllValid {
    type Values;
    fn all_valid(self) -> Checked<Self::Values>;
}

macro_rules! all_valid_for_tuples {
    ($( ($($t:ident $v:ident),+) )*) => {$(
        impl<$($t),+> AllValid for ($(Checked<$t>,)+) {
            type Values = ($($t,)+);
            fn all_valid(self) -> Checked<Self::Values> {
                match self {
                    ($(Ok($v),)+) => Ok(($($v,)+)),
                    ($($v,)+) => {
                        let mut errors = Vec::new();
                        $(if let Err(e) = $v { errors.extend(e); })+
                        Err(errors)
                    }
                }
            }
        }
    )*};
}

all_valid_for_tuples! {
    (A a)
    (A a, B b)
    (A a, B b, C c)
    (A a, B b, C c, D d)
    (A a, B b, C c, D d, E e)
    (A a, B b, C c, D d, E e, F f)
    (A a, B b, C c, D d, E e, F f, G g)
    (A a, B b, C c, D d, E e, F f, G g, H h)
    (A a, B b, C c, D d, E e, F f, G g, H h, I i)
}

impl<T> AllValid for Vec<Checked<T>> {
    type Values = Vec<T>;
    fn all_valid(self) -> Checked<Vec<T>> {
        let mut values = Vec::with_capacity(self.len());
        let mut errors = Vec::new();
        for item in self {
            match item {
                Ok(v) => values.push(v),
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(values)
        } else {
            Err(errors)
        }
    }
}

/// Characters, not bytes: limits in the contract count what a person sees.
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

pub fn length_between(s: &str, min: usize, max: usize) -> Result<(), String> {
    let n = char_len(s);
    if n < min || n > max {
        if min == max {
            Err(format!("must be exactly {min} characters"))
        } else if min == 0 || (min == 1 && n > max) {
            Err(format!("must be at most {max} characters"))
        } else {
            Err(format!("must be {min} to {max} characters"))
        }
    } else {
        Ok(())
    }
}

/// Trims and checks an email address: one `@`, a non-empty local part, a dotted domain
/// of letters, digits and hyphens, no spaces, at most 254 characters.
pub fn email(raw: &str) -> Result<String, String> {
    let email = raw.trim();
    if email.is_empty() {
        return Err("must not be empty".into());
    }
    if char_len(email) > 254 {
        return Err("must be at most 254 characters".into());
    }
    let invalid = || "must be a valid email address".to_string();
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local.chars().any(|c| c.is_whitespace() || c.is_control())
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return Err(invalid());
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2
        || labels.iter().any(|l| {
            l.is_empty()
                || l.len() > 63
                || l.starts_with('-')
                || l.ends_with('-')
                || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
    {
        return Err(invalid());
    }
    Ok(email.to_string())
}

pub fn password(raw: &str) -> Result<(), String> {
    length_between(raw, 8, 128)
}

pub fn display_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    length_between(name, 1, 64)?;
    Ok(name.to_string())
}

pub fn bio(raw: &str) -> Result<String, String> {
    length_between(raw, 0, 500)?;
    Ok(raw.to_string())
}

/// The display name a new account gets when none is given: the email's local part,
/// cut to the 64 characters a display name may have.
pub fn default_display_name(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email).trim();
    let name: String = local.chars().take(64).collect();
    if name.is_empty() {
        "reader".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email("  Ann@Example.org ").unwrap(), "Ann@Example.org");
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.org",
            "ann@x",
            "a b@x.org",
            "ann@x..org",
            "ann@-x.org",
            "a@b@c.org",
        ] {
            assert!(email(bad).is_err(), "{bad:?} should be rejected");
        }
        let long = format!("{}@example.org", "a".repeat(250));
        assert!(email(&long).is_err());
    }

    #[test]
    fn lengths_count_characters() {
        assert!(password("ééééééé").is_err());
        assert!(password("éééééééé").is_ok());
        assert!(password(&"x".repeat(129)).is_err());
        assert!(display_name("   ").is_err());
        assert_eq!(display_name("  Ann  ").unwrap(), "Ann");
        assert!(bio(&"b".repeat(501)).is_err());
        assert!(bio(&"b".repeat(500)).is_ok());
    }

    #[test]
    fn checks_combine_into_values_or_every_error() {
        let errs = (
            field::<()>("a", Err("bad".into())),
            field("b", Ok(1)),
            rule("c", true, "worse"),
        )
            .all_valid()
            .unwrap_err();
        assert_eq!(
            errs.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
        let (a, b) = (field("a", Ok("x")), field("b", Ok(2))).all_valid().unwrap();
        assert_eq!((a, b), ("x", 2));
        let list = vec![
            field("l[0]", Ok(1)),
            field("l[1]", Err("no".into())),
            field("l[2]", Err("no".into())),
        ];
        assert_eq!(list.all_valid().unwrap_err().len(), 2);
        assert_eq!(vec![field("l[0]", Ok(1))].all_valid(), Ok(vec![1]));
    }

    #[test]
    fn default_names() {
        assert_eq!(default_display_name("ann.lee@x.org"), "ann.lee");
        assert_eq!(
            default_display_name(&format!("{}@x.org", "z".repeat(80))).len(),
            64
        );
    }
}
