//! A report's rows into a PDF: runs the definition's query, formats every cell by its
//! column's format, keeps the group and grand totals, and feeds `pdf`'s table writer row by
//! row, so memory stays flat however many rows the query returns.
//!
//! Owns the value rules a user sees: numbers with the report's thousands separator and
//! decimal mark, decimals rounded half away from zero, dates as `YYYY-MM-DD`, NULL as an empty
//! cell left out of sums, averages, minima and maxima (SQL's rule; `count` counts non-NULL
//! values), and a failed job with a sentence for a value that does not fit its column.
//! Decimal arithmetic is exact (scaled `i128`), so a sum equals the database's own `SUM` of a
//! `numeric` column digit for digit.
//!
//! Depends on `pdf`, `source`, `params` and the definition types; not on `jobs` or `web`.

use std::fmt;
use std::io::Write;
use std::ops::ControlFlow;
use std::time::SystemTime;

use super::params::{self, Values};
use super::source::{self, Binding, SourceError};
use super::{Align, ColumnDef, Definition, Format, Overflow, Total, Value};
use crate::pdf::{self, ColumnSpec, Orientation, Paper, RenderError, TableSpec, TableWriter};

/// Fractional digits every decimal is kept with.
const SCALE_DIGITS: u32 = 12;
const SCALE: i128 = 10i128.pow(SCALE_DIGITS);

/// What to render.
pub struct Job<'a> {
    pub definition: &'a Definition,
    pub values: &'a Values,
    pub paper: Paper,
    pub orientation: Orientation,
    pub max_pages: u32,
    pub generated_at: SystemTime,
}

/// A finished render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub pages: u32,
    pub rows: u64,
    /// Characters the fonts lack (up to 20), printed as a replacement.
    pub missing_glyphs: Vec<char>,
    pub missing_count: u64,
}

/// Why a report produced no PDF.
#[derive(Debug)]
pub enum ReportError {
    /// The recorded values no longer fit the definition.
    Params(String),
    Source(SourceError),
    /// A value the query returned does not fit its column's format.
    Value {
        row: u64,
        field: String,
        message: String,
    },
    Render(RenderError),
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::Params(m) => write!(f, "the report's parameters are not valid: {m}"),
            ReportError::Source(e) => e.fmt(f),
            ReportError::Value {
                row,
                field,
                message,
            } => write!(f, "row {row}, column \"{field}\": {message}"),
            ReportError::Render(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReportError {}

impl ReportError {
    /// The render was stopped by its progress callback (deadline, shutdown, cancel).
    pub fn is_stop(&self) -> bool {
        matches!(self, ReportError::Render(RenderError::Cancelled))
    }
}

/// Runs the report and writes the PDF to `out`.
///
/// `progress(pages_done, pages_estimated)` is called per page (estimate 0 = unknown); `false`
/// stops the render ([`ReportError::is_stop`]).
///
/// # Errors
/// See [`ReportError`]; on any error `out` holds an incomplete file.
/// The rows a report with `values` will print, from its `count_query`; `None` without one.
///
/// # Errors
/// A sentence: the values do not bind, or the query failed.
pub fn count_rows(def: &Definition, values: &Values) -> Result<Option<u64>, String> {
    let bindings: Vec<Binding> = params::bind(def, values)?
        .into_iter()
        .map(|(name, kind, value)| Binding { name, kind, value })
        .collect();
    source::count(&def.source, &bindings).map_err(|e| e.to_string())
}

pub fn render(
    job: &Job<'_>,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u32, u32) -> bool,
) -> Result<Outcome, ReportError> {
    let def = job.definition;
    let bindings: Vec<Binding> = params::bind(def, job.values)
        .map_err(ReportError::Params)?
        .into_iter()
        .map(|(name, kind, value)| Binding { name, kind, value })
        .collect();
    let expected = source::count(&def.source, &bindings).map_err(ReportError::Source)?;
    let spec = table_spec(job);
    let mut writer = TableWriter::new(&spec, out, progress).map_err(ReportError::Render)?;
    if let Some(rows) = expected {
        writer.expect_rows(rows);
    }
    let fields: Vec<String> = def.columns.iter().map(|c| c.field.clone()).collect();
    let mut state = Totals::new(def);
    let mut failure = None;
    let streamed = source::stream(&def.source, &bindings, &fields, &mut |row| match state
        .row(&mut writer, row)
    {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => {
            failure = Some(e);
            ControlFlow::Break(())
        }
    });
    match (streamed, failure) {
        (_, Some(e)) => return Err(e),
        (Err(e), None) => return Err(ReportError::Source(e)),
        (Ok(_), None) => {}
    }
    state.close_group(&mut writer)?;
    let total = state.total_cells(None, writer.rows());
    let cells: Option<Vec<&str>> = total
        .as_ref()
        .map(|t| t.iter().map(String::as_str).collect());
    let rendered = writer
        .finish(cells.as_deref())
        .map_err(ReportError::Render)?;
    Ok(Outcome {
        pages: rendered.pages,
        rows: rendered.rows,
        missing_glyphs: rendered.missing_glyphs,
        missing_count: rendered.missing_count,
    })
}

fn table_spec(job: &Job<'_>) -> TableSpec {
    let def = job.definition;
    let mut info = vec![format!("Generated {}", pdf::format_utc(job.generated_at))];
    let described: Vec<String> = params::describe(def, job.values)
        .into_iter()
        .filter(|(label, _)| !label.eq_ignore_ascii_case("title"))
        .map(|(label, value)| format!("{label}: {value}"))
        .collect();
    if !described.is_empty() {
        info.push(described.join("   ·   "));
    }
    TableSpec {
        title: params::fill_title(def, job.values),
        info,
        paper: job.paper,
        orientation: job.orientation,
        columns: def
            .columns
            .iter()
            .map(|c| ColumnSpec {
                heading: c.heading.clone(),
                align: match c.align {
                    Align::Left => pdf::Align::Left,
                    Align::Right => pdf::Align::Right,
                    Align::Center => pdf::Align::Center,
                },
                width: c.width,
                // Numbers and dates never wrap: a figure too wide is set smaller instead.
                wrap: c.overflow == Overflow::Wrap && c.format == Format::Text,
            })
            .collect(),
        generated_at: job.generated_at,
        fonts: def
            .fonts
            .as_ref()
            .map(|f| (f.regular.clone(), f.bold.clone())),
        max_pages: job.max_pages,
    }
}

/// A value as its column holds it for totals.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// Scaled by [`SCALE`].
    Number(i128),
    Date(i32, u8, u8),
}

/// One column's running aggregate.
#[derive(Clone, Debug, Default)]
struct Agg {
    count: u64,
    sum: i128,
    min: Option<Key>,
    max: Option<Key>,
}

impl Agg {
    fn add(&mut self, key: Option<Key>) {
        let Some(key) = key else { return };
        self.count += 1;
        if let Key::Number(n) = key {
            self.sum = self.sum.saturating_add(n);
        }
        self.min = Some(self.min.map_or(key, |m| m.min(key)));
        self.max = Some(self.max.map_or(key, |m| m.max(key)));
    }
}

/// Totals per column for the current group and the whole report, and the group itself.
struct Totals<'d> {
    def: &'d Definition,
    group_col: Option<usize>,
    group: Option<String>,
    group_rows: u64,
    group_aggs: Vec<Agg>,
    grand: Vec<Agg>,
    cells: Vec<String>,
    keys: Vec<Option<Key>>,
    row_no: u64,
}

impl<'d> Totals<'d> {
    fn new(def: &'d Definition) -> Self {
        let n = def.columns.len();
        Totals {
            def,
            group_col: def
                .group_by
                .as_ref()
                .and_then(|g| def.columns.iter().position(|c| &c.field == g)),
            group: None,
            group_rows: 0,
            group_aggs: vec![Agg::default(); n],
            grand: vec![Agg::default(); n],
            cells: vec![String::new(); n],
            keys: vec![None; n],
            row_no: 0,
        }
    }

    fn row(&mut self, writer: &mut TableWriter<'_>, row: &[Value]) -> Result<(), ReportError> {
        self.row_no += 1;
        let seps = (
            self.def.thousands_separator.as_str(),
            self.def.decimal_mark.as_str(),
        );
        for (i, col) in self.def.columns.iter().enumerate() {
            let value = row.get(i).unwrap_or(&Value::Null);
            let key = cell(col, value, seps, &mut self.cells[i]).map_err(|message| {
                ReportError::Value {
                    row: self.row_no,
                    field: col.field.clone(),
                    message,
                }
            })?;
            self.keys[i] = key;
        }
        if let Some(g) = self.group_col
            && self.group.as_deref() != Some(self.cells[g].as_str())
        {
            self.close_group(writer)?;
            let value = self.cells[g].clone();
            let heading = &self.def.columns[g].heading;
            let shown = if value.is_empty() { "(none)" } else { &value };
            writer
                .group_heading(&format!("{heading}: {shown}"))
                .map_err(ReportError::Render)?;
            self.group = Some(value);
        }
        self.group_rows += 1;
        for (i, col) in self.def.columns.iter().enumerate() {
            if col.total.is_some() {
                self.group_aggs[i].add(self.keys[i]);
                self.grand[i].add(self.keys[i]);
            }
        }
        let mut cells: [&str; 16] = [""; 16];
        if self.cells.len() <= cells.len() {
            for (slot, text) in cells.iter_mut().zip(&self.cells) {
                *slot = text;
            }
            writer.row(&cells[..self.cells.len()])
        } else {
            let cells: Vec<&str> = self.cells.iter().map(String::as_str).collect();
            writer.row(&cells)
        }
        .map_err(ReportError::Render)
    }

    /// The subtotal row of the group that just ended, if any.
    fn close_group(&mut self, writer: &mut TableWriter<'_>) -> Result<(), ReportError> {
        let Some(group) = self.group.take() else {
            return Ok(());
        };
        let label = if group.is_empty() { "(none)" } else { &group };
        if let Some(cells) = self.total_cells(Some((label, &self.group_aggs)), self.group_rows) {
            let cells: Vec<&str> = cells.iter().map(String::as_str).collect();
            writer.subtotal(&cells).map_err(ReportError::Render)?;
        }
        self.group_rows = 0;
        for agg in &mut self.group_aggs {
            *agg = Agg::default();
        }
        Ok(())
    }

    /// The cells of a total row: each total column's aggregate, and a label in the first
    /// column without a total. `None` when no column has a total and there is no group.
    fn total_cells(&self, group: Option<(&str, &[Agg])>, rows: u64) -> Option<Vec<String>> {
        let has_totals = self.def.columns.iter().any(|c| c.total.is_some());
        if !has_totals {
            return None;
        }
        let aggs = group.map_or(self.grand.as_slice(), |(_, a)| a);
        let rows_text = group_digits(&rows.to_string(), &self.def.thousands_separator);
        let noun = if rows == 1 { "row" } else { "rows" };
        let label = match group {
            Some((name, _)) => format!("Total {name} ({rows_text} {noun})"),
            None => format!("Total ({rows_text} {noun})"),
        };
        let mut label = Some(label);
        let seps = (
            self.def.thousands_separator.as_str(),
            self.def.decimal_mark.as_str(),
        );
        let cells = self
            .def
            .columns
            .iter()
            .zip(aggs)
            .map(|(col, agg)| match col.total {
                Some(total) => aggregate_text(col, total, agg, seps),
                None => label.take().unwrap_or_default(),
            })
            .collect();
        Some(cells)
    }
}

/// A cell's text (written into `out`, which is cleared first) and its value for totals.
fn cell(
    col: &ColumnDef,
    value: &Value,
    seps: (&str, &str),
    out: &mut String,
) -> Result<Option<Key>, String> {
    out.clear();
    if *value == Value::Null {
        return Ok(None);
    }
    match col.format {
        Format::Text => {
            match value {
                Value::Text(s) | Value::Numeric(s) => out.push_str(s),
                other => out.push_str(&plain_text(other)),
            }
            // Not NULL, so `count` (the only total a text column may have) counts it.
            Ok(Some(Key::Number(0)))
        }
        Format::Integer => {
            let n = number(value).ok_or_else(|| not_a(value, "whole number"))?;
            if n % SCALE != 0 {
                return Err(not_a(value, "whole number"));
            }
            push_scaled(out, n, 0, seps);
            Ok(Some(Key::Number(n)))
        }
        Format::Decimal => {
            let n = number(value).ok_or_else(|| not_a(value, "number"))?;
            push_scaled(out, n, col.decimals, seps);
            Ok(Some(Key::Number(n)))
        }
        Format::Date => {
            let (y, m, d) = date(value).ok_or_else(|| not_a(value, "date (YYYY-MM-DD)"))?;
            push_date(out, y, m, d);
            Ok(Some(Key::Date(y, m, d)))
        }
    }
}

fn push_date(out: &mut String, y: i32, m: u8, d: u8) {
    use std::fmt::Write as _;
    // Writing to a String cannot fail.
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
}

fn not_a(value: &Value, what: &str) -> String {
    let shown: String = plain_text(value).chars().take(40).collect();
    format!("{shown:?} is not a {what}")
}

fn plain_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Numeric(s) | Value::Text(s) => s.clone(),
        Value::Date { year, month, day } => format!("{year:04}-{month:02}-{day:02}"),
        Value::Bool(b) => if *b { "true" } else { "false" }.to_owned(),
        Value::Bytes(n) => format!("[{n} bytes]"),
    }
}

/// The value as a decimal scaled by [`SCALE`], if it is a number (or text holding one).
fn number(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => i128::from(*i).checked_mul(SCALE),
        // Below 2^53 / 10^12 the scaled product rounds to the value's shortest decimal (0.1
        // counts as 0.1, not as the nearest binary fraction); larger ones go through text.
        Value::Float(f) if f.is_finite() && f.abs() < 9_000.0 => {
            Some((f * SCALE as f64).round() as i128)
        }
        Value::Float(f) if f.is_finite() && f.abs() < 1e24 => parse_decimal(&format!("{f}")),
        Value::Numeric(s) | Value::Text(s) => parse_decimal(s.trim()),
        Value::Bool(b) => Some(i128::from(*b) * SCALE),
        _ => None,
    }
}

/// `-?digits[.digits][e±n]` scaled by [`SCALE`], rounding half away from zero past 12 digits.
fn parse_decimal(s: &str) -> Option<i128> {
    let (mantissa, exp) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (neg, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || int.len() + frac.len() > 60
    {
        return None;
    }
    // value = digits × 10^(exp − frac.len()); we want value × 10^12.
    let shift = i64::from(exp) - frac.len() as i64 + i64::from(SCALE_DIGITS);
    let mut n: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        n = n.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    if shift >= 0 {
        n = n.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?;
    } else {
        let div = 10i128.checked_pow(u32::try_from(-shift).ok()?).unwrap_or(0);
        n = if div == 0 { 0 } else { round_div(n, div) };
    }
    Some(if neg { -n } else { n })
}

/// `n / d` rounded half away from zero (`d > 0`).
fn round_div(n: i128, d: i128) -> i128 {
    let q = n / d;
    let r = n % d;
    if r.unsigned_abs() * 2 >= d.unsigned_abs() {
        q + n.signum()
    } else {
        q
    }
}

/// A scaled decimal with `decimals` places, the thousands separator and the decimal mark.
fn format_scaled(n: i128, decimals: u8, seps: (&str, &str)) -> String {
    let mut out = String::new();
    push_scaled(&mut out, n, decimals, seps);
    out
}

/// [`format_scaled`] into `out`, without allocating (it runs for every numeric cell).
fn push_scaled(out: &mut String, n: i128, decimals: u8, (thousands, mark): (&str, &str)) {
    let decimals = u32::from(decimals.min(SCALE_DIGITS as u8));
    let rounded = round_div(n, 10i128.pow(SCALE_DIGITS - decimals));
    let unit = 10u128.pow(decimals);
    let abs = rounded.unsigned_abs();
    let mut int = abs / unit;
    let frac = abs % unit;
    if rounded < 0 {
        out.push('-');
    }
    // Digits of the integer part, least significant first (u128 has at most 39).
    let mut digits = [0u8; 40];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (int % 10) as u8;
        len += 1;
        int /= 10;
        if int == 0 {
            break;
        }
    }
    for pos in (0..len).rev() {
        out.push(char::from(digits[pos]));
        if pos > 0 && pos % 3 == 0 {
            out.push_str(thousands);
        }
    }
    if decimals > 0 {
        out.push_str(mark);
        let mut div = unit / 10;
        while div > 0 {
            out.push(char::from(b'0' + (frac / div % 10) as u8));
            div /= 10;
        }
    }
}

/// Digits with `sep` every three from the right.
fn group_digits(digits: &str, sep: &str) -> String {
    if sep.is_empty() || digits.len() <= 3 {
        return digits.to_owned();
    }
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * sep.len());
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push_str(sep);
        }
        out.push(c);
    }
    out
}

fn date(value: &Value) -> Option<(i32, u8, u8)> {
    match value {
        Value::Date { year, month, day } => Some((*year, *month, *day)),
        // SQLite keeps dates as text; a timestamp's date part counts.
        Value::Text(s) => {
            let head = s.get(..10)?;
            let rest = &s[10..];
            if !(rest.is_empty() || rest.starts_with([' ', 'T'])) {
                return None;
            }
            let b = head.as_bytes();
            if b[4] != b'-' || b[7] != b'-' {
                return None;
            }
            let y: i32 = head[..4].parse().ok()?;
            let m: u8 = head[5..7].parse().ok()?;
            let d: u8 = head[8..10].parse().ok()?;
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let days = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            let max = *days.get(usize::from(m).wrapping_sub(1))?;
            (d >= 1 && d <= max).then_some((y, m, d))
        }
        _ => None,
    }
}

fn aggregate_text(col: &ColumnDef, total: Total, agg: &Agg, seps: (&str, &str)) -> String {
    let decimals = if col.format == Format::Decimal {
        col.decimals
    } else {
        0
    };
    let key_text = |key: Option<Key>| match key {
        Some(Key::Number(n)) => format_scaled(n, decimals, seps),
        Some(Key::Date(y, m, d)) => format!("{y:04}-{m:02}-{d:02}"),
        None => String::new(),
    };
    match total {
        Total::Count => group_digits(&agg.count.to_string(), seps.0),
        Total::Sum => format_scaled(agg.sum, decimals, seps),
        Total::Avg if agg.count == 0 => String::new(),
        Total::Avg => {
            let avg = round_div(agg.sum, i128::from(agg.count));
            // An average of whole numbers still shows its fraction.
            format_scaled(avg, if decimals == 0 { 2 } else { decimals }, seps)
        }
        Total::Min => key_text(agg.min),
        Total::Max => key_text(agg.max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_parse_exactly_and_round_half_away_from_zero() {
        let cases: &[(&str, u8, &str)] = &[
            ("0", 2, "0.00"),
            ("1234567.891", 2, "1,234,567.89"),
            ("-0.005", 2, "-0.01"),
            ("0.005", 2, "0.01"),
            ("0.0049", 2, "0.00"),
            ("+12", 0, "12"),
            ("1e3", 1, "1,000.0"),
            ("2.5E-1", 2, "0.25"),
            (
                "99999999999999999999.99",
                2,
                "99,999,999,999,999,999,999.99",
            ),
        ];
        for &(input, decimals, want) in cases {
            let n = parse_decimal(input).unwrap_or_else(|| panic!("{input} did not parse"));
            assert_eq!(format_scaled(n, decimals, (",", ".")), want, "{input}");
        }
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "--1", "1 2"] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
        assert_eq!(
            format_scaled(parse_decimal("-1234.5").unwrap_or(0), 2, (".", ",")),
            "-1.234,50"
        );
        assert_eq!(
            format_scaled(parse_decimal("1234567").unwrap_or(0), 0, ("", ".")),
            "1234567"
        );
    }

    #[test]
    fn floats_count_as_their_shortest_decimal() {
        let sum: i128 = [0.1, 0.2, 0.3]
            .iter()
            .map(|f| number(&Value::Float(*f)).unwrap_or(0))
            .sum();
        assert_eq!(format_scaled(sum, 2, (",", ".")), "0.60");
        assert_eq!(number(&Value::Float(f64::NAN)), None);
    }

    #[test]
    fn null_is_left_out_of_every_aggregate() {
        let mut agg = Agg::default();
        for key in [
            Some(Key::Number(10 * SCALE)),
            None,
            Some(Key::Number(20 * SCALE)),
        ] {
            agg.add(key);
        }
        let col = ColumnDef {
            field: "x".into(),
            heading: "X".into(),
            format: Format::Decimal,
            decimals: 2,
            align: Align::Right,
            width: 1.0,
            total: None,
            overflow: Overflow::Wrap,
        };
        let seps = (",", ".");
        assert_eq!(aggregate_text(&col, Total::Count, &agg, seps), "2");
        assert_eq!(aggregate_text(&col, Total::Sum, &agg, seps), "30.00");
        assert_eq!(aggregate_text(&col, Total::Avg, &agg, seps), "15.00");
        assert_eq!(aggregate_text(&col, Total::Min, &agg, seps), "10.00");
        assert_eq!(aggregate_text(&col, Total::Max, &agg, seps), "20.00");
        assert_eq!(aggregate_text(&col, Total::Avg, &Agg::default(), seps), "");
    }

    #[test]
    fn cells_follow_their_column_format() {
        let mut col = ColumnDef {
            field: "x".into(),
            heading: "X".into(),
            format: Format::Integer,
            decimals: 2,
            align: Align::Right,
            width: 1.0,
            total: None,
            overflow: Overflow::Wrap,
        };
        let seps = (" ", ",");
        let text = |col: &ColumnDef, v: Value| {
            let mut out = String::new();
            cell(col, &v, seps, &mut out).map(|_| out)
        };
        assert_eq!(text(&col, Value::Int(1234567)), Ok("1 234 567".into()));
        assert_eq!(text(&col, Value::Numeric("12.00".into())), Ok("12".into()));
        assert!(text(&col, Value::Numeric("12.5".into())).is_err());
        assert!(text(&col, Value::Text("abc".into())).is_err());
        assert_eq!(text(&col, Value::Null), Ok(String::new()));
        col.format = Format::Date;
        assert_eq!(
            text(&col, Value::Text("2024-02-29 10:00".into())),
            Ok("2024-02-29".into())
        );
        assert!(text(&col, Value::Text("2023-02-29".into())).is_err());
        assert!(text(&col, Value::Text("2024-1-1".into())).is_err());
        col.format = Format::Text;
        assert_eq!(text(&col, Value::Bytes(3)), Ok("[3 bytes]".into()));
    }
}
