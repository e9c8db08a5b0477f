//! The built-in sample data set and the number formatting the report prints.
//!
//! Owns: [`Row`], [`sample_row`], [`sample_total_cents`], [`format_amount`]. Pure functions of
//! their arguments (no clock, no randomness crate, no I/O), so the same `n` always yields the same
//! rows and the totals printed in a PDF can be recomputed by a test. Depends on `std` only.

use std::fmt::Write as _;

/// One row of the sample data set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// 1-based position in the data set.
    pub index: u32,
    /// Booking date, `YYYY-MM-DD` (years past 9999 print with more digits).
    pub date: String,
    /// Free text, at most [`MAX_DESCRIPTION_CHARS`] ASCII characters.
    pub description: String,
    /// One of a few fixed words.
    pub category: &'static str,
    /// Signed amount in cents.
    pub amount_cents: i64,
}

/// Upper bound on [`Row::description`] length; the layout sizes the column for it.
pub const MAX_DESCRIPTION_CHARS: usize = 40;

const VERBS: [&str; 8] = [
    "Quarterly",
    "Monthly",
    "Annual",
    "Urgent",
    "Deferred",
    "Partial",
    "Prepaid",
    "Adjusted",
];
const NOUNS: [&str; 12] = [
    "license renewal",
    "server rental",
    "consulting hours",
    "office supplies",
    "travel expenses",
    "support contract",
    "hardware repair",
    "cloud storage",
    "training course",
    "domain fees",
    "printer toner",
    "catering",
];
const SUFFIXES: [&str; 6] = [
    "",
    " (EU)",
    " - batch 2",
    " for Berlin",
    " incl. VAT",
    " - late",
];
pub(crate) const CATEGORIES: [&str; 6] = [
    "Hardware", "Software", "Services", "Travel", "Office", "Refund",
];

/// Every character the sample data, the table header and the page furniture can print, so the
/// embedded fonts only need these glyphs plus the title's (see `subset::strip_unused_glyphs`).
#[cfg(test)]
pub(crate) const FIXED_ALPHABET: &str = "0123456789-,.:()# \
    ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Days before 2024-01-01 counted from 1970-01-01 (the Unix epoch), to anchor the sample dates.
const DAYS_TO_2024: i64 = 19_723;

/// A 64-bit mix of `i` (the SplitMix64 finaliser): cheap, deterministic, and spreads consecutive
/// indices over the whole range, so neighbouring rows do not look alike.
fn mix(i: u32, salt: u64) -> u64 {
    let mut z = u64::from(i)
        .wrapping_add(salt)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Pick one element of a non-empty table by hash; `len` is tiny, so the modulo bias is irrelevant.
fn pick<T: Copy>(table: &[T], h: u64) -> T {
    // The tables above are non-empty constants; `len as u64` cannot be zero.
    let idx = (h % table.len() as u64) as usize;
    table[idx]
}

/// Amount in cents for row `i`; shared by [`sample_row`] and [`sample_total_cents`] so the total
/// needs no strings.
fn amount_for(i: u32) -> i64 {
    let h = mix(i, 3);
    // 1.00 .. 9,999.99; roughly one row in seven is a refund or correction.
    let magnitude = 100 + (h % 999_900) as i64;
    if (h >> 40).is_multiple_of(7) {
        -magnitude
    } else {
        magnitude
    }
}

/// Row `i` (1-based; `0` is accepted and behaves like any other index).
///
/// Dates walk forward from 2024-01-01, three rows per day.
pub fn sample_row(i: u32) -> Row {
    let h = mix(i, 1);
    let mut description = String::with_capacity(MAX_DESCRIPTION_CHARS);
    description.push_str(pick(&VERBS, h));
    description.push(' ');
    description.push_str(pick(&NOUNS, h >> 8));
    description.push_str(pick(&SUFFIXES, h >> 16));
    let category = if amount_for(i) < 0 && (h >> 24).is_multiple_of(2) {
        "Refund"
    } else {
        pick(&CATEGORIES[..5], h >> 32)
    };
    Row {
        index: i,
        date: format_date(DAYS_TO_2024 + i64::from(i.saturating_sub(1) / 3)),
        description,
        category,
        amount_cents: amount_for(i),
    }
}

/// Sum of `amount_cents` over rows `1..=n` (saturating; it cannot overflow below ~9e12 rows).
pub fn sample_total_cents(n: u32) -> i64 {
    (1..=n).fold(0i64, |acc, i| acc.saturating_add(amount_for(i)))
}

/// `cents` as `-1,234.56`: comma thousands separators, two decimals, ASCII minus.
pub fn format_amount(cents: i64) -> String {
    let mut out = String::with_capacity(16);
    push_amount(&mut out, cents);
    out
}

/// [`format_amount`] into an existing buffer.
pub(crate) fn push_amount(out: &mut String, cents: i64) {
    // `unsigned_abs` so that i64::MIN does not overflow.
    let abs = cents.unsigned_abs();
    if cents < 0 {
        out.push('-');
    }
    push_grouped(out, abs / 100);
    out.push('.');
    let frac = abs % 100;
    out.push(char::from(b'0' + (frac / 10) as u8));
    out.push(char::from(b'0' + (frac % 10) as u8));
}

/// Decimal digits of `n` with a comma every three digits.
fn push_grouped(out: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    let mut rest = n;
    loop {
        digits[len] = b'0' + (rest % 10) as u8;
        len += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for pos in (0..len).rev() {
        out.push(char::from(digits[pos]));
        if pos > 0 && pos % 3 == 0 {
            out.push(',');
        }
    }
}

/// Civil date for `days` since 1970-01-01 in the proleptic Gregorian calendar.
///
/// Howard Hinnant's `civil_from_days` algorithm (public domain, "chrono-Compatible Low-Level
/// Date Algorithms"), in i64 so any u32 row index stays in range.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` for `days` since the Unix epoch.
pub(crate) fn format_date(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    let mut s = String::with_capacity(10);
    // Writing to a String cannot fail.
    let _ = write!(s, "{y:04}-{m:02}-{d:02}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_amount_table() {
        let cases: &[(i64, &str)] = &[
            (0, "0.00"),
            (5, "0.05"),
            (-5, "-0.05"),
            (99, "0.99"),
            (100, "1.00"),
            (123_456, "1,234.56"),
            (-123_456, "-1,234.56"),
            (100_000, "1,000.00"),
            (99_999, "999.99"),
            (12_345_678_901, "123,456,789.01"),
            (-100_000_000, "-1,000,000.00"),
            (i64::MAX, "92,233,720,368,547,758.07"),
            (i64::MIN, "-92,233,720,368,547,758.08"),
        ];
        for &(cents, want) in cases {
            assert_eq!(format_amount(cents), want, "format_amount({cents})");
        }
    }

    #[test]
    fn sample_rows_are_deterministic_and_in_shape() {
        let mut negatives = 0;
        for i in 1..=5_000 {
            let a = sample_row(i);
            assert_eq!(a, sample_row(i), "row {i} differs between calls");
            assert_eq!(a.index, i);
            assert!(
                a.description.len() <= MAX_DESCRIPTION_CHARS,
                "row {i}: {:?} is longer than {MAX_DESCRIPTION_CHARS}",
                a.description
            );
            assert!(CATEGORIES.contains(&a.category));
            assert_eq!(a.date.len(), 10, "row {i}: {:?}", a.date);
            for ch in a
                .description
                .chars()
                .chain(a.date.chars())
                .chain(a.category.chars())
            {
                assert!(
                    FIXED_ALPHABET.contains(ch),
                    "row {i}: {ch:?} not in FIXED_ALPHABET"
                );
            }
            if a.amount_cents < 0 {
                negatives += 1;
            }
        }
        assert!(
            negatives > 100,
            "expected some negative amounts, got {negatives}"
        );
        assert_eq!(sample_row(1).date, "2024-01-01");
        assert_eq!(sample_row(3).date, "2024-01-01");
        assert_eq!(sample_row(4).date, "2024-01-02");
        // Extreme indices must not panic.
        let _ = sample_row(0);
        let _ = sample_row(u32::MAX);
    }

    #[test]
    fn total_matches_rows() {
        let by_rows: i64 = (1..=1_000).map(|i| sample_row(i).amount_cents).sum();
        assert_eq!(sample_total_cents(1_000), by_rows);
        assert_eq!(sample_total_cents(0), 0);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(format_date(DAYS_TO_2024), "2024-01-01");
        assert_eq!(format_date(DAYS_TO_2024 + 59), "2024-02-29");
        assert_eq!(format_date(-1), "1969-12-31");
    }
}
