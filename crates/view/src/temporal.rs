//! FHIR `date`, `dateTime`, `instant` and `time` text: parsing, UTC conversion, boundaries.

use std::cmp::Ordering;

/// How much of a date/time was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Precision {
    /// `2024`
    Year,
    /// `2024-05`
    Month,
    /// `2024-05-17`
    Day,
    /// `2024-05-17T10`
    Hour,
    /// `…T10:30`
    Minute,
    /// `…T10:30:00`
    Second,
    /// `…T10:30:00.123`
    Fraction,
}

/// A parsed FHIR date or dateTime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTimeParts {
    /// Year.
    pub year: i32,
    /// Month, 1-12 (1 when not written).
    pub month: u32,
    /// Day, 1-31 (1 when not written).
    pub day: u32,
    /// Hour.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// Microseconds within the second.
    pub micros: u32,
    /// Number of fractional digits written (0-9).
    pub fraction_digits: u32,
    /// Time-zone offset in minutes east of UTC, when written.
    pub offset_minutes: Option<i32>,
    /// How much was written.
    pub precision: Precision,
}

fn num(s: &str, len: usize) -> Option<u32> {
    if s.len() != len || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date ([`claimline_model::days_from_civil`]).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    claimline_model::days_from_civil(i64::from(year), month, day)
}

/// Parses a time of day `HH:MM[:SS[.fff]]` into (micros since midnight, fraction digits,
/// precision).
pub fn parse_time(s: &str) -> Option<(i64, u32, Precision)> {
    let hour = num(s.get(0..2)?, 2)?;
    let mut precision = Precision::Hour;
    let (mut minute, mut second, mut micros, mut frac_digits) = (0, 0, 0, 0);
    let rest = &s[2..];
    if !rest.is_empty() {
        minute = num(rest.strip_prefix(':')?.get(0..2)?, 2)?;
        precision = Precision::Minute;
        let rest = &rest[3..];
        if !rest.is_empty() {
            second = num(rest.strip_prefix(':')?.get(0..2)?, 2)?;
            precision = Precision::Second;
            let rest = &rest[3..];
            if !rest.is_empty() {
                let frac = rest.strip_prefix('.')?;
                if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                frac_digits = frac.len() as u32;
                let padded = format!("{frac:0<6}");
                micros = padded.get(0..6)?.parse::<u32>().ok()?;
                precision = Precision::Fraction;
            }
        }
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let total = ((i64::from(hour) * 60 + i64::from(minute)) * 60 + i64::from(second)) * 1_000_000
        + i64::from(micros);
    Some((total, frac_digits, precision))
}

/// Parses a FHIR `date`, `dateTime` or `instant` (`2024`, `2024-05`, `2024-05-17`,
/// `2024-05-17T10:30:00.123+02:00`).
pub fn parse_date_time(s: &str) -> Option<DateTimeParts> {
    let (date, time) = match s.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (s, None),
    };
    let mut parts = DateTimeParts {
        year: num(date.get(0..4)?, 4)? as i32,
        month: 1,
        day: 1,
        hour: 0,
        minute: 0,
        second: 0,
        micros: 0,
        fraction_digits: 0,
        offset_minutes: None,
        precision: Precision::Year,
    };
    let rest = &date[4..];
    if !rest.is_empty() {
        parts.month = num(rest.strip_prefix('-')?.get(0..2)?, 2)?;
        parts.precision = Precision::Month;
        let rest = &rest[3..];
        if !rest.is_empty() {
            parts.day = num(rest.strip_prefix('-')?, 2)?;
            parts.precision = Precision::Day;
        }
    }
    if !(1..=12).contains(&parts.month) || parts.day < 1 {
        return None;
    }
    if parts.day > days_in_month(parts.year, parts.month) {
        return None;
    }
    if let Some(time) = time {
        if parts.precision != Precision::Day {
            return None;
        }
        let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
            (c, Some(0))
        } else if let Some(i) = time.rfind(['+', '-']) {
            let (c, z) = time.split_at(i);
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let hh = num(z.get(1..3)?, 2)?;
            let mm = num(z.get(4..6)?, 2)?;
            if z.get(3..4)? != ":" || z.len() != 6 || hh > 14 || mm > 59 {
                return None;
            }
            (c, Some(sign * (hh * 60 + mm) as i32))
        } else {
            (time, None)
        };
        if clock.is_empty() {
            return None;
        }
        let (micros, digits, precision) = parse_time(clock)?;
        parts.precision = precision;
        parts.fraction_digits = digits;
        parts.offset_minutes = offset;
        let secs = micros / 1_000_000;
        parts.micros = (micros % 1_000_000) as u32;
        parts.second = (secs % 60) as u32;
        parts.minute = ((secs / 60) % 60) as u32;
        parts.hour = (secs / 3600) as u32;
    }
    Some(parts)
}

impl DateTimeParts {
    /// Days since 1970-01-01 of the written (local) date.
    pub fn epoch_days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// Microseconds since 1970-01-01T00:00:00Z; a missing time zone is taken as UTC.
    pub fn utc_micros(&self) -> i64 {
        let local = ((self.epoch_days() * 24 + i64::from(self.hour)) * 60 + i64::from(self.minute))
            * 60
            + i64::from(self.second);
        let offset = i64::from(self.offset_minutes.unwrap_or(0)) * 60;
        (local - offset) * 1_000_000 + i64::from(self.micros)
    }

    /// Orders two values at the precision they share; `None` when they agree on everything the
    /// less precise one says and precisions differ (FHIRPath's "unknown").
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        let timed = self.precision >= Precision::Hour && other.precision >= Precision::Hour;
        if timed {
            let o = self.utc_micros().cmp(&other.utc_micros());
            return if self.precision == other.precision || o != Ordering::Equal {
                Some(o)
            } else {
                None
            };
        }
        let a = [self.year as i64, self.month.into(), self.day.into()];
        let b = [other.year as i64, other.month.into(), other.day.into()];
        let shared = match self.precision.min(other.precision) {
            Precision::Year => 1,
            Precision::Month => 2,
            _ => 3,
        };
        match a[..shared].cmp(&b[..shared]) {
            Ordering::Equal if self.precision == other.precision => Some(Ordering::Equal),
            Ordering::Equal => None,
            o => Some(o),
        }
    }
}

/// Which end of a value's range of uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// `lowBoundary()`
    Low,
    /// `highBoundary()`
    High,
}

/// A date's boundary at day precision (`1970-06` → `1970-06-01` / `1970-06-30`).
pub fn date_boundary(s: &str, which: Boundary) -> Option<String> {
    let p = parse_date_time(s)?;
    if p.precision > Precision::Day {
        return None;
    }
    let (month, day) = match (which, p.precision) {
        (Boundary::Low, _) => (p.month, p.day),
        (Boundary::High, Precision::Year) => (12, 31),
        (Boundary::High, Precision::Month) => (p.month, days_in_month(p.year, p.month)),
        (Boundary::High, _) => (p.month, p.day),
    };
    Some(format!("{:04}-{:02}-{:02}", p.year, month, day))
}

/// A dateTime's boundary at millisecond precision; with no time zone, the earliest (+14:00) or
/// latest (-12:00) one.
pub fn date_time_boundary(s: &str, which: Boundary) -> Option<String> {
    let p = parse_date_time(s)?;
    let low = which == Boundary::Low;
    let (month, day) = match (low, p.precision) {
        (true, _) => (p.month, p.day),
        (false, Precision::Year) => (12, 31),
        (false, Precision::Month) => (p.month, days_in_month(p.year, p.month)),
        (false, _) => (p.month, p.day),
    };
    let fill = |written: bool, v: u32, max: u32| {
        if written {
            v
        } else if low {
            0
        } else {
            max
        }
    };
    let hour = fill(p.precision >= Precision::Hour, p.hour, 23);
    let minute = fill(p.precision >= Precision::Minute, p.minute, 59);
    let second = fill(p.precision >= Precision::Second, p.second, 59);
    let millis = fill(p.precision >= Precision::Fraction, p.micros / 1000, 999);
    let offset = p
        .offset_minutes
        .unwrap_or(if low { 14 * 60 } else { -12 * 60 });
    let sign = if offset < 0 { '-' } else { '+' };
    let off = offset.unsigned_abs();
    Some(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{sign}{:02}:{:02}",
        p.year,
        month,
        day,
        hour,
        minute,
        second,
        millis,
        off / 60,
        off % 60
    ))
}

/// A time's boundary at millisecond precision (`12:34` → `12:34:00.000` / `12:34:59.999`).
pub fn time_boundary(s: &str, which: Boundary) -> Option<String> {
    let (micros, _, precision) = parse_time(s)?;
    let low = which == Boundary::Low;
    let secs = micros / 1_000_000;
    let (h, m, sec) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let m = if precision >= Precision::Minute {
        m
    } else if low {
        0
    } else {
        59
    };
    let sec = if precision >= Precision::Second {
        sec
    } else if low {
        0
    } else {
        59
    };
    let ms = if precision >= Precision::Fraction {
        (micros % 1_000_000) / 1000
    } else if low {
        0
    } else {
        999
    };
    Some(format!("{h:02}:{m:02}:{sec:02}.{ms:03}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_converts_to_utc() {
        let p = parse_date_time("2015-02-07T13:28:17.239+02:00").expect("parses");
        assert_eq!(p.precision, Precision::Fraction);
        assert_eq!(p.utc_micros(), 1_423_308_497_239_000);
        assert_eq!(
            parse_date_time("1970-01-02").map(|p| p.utc_micros()),
            Some(86_400_000_000)
        );
        assert!(parse_date_time("IGNORED_FIELD").is_none());
        assert!(parse_date_time("2021-02-29").is_none());
        assert!(parse_date_time("2020-13").is_none());
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            date_boundary("1970-06", Boundary::High).as_deref(),
            Some("1970-06-30")
        );
        assert_eq!(
            date_time_boundary("2010-10-10", Boundary::Low).as_deref(),
            Some("2010-10-10T00:00:00.000+14:00")
        );
        assert_eq!(
            date_time_boundary("2010-10-10", Boundary::High).as_deref(),
            Some("2010-10-10T23:59:59.999-12:00")
        );
        assert_eq!(
            time_boundary("12:34", Boundary::High).as_deref(),
            Some("12:34:59.999")
        );
    }

    #[test]
    fn compares_at_shared_precision() {
        let a = parse_date_time("2020-01").expect("a");
        let b = parse_date_time("2020-01-15").expect("b");
        let c = parse_date_time("2021").expect("c");
        assert_eq!(a.compare(&b), None);
        assert_eq!(c.compare(&b), Some(Ordering::Greater));
    }
}
