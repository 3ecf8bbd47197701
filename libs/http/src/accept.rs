//! `Accept` negotiation (RFC 9110 §12.5.1) between the few media types a route offers.

/// The offered type the client prefers, or `None` when it accepts none of them (406).
/// No header accepts anything and picks the first offer. Among acceptable offers the
/// highest `q` wins; at equal `q` an exact match beats `type/*`, which beats `*/*`; then
/// the order of `offered` decides.
pub fn preferred<'a>(accept: Option<&str>, offered: &[&'a str]) -> Option<&'a str> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return offered.first().copied();
    };
    let ranges: Vec<(String, f32)> = accept.split(',').filter_map(range).collect();
    let mut best: Option<(&'a str, f32, u8)> = None;
    for &offer in offered {
        // The most specific range that matches an offer sets its quality.
        let matched = ranges
            .iter()
            .filter_map(|(r, q)| specificity(r, offer).map(|s| (s, *q)))
            .max_by(|a, b| a.0.cmp(&b.0));
        if let Some((spec, q)) = matched {
            if q > 0.0 && best.is_none_or(|(_, bq, bs)| q > bq || (q == bq && spec > bs)) {
                best = Some((offer, q, spec));
            }
        }
    }
    best.map(|(offer, _, _)| offer)
}

/// `type/subtype` lower-cased and its `q` (1 when absent; an unreadable `q` drops the range).
fn range(item: &str) -> Option<(String, f32)> {
    let mut parts = item.split(';');
    let media = parts.next()?.trim().to_ascii_lowercase();
    if !media.contains('/') {
        return None;
    }
    let mut q = 1.0;
    for p in parts {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("q") {
                q = v.trim().parse::<f32>().ok().filter(|q| (0.0..=1.0).contains(q))?;
            }
        }
    }
    Some((media, q))
}

/// 2 for an exact match, 1 for `type/*`, 0 for `*/*`, `None` when the range excludes it.
fn specificity(range: &str, offer: &str) -> Option<u8> {
    let (rt, rs) = range.split_once('/')?;
    let (ot, _) = offer.split_once('/')?;
    match (rt, rs) {
        ("*", "*") => Some(0),
        (t, "*") if t == ot => Some(1),
        _ if range == offer => Some(2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFERS: &[&str] = &["application/json", "text/csv"];

    #[test]
    fn picks_what_the_client_prefers() {
        let p = |a| preferred(a, OFFERS);
        assert_eq!(p(None), Some("application/json"));
        assert_eq!(p(Some("")), Some("application/json"));
        assert_eq!(p(Some("*/*")), Some("application/json"));
        assert_eq!(p(Some("application/*")), Some("application/json"));
        assert_eq!(p(Some("text/csv")), Some("text/csv"));
        assert_eq!(p(Some("TEXT/CSV; charset=utf-8")), Some("text/csv"));
        assert_eq!(p(Some("text/*")), Some("text/csv"));
        assert_eq!(
            p(Some("text/csv, */*")),
            Some("text/csv"),
            "exact beats a wildcard"
        );
        assert_eq!(p(Some("application/json;q=0.5, text/csv")), Some("text/csv"));
        assert_eq!(
            p(Some("text/csv;q=0.1, application/json;q=0.2")),
            Some("application/json")
        );
        assert_eq!(p(Some("*/*, application/json;q=0")), Some("text/csv"));
    }

    #[test]
    fn refuses_when_nothing_offered_is_acceptable() {
        let p = |a| preferred(a, OFFERS);
        assert_eq!(p(Some("application/xml")), None);
        assert_eq!(p(Some("image/*")), None);
        assert_eq!(p(Some("text/csv;q=0")), None);
        assert_eq!(p(Some("garbage")), None);
        assert_eq!(p(Some("text/csv;q=2")), None);
    }
}
