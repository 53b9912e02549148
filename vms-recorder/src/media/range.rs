//! HTTP `Range` requests (RFC 9110 §14) for a body of known length: one range is served as
//! `206`; a header this server does not take (several ranges, another unit, garbage) gets the
//! whole body, as the RFC allows; an unsatisfiable range gets `416`.

use std::ops::Range;

/// What to send for a request's `Range` header.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    Whole,
    Part(Range<u64>),
    Unsatisfiable,
}

pub fn plan(header: Option<&str>, len: u64) -> Plan {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Plan::Whole;
    };
    if spec.contains(',') {
        return Plan::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Plan::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| s.parse::<u64>().ok();
    let range = match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match parse(last) {
            Some(0) => return Plan::Unsatisfiable,
            Some(n) => len.saturating_sub(n)..len,
            None => return Plan::Whole,
        },
        (false, _) => {
            let Some(start) = parse(first) else {
                return Plan::Whole;
            };
            let end = if last.is_empty() {
                len
            } else {
                match parse(last) {
                    Some(l) if l >= start => l.saturating_add(1).min(len),
                    _ => return Plan::Whole,
                }
            };
            if start >= len {
                return Plan::Unsatisfiable;
            }
            start..end
        }
        (true, true) => return Plan::Whole,
    };
    if range.is_empty() {
        Plan::Unsatisfiable
    } else {
        Plan::Part(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h: &str| plan(Some(h), 1000);
        assert_eq!(plan(None, 1000), Plan::Whole);
        assert_eq!(p("bytes=0-99"), Plan::Part(0..100));
        assert_eq!(p("bytes=990-"), Plan::Part(990..1000));
        assert_eq!(p("bytes=900-5000"), Plan::Part(900..1000));
        assert_eq!(p("bytes=-10"), Plan::Part(990..1000));
        assert_eq!(p("bytes=-5000"), Plan::Part(0..1000));
        assert_eq!(p("bytes=1000-"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Plan::Unsatisfiable);
        assert_eq!(plan(Some("bytes=0-"), 0), Plan::Unsatisfiable);
        for whole in [
            "bytes=5-1",
            "bytes=0-1,5-9",
            "items=0-1",
            "bytes=x-",
            "bytes=-",
            "bytes=1",
        ] {
            assert_eq!(p(whole), Plan::Whole, "{whole}");
        }
    }
}
