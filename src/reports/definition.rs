//! Reading one report definition file (`<reports-dir>/<id>.toml`) into a checked
//! [`Definition`], with every problem reported as `file:line:column: what is wrong`.
//!
//! Owns the TOML key contract (names, types, defaults) and the checks across keys: `:name`
//! placeholders against declared params, title placeholders, `group_by`, totals against
//! column formats, defaults against bounds. Uses `sql` for placeholders and `params` for the
//! value rules; must not depend on `source`, `render`, `web` or `jobs`, and opens no
//! database.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::params::{check_value, compare, parse_date, parse_decimal, parse_integer};
use super::sql::{self, SqlError};
use super::{
    Align, ColumnDef, DatabaseRef, Definition, FontsDef, Format, Overflow, ParamDef, ParamType,
    SourceDef, SourceKind, Total,
};
use crate::pdf::{Orientation, Paper};

/// What parsing may need from the caller besides the file. Nothing yet; a struct so that
/// settings can be added without changing every call.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ParseContext {}

/// A definition file that cannot be used: where, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefinitionError {
    /// The file (or, for a catalog that cannot be listed, the folder).
    pub path: PathBuf,
    /// 1-based line of the offending key or value; 0 when the problem is the whole file
    /// (it cannot be read, or its name is not a valid id).
    pub line: usize,
    /// 1-based column, counted in characters; 0 with `line`.
    pub column: usize,
    /// The part of the file concerned, e.g. `column "region"`; empty for top-level keys.
    pub context: String,
    /// What is wrong (boxed to keep `Result`s small).
    pub problem: Box<Problem>,
}

/// What is wrong with a definition file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The file or folder cannot be read.
    Unreadable(String),
    /// The file is not UTF-8 text.
    NotUtf8,
    /// The file name is not `[a-z0-9-]+.toml`.
    BadId { stem: String },
    /// The file has nothing in it.
    Empty,
    /// Not valid TOML; toml's own message.
    Syntax(String),
    /// A key this table does not take.
    UnknownKey {
        key: String,
        table: &'static str,
        accepted: &'static [&'static str],
    },
    /// A value of the wrong TOML type.
    WrongType {
        key: String,
        expected: &'static str,
        found: &'static str,
    },
    /// A value that is not one of the accepted words.
    UnknownValue {
        key: String,
        value: String,
        accepted: Vec<&'static str>,
    },
    /// A required key is absent.
    Missing {
        key: &'static str,
        table: &'static str,
    },
    /// A value outside what the key allows.
    Invalid { key: String, reason: String },
    /// A total the column's format cannot have.
    TotalNeedsFormat {
        total: &'static str,
        needs: &'static str,
        format: &'static str,
    },
    /// SQL that cannot be scanned for placeholders.
    BadSql { key: &'static str, error: SqlError },
    /// A `:name` in SQL that no `[[param]]` declares.
    UnknownPlaceholder { name: String, key: &'static str },
    /// A `[[param]]` that neither `query` nor the title uses.
    UnusedParam { name: String },
    /// A `{name}` in the title that no `[[param]]` declares.
    UnknownTitleParam { name: String },
    /// `group_by` names no column's field.
    UnknownGroupBy { field: String },
    /// Two params with one name, or two columns with one field.
    Duplicate { what: &'static str, name: String },
    /// A param name the form uses itself.
    ReservedName { name: String, reason: &'static str },
    /// A `sqlite` source without `database`.
    SqliteNeedsDatabase,
    /// A `postgres`/`mysql` source with both or neither of `database` and `url_env`.
    DatabaseOrUrlEnv { kind: &'static str, both: bool },
    /// A default a person could not enter.
    BadDefault { default: String, reason: String },
    /// A font file that does not exist.
    MissingFont { key: &'static str, path: PathBuf },
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.context.is_empty() {
            write!(f, ": {}", self.context)?;
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for DefinitionError {}

impl DefinitionError {
    /// A problem with the whole file or folder at `path` (no line or column).
    pub fn whole_file(path: &Path, problem: Problem) -> DefinitionError {
        DefinitionError {
            path: path.to_owned(),
            line: 0,
            column: 0,
            context: String::new(),
            problem: Box::new(problem),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Unreadable(e) => write!(f, "cannot be read: {e}"),
            Problem::NotUtf8 => f.write_str("is not UTF-8 text"),
            Problem::BadId { stem } => write!(
                f,
                "the file name is the report id and may use only lowercase letters, digits and \
                 '-' (\"{stem}\" does not)"
            ),
            Problem::Empty => f.write_str(
                "the file is empty; a report needs at least title, [source] and [[column]]",
            ),
            Problem::Syntax(message) => write!(f, "TOML syntax error: {message}"),
            Problem::UnknownKey {
                key,
                table,
                accepted,
            } => write!(
                f,
                "unknown key \"{key}\" in {table}; accepted keys: {}",
                accepted.join(", ")
            ),
            Problem::WrongType {
                key,
                expected,
                found,
            } => {
                write!(f, "{key} must be {expected}, not {found}")
            }
            Problem::UnknownValue {
                key,
                value,
                accepted,
            } => write!(
                f,
                "{key} = \"{value}\" is not one of {}",
                quoted_list(accepted)
            ),
            Problem::Missing { key, table } => write!(f, "{table} needs {key}"),
            Problem::Invalid { key, reason } => write!(f, "{key} {reason}"),
            other => other.fmt_check(f),
        }
    }
}

impl Problem {
    /// The messages of the checks across keys and of value constraints.
    fn fmt_check(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::TotalNeedsFormat {
                total,
                needs,
                format,
            } => write!(f, "a total of {total} needs {needs}, not {format}"),
            Problem::BadSql { key, error } => {
                write!(f, "{key} is not SQL that can be read: {error}")
            }
            Problem::UnknownPlaceholder { name, key } if *key == "options_query" => write!(
                f,
                "options_query uses :{name}, but an options query runs before any value is \
                 chosen and takes no parameters"
            ),
            Problem::UnknownPlaceholder { name, key } => {
                write!(f, "{key} uses :{name} but no [[param]] is named \"{name}\"")
            }
            Problem::UnusedParam { name } => write!(
                f,
                "param \"{name}\" is declared but neither [source] query (:{name}) nor title ({{{name}}}) uses it"
            ),
            Problem::UnknownTitleParam { name } => write!(
                f,
                "title uses {{{name}}} but no [[param]] is named \"{name}\" (write {{{{ and }}}} for literal braces)"
            ),
            Problem::UnknownGroupBy { field } => {
                write!(f, "group_by = \"{field}\" names no [[column]] field")
            }
            Problem::Duplicate { what, name } => write!(f, "{what} \"{name}\" is used twice"),
            Problem::ReservedName { name, reason } => {
                write!(f, "the param name \"{name}\" is reserved: {reason}")
            }
            Problem::SqliteNeedsDatabase => f.write_str(
                "a sqlite source needs database = \"file.sqlite\" (relative to this file's folder)",
            ),
            Problem::DatabaseOrUrlEnv { kind, both } => write!(
                f,
                "a {kind} source needs exactly one of database = \"{kind}://…\" and url_env = \"VAR\"{}",
                if *both { ", not both" } else { "" }
            ),
            Problem::BadDefault { default, reason } => {
                write!(
                    f,
                    "default \"{default}\" is not a value the form would accept: {reason}"
                )
            }
            Problem::MissingFont { key, path } => {
                write!(f, "{key} font file {} does not exist", path.display())
            }
            // Written by `Display::fmt`.
            Problem::Unreadable(_)
            | Problem::NotUtf8
            | Problem::BadId { .. }
            | Problem::Empty
            | Problem::Syntax(_)
            | Problem::UnknownKey { .. }
            | Problem::WrongType { .. }
            | Problem::UnknownValue { .. }
            | Problem::Missing { .. }
            | Problem::Invalid { .. } => Ok(()),
        }
    }
}

fn quoted_list(words: &[&str]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

/// A stable hex digest of a definition file's bytes: FNV-1a, 64 bits, 16 hex digits.
pub fn digest(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The longest `reuse_for`: longer than any job is likely to be kept anyway.
const MAX_REUSE: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// `"90s"`, `"10m"`, `"2h"`, `"1d"` (and `"0"`): a whole number and one unit.
pub fn parse_span(text: &str) -> Option<std::time::Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(std::time::Duration::ZERO);
    }
    let unit_at = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(unit_at);
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

/// Whether `id` is a valid report id, `[a-z0-9-]+`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Reads and checks the definition file at `path`.
///
/// # Errors
///
/// A [`DefinitionError`] when the file cannot be read, is not UTF-8, or fails [`parse`].
pub fn load(path: &Path, ctx: &ParseContext) -> Result<Definition, DefinitionError> {
    let whole_file = |problem| DefinitionError::whole_file(path, problem);
    let bytes = std::fs::read(path).map_err(|e| whole_file(Problem::Unreadable(e.to_string())))?;
    let text = String::from_utf8(bytes).map_err(|_| whole_file(Problem::NotUtf8))?;
    parse(path, &text, ctx)
}

/// Checks `text`, the contents of the definition file at `path` (its stem is the id; relative
/// paths inside resolve against its folder; font files must exist).
///
/// # Errors
///
/// The first [`DefinitionError`] found, located at the offending key or value.
pub fn parse(path: &Path, text: &str, _ctx: &ParseContext) -> Result<Definition, DefinitionError> {
    let doc = Doc { path, text };
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let id = match stem {
        Some(stem) if is_valid_id(&stem) => stem,
        stem => {
            let stem = stem.unwrap_or_default();
            return Err(DefinitionError::whole_file(path, Problem::BadId { stem }));
        }
    };
    if text.trim().is_empty() {
        return Err(doc.error(0, String::new(), Problem::Empty));
    }
    let root = DeTable::parse(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        doc.error(
            offset,
            String::new(),
            Problem::Syntax(e.message().trim().to_owned()),
        )
    })?;
    let top = Table {
        doc: &doc,
        table: root.get_ref(),
        span: 0..0,
        name: "the top level",
        context: String::new(),
    };
    build(&top, id)
}

/// The file being parsed: turns byte offsets into located errors.
struct Doc<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Doc<'_> {
    fn error(&self, offset: usize, context: String, problem: Problem) -> DefinitionError {
        let (line, column) = line_column(self.text, offset);
        DefinitionError {
            path: self.path.to_owned(),
            line,
            column,
            context,
            problem: Box::new(problem),
        }
    }

    /// A path written in the file, resolved against the file's folder.
    fn resolve(&self, written: &str) -> PathBuf {
        match self.path.parent() {
            Some(folder) => folder.join(written),
            None => PathBuf::from(written),
        }
    }

    /// Where `inner` (a slice of a string value) starts in the file, when the parser
    /// borrowed it unchanged from the text (no escapes).
    fn offset_of(&self, inner: &str) -> Option<usize> {
        let offset = (inner.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        let slice = self.text.get(offset..offset + inner.len())?;
        std::ptr::eq(slice.as_ptr(), inner.as_ptr()).then_some(offset)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |p| p + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// A string value with where it is.
#[derive(Clone, Copy)]
struct Str<'a> {
    value: &'a str,
    /// Byte offset of the value (its opening quote).
    start: usize,
}

/// One TOML table being read, with what is needed to locate errors in it.
struct Table<'a, 'i> {
    doc: &'a Doc<'a>,
    table: &'a DeTable<'i>,
    /// The header (`[source]`) or inline table; `0..0` for the top level.
    span: Range<usize>,
    /// For messages: `[source]`, `[[param]]`, …
    name: &'static str,
    /// Prefix of every message about this table, e.g. `param "from"`.
    context: String,
}

impl<'a, 'i> Table<'a, 'i> {
    /// `value` as a table named `name`; `key` is how it was reached, for a type error.
    fn of(
        parent: &Table<'a, 'i>,
        key: &str,
        value: &'a Spanned<DeValue<'i>>,
        name: &'static str,
    ) -> Result<Self, DefinitionError> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(Table {
                doc: parent.doc,
                table,
                span: value.span(),
                name,
                context: String::new(),
            }),
            other => Err(parent.wrong_type(key, value.span().start, "a table", other)),
        }
    }

    fn error(&self, offset: usize, problem: Problem) -> DefinitionError {
        self.doc.error(offset, self.context.clone(), problem)
    }

    fn wrong_type(
        &self,
        key: &str,
        offset: usize,
        expected: &'static str,
        found: &DeValue<'_>,
    ) -> DefinitionError {
        let found = match found {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "an integer",
            DeValue::Float(_) => "a float",
            DeValue::Boolean(_) => "a boolean",
            DeValue::Datetime(_) => "a date/time",
            DeValue::Array(_) => "an array",
            DeValue::Table(_) => "a table",
        };
        let key = key.to_owned();
        self.error(
            offset,
            Problem::WrongType {
                key,
                expected,
                found,
            },
        )
    }

    fn missing(&self, key: &'static str) -> DefinitionError {
        let problem = Problem::Missing {
            key,
            table: self.name,
        };
        self.error(self.span.start, problem)
    }

    fn invalid(&self, key: &str, offset: usize, reason: impl Into<String>) -> DefinitionError {
        let problem = Problem::Invalid {
            key: key.to_owned(),
            reason: reason.into(),
        };
        self.error(offset, problem)
    }

    /// Refuses the key (earliest in the file) that is not in `accepted`.
    fn check_keys(&self, accepted: &'static [&'static str]) -> Result<(), DefinitionError> {
        let unknown = self
            .table
            .iter()
            .map(|(key, _)| key)
            .filter(|key| !accepted.contains(&key.get_ref().as_ref()))
            .min_by_key(|key| key.span().start);
        match unknown {
            None => Ok(()),
            Some(key) => {
                let problem = Problem::UnknownKey {
                    key: key.get_ref().to_string(),
                    table: self.name,
                    accepted,
                };
                Err(self.error(key.span().start, problem))
            }
        }
    }

    fn entry(
        &self,
        key: &str,
    ) -> Option<(
        &'a Spanned<std::borrow::Cow<'i, str>>,
        &'a Spanned<DeValue<'i>>,
    )> {
        self.table.iter().find(|(k, _)| k.get_ref().as_ref() == key)
    }

    fn value(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entry(key).map(|(_, v)| v)
    }

    fn key_start(&self, key: &str) -> usize {
        self.entry(key)
            .map_or(self.span.start, |(k, _)| k.span().start)
    }

    fn string(&self, key: &str) -> Result<Option<Str<'a>>, DefinitionError> {
        let Some(value) = self.value(key) else {
            return Ok(None);
        };
        match value.get_ref() {
            DeValue::String(s) => Ok(Some(Str {
                value: s.as_ref(),
                start: value.span().start,
            })),
            other => Err(self.wrong_type(key, value.span().start, "a string", other)),
        }
    }

    fn required_string(&self, key: &'static str) -> Result<Str<'a>, DefinitionError> {
        self.string(key)?.ok_or_else(|| self.missing(key))
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool, DefinitionError> {
        match self.value(key) {
            None => Ok(default),
            Some(value) => match value.get_ref() {
                DeValue::Boolean(b) => Ok(*b),
                other => Err(self.wrong_type(
                    key,
                    value.span().start,
                    "a boolean (true or false)",
                    other,
                )),
            },
        }
    }

    /// An integer within `range`.
    fn integer(
        &self,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, DefinitionError> {
        let Some(value) = self.value(key) else {
            return Ok(None);
        };
        let start = value.span().start;
        let DeValue::Integer(integer) = value.get_ref() else {
            return Err(self.wrong_type(key, start, "an integer", value.get_ref()));
        };
        match i64::from_str_radix(integer.as_str(), integer.radix()) {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(self.invalid(
                key,
                start,
                format!("must be from {} to {}", range.start(), range.end()),
            )),
        }
    }

    /// A scalar written as a TOML string, integer, float or local date, as text.
    fn scalar_text(&self, key: &str) -> Result<Option<(String, usize)>, DefinitionError> {
        let Some(value) = self.value(key) else {
            return Ok(None);
        };
        let start = value.span().start;
        let text = match value.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => n.to_string(),
                Err(_) => return Err(self.invalid(key, start, "is too large")),
            },
            DeValue::Float(f) => match plain_decimal(f.as_str()) {
                Some(text) => text,
                None => return Err(self.invalid(key, start, "must be a finite number")),
            },
            DeValue::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => dt.to_string(),
            other => {
                return Err(self.wrong_type(key, start, "a string or a number", other));
            }
        };
        Ok(Some((text, start)))
    }

    /// One of `words`; `key` absent gives `None`.
    fn word<T: Copy>(
        &self,
        key: &str,
        words: &[(&'static str, T)],
    ) -> Result<Option<T>, DefinitionError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        match words.iter().find(|(w, _)| *w == text.value) {
            Some((_, value)) => Ok(Some(*value)),
            None => {
                let problem = Problem::UnknownValue {
                    key: key.to_owned(),
                    value: text.value.to_owned(),
                    accepted: words.iter().map(|(w, _)| *w).collect(),
                };
                Err(self.error(text.start, problem))
            }
        }
    }

    /// The tables of an array of tables (`[[name]]`); absent gives none.
    fn tables(&self, key: &str, name: &'static str) -> Result<Vec<Table<'a, 'i>>, DefinitionError> {
        let Some(value) = self.value(key) else {
            return Ok(Vec::new());
        };
        let expected = if key == "param" {
            "an array of tables ([[param]])"
        } else {
            "an array of tables ([[column]])"
        };
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self.wrong_type(key, value.span().start, expected, value.get_ref()));
        };
        items
            .iter()
            .map(|item| Table::of(self, key, item, name))
            .collect()
    }
}

/// A TOML float as written (`1e3`, `-2.5E-1`, `+0.5`) as a plain decimal (`1000`, `-0.25`,
/// `0.5`), exactly; `None` for `inf`/`nan` or an exponent beyond ±60.
fn plain_decimal(written: &str) -> Option<String> {
    let negative = written.starts_with('-');
    let unsigned = written.strip_prefix(['+', '-']).unwrap_or(written);
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().ok()?),
        None => (unsigned, 0),
    };
    if !(-60..=60).contains(&exponent) {
        return None;
    }
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let point = i32::try_from(whole.len()).ok()? + exponent;
    let (whole, fraction) = if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        ("0".to_owned(), format!("{zeros}{digits}"))
    } else {
        let point = point.unsigned_abs() as usize;
        let padded = format!("{digits:0<point$}");
        (padded[..point].to_owned(), padded[point..].to_owned())
    };
    let sign = if negative { "-" } else { "" };
    let fraction = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    Some(format!("{sign}{whole}{fraction}"))
}

const TOP_KEYS: &[&str] = &[
    "title",
    "description",
    "paper",
    "orientation",
    "choose_paper",
    "choose_orientation",
    "group_by",
    "thousands_separator",
    "decimal_mark",
    "source",
    "param",
    "column",
    "fonts",
    "reuse_for",
    "callback_url",
    "retention",
];
const SOURCE_KEYS: &[&str] = &[
    "kind",
    "database",
    "url_env",
    "query",
    "count_query",
    "timeout_secs",
];
const PARAM_KEYS: &[&str] = &[
    "name",
    "label",
    "type",
    "required",
    "default",
    "min",
    "max",
    "max_length",
    "options",
    "options_query",
];
const COLUMN_KEYS: &[&str] = &[
    "field", "heading", "format", "decimals", "align", "width", "total", "overflow",
];
const FONT_KEYS: &[&str] = &["regular", "bold"];

/// Where things the cross-checks point at are.
struct Located<'a> {
    title: Str<'a>,
    group_by: Option<Str<'a>>,
    query: Str<'a>,
    count_query: Option<Str<'a>>,
    /// Per param, in order: its `name` value and its `options_query`.
    params: Vec<(Str<'a>, Option<Str<'a>>)>,
}

fn build(top: &Table<'_, '_>, id: String) -> Result<Definition, DefinitionError> {
    top.check_keys(TOP_KEYS)?;
    let title = top.required_string("title")?;
    let description = top
        .string("description")?
        .map_or("", |s| s.value)
        .to_owned();
    let paper = top.word("paper", &[("a4", Paper::A4), ("letter", Paper::Letter)])?;
    let orientation = top.word(
        "orientation",
        &[
            ("portrait", Orientation::Portrait),
            ("landscape", Orientation::Landscape),
        ],
    )?;
    let paper_choice = top.bool("choose_paper", false)?;
    let orientation_choice = top.bool("choose_orientation", false)?;
    let group_by = top.string("group_by")?;
    let (thousands_separator, decimal_mark) = number_marks(top)?;
    let (source, query, count_query) = parse_source(top)?;
    let database_at = source_location(top);
    let (params, param_spans) = parse_params(top, paper_choice, orientation_choice)?;
    let columns = parse_columns(top)?;
    let fonts = parse_fonts(top)?;
    let reuse_for = match top.string("reuse_for")? {
        None => None,
        Some(text) => match parse_span(text.value) {
            Some(d) if d.is_zero() => None,
            Some(d) if d <= MAX_REUSE => Some(d),
            Some(_) => {
                return Err(top.invalid("reuse_for", text.start, "must be at most 7d"));
            }
            None => {
                return Err(top.invalid(
                    "reuse_for",
                    text.start,
                    "must be a number and a unit, such as \"90s\", \"10m\", \"2h\" or \"1d\"",
                ));
            }
        },
    };
    // Checked against the server's allow list when a job is made, like one from a request.
    let callback_url = match top.string("callback_url")? {
        None => None,
        Some(url) if url.value.starts_with("https://") || url.value.starts_with("http://") => {
            Some(url.value.to_owned())
        }
        Some(url) => {
            return Err(top.invalid("callback_url", url.start, "must be an http or https URL"));
        }
    };
    let retention = match top.string("retention")? {
        None => None,
        Some(text) => match parse_span(text.value) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                return Err(top.invalid(
                    "retention",
                    text.start,
                    "must be a number and a unit above zero, such as \"30m\", \"2h\" or \"7d\"",
                ));
            }
        },
    };
    let definition = Definition {
        id,
        path: top.doc.path.to_owned(),
        hash: digest(top.doc.text.as_bytes()),
        title: title.value.to_owned(),
        description,
        paper: paper.unwrap_or(Paper::A4),
        orientation: orientation.unwrap_or(Orientation::Portrait),
        paper_choice,
        orientation_choice,
        group_by: group_by.map(|s| s.value.to_owned()),
        thousands_separator,
        decimal_mark,
        source,
        database_at,
        params,
        columns,
        fonts,
        reuse_for,
        callback_url,
        retention,
    };
    let located = Located {
        title,
        group_by,
        query,
        count_query,
        params: param_spans,
    };
    cross_check(top.doc, &definition, &located)?;
    Ok(definition)
}

fn number_marks(top: &Table<'_, '_>) -> Result<(String, String), DefinitionError> {
    let separator = top.string("thousands_separator")?;
    let mark = top.string("decimal_mark")?;
    let separator_text = separator.map_or(",", |s| s.value);
    let mark_text = mark.map_or(".", |s| s.value);
    if let Some(s) = separator
        && (s.value.chars().count() > 4
            || s.value
                .chars()
                .any(|c| c.is_ascii_digit() || c.is_control()))
    {
        return Err(top.invalid(
            "thousands_separator",
            s.start,
            "must be at most 4 characters, none a digit",
        ));
    }
    if let Some(m) = mark
        && (m.value.chars().count() != 1
            || m.value
                .chars()
                .any(|c| c.is_ascii_digit() || c.is_control()))
    {
        return Err(top.invalid(
            "decimal_mark",
            m.start,
            "must be exactly one character, not a digit",
        ));
    }
    if !separator_text.is_empty() && separator_text.contains(mark_text) {
        let start = mark.or(separator).map_or(0, |s| s.start);
        return Err(top.invalid(
            "decimal_mark",
            start,
            format!("\"{mark_text}\" must differ from thousands_separator \"{separator_text}\""),
        ));
    }
    Ok((separator_text.to_owned(), mark_text.to_owned()))
}

type SourceParts<'a> = (SourceDef, Str<'a>, Option<Str<'a>>);

/// Line and column of `[source]`'s `database` (or `url_env`) value, for messages about the
/// connection (`check-config`).
fn source_location(top: &Table<'_, '_>) -> (usize, usize) {
    let at = top
        .value("source")
        .and_then(|v| Table::of(top, "source", v, "[source]").ok())
        .and_then(|t| {
            let database = t.string("database").ok().flatten();
            database.or_else(|| t.string("url_env").ok().flatten())
        })
        .map_or(0, |s| s.start);
    line_column(top.doc.text, at)
}

fn parse_source<'a>(top: &Table<'a, '_>) -> Result<SourceParts<'a>, DefinitionError> {
    let value = top.value("source").ok_or_else(|| top.missing("[source]"))?;
    let mut source = Table::of(top, "source", value, "[source]")?;
    source.context = "[source]".to_owned();
    source.check_keys(SOURCE_KEYS)?;
    let kinds = [
        ("sqlite", SourceKind::Sqlite),
        ("postgres", SourceKind::Postgres),
        ("mysql", SourceKind::Mysql),
    ];
    let kind = source
        .word("kind", &kinds)?
        .ok_or_else(|| source.missing("kind"))?;
    let database = parse_database(&source, kind)?;
    let query = source.required_string("query")?;
    if query.value.trim().is_empty() {
        return Err(source.invalid("query", query.start, "is empty"));
    }
    let count_query = source.string("count_query")?;
    let timeout = source.integer("timeout_secs", 1..=86_400)?.unwrap_or(60);
    let def = SourceDef {
        kind,
        database,
        query: query.value.to_owned(),
        count_query: count_query.map(|s| s.value.to_owned()),
        timeout: Duration::from_secs(timeout.unsigned_abs()),
    };
    Ok((def, query, count_query))
}

fn parse_database(
    source: &Table<'_, '_>,
    kind: SourceKind,
) -> Result<DatabaseRef, DefinitionError> {
    let database = source.string("database")?;
    let url_env = source.string("url_env")?;
    if kind == SourceKind::Sqlite {
        return sqlite_database(source, database, url_env);
    }
    let both = database.is_some() && url_env.is_some();
    match (database, url_env) {
        (Some(url), None) => server_url(source, kind, url),
        (None, Some(env)) => env_name(source, env),
        (_, env) => {
            let offset = env.filter(|_| both).map_or(source.span.start, |e| e.start);
            let kind = kind.as_str();
            Err(source.error(offset, Problem::DatabaseOrUrlEnv { kind, both }))
        }
    }
}

fn sqlite_database(
    source: &Table<'_, '_>,
    database: Option<Str<'_>>,
    url_env: Option<Str<'_>>,
) -> Result<DatabaseRef, DefinitionError> {
    if let Some(env) = url_env {
        return Err(source.invalid(
            "url_env",
            env.start,
            "is for postgres and mysql sources; a sqlite source names its file with database",
        ));
    }
    let database =
        database.ok_or_else(|| source.error(source.span.start, Problem::SqliteNeedsDatabase))?;
    if database.value.trim().is_empty() {
        return Err(source.invalid("database", database.start, "is empty"));
    }
    Ok(DatabaseRef::Path(source.doc.resolve(database.value)))
}

fn server_url(
    source: &Table<'_, '_>,
    kind: SourceKind,
    url: Str<'_>,
) -> Result<DatabaseRef, DefinitionError> {
    let schemes: &[&str] = match kind {
        SourceKind::Postgres => &["postgres://", "postgresql://"],
        _ => &["mysql://", "mariadb://"],
    };
    if schemes.iter().any(|s| url.value.starts_with(s)) {
        Ok(DatabaseRef::Url(url.value.to_owned()))
    } else {
        let reason = format!("must be a URL starting with {}", schemes.join(" or "));
        Err(source.invalid("database", url.start, reason))
    }
}

fn env_name(source: &Table<'_, '_>, env: Str<'_>) -> Result<DatabaseRef, DefinitionError> {
    let bytes = env.value.as_bytes();
    let valid = bytes
        .first()
        .is_some_and(|b| b.is_ascii_uppercase() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_');
    if valid {
        Ok(DatabaseRef::UrlEnv(env.value.to_owned()))
    } else {
        let reason =
            "must be an environment variable name: A-Z, 0-9 and _, not starting with a digit";
        Err(source.invalid("url_env", env.start, reason))
    }
}

type ParamParts<'a> = (Vec<ParamDef>, Vec<(Str<'a>, Option<Str<'a>>)>);

fn parse_params<'a>(
    top: &Table<'a, '_>,
    paper_choice: bool,
    orientation_choice: bool,
) -> Result<ParamParts<'a>, DefinitionError> {
    let mut params: Vec<ParamDef> = Vec::new();
    let mut spans = Vec::new();
    for (index, mut table) in top.tables("param", "[[param]]")?.into_iter().enumerate() {
        table.context = format!("param {}", index + 1);
        table.check_keys(PARAM_KEYS)?;
        let name = table.required_string("name")?;
        check_param_name(&table, name, paper_choice, orientation_choice)?;
        if params.iter().any(|p| p.name == name.value) {
            let problem = Problem::Duplicate {
                what: "param name",
                name: name.value.to_owned(),
            };
            return Err(table.error(name.start, problem));
        }
        table.context = format!("param \"{}\"", name.value);
        let (param, options_query) = parse_param(&table, name.value)?;
        params.push(param);
        spans.push((name, options_query));
    }
    Ok((params, spans))
}

fn check_param_name(
    table: &Table<'_, '_>,
    name: Str<'_>,
    paper_choice: bool,
    orientation_choice: bool,
) -> Result<(), DefinitionError> {
    let bytes = name.value.as_bytes();
    let valid = bytes
        .first()
        .is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_');
    if !valid {
        return Err(table.invalid(
            "name",
            name.start,
            "must be lowercase letters, digits and _, not starting with a digit",
        ));
    }
    let reason = match name.value {
        "callback_url" => Some("the form uses it for the address to call when the PDF is ready"),
        "paper" if paper_choice => Some("choose_paper = true adds a paper field with this name"),
        "orientation" if orientation_choice => {
            Some("choose_orientation = true adds an orientation field with this name")
        }
        _ => None,
    };
    match reason {
        Some(reason) => Err(table.error(
            name.start,
            Problem::ReservedName {
                name: name.value.to_owned(),
                reason,
            },
        )),
        None => Ok(()),
    }
}

fn parse_param<'a>(
    table: &Table<'a, '_>,
    name: &str,
) -> Result<(ParamDef, Option<Str<'a>>), DefinitionError> {
    let types = [
        ("text", ParamType::Text),
        ("integer", ParamType::Integer),
        ("decimal", ParamType::Decimal),
        ("date", ParamType::Date),
        ("choice", ParamType::Choice),
    ];
    let kind = table
        .word("type", &types)?
        .ok_or_else(|| table.missing("type"))?;
    let mut param = ParamDef {
        name: name.to_owned(),
        label: table.string("label")?.map_or(name, |s| s.value).to_owned(),
        kind,
        required: table.bool("required", true)?,
        default: None,
        min: parse_bound(table, kind, "min")?,
        max: parse_bound(table, kind, "max")?,
        max_length: None,
        options: Vec::new(),
        options_query: None,
    };
    if let (Some(min), Some(max)) = (&param.min, &param.max)
        && compare(kind, min, max) == Some(std::cmp::Ordering::Greater)
    {
        let start = table.value("min").map_or(0, |v| v.span().start);
        return Err(table.invalid("min", start, format!("{min} is greater than max {max}")));
    }
    param.max_length = parse_max_length(table, kind)?;
    let options_query = parse_options(table, &mut param)?;
    param.default = parse_default(table, &param)?;
    Ok((param, options_query))
}

fn parse_bound(
    table: &Table<'_, '_>,
    kind: ParamType,
    key: &str,
) -> Result<Option<String>, DefinitionError> {
    let Some((text, start)) = table.scalar_text(key)? else {
        return Ok(None);
    };
    let canonical = match kind {
        ParamType::Integer => parse_integer(&text).map(|n| n.to_string()),
        ParamType::Decimal => parse_decimal(&text),
        ParamType::Date => parse_date(&text).map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}")),
        ParamType::Text | ParamType::Choice => {
            return Err(table.invalid(key, start, "is only for integer, decimal and date params"));
        }
    };
    let expected = match kind {
        ParamType::Integer => "a whole number",
        ParamType::Decimal => "a number such as 12.5",
        _ => "a date written \"YYYY-MM-DD\"",
    };
    canonical
        .map(Some)
        .ok_or_else(|| table.invalid(key, start, format!("must be {expected}, not {text:?}")))
}

fn parse_max_length(
    table: &Table<'_, '_>,
    kind: ParamType,
) -> Result<Option<u32>, DefinitionError> {
    let max_length = table.integer("max_length", 1..=10_000)?;
    if max_length.is_some() && kind != ParamType::Text {
        return Err(table.invalid(
            "max_length",
            table.key_start("max_length"),
            "is only for text params",
        ));
    }
    Ok(max_length.and_then(|n| u32::try_from(n).ok()))
}

/// Fills `param.options` / `param.options_query`; returns where the query is.
fn parse_options<'a>(
    table: &Table<'a, '_>,
    param: &mut ParamDef,
) -> Result<Option<Str<'a>>, DefinitionError> {
    let query = table.string("options_query")?;
    let list = table.value("options");
    if param.kind != ParamType::Choice {
        for key in ["options", "options_query"] {
            if table.value(key).is_some() {
                return Err(table.invalid(key, table.key_start(key), "is only for choice params"));
            }
        }
        return Ok(None);
    }
    match (list, query) {
        (Some(_), Some(q)) => Err(table.invalid(
            "options_query",
            q.start,
            "cannot be given with options; a choice takes exactly one of them",
        )),
        (None, None) => Err(table.invalid(
            "type",
            table.key_start("type"),
            "= \"choice\" needs options = [\"…\"] or options_query = \"select …\"",
        )),
        (None, Some(q)) => {
            if q.value.trim().is_empty() {
                return Err(table.invalid("options_query", q.start, "is empty"));
            }
            param.options_query = Some(q.value.to_owned());
            Ok(Some(q))
        }
        (Some(list), None) => {
            param.options = parse_option_list(table, list)?;
            Ok(None)
        }
    }
}

fn parse_option_list(
    table: &Table<'_, '_>,
    list: &Spanned<DeValue<'_>>,
) -> Result<Vec<String>, DefinitionError> {
    let DeValue::Array(items) = list.get_ref() else {
        return Err(table.wrong_type(
            "options",
            list.span().start,
            "a list of strings",
            list.get_ref(),
        ));
    };
    if items.is_empty() {
        return Err(table.invalid(
            "options",
            list.span().start,
            "is empty; list at least one value",
        ));
    }
    let mut options: Vec<String> = Vec::with_capacity(items.len());
    for item in items.iter() {
        let DeValue::String(text) = item.get_ref() else {
            return Err(table.wrong_type(
                "options",
                item.span().start,
                "a list of strings",
                item.get_ref(),
            ));
        };
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 200 || text.chars().any(char::is_control) {
            return Err(table.invalid(
                "options",
                item.span().start,
                "values must be 1 to 200 characters without control characters",
            ));
        }
        if options.iter().any(|o| o == text) {
            return Err(table.error(
                item.span().start,
                Problem::Duplicate {
                    what: "option",
                    name: text.to_owned(),
                },
            ));
        }
        options.push(text.to_owned());
    }
    Ok(options)
}

fn parse_default(
    table: &Table<'_, '_>,
    param: &ParamDef,
) -> Result<Option<String>, DefinitionError> {
    let Some((text, start)) = table.scalar_text("default")? else {
        return Ok(None);
    };
    let trimmed = text.trim();
    let options = (param.options_query.is_none()).then_some(param.options.as_slice());
    let result = if trimmed.is_empty() {
        Err("it is empty; leave default out instead".to_owned())
    } else {
        check_value(param, options, trimmed)
    };
    result.map(Some).map_err(|reason| {
        let reason = if param.kind == ParamType::Choice {
            format!(
                "it is not among options {}",
                quoted_list(&param.options.iter().map(String::as_str).collect::<Vec<_>>())
            )
        } else {
            reason
        };
        table.error(
            start,
            Problem::BadDefault {
                default: text.clone(),
                reason,
            },
        )
    })
}

fn parse_columns(top: &Table<'_, '_>) -> Result<Vec<ColumnDef>, DefinitionError> {
    let tables = top.tables("column", "[[column]]")?;
    if tables.is_empty() {
        return Err(top.error(
            top.value("column").map_or(0, |v| v.span().start),
            Problem::Missing {
                key: "at least one [[column]]",
                table: "a report",
            },
        ));
    }
    let mut columns: Vec<ColumnDef> = Vec::with_capacity(tables.len());
    for (index, mut table) in tables.into_iter().enumerate() {
        table.context = format!("column {}", index + 1);
        table.check_keys(COLUMN_KEYS)?;
        let field = table.required_string("field")?;
        if field.value.trim().is_empty() {
            return Err(table.invalid("field", field.start, "is empty"));
        }
        if columns.iter().any(|c| c.field == field.value) {
            let problem = Problem::Duplicate {
                what: "column field",
                name: field.value.to_owned(),
            };
            return Err(table.error(field.start, problem));
        }
        table.context = format!("column \"{}\"", field.value);
        columns.push(parse_column(&table, field.value)?);
    }
    Ok(columns)
}

fn parse_column(table: &Table<'_, '_>, field: &str) -> Result<ColumnDef, DefinitionError> {
    let formats = [
        ("text", Format::Text),
        ("integer", Format::Integer),
        ("decimal", Format::Decimal),
        ("date", Format::Date),
    ];
    let format = table.word("format", &formats)?.unwrap_or(Format::Text);
    let aligns = [
        ("left", Align::Left),
        ("right", Align::Right),
        ("center", Align::Center),
    ];
    let numeric = matches!(format, Format::Integer | Format::Decimal);
    let align =
        table
            .word("align", &aligns)?
            .unwrap_or(if numeric { Align::Right } else { Align::Left });
    let overflows = [("wrap", Overflow::Wrap), ("ellipsis", Overflow::Ellipsis)];
    Ok(ColumnDef {
        field: field.to_owned(),
        heading: table
            .string("heading")?
            .map_or(field, |s| s.value)
            .to_owned(),
        format,
        decimals: table
            .integer("decimals", 0..=9)?
            .and_then(|n| u8::try_from(n).ok())
            .unwrap_or(2),
        align,
        width: parse_width(table)?,
        total: parse_total(table, format)?,
        overflow: table
            .word("overflow", &overflows)?
            .unwrap_or(Overflow::Wrap),
    })
}

fn parse_width(table: &Table<'_, '_>) -> Result<f32, DefinitionError> {
    let Some(value) = table.value("width") else {
        return Ok(1.0);
    };
    let start = value.span().start;
    let width = match value.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(|n| n as f64),
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        other => return Err(table.wrong_type("width", start, "a number", other)),
    };
    match width {
        Some(w) if w > 0.0 && w <= 100.0 => Ok(w as f32),
        _ => Err(table.invalid(
            "width",
            start,
            "must be a number greater than 0 and at most 100",
        )),
    }
}

fn parse_total(table: &Table<'_, '_>, format: Format) -> Result<Option<Total>, DefinitionError> {
    let totals = [
        ("sum", Total::Sum),
        ("count", Total::Count),
        ("avg", Total::Avg),
        ("min", Total::Min),
        ("max", Total::Max),
    ];
    let Some(total) = table.word("total", &totals)? else {
        return Ok(None);
    };
    let (name, needs, ok) = match total {
        Total::Count => ("count", "", true),
        Total::Sum | Total::Avg => (
            if total == Total::Sum { "sum" } else { "avg" },
            "a number column (format = \"integer\" or \"decimal\")",
            matches!(format, Format::Integer | Format::Decimal),
        ),
        Total::Min | Total::Max => (
            if total == Total::Min { "min" } else { "max" },
            "a number or date column (format = \"integer\", \"decimal\" or \"date\")",
            format != Format::Text,
        ),
    };
    if ok {
        return Ok(Some(total));
    }
    let format_name = match format {
        Format::Text => "text",
        Format::Integer => "integer",
        Format::Decimal => "decimal",
        Format::Date => "date",
    };
    let start = table
        .value("total")
        .map_or(table.span.start, |v| v.span().start);
    Err(table.error(
        start,
        Problem::TotalNeedsFormat {
            total: name,
            needs,
            format: format_name,
        },
    ))
}

fn parse_fonts(top: &Table<'_, '_>) -> Result<Option<FontsDef>, DefinitionError> {
    let Some(value) = top.value("fonts") else {
        return Ok(None);
    };
    let mut fonts = Table::of(top, "fonts", value, "[fonts]")?;
    fonts.context = "[fonts]".to_owned();
    fonts.check_keys(FONT_KEYS)?;
    let mut paths = Vec::with_capacity(2);
    for key in ["regular", "bold"] {
        let written = fonts.required_string(key)?;
        let path = fonts.doc.resolve(written.value);
        if written.value.is_empty() || !path.is_file() {
            return Err(fonts.error(written.start, Problem::MissingFont { key, path }));
        }
        paths.push(path);
    }
    let bold = paths.pop().unwrap_or_default();
    let regular = paths.pop().unwrap_or_default();
    Ok(Some(FontsDef { regular, bold }))
}

/// One piece of a title: literal text (including a literal brace from `{{`/`}}`) or a
/// `{name}` placeholder with the byte offset of its `{`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum TitlePiece<'a> {
    Text(&'a str),
    Param { name: &'a str, offset: usize },
}

/// Splits a title into pieces.
///
/// # Errors
///
/// The byte offset of a `{` with no closing `}` or of a lone `}`.
pub(crate) fn title_pieces(title: &str) -> Result<Vec<TitlePiece<'_>>, usize> {
    let mut pieces = Vec::new();
    let mut rest_start = 0;
    let mut i = 0;
    let bytes = title.as_bytes();
    while i < bytes.len() {
        let brace = bytes[i];
        if brace != b'{' && brace != b'}' {
            i += 1;
            continue;
        }
        pieces.push(TitlePiece::Text(&title[rest_start..i]));
        if bytes.get(i + 1) == Some(&brace) {
            pieces.push(TitlePiece::Text(&title[i..=i]));
            i += 2;
        } else if brace == b'{' {
            let close = title[i + 1..].find('}').ok_or(i)?;
            let name = &title[i + 1..i + 1 + close];
            if name.contains('{') {
                return Err(i);
            }
            pieces.push(TitlePiece::Param { name, offset: i });
            i += close + 2;
        } else {
            return Err(i);
        }
        rest_start = i;
    }
    pieces.push(TitlePiece::Text(&title[rest_start..]));
    pieces.retain(|p| !matches!(p, TitlePiece::Text("")));
    Ok(pieces)
}

/// Where byte `inner` of string value `s` is in the file: exact when the string was taken
/// from the file unchanged, else the value's start.
fn inside(doc: &Doc<'_>, s: Str<'_>, inner: usize) -> usize {
    s.value
        .get(inner..)
        .and_then(|rest| doc.offset_of(rest))
        .unwrap_or(s.start)
}

/// Checks the title's placeholders; returns the names it uses.
fn check_title(
    doc: &Doc<'_>,
    title: Str<'_>,
    declared: &BTreeSet<&str>,
) -> Result<BTreeSet<String>, DefinitionError> {
    let top_error = |offset, problem| doc.error(offset, String::new(), problem);
    let pieces = title_pieces(title.value).map_err(|offset| {
        let reason = "has a brace with no partner; write {{ and }} for literal braces";
        top_error(
            inside(doc, title, offset),
            Problem::Invalid {
                key: "title".into(),
                reason: reason.into(),
            },
        )
    })?;
    let mut used = BTreeSet::new();
    for piece in pieces {
        if let TitlePiece::Param { name, offset } = piece {
            if !declared.contains(name) {
                let problem = Problem::UnknownTitleParam {
                    name: name.to_owned(),
                };
                return Err(top_error(inside(doc, title, offset), problem));
            }
            used.insert(name.to_owned());
        }
    }
    Ok(used)
}

fn cross_check(doc: &Doc<'_>, def: &Definition, at: &Located<'_>) -> Result<(), DefinitionError> {
    let declared: BTreeSet<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
    let top_error = |offset, problem| doc.error(offset, String::new(), problem);
    let in_title = check_title(doc, at.title, &declared)?;
    if let (Some(field), Some(written)) = (&def.group_by, at.group_by)
        && !def.columns.iter().any(|c| &c.field == field)
    {
        return Err(top_error(
            written.start,
            Problem::UnknownGroupBy {
                field: field.clone(),
            },
        ));
    }
    let used = check_sql(
        doc,
        "[source]",
        "query",
        at.query,
        &declared,
        def.source.kind,
    )?;
    if let Some(count) = at.count_query {
        check_sql(
            doc,
            "[source]",
            "count_query",
            count,
            &declared,
            def.source.kind,
        )?;
    }
    for (name, options_query) in &at.params {
        let context = format!("param \"{}\"", name.value);
        if let Some(query) = options_query {
            // Options are listed before any value is chosen: no placeholders at all.
            let none = BTreeSet::new();
            check_sql(
                doc,
                &context,
                "options_query",
                *query,
                &none,
                def.source.kind,
            )?;
        }
        if !used.contains(name.value) && !in_title.contains(name.value) {
            return Err(doc.error(
                name.start,
                String::new(),
                Problem::UnusedParam {
                    name: name.value.to_owned(),
                },
            ));
        }
    }
    Ok(())
}

/// Checks the placeholders of one SQL value; returns the names it uses.
fn check_sql(
    doc: &Doc<'_>,
    context: &str,
    key: &'static str,
    sql_text: Str<'_>,
    declared: &BTreeSet<&str>,
    def_kind: SourceKind,
) -> Result<BTreeSet<String>, DefinitionError> {
    let dialect = match def_kind {
        SourceKind::Mysql => sql::Dialect::Mysql,
        SourceKind::Sqlite | SourceKind::Postgres => sql::Dialect::Standard,
    };
    let found = sql::placeholders_in(sql_text.value, dialect).map_err(|error| {
        let offset = match &error {
            SqlError::UnterminatedString { offset } | SqlError::UnterminatedComment { offset } => {
                *offset
            }
        };
        doc.error(
            inside(doc, sql_text, offset),
            context.to_owned(),
            Problem::BadSql { key, error },
        )
    })?;
    let mut used = BTreeSet::new();
    for placeholder in found {
        if !declared.contains(placeholder.name.as_str()) {
            let offset = inside(doc, sql_text, placeholder.offset);
            let problem = Problem::UnknownPlaceholder {
                name: placeholder.name,
                key,
            };
            return Err(doc.error(offset, context.to_owned(), problem));
        }
        used.insert(placeholder.name);
    }
    Ok(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(path: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reports")
            .join(path)
    }

    #[test]
    fn each_invalid_fixture_is_refused_at_its_line_and_column() {
        let cases: &[(&str, usize, usize, &str)] = &[
            (
                "unknown-key-top",
                2,
                1,
                "unknown key \"colour\" in the top level; accepted keys: title, description",
            ),
            (
                "unknown-key-column",
                8,
                3,
                "column 1: unknown key \"colour\" in [[column]]; accepted keys: field, heading",
            ),
            (
                "wrong-type",
                9,
                12,
                "param \"p\": required must be a boolean (true or false), not a string",
            ),
            (
                "unknown-format",
                8,
                10,
                "format = \"money\" is not one of \"text\", \"integer\", \"decimal\" or \"date\"",
            ),
            (
                "unknown-type",
                8,
                8,
                "type = \"number\" is not one of \"text\", \"integer\", \"decimal\", \"date\" or \"choice\"",
            ),
            (
                "bad-reuse-for",
                2,
                13,
                "reuse_for must be a number and a unit, such as \"90s\", \"10m\", \"2h\" or \"1d\"",
            ),
            (
                "unknown-kind",
                3,
                8,
                "kind = \"oracle\" is not one of \"sqlite\", \"postgres\" or \"mysql\"",
            ),
            (
                "unknown-total",
                9,
                9,
                "total = \"median\" is not one of \"sum\", \"count\", \"avg\", \"min\" or \"max\"",
            ),
            (
                "unknown-align",
                8,
                9,
                "align = \"justify\" is not one of \"left\", \"right\" or \"center\"",
            ),
            (
                "total-on-text",
                12,
                9,
                "column \"region\": a total of sum needs a number column (format = \"integer\" or \"decimal\"), not text",
            ),
            (
                "undeclared-placeholder",
                8,
                35,
                "[source]: query uses :form but no [[param]] is named \"form\"",
            ),
            ("undeclared-placeholder-escaped", 5, 9, "query uses :nope"),
            ("undeclared-in-count-query", 6, 49, "count_query uses :a"),
            (
                "undeclared-in-options-query",
                9,
                53,
                "param \"region\": options_query uses :kind",
            ),
            (
                "placeholder-in-options-query",
                12,
                53,
                "takes no parameters",
            ),
            (
                "unused-param",
                10,
                8,
                "10:8: param \"unused\" is declared but neither [source] query (:unused) nor title ({unused}) uses it",
            ),
            (
                "unknown-group-by",
                2,
                12,
                "group_by = \"regoin\" names no [[column]] field",
            ),
            (
                "unknown-title-param",
                1,
                20,
                "title uses {regoin} but no [[param]] is named \"regoin\"",
            ),
            (
                "duplicate-param",
                10,
                8,
                "param 2: param name \"p\" is used twice",
            ),
            (
                "duplicate-column",
                9,
                9,
                "column 2: column field \"a\" is used twice",
            ),
            (
                "sqlite-without-database",
                3,
                1,
                "a sqlite source needs database",
            ),
            (
                "postgres-both-database-and-url-env",
                5,
                11,
                "exactly one of database = \"postgres://…\" and url_env = \"VAR\", not both",
            ),
            (
                "mysql-neither-database-nor-url-env",
                2,
                1,
                "a mysql source needs exactly one of database",
            ),
            ("Bad_Id", 0, 0, "(\"Bad_Id\" does not)"),
            ("empty", 1, 1, "the file is empty"),
            ("syntax-error", 2, 8, "TOML syntax error: "),
            (
                "choice-default-not-an-option",
                10,
                11,
                "default \"east\" is not a value the form would accept: it is not among options \"north\" or \"south\"",
            ),
            (
                "default-out-of-bounds",
                11,
                11,
                "Enter a whole number from 1 to 100.",
            ),
            (
                "reserved-param-name",
                7,
                8,
                "the param name \"callback_url\" is reserved",
            ),
            (
                "min-greater-than-max",
                9,
                7,
                "min 2024-12-31 is greater than max 2024-01-01",
            ),
            ("missing-font", 10, 8, "[fonts]: bold font file"),
            (
                "bad-database-url",
                4,
                12,
                "database must be a URL starting with postgres:// or postgresql://",
            ),
            (
                "bounds-on-text",
                9,
                7,
                "min is only for integer, decimal and date params",
            ),
            (
                "options-on-non-choice",
                9,
                1,
                "options is only for choice params",
            ),
            (
                "unterminated-sql-string",
                5,
                36,
                "[source]: query is not SQL that can be read: a quoted string or name starting at byte 26 is never closed",
            ),
            (
                "same-separator-and-mark",
                3,
                16,
                "decimal_mark \".\" must differ from thousands_separator \".\"",
            ),
            ("no-columns", 1, 1, "a report needs at least one [[column]]"),
            ("missing-title", 1, 1, "the top level needs title"),
            (
                "timeout-out-of-range",
                6,
                16,
                "timeout_secs must be from 1 to 86400",
            ),
        ];
        let ctx = ParseContext::default();
        let mut wrong = Vec::new();
        for (name, line, column, message) in cases {
            let path = fixture(&format!("invalid/{name}.toml"));
            let text = match load(&path, &ctx) {
                Ok(_) => format!("{name}: accepted"),
                Err(error) if (error.line, error.column) != (*line, *column) => {
                    format!("{name}: expected {line}:{column}, got {error}")
                }
                Err(error) if !error.to_string().contains(message) => {
                    format!("{name}: expected {message:?} in {error}")
                }
                Err(_) => continue,
            };
            wrong.push(text);
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        let listed = std::fs::read_dir(fixture("invalid")).unwrap().count();
        assert_eq!(listed, cases.len(), "every invalid fixture has a case");
    }

    #[test]
    fn the_sales_fixture_sets_every_key() {
        let path = fixture("valid/sales.toml");
        let def = load(&path, &ParseContext::default()).unwrap();
        assert_eq!(def.id, "sales");
        assert_eq!(def.hash, digest(&std::fs::read(&path).unwrap()));
        assert_eq!(def.title, "Sales {region} from {from} to {to} {{all}}");
        assert!(def.description.starts_with("Invoice lines"));
        assert_eq!(
            (def.paper, def.orientation),
            (Paper::Letter, Orientation::Landscape)
        );
        assert!(def.paper_choice && def.orientation_choice);
        assert_eq!(def.group_by.as_deref(), Some("region"));
        assert_eq!(
            (def.thousands_separator.as_str(), def.decimal_mark.as_str()),
            ("\u{202f}", ",")
        );
        let source = &def.source;
        assert_eq!(source.kind, SourceKind::Sqlite);
        assert_eq!(
            source.database,
            DatabaseRef::Path(fixture("valid/sales.sqlite"))
        );
        assert!(source.query.contains("where day >= :from"));
        assert!(
            source
                .count_query
                .as_deref()
                .is_some_and(|q| q.starts_with("select count(*)"))
        );
        assert_eq!(source.timeout, Duration::from_secs(120));
        let fonts = def.fonts.as_ref().unwrap();
        assert!(fonts.regular.ends_with("assets/fonts/DejaVuSans.ttf"));
        assert!(fonts.bold.ends_with("assets/fonts/DejaVuSans-Bold.ttf"));
    }

    #[test]
    fn the_sales_fixture_params_and_columns() {
        let def = load(&fixture("valid/sales.toml"), &ParseContext::default()).unwrap();
        let names: Vec<&str> = def.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["from", "to", "region", "min_quantity", "customer"]);
        let from = &def.params[0];
        assert_eq!(
            (from.label.as_str(), from.kind, from.required),
            ("From", ParamType::Date, true)
        );
        assert_eq!(from.min.as_deref(), Some("2020-01-01"));
        assert_eq!(from.max.as_deref(), Some("2030-12-31"));
        assert_eq!(from.default.as_deref(), Some("2024-01-01"));
        assert_eq!(def.params[1].label, "Until (exclusive)");
        let region = &def.params[2];
        assert_eq!(region.options, ["all", "north", "south"]);
        assert_eq!(
            (region.default.as_deref(), region.required),
            (Some("all"), false)
        );
        let quantity = &def.params[3];
        assert_eq!(
            (quantity.min.as_deref(), quantity.max.as_deref()),
            (Some("0"), Some("100000"))
        );
        assert_eq!(quantity.default.as_deref(), Some("1"));
        assert_eq!(def.params[4].max_length, Some(80));
        let summary: Vec<_> = def
            .columns
            .iter()
            .map(|c| {
                (
                    c.field.as_str(),
                    c.heading.as_str(),
                    c.format,
                    c.decimals,
                    c.align,
                    c.width,
                    c.total,
                    c.overflow,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "region",
                    "Region",
                    Format::Text,
                    2,
                    Align::Left,
                    1.5,
                    None,
                    Overflow::Wrap
                ),
                (
                    "day",
                    "Day",
                    Format::Date,
                    2,
                    Align::Center,
                    1.0,
                    Some(Total::Min),
                    Overflow::Wrap
                ),
                (
                    "customer",
                    "Customer",
                    Format::Text,
                    2,
                    Align::Left,
                    3.0,
                    Some(Total::Count),
                    Overflow::Ellipsis
                ),
                (
                    "quantity",
                    "Qty",
                    Format::Integer,
                    2,
                    Align::Right,
                    1.0,
                    Some(Total::Sum),
                    Overflow::Wrap
                ),
                (
                    "amount",
                    "Amount",
                    Format::Decimal,
                    3,
                    Align::Left,
                    1.0,
                    Some(Total::Avg),
                    Overflow::Wrap
                ),
            ]
        );
    }

    #[test]
    fn the_stock_fixture_uses_an_environment_url_and_an_options_query() {
        let def = load(&fixture("valid/stock.toml"), &ParseContext::default()).unwrap();
        assert_eq!(def.source.kind, SourceKind::Postgres);
        assert_eq!(
            def.source.database,
            DatabaseRef::UrlEnv("STOCK_DATABASE_URL".into())
        );
        assert_eq!(def.source.timeout, Duration::from_secs(60));
        let threshold = &def.params[0];
        assert_eq!(threshold.min.as_deref(), Some("-1.5"));
        assert_eq!(threshold.default.as_deref(), Some("10.50"));
        let warehouse = &def.params[1];
        assert!(warehouse.options.is_empty());
        assert!(warehouse.options_query.is_some());
        assert_eq!(
            (def.paper, def.orientation),
            (Paper::A4, Orientation::Portrait)
        );
        assert_eq!(
            (def.thousands_separator.as_str(), def.decimal_mark.as_str()),
            (",", ".")
        );
        assert_eq!(def.columns[1].align, Align::Right);
        assert!(def.fonts.is_none());
    }

    #[test]
    fn mangled_files_never_panic() {
        let text = std::fs::read_to_string(fixture("valid/sales.toml")).unwrap();
        let path = fixture("valid/sales.toml");
        let ctx = ParseContext::default();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |bound: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % bound.max(1) as u64) as usize
        };
        let noise = [
            "",
            "\"",
            "'''",
            "[",
            "]]",
            "=",
            ":",
            "{",
            "}",
            "\n",
            "é",
            "\\",
            "#",
            "[[param]]\n",
            "0x",
            "1e9",
            "-",
        ];
        for round in 0..600 {
            let mut bytes = text.clone().into_bytes();
            match round % 3 {
                0 => bytes.truncate(next(bytes.len())),
                1 => {
                    let at = next(bytes.len());
                    let insert = noise[next(noise.len())].as_bytes();
                    bytes.splice(at..at, insert.iter().copied());
                }
                _ => {
                    let at = next(bytes.len());
                    let end = (at + next(40)).min(bytes.len());
                    bytes.drain(at..end);
                }
            }
            let mangled = String::from_utf8_lossy(&bytes);
            let _ = parse(&path, &mangled, &ctx);
        }
    }

    #[test]
    fn lines_and_columns_count_characters() {
        let text = "ab\néé = 1\n\nx";
        let cases = [
            (0, (1, 1)),
            (2, (1, 3)),
            (3, (2, 1)),
            (7, (2, 3)),
            (12, (3, 1)),
            (13, (4, 1)),
            (14, (4, 2)),
            (99, (4, 2)),
            (4, (2, 1)),
        ];
        for (offset, expected) in cases {
            assert_eq!(line_column(text, offset), expected, "offset {offset}");
        }
    }

    #[test]
    fn title_pieces_split_placeholders_and_literal_braces() {
        use TitlePiece::{Param, Text};
        let cases: &[(&str, Result<Vec<TitlePiece<'_>>, usize>)] = &[
            ("Sales", Ok(vec![Text("Sales")])),
            (
                "{a} to {b}",
                Ok(vec![
                    Param {
                        name: "a",
                        offset: 0,
                    },
                    Text(" to "),
                    Param {
                        name: "b",
                        offset: 7,
                    },
                ]),
            ),
            ("{{x}}", Ok(vec![Text("{"), Text("x"), Text("}")])),
            ("a {", Err(2)),
            ("a } b", Err(2)),
            ("{a{b}", Err(0)),
            ("", Ok(vec![])),
        ];
        for (title, expected) in cases {
            assert_eq!(&title_pieces(title), expected, "title {title:?}");
        }
    }

    #[test]
    fn floats_become_exact_plain_decimals() {
        let cases = [
            ("1e3", Some("1000")),
            ("1.5", Some("1.5")),
            ("-2.5E-1", Some("-0.25")),
            ("+0.5", Some("0.5")),
            ("12.34e1", Some("123.4")),
            ("1e-2", Some("0.01")),
            ("1e61", None),
            ("inf", None),
            ("nan", None),
        ];
        for (written, expected) in cases {
            let plain = plain_decimal(written);
            assert_eq!(plain.as_deref(), expected, "{written}");
            if let Some(plain) = plain {
                assert!(parse_decimal(&plain).is_some(), "{written} -> {plain}");
            }
        }
    }

    #[test]
    fn ids_and_digests() {
        for (id, valid) in [
            ("sales", true),
            ("q3-2024", true),
            ("", false),
            ("Sales", false),
            ("a_b", false),
            ("a.b", false),
            ("é", false),
        ] {
            assert_eq!(is_valid_id(id), valid, "{id:?}");
        }
        assert_eq!(digest(b""), "cbf29ce484222325");
        assert_eq!(digest(b"a"), "af63dc4c8601ec8c");
        assert_eq!(digest(b"a").len(), 16);
    }

    /// A definition with one param `p` (declared by `param`) and one column (`column`).
    fn variant(
        top: &str,
        source: &str,
        param: &str,
        column: &str,
    ) -> Result<Definition, DefinitionError> {
        let param = if param.starts_with("name") {
            param.to_owned()
        } else {
            format!("name = \"p\"\n{param}")
        };
        let text = format!(
            "title = \"T\"\n{top}\n[source]\n{source}\nquery = \"select a from t where a = :p\"\n\
             [[param]]\n{param}\n[[column]]\nfield = \"a\"\n{column}\n"
        );
        parse(Path::new("reports/r.toml"), &text, &ParseContext::default())
    }

    #[test]
    fn small_variants_are_accepted_or_refused_with_a_reason() {
        let sqlite = "kind = \"sqlite\"\ndatabase = \"d.db\"";
        let text = "type = \"text\"";
        let cases: &[(&str, &str, &str, &str, Option<&str>)] = &[
            ("", sqlite, text, "", None),
            ("choose_paper = true", sqlite, text, "", None),
            (
                "choose_paper = true",
                sqlite,
                "name = \"paper\"\ntype = \"text\"",
                "",
                Some("the param name \"paper\" is reserved"),
            ),
            (
                "choose_orientation = false",
                sqlite,
                "name = \"orientation\"\ntype = \"text\"",
                "",
                Some("query uses :p but no [[param]] is named \"p\""),
            ),
            (
                "",
                "kind = \"mysql\"\ndatabase = \"mariadb://h/db\"",
                text,
                "",
                None,
            ),
            (
                "",
                "kind = \"postgres\"\nurl_env = \"9X\"",
                text,
                "",
                Some("environment variable name"),
            ),
            (
                "",
                "kind = \"sqlite\"\ndatabase = \"d\"\nurl_env = \"X\"",
                text,
                "",
                Some("url_env is for postgres"),
            ),
            (
                "",
                sqlite,
                "type = \"integer\"\nmax_length = 3",
                "",
                Some("max_length is only for text"),
            ),
            (
                "",
                sqlite,
                "type = \"text\"\nmax_length = 0",
                "",
                Some("max_length must be from 1 to 10000"),
            ),
            ("", sqlite, "type = \"choice\"", "", Some("needs options")),
            (
                "",
                sqlite,
                "type = \"choice\"\noptions = []",
                "",
                Some("options is empty"),
            ),
            (
                "",
                sqlite,
                "type = \"choice\"\noptions = [\"a\", \"a\"]",
                "",
                Some("option \"a\" is used twice"),
            ),
            (
                "",
                sqlite,
                "type = \"choice\"\noptions = [\"a\"]\noptions_query = \"select 1\"",
                "",
                Some("exactly one"),
            ),
            (
                "",
                sqlite,
                "type = \"decimal\"\nmin = \"1,5\"",
                "",
                Some("must be a number such as 12.5"),
            ),
            (
                "",
                sqlite,
                "type = \"date\"\ndefault = 2024-02-30",
                "",
                Some("TOML syntax error"),
            ),
            (
                "",
                sqlite,
                "type = \"date\"\ndefault = 2024-02-29",
                "",
                None,
            ),
            (
                "",
                sqlite,
                "type = \"text\"\ndefault = \"\"",
                "",
                Some("it is empty"),
            ),
            (
                "",
                sqlite,
                text,
                "width = 0",
                Some("width must be a number greater than 0"),
            ),
            ("", sqlite, text, "width = 100", None),
            (
                "",
                sqlite,
                text,
                "decimals = 10",
                Some("decimals must be from 0 to 9"),
            ),
            (
                "",
                sqlite,
                text,
                "format = \"date\"\ntotal = \"avg\"",
                Some("needs a number column"),
            ),
            ("", sqlite, text, "format = \"date\"\ntotal = \"max\"", None),
            ("", sqlite, text, "total = \"count\"", None),
            ("title = \"x\"", sqlite, text, "", Some("TOML syntax error")),
            (
                "paper = 4",
                sqlite,
                text,
                "",
                Some("paper must be a string, not an integer"),
            ),
            ("param = 1", sqlite, text, "", Some("TOML syntax error")),
        ];
        for (top, source, param, column, expected) in cases {
            let result = variant(top, source, param, column);
            match (result, expected) {
                (Ok(_), None) => {}
                (Err(error), Some(message)) => {
                    assert!(
                        error.to_string().contains(message),
                        "{top} {param} {column}: {error}"
                    )
                }
                (result, _) => panic!("{top} / {source} / {param} / {column}: {result:?}"),
            }
        }
    }

    #[test]
    fn the_number_marks_accept_the_usual_separators() {
        let base = "title = \"T\"\n[source]\nkind = \"sqlite\"\ndatabase = \"x\"\nquery = \"select 1\"\n[[column]]\nfield = \"a\"\n";
        for (separator, mark, ok) in [
            ("", ".", true),
            (" ", ",", true),
            (".", ",", true),
            ("'", ".", true),
            ("\\u202f", ",", true),
            ("abcde", ".", false),
            (",", ",", false),
            (",", "..", false),
            (",", "", false),
            ("1", ".", false),
        ] {
            let text =
                format!("thousands_separator = \"{separator}\"\ndecimal_mark = \"{mark}\"\n{base}");
            let result = parse(Path::new("r.toml"), &text, &ParseContext::default());
            assert_eq!(result.is_ok(), ok, "{separator:?} {mark:?}: {result:?}");
        }
    }
}
