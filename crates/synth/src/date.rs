//! Proleptic Gregorian day arithmetic (Howard Hinnant's algorithms), enough for claim dates.

pub(crate) use claimline_model::{civil_from_days, days_from_civil};

/// The day number of a string starting `YYYY-MM-DD` (a date or a dateTime), and the rest.
pub(crate) fn parse_date_prefix(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || (b.len() > 10 && b[10] != b'T') {
        return None;
    }
    if !b[..4]
        .iter()
        .chain(&b[5..7])
        .chain(&b[8..10])
        .all(u8::is_ascii_digit)
    {
        return None;
    }
    let y: i64 = s.get(0..4)?.parse().ok()?;
    let m: u32 = s.get(5..7)?.parse().ok()?;
    let d: u32 = s.get(8..10)?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some((days_from_civil(y, m, d), &s[10..]))
}

/// Appends `YYYY-MM-DD` of day number `day`.
pub(crate) fn write_date(out: &mut Vec<u8>, day: i64) {
    let (y, m, d) = civil_from_days(day);
    let y = y.clamp(0, 9999) as u32;
    out.extend_from_slice(&[
        b'0' + (y / 1000) as u8,
        b'0' + (y / 100 % 10) as u8,
        b'0' + (y / 10 % 10) as u8,
        b'0' + (y % 10) as u8,
        b'-',
        b'0' + (m / 10) as u8,
        b'0' + (m % 10) as u8,
        b'-',
        b'0' + (d / 10) as u8,
        b'0' + (d % 10) as u8,
    ]);
}

/// `YYYY-MM-DD` of day number `day`.
pub(crate) fn date_text(day: i64) -> String {
    let mut out = Vec::with_capacity(10);
    write_date(&mut out, day);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_across_leap_years() {
        let day = days_from_civil(2024, 2, 28);
        assert_eq!(date_text(day + 1), "2024-02-29");
        assert_eq!(date_text(day + 2), "2024-03-01");
        assert_eq!(date_text(days_from_civil(2021, 1, 1) - 1), "2020-12-31");
        assert_eq!(date_text(0), "1970-01-01");
    }

    #[test]
    fn parses_dates_and_date_times() {
        assert_eq!(
            parse_date_prefix("2021-01-01T10:00:00-05:00"),
            Some((days_from_civil(2021, 1, 1), "T10:00:00-05:00"))
        );
        assert_eq!(parse_date_prefix("IGNORED_FIELD"), None);
        assert_eq!(parse_date_prefix("2021"), None);
        assert_eq!(parse_date_prefix("2021-13-01"), None);
    }
}
