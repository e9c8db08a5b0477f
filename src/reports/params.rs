//! Submitted parameter values: the one validator shared by the form, the CLI and later a JSON
//! API, turning raw strings into canonical text ([`Values`]), typed bind values
//! ([`ParamValue`]) for a driver, the filled-in title and the (label, value) lines of a PDF's
//! title block. Also the value rules the definition checks reuse for defaults and bounds.
//!
//! Works on [`Definition`]s only; must not depend on `source`, `render`, `web` or `jobs`, and
//! never touches SQL text: values are bound as parameters, never spliced.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use super::definition::{TitlePiece, title_pieces};
use super::{Definition, ParamDef, ParamType, ParamValue};

/// The most characters a text parameter takes when its definition sets no `max_length`, and
/// the most a choice whose options are not known takes.
pub const DEFAULT_MAX_LENGTH: u32 = 200;

/// The most characters a decimal value may have (MySQL's `DECIMAL` holds 65 digits).
const MAX_DECIMAL_LEN: usize = 60;

const REQUIRED: &str = "This field is required.";
const CHOOSE: &str = "Choose one of the listed values.";

/// The raw values a person submitted, looked up by parameter name.
///
/// Build it from name/value pairs (a form body, `--param name=value` flags; the first pair
/// with a name wins) or from any lookup function. A name that is absent differs from one
/// submitted empty only for a required parameter with a default: absent takes the default.
pub struct Submitted<'a> {
    lookup: Box<Lookup<'a>>,
}

/// Raw value by parameter name.
type Lookup<'a> = dyn Fn(&str) -> Option<&'a str> + 'a;

impl<'a> Submitted<'a> {
    /// Values from name/value pairs; the first pair with a given name wins.
    pub fn from_pairs(pairs: &'a [(String, String)]) -> Self {
        Submitted::from_fn(move |name| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        })
    }

    /// Values from a lookup function.
    pub fn from_fn(lookup: impl Fn(&str) -> Option<&'a str> + 'a) -> Self {
        Submitted {
            lookup: Box::new(lookup),
        }
    }

    /// The raw value submitted for `name`, if any.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        (self.lookup)(name)
    }
}

/// Checked values: parameter name → canonical text (`""` for an optional one left empty,
/// which binds as SQL NULL). What a job records.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    map: BTreeMap<String, String>,
}

impl Values {
    /// The canonical value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.map.get(name).map(String::as_str)
    }

    /// All values by name.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.map
    }

    /// Values as recorded earlier (e.g. in a job record). They are not checked again here:
    /// [`bind`] refuses any that do not parse.
    pub fn from_map(map: BTreeMap<String, String>) -> Values {
        Values { map }
    }
}

/// Per parameter, a sentence for the person who filled in the form, in declaration order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldErrors {
    errors: Vec<(String, String)>,
}

impl FieldErrors {
    /// The message for parameter `name`, if its value was refused.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.as_str())
    }

    /// (name, message) pairs in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.errors.iter().map(|(n, m)| (n.as_str(), m.as_str()))
    }

    /// How many parameters were refused.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Whether none was refused.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, message)) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{name}: {message}")?;
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// Checks every parameter of `def` against `raw`: values are trimmed; an empty optional one
/// takes its default, else stays empty (NULL); integers, decimals and dates must parse and
/// lie within the bounds; text must have no control characters and at most `max_length`
/// (default 200) characters; a choice must be one of its options. `options` supplies the list
/// for a choice with an `options_query` (the caller runs the query); when it returns `None`,
/// any value of at most 200 characters is taken.
///
/// # Errors
///
/// [`FieldErrors`] with a sentence for each refused parameter.
pub fn validate(
    def: &Definition,
    options: &dyn Fn(&ParamDef) -> Option<Vec<String>>,
    raw: &Submitted<'_>,
) -> Result<Values, FieldErrors> {
    let mut values = BTreeMap::new();
    let mut errors = Vec::new();
    for param in &def.params {
        match validate_param(param, options, raw.get(&param.name)) {
            Ok(value) => {
                values.insert(param.name.clone(), value);
            }
            Err(message) => errors.push((param.name.clone(), message)),
        }
    }
    if errors.is_empty() {
        Ok(Values { map: values })
    } else {
        Err(FieldErrors { errors })
    }
}

fn validate_param(
    param: &ParamDef,
    options: &dyn Fn(&ParamDef) -> Option<Vec<String>>,
    raw: Option<&str>,
) -> Result<String, String> {
    let value = raw.map_or("", str::trim);
    if value.is_empty() {
        return match (&param.default, param.required) {
            (Some(default), false) => Ok(default.clone()),
            (Some(default), true) if raw.is_none() => Ok(default.clone()),
            (None, false) => Ok(String::new()),
            _ => Err(REQUIRED.to_owned()),
        };
    }
    if param.kind == ParamType::Choice && param.options.is_empty() {
        let listed = options(param);
        return check_value(param, listed.as_deref(), value);
    }
    check_value(param, Some(&param.options), value)
}

/// Checks one non-empty, trimmed value against `param` and returns its canonical text.
/// `options` is the list a choice must be among (`None`: not known, any short value).
///
/// # Errors
///
/// The sentence for the person, as in [`FieldErrors`].
pub(crate) fn check_value(
    param: &ParamDef,
    options: Option<&[String]>,
    value: &str,
) -> Result<String, String> {
    let (min, max) = (param.min.as_deref(), param.max.as_deref());
    match param.kind {
        ParamType::Text => {
            check_text(value, param.max_length.unwrap_or(DEFAULT_MAX_LENGTH)).map(str::to_owned)
        }
        ParamType::Integer => parse_integer(value)
            .filter(|v| within(ParamType::Integer, &v.to_string(), min, max))
            .map(|v| v.to_string())
            .ok_or_else(|| range_message("a whole number", min, max)),
        ParamType::Decimal => parse_decimal(value)
            .filter(|v| within(ParamType::Decimal, v, min, max))
            .ok_or_else(|| range_message("a number", min, max)),
        ParamType::Date => check_date(value, min, max),
        ParamType::Choice => check_choice(options, value),
    }
}

fn check_text(value: &str, max_length: u32) -> Result<&str, String> {
    if value.chars().any(char::is_control) {
        return Err("Remove control characters such as tabs or line breaks.".to_owned());
    }
    if value.chars().count() > max_length as usize {
        return Err(format!("At most {max_length} characters."));
    }
    Ok(value)
}

fn check_date(value: &str, min: Option<&str>, max: Option<&str>) -> Result<String, String> {
    let Some((year, month, day)) = parse_date(value) else {
        return Err("Enter a date as YYYY-MM-DD, for example 2024-03-31.".to_owned());
    };
    let canonical = format!("{year:04}-{month:02}-{day:02}");
    if !within(ParamType::Date, &canonical, min, max) {
        return Err(match (min, max) {
            (Some(min), Some(max)) => format!("Enter a date from {min} to {max}."),
            (Some(min), None) => format!("Enter a date on or after {min}."),
            (None, Some(max)) => format!("Enter a date on or before {max}."),
            (None, None) => "Enter a date as YYYY-MM-DD.".to_owned(),
        });
    }
    Ok(canonical)
}

fn check_choice(options: Option<&[String]>, value: &str) -> Result<String, String> {
    match options {
        Some(options) if options.iter().any(|o| o == value) => Ok(value.to_owned()),
        Some(_) => Err(CHOOSE.to_owned()),
        None => check_text(value, DEFAULT_MAX_LENGTH).map(str::to_owned),
    }
}

fn range_message(noun: &str, min: Option<&str>, max: Option<&str>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("Enter {noun} from {min} to {max}."),
        (Some(min), None) => format!("Enter {noun} of at least {min}."),
        (None, Some(max)) => format!("Enter {noun} of at most {max}."),
        (None, None) => format!("Enter {noun}."),
    }
}

/// Whether canonical `value` lies within the (canonical) bounds.
fn within(kind: ParamType, value: &str, min: Option<&str>, max: Option<&str>) -> bool {
    let not_below = min.is_none_or(|m| compare(kind, value, m) != Some(Ordering::Less));
    let not_above = max.is_none_or(|m| compare(kind, value, m) != Some(Ordering::Greater));
    not_below && not_above
}

/// Orders two canonical values of `kind`; `None` when either does not parse or the kind has
/// no order (text, choice).
pub(crate) fn compare(kind: ParamType, a: &str, b: &str) -> Option<Ordering> {
    match kind {
        ParamType::Integer => Some(parse_integer(a)?.cmp(&parse_integer(b)?)),
        ParamType::Decimal => Some(compare_decimal(&parse_decimal(a)?, &parse_decimal(b)?)),
        ParamType::Date => Some(parse_date(a)?.cmp(&parse_date(b)?)),
        ParamType::Text | ParamType::Choice => None,
    }
}

/// An optional sign and ASCII digits that fit an `i64`.
pub(crate) fn parse_integer(value: &str) -> Option<i64> {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `[+-]?digits(.digits)?` → canonical `-?digits(.digits)?`: no `+`, no leading zeros in the
/// whole part, no `-` on zero, the fraction as written.
pub(crate) fn parse_decimal(value: &str) -> Option<String> {
    if value.len() > MAX_DECIMAL_LEN {
        return None;
    }
    let negative = value.starts_with('-');
    let unsigned = value.strip_prefix(['+', '-']).unwrap_or(value);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let zero = whole == "0" && fraction.is_none_or(|f| f.bytes().all(|b| b == b'0'));
    let mut out = String::with_capacity(value.len());
    if negative && !zero {
        out.push('-');
    }
    out.push_str(whole);
    if let Some(fraction) = fraction {
        out.push('.');
        out.push_str(fraction);
    }
    Some(out)
}

/// Orders two canonical decimals exactly (no floating point).
fn compare_decimal(a: &str, b: &str) -> Ordering {
    let (a_negative, a) = a.strip_prefix('-').map_or((false, a), |rest| (true, rest));
    let (b_negative, b) = b.strip_prefix('-').map_or((false, b), |rest| (true, rest));
    match (a_negative, b_negative) {
        (false, true) => Ordering::Greater,
        (true, false) => Ordering::Less,
        (false, false) => compare_magnitude(a, b),
        (true, true) => compare_magnitude(b, a),
    }
}

fn compare_magnitude(a: &str, b: &str) -> Ordering {
    let (a_whole, a_fraction) = a.split_once('.').unwrap_or((a, ""));
    let (b_whole, b_fraction) = b.split_once('.').unwrap_or((b, ""));
    let length = a_fraction.len().max(b_fraction.len());
    let digit = |f: &str, i: usize| f.as_bytes().get(i).copied().unwrap_or(b'0');
    a_whole
        .len()
        .cmp(&b_whole.len())
        .then_with(|| a_whole.cmp(b_whole))
        .then_with(|| {
            (0..length)
                .map(|i| digit(a_fraction, i).cmp(&digit(b_fraction, i)))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        })
}

/// `YYYY-MM-DD`, a real calendar date from year 1 to 9999.
pub(crate) fn parse_date(value: &str) -> Option<(i32, u8, u8)> {
    let bytes = value.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let year: i32 = value[0..4].parse().ok()?;
    let month: u8 = value[5..7].parse().ok()?;
    let day: u8 = value[8..10].parse().ok()?;
    let valid = year >= 1 && (1..=12).contains(&month) && day >= 1 && day <= days_in(year, month);
    valid.then_some((year, month, day))
}

fn days_in(year: i32, month: u8) -> u8 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The values of `def`'s parameters, in declaration order, typed for a driver: an empty value
/// is [`ParamValue::Null`].
///
/// # Errors
///
/// A sentence naming the parameter when a value is missing or does not parse as its type
/// (e.g. values recorded before the definition changed).
pub fn bind(
    def: &Definition,
    values: &Values,
) -> Result<Vec<(String, ParamType, ParamValue)>, String> {
    def.params
        .iter()
        .map(|param| {
            let name = &param.name;
            let value = values
                .get(name)
                .ok_or_else(|| format!("parameter \"{name}\" has no value"))?;
            let typed = typed_value(param.kind, value)
                .ok_or_else(|| format!("parameter \"{name}\" has an invalid value {value:?}"))?;
            Ok((name.clone(), param.kind, typed))
        })
        .collect()
}

fn typed_value(kind: ParamType, value: &str) -> Option<ParamValue> {
    if value.is_empty() {
        return Some(ParamValue::Null);
    }
    Some(match kind {
        ParamType::Text | ParamType::Choice => ParamValue::Text(value.to_owned()),
        ParamType::Integer => ParamValue::Integer(parse_integer(value)?),
        ParamType::Decimal => ParamValue::Decimal(parse_decimal(value)?),
        ParamType::Date => {
            let (year, month, day) = parse_date(value)?;
            ParamValue::Date { year, month, day }
        }
    })
}

/// The title with each `{name}` replaced by that parameter's value and `{{`/`}}` by braces.
/// A placeholder with no value is left as written.
pub fn fill_title(def: &Definition, values: &Values) -> String {
    let Ok(pieces) = title_pieces(&def.title) else {
        return def.title.clone();
    };
    let mut out = String::with_capacity(def.title.len());
    for piece in pieces {
        match piece {
            TitlePiece::Text(text) => out.push_str(text),
            TitlePiece::Param { name, .. } => match values.get(name) {
                Some(value) => out.push_str(value),
                None => {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                }
            },
        }
    }
    out
}

/// (label, value) pairs for a PDF's title block, in declaration order; an empty value reads
/// "(any)".
pub fn describe(def: &Definition, values: &Values) -> Vec<(String, String)> {
    def.params
        .iter()
        .map(|param| {
            let value = match values.get(&param.name) {
                Some("") | None => "(any)".to_owned(),
                Some(value) => value.to_owned(),
            };
            (param.label.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::definition::{ParseContext, parse};
    use std::path::Path;

    const DEF: &str = r#"
title = "Sales {region} from {from}{{x}}"
[source]
kind = "sqlite"
database = "x.sqlite"
query = "select * from t where r = :region and d >= :from and d < :to and n <= :limit and p >= :price and q like :q and c = :cat"
[[param]]
name = "region"
type = "choice"
options = ["north", "south"]
[[param]]
name = "from"
label = "From"
type = "date"
min = "2024-01-01"
max = "2024-12-31"
[[param]]
name = "to"
type = "date"
required = false
[[param]]
name = "limit"
type = "integer"
min = 1
max = 100000
required = false
default = 10
[[param]]
name = "price"
type = "decimal"
min = "-1.5"
max = 99.95
required = false
[[param]]
name = "q"
type = "text"
required = false
max_length = 5
[[param]]
name = "cat"
type = "choice"
options_query = "select name from cats"
required = false
[[column]]
field = "a"
"#;

    fn def() -> Definition {
        parse(Path::new("reports/t.toml"), DEF, &ParseContext::default()).unwrap()
    }

    fn param<'a>(def: &'a Definition, name: &str) -> &'a ParamDef {
        def.params.iter().find(|p| p.name == name).unwrap()
    }

    fn check(def: &Definition, name: &str, raw: Option<&str>) -> Result<String, String> {
        let cats = |_: &ParamDef| Some(vec!["pets".to_owned()]);
        validate_param(param(def, name), &cats, raw)
    }

    #[test]
    fn accepts_and_normalizes_valid_values() {
        let def = def();
        let cases = [
            ("region", Some(" north "), "north"),
            ("from", Some("2024-02-29"), "2024-02-29"),
            ("from", Some("2024-01-01"), "2024-01-01"),
            ("from", Some("2024-12-31"), "2024-12-31"),
            ("to", Some(""), ""),
            ("to", None, ""),
            ("to", Some("2000-02-29"), "2000-02-29"),
            ("limit", Some("+007"), "7"),
            ("limit", Some("100000"), "100000"),
            ("limit", Some("1"), "1"),
            ("limit", Some(""), "10"),
            ("price", Some("-1.50"), "-1.50"),
            ("price", Some("+99.950"), "99.950"),
            ("price", Some("-0.0"), "0.0"),
            ("price", Some("0012.5"), "12.5"),
            ("price", Some("99"), "99"),
            ("q", Some("a'b\""), "a'b\""),
            ("q", Some("; --"), "; --"),
            ("q", Some("%_\\"), "%_\\"),
            ("q", Some("' OR"), "' OR"),
            ("q", Some("ünï"), "ünï"),
            ("cat", Some("pets"), "pets"),
        ];
        for (name, raw, expected) in cases {
            assert_eq!(
                check(&def, name, raw),
                Ok(expected.to_owned()),
                "{name} {raw:?}"
            );
        }
    }

    #[test]
    fn refuses_invalid_values_with_a_sentence() {
        let def = def();
        let cases = [
            ("region", Some("east"), "Choose one of the listed values."),
            ("region", Some(""), "This field is required."),
            ("region", None, "This field is required."),
            (
                "from",
                Some("2023-12-31"),
                "Enter a date from 2024-01-01 to 2024-12-31.",
            ),
            (
                "from",
                Some("2025-01-01"),
                "Enter a date from 2024-01-01 to 2024-12-31.",
            ),
            ("from", Some("2024-02-30"), "Enter a date as YYYY-MM-DD"),
            ("to", Some("2023-02-29"), "Enter a date as YYYY-MM-DD"),
            ("to", Some("1900-02-29"), "Enter a date as YYYY-MM-DD"),
            ("to", Some("2024-1-01"), "Enter a date as YYYY-MM-DD"),
            ("to", Some("2024-13-01"), "Enter a date as YYYY-MM-DD"),
            ("to", Some("0000-01-01"), "Enter a date as YYYY-MM-DD"),
            ("to", Some("２０２４-01-01"), "Enter a date as YYYY-MM-DD"),
            ("limit", Some("0"), "Enter a whole number from 1 to 100000."),
            (
                "limit",
                Some("100001"),
                "Enter a whole number from 1 to 100000.",
            ),
            (
                "limit",
                Some("1.0"),
                "Enter a whole number from 1 to 100000.",
            ),
            (
                "limit",
                Some("99999999999999999999"),
                "Enter a whole number",
            ),
            ("limit", Some("1e3"), "Enter a whole number"),
            ("limit", Some("+"), "Enter a whole number"),
            ("limit", Some("--1"), "Enter a whole number"),
            ("price", Some("-1.51"), "Enter a number from -1.5 to 99.95."),
            (
                "price",
                Some("99.951"),
                "Enter a number from -1.5 to 99.95.",
            ),
            ("price", Some("1,5"), "Enter a number"),
            ("price", Some(".5"), "Enter a number"),
            ("price", Some("5."), "Enter a number"),
            ("price", Some("NaN"), "Enter a number"),
            ("q", Some("abcdef"), "At most 5 characters."),
            ("q", Some("a\0b"), "control characters"),
            ("q", Some("a\tb"), "control characters"),
            ("cat", Some("dogs"), "Choose one of the listed values."),
        ];
        for (name, raw, expected) in cases {
            let message = check(&def, name, raw).unwrap_err();
            assert!(message.contains(expected), "{name} {raw:?}: {message}");
        }
    }

    #[test]
    fn choice_with_unknown_options_takes_any_short_value() {
        let def = def();
        let none = |_: &ParamDef| None;
        let cat = param(&def, "cat");
        assert_eq!(
            validate_param(cat, &none, Some("x';--")),
            Ok("x';--".into())
        );
        let long = "x".repeat(201);
        assert!(validate_param(cat, &none, Some(&long)).is_err());
    }

    #[test]
    fn validate_collects_every_error_in_declaration_order() {
        let def = def();
        let pairs = vec![
            ("region".to_owned(), "west".to_owned()),
            ("limit".to_owned(), "x".to_owned()),
        ];
        let errors = validate(&def, &|_| None, &Submitted::from_pairs(&pairs)).unwrap_err();
        let names: Vec<&str> = errors.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["region", "from", "limit"]);
        assert_eq!(errors.get("from"), Some("This field is required."));
        assert!(errors.to_string().starts_with("region: Choose"));
    }

    fn good_values(def: &Definition) -> Values {
        let pairs: Vec<(String, String)> = [
            ("region", "south"),
            ("from", "2024-03-01"),
            ("limit", "5"),
            ("price", "1.25"),
            ("q", "50%"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
        validate(def, &|_| None, &Submitted::from_pairs(&pairs)).unwrap()
    }

    #[test]
    fn bind_types_each_value_and_empty_is_null() {
        let def = def();
        let bound = bind(&def, &good_values(&def)).unwrap();
        let expected = [
            ("region", ParamValue::Text("south".into())),
            (
                "from",
                ParamValue::Date {
                    year: 2024,
                    month: 3,
                    day: 1,
                },
            ),
            ("to", ParamValue::Null),
            ("limit", ParamValue::Integer(5)),
            ("price", ParamValue::Decimal("1.25".into())),
            ("q", ParamValue::Text("50%".into())),
            ("cat", ParamValue::Null),
        ];
        assert_eq!(bound.len(), expected.len());
        for ((name, _, value), (want_name, want)) in bound.iter().zip(expected) {
            assert_eq!((name.as_str(), value), (want_name, &want));
        }
    }

    #[test]
    fn bind_refuses_recorded_values_that_no_longer_fit() {
        let def = def();
        let mut map = good_values(&def).as_map().clone();
        map.insert("limit".into(), "many".into());
        let error = bind(&def, &Values::from_map(map.clone())).unwrap_err();
        assert!(error.contains("\"limit\""), "{error}");
        map.remove("limit");
        assert!(
            bind(&def, &Values::from_map(map))
                .unwrap_err()
                .contains("no value")
        );
    }

    #[test]
    fn fill_title_and_describe_use_the_values() {
        let def = def();
        let values = good_values(&def);
        assert_eq!(fill_title(&def, &values), "Sales south from 2024-03-01{x}");
        let lines = describe(&def, &values);
        assert_eq!(lines[1], ("From".to_owned(), "2024-03-01".to_owned()));
        assert_eq!(lines[2], ("to".to_owned(), "(any)".to_owned()));
    }

    #[test]
    fn decimals_compare_exactly() {
        let cases = [
            ("1.5", "1.50", Ordering::Equal),
            ("-2", "-10", Ordering::Greater),
            ("0.1", "0.09999999999999999999", Ordering::Greater),
            ("-0.1", "0", Ordering::Less),
            ("100", "99.999", Ordering::Greater),
            (
                "12345678901234567890.1",
                "12345678901234567890.01",
                Ordering::Greater,
            ),
        ];
        for (a, b, expected) in cases {
            assert_eq!(
                compare(ParamType::Decimal, a, b),
                Some(expected),
                "{a} vs {b}"
            );
        }
    }
}
