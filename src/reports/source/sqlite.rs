//! The SQLite source: a file opened read-only (plus `PRAGMA query_only`), rows stepped one at
//! a time, and a time limit enforced by a progress handler that interrupts the statement.
//!
//! The limit counts only the time SQLite spends computing (inside each step), not the time
//! the caller takes with each row, like PostgreSQL's per-fetch `statement_timeout`.
//! Depends on `rusqlite` and this module's parent only.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, Statement};

use super::{Binding, Columns, SourceError, date_text, resolve, translate};
use crate::reports::{DatabaseRef, ParamValue, SourceDef, Value};

/// Progress handler period, in SQLite virtual machine instructions.
const PROGRESS_OPS: i32 = 1000;

/// The time budget of one statement, shared with the progress handler.
struct Budget {
    start: Instant,
    /// Nanoseconds after `start` when the current step must stop.
    deadline: Arc<AtomicU64>,
    expired: Arc<AtomicBool>,
    limit: Duration,
    used: Duration,
}

impl Budget {
    fn install(conn: &mut Connection, limit: Duration) -> Result<Budget, SourceError> {
        let budget = Budget {
            start: Instant::now(),
            deadline: Arc::new(AtomicU64::new(u64::MAX)),
            expired: Arc::new(AtomicBool::new(false)),
            limit,
            used: Duration::ZERO,
        };
        let (start, deadline, expired) = (
            budget.start,
            Arc::clone(&budget.deadline),
            Arc::clone(&budget.expired),
        );
        let handler = move || {
            let now = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            let over = now >= deadline.load(Ordering::Relaxed);
            if over {
                expired.store(true, Ordering::Relaxed);
            }
            over
        };
        conn.progress_handler(PROGRESS_OPS, Some(handler))
            .map_err(|e| SourceError::Query(e.to_string()))?;
        Ok(budget)
    }

    /// Runs one step of SQLite work (prepare or fetch) against the remaining budget.
    fn step<T>(&mut self, work: impl FnOnce() -> rusqlite::Result<T>) -> Result<T, SourceError> {
        let began = self.start.elapsed();
        let left = self.limit.saturating_sub(self.used);
        let deadline = u64::try_from((began + left).as_nanos()).unwrap_or(u64::MAX);
        self.deadline.store(deadline, Ordering::Relaxed);
        let result = work();
        self.deadline.store(u64::MAX, Ordering::Relaxed);
        self.used += self.start.elapsed().saturating_sub(began);
        result.map_err(|e| self.error(&e))
    }

    fn error(&self, e: &rusqlite::Error) -> SourceError {
        let interrupted = e.sqlite_error_code() == Some(ErrorCode::OperationInterrupted);
        if interrupted && self.expired.load(Ordering::Relaxed) {
            SourceError::Timeout(self.limit)
        } else {
            SourceError::Query(e.to_string())
        }
    }
}

/// Opens `path` read-only and refuses writes for the session.
fn open(path: &Path, timeout: Duration) -> Result<Connection, SourceError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // SQLite's message names the file.
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| SourceError::Connect(e.to_string()))?;
    conn.execute_batch("PRAGMA query_only = 1")
        .map_err(|e| SourceError::Connect(format!("{}: {e}", path.display())))?;
    conn.busy_timeout(timeout)
        .map_err(|e| SourceError::Connect(e.to_string()))?;
    Ok(conn)
}

fn bind_value(value: &ParamValue) -> ToSqlOutput<'_> {
    use rusqlite::types::Value as Sql;
    match value {
        ParamValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        ParamValue::Integer(n) => ToSqlOutput::Owned(Sql::Integer(*n)),
        ParamValue::Decimal(s) => match s.parse::<f64>() {
            Ok(f) if f.is_finite() => ToSqlOutput::Owned(Sql::Real(f)),
            _ => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        },
        ParamValue::Date { year, month, day } => {
            ToSqlOutput::Owned(Sql::Text(date_text(*year, *month, *day)))
        }
        ParamValue::Null => ToSqlOutput::Owned(Sql::Null),
    }
}

fn cell(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::Text(text.to_owned()),
            Err(_) => Value::Bytes(bytes.len()),
        },
        ValueRef::Blob(bytes) => Value::Bytes(bytes.len()),
    }
}

/// Runs `query` on the SQLite file of `source`; see [`super::stream`].
pub(super) fn run(
    source: &SourceDef,
    query: &str,
    bindings: &[Binding],
    columns: Columns<'_>,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let DatabaseRef::Path(path) = &source.database else {
        return Err(SourceError::Connect(
            "an SQLite source needs a file path, not a URL".to_owned(),
        ));
    };
    let (sql, bound) = translate(
        query,
        crate::reports::sql::Dialect::Standard,
        bindings,
        &|_, _| "?".to_owned(),
    )?;
    let mut conn = open(path, source.timeout)?;
    let mut budget = Budget::install(&mut conn, source.timeout)?;
    let mut stmt = budget.step(|| conn.prepare(&sql))?;
    for (i, binding) in bound.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, bind_value(&binding.value))
            .map_err(|e| SourceError::Query(e.to_string()))?;
    }
    let names: Vec<String> = stmt.column_names().map(str::to_owned).collect();
    let indices = resolve(&names, columns)?;
    deliver(&mut stmt, &mut budget, &indices, on_row)
}

/// Steps through the rows, calling `on_row` with the cells at `indices`.
fn deliver(
    stmt: &mut Statement<'_>,
    budget: &mut Budget,
    indices: &[usize],
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let mut rows = stmt.raw_query();
    let mut values = Vec::with_capacity(indices.len());
    let mut delivered = 0u64;
    while let Some(row) = budget.step(|| rows.next())? {
        values.clear();
        for &i in indices {
            let value = row
                .get_ref(i)
                .map_err(|e| SourceError::Query(e.to_string()))?;
            values.push(cell(value));
        }
        delivered += 1;
        if on_row(&values).is_break() {
            return Err(SourceError::Stopped);
        }
    }
    Ok(delivered)
}
