//! ISBN-10 and ISBN-13 with check digits, normalised to ISBN-13 without hyphens.

/// Parses an ISBN-10 or ISBN-13 (hyphens and spaces allowed) and returns its ISBN-13 form.
pub fn normalize(raw: &str) -> Result<String, String> {
    let compact: String = raw.chars().filter(|c| *c != '-' && *c != ' ').collect();
    match compact.len() {
        10 => {
            let chars: Vec<char> = compact.chars().collect();
            let mut sum = 0u32;
            for (i, c) in chars.iter().enumerate() {
                let v = match c {
                    '0'..='9' => *c as u32 - '0' as u32,
                    'X' | 'x' if i == 9 => 10,
                    _ => return Err("must be an ISBN-10 or ISBN-13".into()),
                };
                sum += v * (10 - i as u32);
            }
            if sum % 11 != 0 {
                return Err("has an invalid ISBN-10 check digit".into());
            }
            let body = format!("978{}", &compact[..9]);
            Ok(format!("{body}{}", isbn13_check(&body)))
        }
        13 => {
            if !compact.chars().all(|c| c.is_ascii_digit()) {
                return Err("must be an ISBN-10 or ISBN-13".into());
            }
            if !(compact.starts_with("978") || compact.starts_with("979")) {
                return Err("an ISBN-13 starts with 978 or 979".into());
            }
            if isbn13_check(&compact[..12]) != compact.as_bytes()[12] as char {
                return Err("has an invalid ISBN-13 check digit".into());
            }
            Ok(compact)
        }
        _ => Err("must be an ISBN-10 or ISBN-13".into()),
    }
}

/// The ISBN-10 form of a normalised ISBN-13, when it has one (only 978 numbers do).
pub fn to_isbn10(isbn13: &str) -> Option<String> {
    let body = isbn13
        .strip_prefix("978")
        .filter(|_| isbn13.len() == 13)?
        .get(..9)?;
    if !body.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sum: u32 = body
        .bytes()
        .enumerate()
        .map(|(i, b)| (b - b'0') as u32 * (10 - i as u32))
        .sum();
    let check = match (11 - sum % 11) % 11 {
        10 => 'X',
        d => char::from(b'0' + d as u8),
    };
    Some(format!("{body}{check}"))
}

/// A valid ISBN-13 from its first 12 digits (for generated demo data).
pub fn complete(first12: &str) -> String {
    format!("{first12}{}", isbn13_check(first12))
}

/// The check digit of the first 12 digits of an ISBN-13.
fn isbn13_check(first12: &str) -> char {
    let sum: u32 = first12
        .bytes()
        .enumerate()
        .map(|(i, b)| (b - b'0') as u32 * if i % 2 == 0 { 1 } else { 3 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isbn13_back_to_isbn10() {
        assert_eq!(to_isbn10("9780441172719").as_deref(), Some("0441172717"));
        assert_eq!(to_isbn10("9780306406157").as_deref(), Some("0306406152"));
        assert_eq!(to_isbn10("9780804429573").as_deref(), Some("080442957X"));
        assert_eq!(to_isbn10("9791234567896"), None, "979 numbers have no ISBN-10");
        for isbn10 in ["0441172717", "080442957X", "0306406152"] {
            assert_eq!(to_isbn10(&normalize(isbn10).unwrap()).as_deref(), Some(isbn10));
        }
    }

    #[test]
    fn converts_and_checks() {
        // The same book, two forms.
        assert_eq!(normalize("0-306-40615-2").unwrap(), "9780306406157");
        assert_eq!(normalize("978-0-306-40615-7").unwrap(), "9780306406157");
        assert_eq!(normalize("080442957X").unwrap(), "9780804429573");
        assert_eq!(normalize("979-10-90636-07-1").unwrap(), "9791090636071");
        for bad in [
            "0-306-40615-3",
            "978-0-306-40615-8",
            "12345",
            "97803064061X7",
            "1234567890123",
            "X123456789",
            "",
        ] {
            assert!(normalize(bad).is_err(), "{bad}");
        }
    }
}
