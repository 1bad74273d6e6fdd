//! Proleptic Gregorian day arithmetic (Howard Hinnant's algorithms) and the text forms of dates
//! and instants that every output uses.

/// Days since 1970-01-01 of `year-month-day` (proleptic Gregorian; Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since 1970-01-01 of `YYYY-MM-DD` text; `None` for anything else, a day the month does
/// not have included (`2023-02-29`).
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = &text[r];
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let days_in = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > days_in {
        return None;
    }
    i32::try_from(days_from_civil(i64::from(y), m, d)).ok()
}

/// `YYYY-MM-DD` of a day count since 1970-01-01.
pub fn format_date(days: i32) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, days);
    out
}

/// [`format_date`] appended to `out` (a writer that reuses one buffer allocates nothing).
pub fn push_date(out: &mut String, days: i32) {
    let (y, m, d) = civil_from_days(i64::from(days));
    push_ymd(out, y, m, d);
}

/// ISO 8601 UTC text (`2026-01-02T03:04:05.123456Z`, fraction only when non-zero) of a µs count.
pub fn format_timestamp(micros: i64) -> String {
    let mut out = String::with_capacity(27);
    push_timestamp(&mut out, micros);
    out
}

/// [`format_timestamp`] appended to `out`.
pub fn push_timestamp(out: &mut String, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    push_ymd(out, y, m, d);
    out.push('T');
    push_digits(out, sod / 3600, 2);
    out.push(':');
    push_digits(out, (sod / 60) % 60, 2);
    out.push(':');
    push_digits(out, sod % 60, 2);
    if frac != 0 {
        // The fraction's six digits without their trailing zeros.
        let mut digits = 6;
        let mut f = frac;
        while f.is_multiple_of(10) {
            f /= 10;
            digits -= 1;
        }
        out.push('.');
        push_digits(out, f, digits);
    }
    out.push('Z');
}

/// `YYYY-MM-DD` (the year as `format!("{y:04}")` writes it) appended to `out`. Every date and
/// timestamp cell a SQLite load writes goes through here, so it writes digits itself instead of
/// through `format!`'s machinery (13% of the SQLite writer's samples in a profile).
fn push_ymd(out: &mut String, y: i64, m: u32, d: u32) {
    match u32::try_from(y) {
        Ok(y) if y <= 9999 => push_digits(out, y, 4),
        _ => {
            use std::fmt::Write;
            let _ = write!(out, "{y:04}");
        }
    }
    out.push('-');
    push_digits(out, m, 2);
    out.push('-');
    push_digits(out, d, 2);
}

/// The `width` last decimal digits of `v`, zero-padded, appended to `out`.
fn push_digits(out: &mut String, v: u32, width: u32) {
    for i in (0..width).rev() {
        out.push(char::from(b'0' + (v / 10u32.pow(i) % 10) as u8));
    }
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic Gregorian; Howard Hinnant's
/// `civil_from_days`), as `Date32` cells hold them.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_strictly() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("2023-1-01"), None);
        assert_eq!(parse_date("+023-01-01"), None);
        assert_eq!(parse_date("2023-01-01T00"), None);
    }

    #[test]
    fn dates_and_timestamps_format() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(-1), "1969-12-31");
        assert_eq!(format_date(19_782), "2024-02-29");
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_timestamp(1_500_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(format_timestamp(-1), "1969-12-31T23:59:59.999999Z");
    }

    /// What `format_date` and `format_timestamp` wrote through `format!` before, the oracle.
    fn date_by_format(days: i64) -> String {
        let (y, m, d) = civil_from_days(days);
        format!("{y:04}-{m:02}-{d:02}")
    }

    fn by_format(micros: i64) -> (String, String) {
        let secs = micros.div_euclid(1_000_000);
        let frac = micros.rem_euclid(1_000_000);
        let sod = secs.rem_euclid(86_400);
        let (hh, mm, ss) = (sod / 3600, (sod / 60) % 60, sod % 60);
        let time = if frac == 0 {
            format!("T{hh:02}:{mm:02}:{ss:02}Z")
        } else {
            let f = format!("{frac:06}");
            format!("T{hh:02}:{mm:02}:{ss:02}.{}Z", f.trim_end_matches('0'))
        };
        let date = date_by_format(secs.div_euclid(86_400));
        let timestamp = format!("{date}{time}");
        (date, timestamp)
    }

    #[test]
    fn dates_and_timestamps_format_as_format_did() {
        // Years before 0, after 9999, every fraction length, and a spread of instants.
        let mut cases: Vec<i64> = vec![
            i64::MIN,
            i64::MAX,
            -62_167_219_200_000_001,
            253_402_300_800_000_000,
            1,
            10,
            120,
            123_400,
            999_999,
            -1_000_000,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            // xorshift: instants from about 2000 BC to 5900 AD.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            cases.push((x % 250_000_000_000_000_000) as i64 - 125_000_000_000_000_000);
        }
        for days in [i32::MIN, i32::MAX, -719_529, 2_932_897] {
            assert_eq!(format_date(days), date_by_format(i64::from(days)));
        }
        for micros in cases {
            let (date, timestamp) = by_format(micros);
            assert_eq!(format_timestamp(micros), timestamp, "{micros}");
            if let Ok(days) = i32::try_from(micros.div_euclid(86_400_000_000)) {
                assert_eq!(format_date(days), date, "{days}");
            }
        }
    }

    #[test]
    fn days_and_dates_round_trip() {
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        for z in [-800_000, -1, 0, 59, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }
}
