//! The clock and the two date formats the helper reads: RFC 3339 (a key's `validUntil`) and
//! HTTP dates (`Date`, `Retry-After`). Pure parsing through the `time` crate; no I/O.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn unix_now() -> u64 {
    since_epoch().as_secs()
}

/// Unix milliseconds now (failure records compare moments within a second).
pub fn unix_millis() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// Parses an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate) to unix
/// seconds; `None` for anything else, or a date before 1970.
///
/// Read with the `time` crate's RFC 2822 parser: IMF-fixdate is RFC 2822's date syntax with the
/// zone fixed to `GMT`, so every IMF-fixdate reads the same; what RFC 2822 adds (a numeric or
/// US zone, a two-digit year, no weekday, no seconds, comments) is read as the instant it names. The obsolete
/// RFC 850 and asctime forms are not accepted, as before; servers have sent IMF-fixdate for
/// decades.
pub fn parse_http_date(value: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc2822).ok()?;
    u64::try_from(at.unix_timestamp()).ok()
}

/// Parses an RFC 3339 timestamp (`2026-05-01T10:00:00Z`, `…T10:00:00.123+02:00`) to unix
/// seconds, as in a key file's `validUntil`. Fractions are dropped; `None` for anything else
/// (an impossible date such as `2026-02-31`, an offset beyond ±23:59, a year outside
/// 0000-9999), or a time before 1970.
pub fn parse_rfc3339(value: &str) -> Option<u64> {
    let at = time::OffsetDateTime::parse(value.trim(), &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp()).ok()
}

/// `2026-11-29T17:00:00Z` for unix seconds `t` (or the number itself if out of range).
pub fn utc_time(t: u64) -> String {
    match i64::try_from(t)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
    {
        Some(d) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            d.year(),
            u8::from(d.month()),
            d.day(),
            d.hour(),
            d.minute(),
            d.second()
        ),
        None => format!("unix time {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_forms() {
        assert_eq!(parse_rfc3339("1994-11-06T08:49:37Z"), Some(784111777));
        assert_eq!(parse_rfc3339("1994-11-06T08:49:37.123Z"), Some(784111777));
        assert_eq!(parse_rfc3339("1994-11-06T10:49:37+02:00"), Some(784111777));
        assert_eq!(parse_rfc3339("1994-11-06T06:49:37.5-02:00"), Some(784111777));
        for bad in ["", "1994-11-06", "1994-13-06T08:49:37Z", "soon", "1994-11-06T08:49:37"] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn rfc3339_with_offsets_and_fractions() {
        let noon = Some(1_769_860_800); // 2026-01-31T12:00:00Z
        for text in [
            "2026-01-31T12:00:00Z",
            "2026-01-31T12:00:00.000+00:00",
            "2026-01-31T13:30:00.123456789+01:30",
            "2026-01-31T02:00:00.5-10:00",
            "2026-01-31t12:00:00z",
            "2026-01-31 12:00:00Z",
            " 2026-01-31T12:00:00Z\n",
        ] {
            assert_eq!(parse_rfc3339(text), noon, "{text}");
        }
        assert_eq!(parse_rfc3339("2024-02-29T00:00:00Z"), Some(1_709_164_800), "a leap day");
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_rfc3339("9999-12-31T23:59:59Z"), Some(253_402_300_799));
    }

    #[test]
    fn rfc3339_refuses_impossible_dates_offsets_and_huge_years() {
        for bad in [
            // A huge year used to overflow the day arithmetic (a panic in debug builds).
            "18446744073709551615-01-01T00:00:00Z",
            "99999-01-01T00:00:00Z",
            "2026-02-31T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-02-01T00:00:00+99:99",
            "2026-02-01T00:00:00+24:00",
            "2026-02-01T00:00:00+01:60",
            "2026-02-01T00:00:00+0100",
            "2026-02-01T24:00:00Z",
            "2026-02-01T10:00:60Z",
            "2026-5-1T10:00:00Z",
            "1969-12-31T23:59:59Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates_valid_and_invalid() {
        for (text, unix) in [
            ("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_777),
            ("Thu, 01 Jan 1970 00:00:00 GMT", 0),
            ("Thu, 29 Feb 2024 00:00:00 GMT", 1_709_164_800),
            ("Fri, 31 Dec 9999 23:59:59 GMT", 253_402_300_799),
            (" Sun, 06 Nov 1994 08:49:37 GMT ", 784_111_777),
        ] {
            assert_eq!(parse_http_date(text), Some(unix), "{text}");
        }
        for bad in [
            "Sun, 31 Feb 2026 08:49:37 GMT",
            "Sat, 29 Feb 2025 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nop 1994 08:49:37 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 19940 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT trailing",
            "Sun, 06 Nov 1994",
            "1994-11-06T08:49:37Z",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }
}
