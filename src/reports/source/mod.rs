//! Row sources: one read-only row stream per database kind (SQLite, PostgreSQL, MySQL /
//! MariaDB) behind four calls, [`stream`], [`count`], [`options`] and [`check`].
//!
//! Owns: opening a connection (SQLite file, or the URL of a [`DatabaseRef`], read from the
//! environment at call time), making the session read-only, each statement's time limit,
//! binding [`Binding`]s by position (never splicing values into SQL text), fetching rows in
//! batches so memory stays flat, turning each driver's cells into [`Value`]s, and errors a
//! user can read ([`SourceError`]) with the connection URL and its password redacted.
//!
//! Uses `sql::translate` for `:name` placeholders. Must not depend on `render`, `pdf`, `web`,
//! `jobs` or `fastcgi`: callers hand rows on through the `on_row` callback.
//!
//! The drivers are blocking (sources run on a render thread): `rusqlite` (bundled SQLite),
//! `postgres` (the sync client) and `mysql`.

mod mysql;
mod postgres;
mod sqlite;

use std::fmt;
use std::ops::ControlFlow;
use std::time::Duration;

use super::sql;
use super::{DatabaseRef, ParamType, ParamValue, SourceDef, SourceKind, Value};

/// Rows fetched per round trip where the driver fetches in batches (PostgreSQL portals).
const BATCH_ROWS: i32 = 1000;
/// The most values [`options`] returns.
const MAX_OPTIONS: usize = 1000;
/// How long opening a TCP connection may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A parameter bound to the query by the driver (never spliced into SQL text).
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    /// The placeholder's name, without the `:`.
    pub name: String,
    /// The declared type; PostgreSQL casts the bound text to it.
    pub kind: ParamType,
    pub value: ParamValue,
}

/// Why a source could not deliver its rows.
#[derive(Debug)]
pub enum SourceError {
    /// The source is down, authentication failed, the SQLite file is missing, or the
    /// environment variable holding the URL is unset or empty.
    Connect(String),
    /// The server rejected or failed the statement (syntax, a write on a read-only
    /// transaction, …).
    Query(String),
    /// The statement ran past [`SourceDef::timeout`].
    Timeout(Duration),
    /// A field named by the report is not among the result's columns.
    MissingColumn {
        field: String,
        available: Vec<String>,
    },
    /// A column whose type cannot be printed; the query should CAST it.
    Unsupported { field: String, detail: String },
    /// The connection was lost while rows were being read (the server stopped).
    Lost(String),
    /// The row callback returned [`ControlFlow::Break`].
    Stopped,
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Connect(m) => write!(f, "the database could not be reached: {m}"),
            SourceError::Query(m) => write!(f, "the query failed: {m}"),
            SourceError::Timeout(limit) => write!(
                f,
                "the query ran longer than {} and was stopped",
                human_duration(*limit)
            ),
            SourceError::MissingColumn { field, available } if available.is_empty() => {
                write!(
                    f,
                    "the query returns no column \"{field}\" (it returns none)"
                )
            }
            SourceError::MissingColumn { field, available } => write!(
                f,
                "the query returns no column \"{field}\" (it returns: {})",
                available.join(", ")
            ),
            SourceError::Unsupported { field, detail } => write!(
                f,
                "the column \"{field}\" cannot be printed ({detail}); CAST it to text or a \
                 number in the query"
            ),
            SourceError::Lost(m) => write!(
                f,
                "the connection to the database was lost while reading rows: {m}"
            ),
            SourceError::Stopped => f.write_str("reading rows was stopped"),
        }
    }
}

impl std::error::Error for SourceError {}

impl SourceError {
    /// The same error with every secret of `url` removed from its driver messages.
    fn redacted(self, url: &str) -> SourceError {
        match self {
            SourceError::Connect(m) => SourceError::Connect(redact(&m, url)),
            SourceError::Query(m) => SourceError::Query(redact(&m, url)),
            SourceError::Lost(m) => SourceError::Lost(redact(&m, url)),
            SourceError::Unsupported { field, detail } => SourceError::Unsupported {
                field,
                detail: redact(&detail, url),
            },
            other => other,
        }
    }
}

/// "5 seconds", "1 second", "1.5 seconds", "250 ms".
fn human_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms == 1000 {
        "1 second".to_owned()
    } else if ms.is_multiple_of(1000) {
        format!("{} seconds", ms / 1000)
    } else {
        format!("{:.1} seconds", d.as_secs_f64())
    }
}

/// `message` with every occurrence of `url`, and of the password in it (as written and
/// percent-decoded, in the `user:password@` part or a `password=` parameter), replaced by
/// `***`.
pub(crate) fn redact(message: &str, url: &str) -> String {
    let mut secrets = url_secrets(url);
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = message.to_owned();
    for secret in secrets {
        if !secret.is_empty() && out.contains(&secret) {
            out = out.replace(&secret, "***");
        }
    }
    out
}

/// The strings of `url` that must never be shown: the URL itself and its password.
fn url_secrets(url: &str) -> Vec<String> {
    let mut raw = vec![url.to_owned()];
    if let Some((_, rest)) = url.split_once("://") {
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        // The first `@` (as libpq and tokio-postgres read it) and the last one before the
        // path (as URL parsers do) may differ when a password holds an unescaped `@`.
        let candidates = [rest.find('@'), rest[..authority_end].rfind('@')];
        for at in candidates.into_iter().flatten() {
            if let Some((_, password)) = rest[..at].split_once(':') {
                raw.push(password.to_owned());
            }
        }
    }
    for (i, _) in url.match_indices("password=") {
        let value = &url[i + "password=".len()..];
        let end = value.find(['&', ' ', '\t', '\n']).unwrap_or(value.len());
        let value = &value[..end];
        raw.push(value.trim_matches('\'').to_owned());
        raw.push(value.to_owned());
    }
    let mut secrets: Vec<String> = Vec::new();
    for secret in raw {
        let decoded = percent_decode(&secret);
        if decoded != secret {
            secrets.push(decoded);
        }
        secrets.push(secret);
    }
    secrets
}

/// `%XX` escapes decoded (invalid escapes and non-UTF-8 results are kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// Which result columns a call wants.
#[derive(Clone, Copy)]
enum Columns<'a> {
    /// These fields, looked up by name (case-insensitively), in this order.
    Named(&'a [String]),
    /// The first column, whatever its name.
    First,
}

/// The indices of `wanted` among the result's column names.
fn resolve(available: &[String], wanted: Columns<'_>) -> Result<Vec<usize>, SourceError> {
    if available.is_empty() {
        return Err(SourceError::Query(
            "the statement returns no rows; a report's query must be a SELECT".to_owned(),
        ));
    }
    let fields = match wanted {
        Columns::First => return Ok(vec![0]),
        Columns::Named(fields) => fields,
    };
    fields
        .iter()
        .map(|field| {
            available
                .iter()
                .position(|name| name.eq_ignore_ascii_case(field))
                .or_else(|| available.iter().position(|name| name == field))
                .ok_or_else(|| SourceError::MissingColumn {
                    field: field.clone(),
                    available: available.to_vec(),
                })
        })
        .collect()
}

/// `query` with its placeholders replaced by `marker(position, binding)`, and the binding
/// for each position.
fn translate<'b>(
    query: &str,
    dialect: sql::Dialect,
    bindings: &'b [Binding],
    marker: &dyn Fn(usize, Option<&Binding>) -> String,
) -> Result<(String, Vec<&'b Binding>), SourceError> {
    let find = |name: &str| bindings.iter().find(|b| b.name == name);
    let (sql, names) = sql::translate_in(query, dialect, &mut |position, name| {
        marker(position, find(name))
    })
    .map_err(|e| SourceError::Query(e.to_string()))?;
    let bound = names
        .iter()
        .map(|name| {
            find(name).ok_or_else(|| {
                SourceError::Query(format!("the query uses :{name}, which has no value"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((sql, bound))
}

/// A date as `YYYY-MM-DD`.
fn date_text(year: i32, month: u8, day: u8) -> String {
    format!("{year:04}-{month:02}-{day:02}")
}

/// The connection URL of a PostgreSQL or MySQL source, read from the environment if named.
fn database_url(source: &SourceDef) -> Result<String, SourceError> {
    match &source.database {
        DatabaseRef::Url(url) => Ok(url.clone()),
        DatabaseRef::UrlEnv(var) => match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => Ok(url),
            Ok(_) => Err(SourceError::Connect(format!(
                "the environment variable {var} (the database URL) is empty"
            ))),
            Err(std::env::VarError::NotPresent) => Err(SourceError::Connect(format!(
                "the environment variable {var} (the database URL) is not set"
            ))),
            Err(std::env::VarError::NotUnicode(_)) => Err(SourceError::Connect(format!(
                "the environment variable {var} (the database URL) is not valid UTF-8"
            ))),
        },
        DatabaseRef::Path(_) => Err(SourceError::Connect(format!(
            "a {} source needs a URL, not a file path",
            source.kind.as_str()
        ))),
    }
}

/// One run of `query` on `source`'s database: the shared core of the public calls.
fn run(
    source: &SourceDef,
    query: &str,
    bindings: &[Binding],
    columns: Columns<'_>,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    match source.kind {
        SourceKind::Sqlite => sqlite::run(source, query, bindings, columns, on_row),
        SourceKind::Postgres => postgres::run(source, query, bindings, columns, on_row),
        SourceKind::Mysql => mysql::run(source, query, bindings, columns, on_row),
    }
}

/// Runs `source.query` with `bindings`, read-only, and calls `on_row` with the values of
/// `fields` (result columns looked up by name, case-insensitively, in that order) for each
/// row, in the result's order. Rows are fetched in batches (or one at a time) so memory does
/// not grow with the result. Returns the number of rows delivered.
///
/// # Errors
///
/// [`SourceError::Stopped`] when `on_row` breaks; [`SourceError::MissingColumn`] when a field
/// is not a result column; the other variants as documented on [`SourceError`].
pub fn stream(
    source: &SourceDef,
    bindings: &[Binding],
    fields: &[String],
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    run(
        source,
        &source.query,
        bindings,
        Columns::Named(fields),
        on_row,
    )
}

/// Runs `source.count_query` with `bindings` and returns its single integer, or `None` when
/// the source has no count query.
///
/// # Errors
///
/// [`SourceError::Query`] when the query returns no row or something other than a
/// non-negative integer; the others as for [`stream`].
pub fn count(source: &SourceDef, bindings: &[Binding]) -> Result<Option<u64>, SourceError> {
    let Some(query) = &source.count_query else {
        return Ok(None);
    };
    let mut first = None;
    let result = run(source, query, bindings, Columns::First, &mut |row| {
        first = row.first().cloned();
        ControlFlow::Break(())
    });
    match result {
        Ok(_) | Err(SourceError::Stopped) => {}
        Err(e) => return Err(e),
    }
    let value =
        first.ok_or_else(|| SourceError::Query("the count query returned no row".to_owned()))?;
    as_count(&value).map(Some).ok_or_else(|| {
        SourceError::Query(format!(
            "the count query must return one non-negative integer, not {value:?}"
        ))
    })
}

fn as_count(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::Numeric(s) | Value::Text(s) => {
            let s = s.trim();
            let int = s.split_once('.').map_or(s, |(int, frac)| {
                if frac.bytes().all(|b| b == b'0') {
                    int
                } else {
                    ""
                }
            });
            int.parse().ok()
        }
        Value::Float(f) if f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19 => Some(*f as u64),
        _ => None,
    }
}

/// Runs an options query (no parameters) and returns its first column as text, at most 1000
/// values; NULLs are skipped.
///
/// # Errors
///
/// [`SourceError::Unsupported`] for a first column that is not text, a number, a date or a
/// boolean; the others as for [`stream`].
pub fn options(source: &SourceDef, query: &str) -> Result<Vec<String>, SourceError> {
    let mut values = Vec::new();
    let mut bad = None;
    let result = run(source, query, &[], Columns::First, &mut |row| {
        match row.first().map(option_text) {
            Some(Ok(Some(text))) => values.push(text),
            Some(Ok(None)) | None => {}
            Some(Err(detail)) => {
                bad = Some(detail);
                return ControlFlow::Break(());
            }
        }
        if values.len() >= MAX_OPTIONS {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(detail) = bad {
        return Err(SourceError::Unsupported {
            field: "1".to_owned(),
            detail,
        });
    }
    match result {
        Ok(_) | Err(SourceError::Stopped) => Ok(values),
        Err(e) => Err(e),
    }
}

fn option_text(value: &Value) -> Result<Option<String>, String> {
    Ok(Some(match value {
        Value::Null => return Ok(None),
        Value::Int(n) => n.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Numeric(s) | Value::Text(s) => s.clone(),
        Value::Date { year, month, day } => date_text(*year, *month, *day),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(_) => return Err("binary data cannot be an option".to_owned()),
    }))
}

/// Opens a connection and runs a trivial statement (for `pdfworker check-config`).
///
/// # Errors
///
/// [`SourceError::Connect`] when the database cannot be reached; [`SourceError::Query`] or
/// [`SourceError::Timeout`] when the trivial statement fails.
pub fn check(source: &SourceDef) -> Result<(), SourceError> {
    let mut seen = false;
    run(source, "SELECT 1", &[], Columns::First, &mut |_| {
        seen = true;
        ControlFlow::Continue(())
    })?;
    if seen {
        Ok(())
    } else {
        Err(SourceError::Query("SELECT 1 returned no row".to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_the_url_and_its_password_in_every_spelling() {
        let url = "postgresql://report:s3cr%40t@db.example/sales?sslmode=disable";
        let msg = format!("failed for {url}: password s3cr@t or s3cr%40t was wrong");
        let out = redact(&msg, url);
        assert!(!out.contains("s3cr"), "{out}");
        assert!(out.contains("failed for ***"), "{out}");
        let kv = "host=/tmp user=u password=hunter2 dbname=x";
        assert_eq!(redact("bad hunter2!", kv), "bad ***!");
        let q = "mysql://u@h/db?password=p%20w&socket=/tmp/s";
        assert_eq!(redact("p w and p%20w", q), "*** and ***");
        assert_eq!(
            redact("no secrets here", "mysql://u@h/db"),
            "no secrets here"
        );
    }

    #[test]
    fn errors_read_as_sentences() {
        let e = SourceError::MissingColumn {
            field: "amount".into(),
            available: vec!["a".into(), "b".into(), "c".into()],
        };
        assert_eq!(
            e.to_string(),
            "the query returns no column \"amount\" (it returns: a, b, c)"
        );
        let t = SourceError::Timeout(Duration::from_secs(5));
        assert_eq!(
            t.to_string(),
            "the query ran longer than 5 seconds and was stopped"
        );
        assert_eq!(
            SourceError::Timeout(Duration::from_secs(1)).to_string(),
            "the query ran longer than 1 second and was stopped"
        );
    }

    #[test]
    fn fields_resolve_case_insensitively_in_the_requested_order() {
        let cols = vec!["Id".to_owned(), "AMOUNT".to_owned(), "name".to_owned()];
        let fields = vec!["name".to_owned(), "amount".to_owned()];
        assert_eq!(
            resolve(&cols, Columns::Named(&fields)).ok(),
            Some(vec![2, 1])
        );
        assert!(matches!(
            resolve(&[], Columns::First),
            Err(SourceError::Query(_))
        ));
    }

    #[test]
    fn counts_accept_integers_in_any_spelling() {
        assert_eq!(as_count(&Value::Int(7)), Some(7));
        assert_eq!(as_count(&Value::Numeric("12.000".into())), Some(12));
        assert_eq!(as_count(&Value::Numeric("12.5".into())), None);
        assert_eq!(as_count(&Value::Int(-1)), None);
        assert_eq!(as_count(&Value::Null), None);
    }
}
