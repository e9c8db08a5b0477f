//! The MySQL / MariaDB source: the `mysql` crate's blocking `Conn`, a read-only session and
//! transaction, MariaDB's `max_statement_time` (MySQL's `max_execution_time` where that is
//! unknown), and a prepared statement run with `exec_iter`, which reads each row from the
//! socket as it is iterated (the binary protocol, unbuffered), so memory stays flat.
//!
//! The server's limit counts the statement's whole life, including the time the caller
//! takes with each row. Stopping early (the callback breaks) still reads the rest of the
//! result off the socket, as the driver must before the connection closes cleanly.
//! Depends on `mysql` and this module's parent only.

use std::io;
use std::ops::ControlFlow;
use std::time::Duration;

use ::mysql::consts::ColumnType;
use ::mysql::prelude::Queryable;
use ::mysql::{Column, Conn, Opts, OptsBuilder, Params, Statement};

use super::{Binding, CONNECT_TIMEOUT, Columns, SourceError, database_url, resolve, translate};
use crate::reports::{ParamValue, SourceDef, Value};

/// Extra time on top of the statement limit before a silent server counts as a timeout
/// (MySQL's `max_execution_time` covers only some statements).
const READ_SLACK: Duration = Duration::from_secs(10);
/// MySQL error codes this module tells apart.
const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;
const ER_STATEMENT_TIMEOUT: u16 = 1969; // MariaDB max_statement_time
const ER_QUERY_TIMEOUT: u16 = 3024; // MySQL max_execution_time
const GONE: [u16; 4] = [1053, 1927, 2006, 2013]; // shutdown, killed, gone away, lost
/// The character set number of binary strings (BLOB, VARBINARY).
const BINARY_CHARSET: u16 = 63;

/// Runs `query` on the MySQL database of `source`; see [`super::stream`].
pub(super) fn run(
    source: &SourceDef,
    query: &str,
    bindings: &[Binding],
    columns: Columns<'_>,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let url = database_url(source)?;
    let result = connect(&url, source.timeout).and_then(|mut conn| {
        start_session(&mut conn, source.timeout)?;
        run_on(&mut conn, source.timeout, query, bindings, columns, on_row)
    });
    result.map_err(|e| e.redacted(&url))
}

fn connect(url: &str, limit: Duration) -> Result<Conn, SourceError> {
    let opts = Opts::from_url(url)
        .map_err(|e| SourceError::Connect(format!("the connection URL is not valid: {e}")))?;
    let timeout = opts.get_tcp_connect_timeout().unwrap_or(CONNECT_TIMEOUT);
    let opts = OptsBuilder::from_opts(opts)
        .tcp_connect_timeout(Some(timeout))
        .read_timeout(Some(limit + READ_SLACK))
        .write_timeout(Some(limit + READ_SLACK));
    Conn::new(opts).map_err(|e| SourceError::Connect(message(&e)))
}

/// Read-only session and transaction, and the statement time limit.
fn start_session(conn: &mut Conn, limit: Duration) -> Result<(), SourceError> {
    let fail = |e: ::mysql::Error| error(&e, limit);
    conn.query_drop("SET SESSION TRANSACTION READ ONLY")
        .map_err(fail)?;
    let secs = limit.as_secs_f64().max(0.001);
    match conn.query_drop(format!("SET SESSION max_statement_time = {secs:.3}")) {
        Ok(()) => {}
        Err(::mysql::Error::MySqlError(e)) if e.code == ER_UNKNOWN_SYSTEM_VARIABLE => {
            let ms = limit.as_millis().clamp(1, u128::from(u32::MAX));
            conn.query_drop(format!("SET SESSION max_execution_time = {ms}"))
                .map_err(fail)?;
        }
        Err(e) => return Err(fail(e)),
    }
    conn.query_drop("START TRANSACTION READ ONLY").map_err(fail)
}

fn run_on(
    conn: &mut Conn,
    limit: Duration,
    query: &str,
    bindings: &[Binding],
    columns: Columns<'_>,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let (sql, bound) = translate(
        query,
        crate::reports::sql::Dialect::Mysql,
        bindings,
        &|_, _| "?".to_owned(),
    )?;
    let stmt = conn.prep(&sql).map_err(|e| error(&e, limit))?;
    if usize::from(stmt.num_params()) != bound.len() {
        return Err(SourceError::Query(format!(
            "the query has {} ? markers but {} :name placeholders; write parameters as :name",
            stmt.num_params(),
            bound.len()
        )));
    }
    let meta = stmt.columns();
    let names: Vec<String> = meta.iter().map(|c| c.name_str().into_owned()).collect();
    let indices = resolve(&names, columns)?;
    let params: Vec<::mysql::Value> = bound.iter().map(|b| param(&b.value)).collect();
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    deliver(conn, &stmt, params, &indices, limit, on_row)
}

/// Executes the statement and hands each row's cells at `indices` to `on_row`.
fn deliver(
    conn: &mut Conn,
    stmt: &Statement,
    params: Params,
    indices: &[usize],
    limit: Duration,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let meta = stmt.columns();
    let mut result = conn.exec_iter(stmt, params).map_err(|e| error(&e, limit))?;
    let mut values = Vec::with_capacity(indices.len());
    let mut delivered = 0u64;
    for row in result.by_ref() {
        let mut row = row.map_err(|e| match error(&e, limit) {
            SourceError::Query(m) if e.is_connectivity_error() => SourceError::Lost(m),
            other => other,
        })?;
        values.clear();
        for &i in indices {
            let value = row.take(i).unwrap_or(::mysql::Value::NULL);
            values.push(cell(value, meta.get(i)));
        }
        delivered += 1;
        if on_row(&values).is_break() {
            return Err(SourceError::Stopped);
        }
    }
    Ok(delivered)
}

fn param(value: &ParamValue) -> ::mysql::Value {
    use ::mysql::Value as My;
    match value {
        ParamValue::Text(s) | ParamValue::Decimal(s) => My::Bytes(s.as_bytes().to_vec()),
        ParamValue::Integer(n) => My::Int(*n),
        ParamValue::Date { year, month, day } => match u16::try_from(*year) {
            Ok(year) => My::Date(year, *month, *day, 0, 0, 0, 0),
            Err(_) => My::Bytes(super::date_text(*year, *month, *day).into_bytes()),
        },
        ParamValue::Null => My::NULL,
    }
}

/// One cell; `column` (the statement's metadata) tells DECIMAL from text and DATE from
/// DATETIME.
fn cell(value: ::mysql::Value, column: Option<&Column>) -> Value {
    use ::mysql::Value as My;
    let ty = column.map(Column::column_type);
    match value {
        My::NULL => Value::Null,
        My::Int(n) => Value::Int(n),
        My::UInt(n) => i64::try_from(n).map_or_else(|_| Value::Numeric(n.to_string()), Value::Int),
        My::Float(f) => Value::Float(f.into()),
        My::Double(f) => Value::Float(f),
        My::Bytes(bytes) => text_cell(bytes, ty, column.map(Column::character_set)),
        My::Date(year, month, day, h, m, s, _) => {
            let date_only = match ty {
                Some(ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE) => true,
                Some(_) => false,
                None => (h, m, s) == (0, 0, 0),
            };
            if date_only && month > 0 && day > 0 {
                Value::Date {
                    year: year.into(),
                    month,
                    day,
                }
            } else if date_only {
                Value::Text(format!("{year:04}-{month:02}-{day:02}"))
            } else {
                Value::Text(format!(
                    "{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02}"
                ))
            }
        }
        My::Time(negative, days, h, m, s, _) => {
            let hours = u64::from(days) * 24 + u64::from(h);
            let sign = if negative { "-" } else { "" };
            Value::Text(format!("{sign}{hours:02}:{m:02}:{s:02}"))
        }
    }
}

fn text_cell(bytes: Vec<u8>, ty: Option<ColumnType>, charset: Option<u16>) -> Value {
    match ty {
        Some(ColumnType::MYSQL_TYPE_NEWDECIMAL | ColumnType::MYSQL_TYPE_DECIMAL) => {
            match String::from_utf8(bytes) {
                Ok(s) => Value::Numeric(s),
                Err(e) => Value::Bytes(e.into_bytes().len()),
            }
        }
        Some(ColumnType::MYSQL_TYPE_BIT) if bytes.len() <= 8 => {
            let n = bytes.iter().fold(0u64, |n, b| n << 8 | u64::from(*b));
            i64::try_from(n).map_or_else(|_| Value::Numeric(n.to_string()), Value::Int)
        }
        _ if charset == Some(BINARY_CHARSET) && is_blob(ty) => Value::Bytes(bytes.len()),
        _ => match String::from_utf8(bytes) {
            Ok(s) => Value::Text(s),
            Err(e) => Value::Bytes(e.into_bytes().len()),
        },
    }
}

fn is_blob(ty: Option<ColumnType>) -> bool {
    matches!(
        ty,
        Some(
            ColumnType::MYSQL_TYPE_TINY_BLOB
                | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
                | ColumnType::MYSQL_TYPE_LONG_BLOB
                | ColumnType::MYSQL_TYPE_BLOB
                | ColumnType::MYSQL_TYPE_GEOMETRY
        )
    )
}

/// The server's own words for a server error, else the driver's.
fn message(e: &::mysql::Error) -> String {
    match e {
        ::mysql::Error::MySqlError(e) => e.message.clone(),
        ::mysql::Error::IoError(e) => e.to_string(),
        ::mysql::Error::CodecError(e) => e.to_string(),
        ::mysql::Error::DriverError(e) => e.to_string(),
        ::mysql::Error::UrlError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// Sorts a driver error into the variant the user is told.
fn error(e: &::mysql::Error, limit: Duration) -> SourceError {
    match e {
        ::mysql::Error::MySqlError(my)
            if matches!(my.code, ER_STATEMENT_TIMEOUT | ER_QUERY_TIMEOUT) =>
        {
            SourceError::Timeout(limit)
        }
        ::mysql::Error::MySqlError(my) if GONE.contains(&my.code) => SourceError::Lost(message(e)),
        ::mysql::Error::IoError(io)
            if matches!(
                io.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) =>
        {
            SourceError::Timeout(limit)
        }
        ::mysql::Error::IoError(_) | ::mysql::Error::CodecError(_) => SourceError::Lost(message(e)),
        _ => SourceError::Query(message(e)),
    }
}
