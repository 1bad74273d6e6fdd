//! An exact decimal: an `i128` mantissa and a base-10 scale, read from a number's source text.

use std::cmp::Ordering;
use std::fmt;

/// Largest scale kept (Decimal128 allows 38 digits in all).
const MAX_SCALE: u32 = 38;

/// An exact decimal number `mantissa × 10^-scale`. `1.0` keeps its scale (1); equality and order
/// are numeric (`1.0 == 1.00`).
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    mantissa: i128,
    scale: u8,
}

/// `10^n` for every `n` an `i128` holds (0 to 38), worked out when the crate is compiled: a
/// conversion looks a power up for every decimal cell, where `checked_pow` computed it by
/// repeated squaring.
const POW10: [i128; 39] = {
    let mut table = [1i128; 39];
    let mut n = 1;
    while n < table.len() {
        table[n] = table[n - 1] * 10;
        n += 1;
    }
    table
};

fn pow10(n: u32) -> Option<i128> {
    POW10.get(n as usize).copied()
}

impl Decimal {
    /// `mantissa × 10^-scale`.
    pub fn new(mantissa: i128, scale: u8) -> Self {
        Decimal { mantissa, scale }
    }

    /// The digits without the decimal point.
    pub fn mantissa(&self) -> i128 {
        self.mantissa
    }

    /// Digits after the decimal point.
    pub fn scale(&self) -> u8 {
        self.scale
    }

    /// An integer as a decimal of scale 0.
    pub fn from_i64(v: i64) -> Self {
        Decimal::new(i128::from(v), 0)
    }

    /// Parses JSON/FHIRPath number text (`-12.50`, `1e3`, `2.5E-2`) exactly; `None` if it is not
    /// a number or does not fit.
    pub fn parse(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        let (neg, mut i) = match bytes.first()? {
            b'-' => (true, 1),
            b'+' => (false, 1),
            _ => (false, 0),
        };
        let mut mantissa: i128 = 0;
        let mut scale: i32 = 0;
        let mut digits = 0;
        let mut seen_point = false;
        while let Some(&b) = bytes.get(i) {
            match b {
                b'0'..=b'9' => {
                    mantissa = mantissa
                        .checked_mul(10)?
                        .checked_add(i128::from(b - b'0'))?;
                    digits += 1;
                    if seen_point {
                        scale += 1;
                    }
                }
                b'.' if !seen_point => seen_point = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if digits == 0 {
            return None;
        }
        if i < bytes.len() {
            let exp: i32 = text.get(i + 1..)?.parse().ok()?;
            scale = scale.checked_sub(exp)?;
        }
        if scale < 0 {
            mantissa = mantissa.checked_mul(pow10(scale.unsigned_abs())?)?;
            scale = 0;
        }
        if scale > MAX_SCALE as i32 {
            return None;
        }
        let mantissa = if neg { -mantissa } else { mantissa };
        Some(Decimal::new(mantissa, scale as u8))
    }

    /// The same value at `scale` digits, if that is exact and fits.
    pub fn rescale(&self, scale: u8) -> Option<Self> {
        match scale.cmp(&self.scale) {
            Ordering::Equal => Some(*self),
            Ordering::Greater => {
                let f = pow10(u32::from(scale - self.scale))?;
                Some(Decimal::new(self.mantissa.checked_mul(f)?, scale))
            }
            Ordering::Less => {
                let f = pow10(u32::from(self.scale - scale))?;
                if self.mantissa % f != 0 {
                    return None;
                }
                Some(Decimal::new(self.mantissa / f, scale))
            }
        }
    }

    /// Without trailing fractional zeros (`1.50` → `1.5`, `2.0` → `2`).
    pub fn normalize(&self) -> Self {
        let mut d = *self;
        while d.scale > 0 && d.mantissa % 10 == 0 {
            d.mantissa /= 10;
            d.scale -= 1;
        }
        d
    }

    /// Number of digits left of the decimal point (0 for `0.5`).
    pub fn integer_digits(&self) -> u32 {
        let f = pow10(u32::from(self.scale)).unwrap_or(i128::MAX);
        let int = (self.mantissa / f).unsigned_abs();
        if int == 0 { 0 } else { int.ilog10() + 1 }
    }

    /// Whether the value fits `DECIMAL(precision, scale)` exactly; the value at that scale.
    pub fn fit(&self, precision: u8, scale: u8) -> Option<Self> {
        let d = self.rescale(scale)?;
        // At most `precision - scale` digits before the point: `|mantissa| < 10^precision` at
        // that scale, one comparison where counting the digits divided an `i128` (a decimal
        // cell is fitted in the view and again in the link stage).
        if let Some(limit) = pow10(u32::from(precision)) {
            return (scale <= precision && d.mantissa.unsigned_abs() < limit.unsigned_abs())
                .then_some(d);
        }
        let digits = d.integer_digits() + u32::from(scale);
        (digits <= u32::from(precision)).then_some(d)
    }

    /// [`Decimal::fit`] by counting the digits before the point (what it did before its one
    /// comparison), for the test that holds the two to the same answer.
    #[cfg(test)]
    fn fit_by_digits(&self, precision: u8, scale: u8) -> Option<Self> {
        let d = self.rescale(scale)?;
        let digits = d.integer_digits() + u32::from(scale);
        (digits <= u32::from(precision)).then_some(d)
    }

    fn aligned(a: &Self, b: &Self) -> Option<(i128, i128, u8)> {
        let s = a.scale.max(b.scale);
        Some((a.rescale(s)?.mantissa, b.rescale(s)?.mantissa, s))
    }

    /// `self + other`, `None` on overflow.
    pub fn checked_add(&self, other: &Self) -> Option<Self> {
        let (a, b, s) = Self::aligned(self, other)?;
        Some(Decimal::new(a.checked_add(b)?, s))
    }

    /// `self - other`, `None` on overflow.
    pub fn checked_sub(&self, other: &Self) -> Option<Self> {
        let (a, b, s) = Self::aligned(self, other)?;
        Some(Decimal::new(a.checked_sub(b)?, s))
    }

    /// `self × other`, `None` on overflow.
    pub fn checked_mul(&self, other: &Self) -> Option<Self> {
        let scale = self.scale.checked_add(other.scale)?;
        let d = Decimal::new(self.mantissa.checked_mul(other.mantissa)?, scale);
        Some(if u32::from(scale) > MAX_SCALE {
            d.normalize()
        } else {
            d
        })
    }

    /// `self ÷ other` to at least 8 fractional digits (more if the inputs have more), with
    /// trailing zeros removed; `None` for division by zero or overflow.
    pub fn checked_div(&self, other: &Self) -> Option<Self> {
        if other.mantissa == 0 {
            return None;
        }
        let target = self.scale.max(other.scale).max(8);
        // (a / 10^sa) / (b / 10^sb) = (a * 10^(target + sb - sa) / b) / 10^target
        let shift = i32::from(target) + i32::from(other.scale) - i32::from(self.scale);
        let num = if shift >= 0 {
            self.mantissa.checked_mul(pow10(shift.unsigned_abs())?)?
        } else {
            self.mantissa / pow10(shift.unsigned_abs())?
        };
        Some(Decimal::new(num / other.mantissa, target).normalize())
    }

    /// Truncates toward zero to an integer, if it fits `i64`.
    pub fn trunc_i64(&self) -> Option<i64> {
        let f = pow10(u32::from(self.scale))?;
        i64::try_from(self.mantissa / f).ok()
    }

    /// True for a value with no fractional part.
    pub fn is_integral(&self) -> bool {
        self.normalize().scale == 0
    }
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Decimal {}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Self) -> Ordering {
        match Self::aligned(self, other) {
            Some((a, b, _)) => a.cmp(&b),
            None => {
                let (a, b) = (self.normalize(), other.normalize());
                match Self::aligned(&a, &b) {
                    Some((a, b, _)) => a.cmp(&b),
                    // Only reachable for values near i128's limits: compare signs, then scales.
                    None => a.mantissa.signum().cmp(&b.mantissa.signum()),
                }
            }
        }
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.mantissa.unsigned_abs().to_string();
        let sign = if self.mantissa < 0 { "-" } else { "" };
        let scale = usize::from(self.scale);
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{int}.{frac}")
        } else {
            write!(f, "{sign}0.{}{digits}", "0".repeat(scale - digits.len()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_powers_of_ten_are_checked_pows() {
        for n in 0..45 {
            assert_eq!(pow10(n), 10i128.checked_pow(n), "10^{n}");
        }
    }

    #[test]
    fn fitting_by_one_comparison_is_fitting_by_the_digits() {
        let mut mantissas = vec![0, 1, -1, 9, 10, 99, i128::MAX, i128::MIN, i128::MAX - 1];
        for k in 0..39 {
            let p = 10i128.pow(k);
            mantissas.extend([p, p - 1, p + 1, -p, 1 - p, -p - 1, p / 2 + 7]);
        }
        let mut compared = 0;
        for &m in &mantissas {
            for scale in [0u8, 1, 2, 3, 9, 18, 37, 38, 39, 40, 200] {
                let d = Decimal::new(m, scale);
                for precision in (0..=45).chain([100, 255]) {
                    for to in [0u8, 1, 2, 3, 5, 18, 38, 39, 60, 255] {
                        let (a, b) = (d.fit(precision, to), d.fit_by_digits(precision, to));
                        assert_eq!(
                            a.map(|x| (x.mantissa, x.scale)),
                            b.map(|x| (x.mantissa, x.scale)),
                            "{m}e-{scale} into DECIMAL({precision},{to})"
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 100_000);
    }

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).expect("decimal")
    }

    #[test]
    fn parses_exactly_and_keeps_scale() {
        assert_eq!(d("1.0").scale(), 1);
        assert_eq!(d("1.0").to_string(), "1.0");
        assert_eq!(d("-0.05").to_string(), "-0.05");
        assert_eq!(d("84999.37").mantissa(), 8_499_937);
        assert_eq!(d("2.5E-2").to_string(), "0.025");
        assert_eq!(d("1e3").to_string(), "1000");
        assert!(Decimal::parse("1.2.3").is_none());
        assert!(Decimal::parse("abc").is_none());
        assert!(Decimal::parse("").is_none());
    }

    #[test]
    fn arithmetic_and_order() {
        assert_eq!(d("1.5").checked_add(&d("2.25")), Some(d("3.75")));
        assert_eq!(
            d("3").checked_div(&d("2")).map(|x| x.to_string()),
            Some("1.5".into())
        );
        assert_eq!(
            d("1").checked_div(&d("3")).map(|x| x.to_string()),
            Some("0.33333333".into())
        );
        assert_eq!(d("2").checked_div(&d("0")), None);
        assert_eq!(d("1.10").checked_mul(&d("2")), Some(d("2.2")));
        assert!(d("1.0") == d("1.00"));
        assert!(d("-1") < d("0.5"));
    }

    #[test]
    fn fits_decimal_columns() {
        assert_eq!(
            d("12.5").fit(13, 2).map(|x| x.to_string()),
            Some("12.50".into())
        );
        assert_eq!(d("1.234").fit(18, 2), None);
        assert_eq!(
            d("1.230").fit(18, 2).map(|x| x.to_string()),
            Some("1.23".into())
        );
        assert_eq!(d("123456").fit(5, 0), None);
        assert_eq!(d("0.5").integer_digits(), 0);
    }
}
