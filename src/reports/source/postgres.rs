//! The PostgreSQL source: the sync `postgres` client, a read-only transaction with
//! `SET LOCAL statement_timeout`, parameters sent as text and cast in SQL
//! (`CAST($n AS bigint)`), and rows fetched from a server-side portal in batches so memory
//! stays flat however long the result is.
//!
//! Cells are decoded from PostgreSQL's binary format by [`Cell`], which accepts every type
//! and turns the ones it cannot print into [`SourceError::Unsupported`]. Depends on
//! `postgres` and this module's parent only.

use std::error::Error as StdError;
use std::fmt::Write as _;
use std::ops::ControlFlow;
use std::time::Duration;

use ::postgres::error::SqlState;
use ::postgres::types::{FromSql, Kind, ToSql, Type};
use ::postgres::{Client, Config, NoTls, Statement, Transaction};

use super::{
    BATCH_ROWS, Binding, CONNECT_TIMEOUT, Columns, SourceError, database_url, date_text, resolve,
    translate,
};
use crate::reports::{ParamType, ParamValue, SourceDef, Value};

/// Runs `query` on the PostgreSQL database of `source`; see [`super::stream`].
pub(super) fn run(
    source: &SourceDef,
    query: &str,
    bindings: &[Binding],
    columns: Columns<'_>,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let url = database_url(source)?;
    let result = connect(&url)
        .and_then(|mut client| run_on(&mut client, source, query, bindings, columns, on_row));
    result.map_err(|e| e.redacted(&url))
}

fn connect(url: &str) -> Result<Client, SourceError> {
    let mut config: Config = url.parse().map_err(|e| {
        SourceError::Connect(format!("the connection URL is not valid: {}", message(&e)))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config
        .connect(NoTls)
        .map_err(|e| SourceError::Connect(message(&e)))
}

fn run_on(
    client: &mut Client,
    source: &SourceDef,
    query: &str,
    bindings: &[Binding],
    columns: Columns<'_>,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let limit = source.timeout;
    let fail = |e: ::postgres::Error| error(&e, limit);
    let (sql, bound) = translate(
        query,
        crate::reports::sql::Dialect::Standard,
        bindings,
        &|position, binding| {
            let kind = binding.map_or(ParamType::Text, |b| b.kind);
            format!("CAST(${position} AS {})", cast_type(kind))
        },
    )?;
    let mut txn = client
        .build_transaction()
        .read_only(true)
        .start()
        .map_err(fail)?;
    let ms = limit.as_millis().clamp(1, i32::MAX as u128);
    txn.batch_execute(&format!("SET LOCAL statement_timeout = {ms}"))
        .map_err(fail)?;
    let stmt = txn
        .prepare_typed(&sql, &vec![Type::TEXT; bound.len()])
        .map_err(fail)?;
    if stmt.params().len() != bound.len() {
        return Err(SourceError::Query(format!(
            "the query has {} parameters but {} :name placeholders; write parameters as :name",
            stmt.params().len(),
            bound.len()
        )));
    }
    let names: Vec<String> = stmt.columns().iter().map(|c| c.name().to_owned()).collect();
    let indices = resolve(&names, columns)?;
    for &i in &indices {
        let column = &stmt.columns()[i];
        printable(column.type_()).map_err(|detail| SourceError::Unsupported {
            field: column.name().to_owned(),
            detail,
        })?;
    }
    let texts: Vec<Option<String>> = bound.iter().map(|b| param_text(&b.value)).collect();
    deliver(&mut txn, &stmt, &texts, &indices, limit, on_row)
}

/// Binds a portal and fetches it [`BATCH_ROWS`] rows at a time.
fn deliver(
    txn: &mut Transaction<'_>,
    stmt: &Statement,
    texts: &[Option<String>],
    indices: &[usize],
    limit: Duration,
    on_row: &mut dyn FnMut(&[Value]) -> ControlFlow<()>,
) -> Result<u64, SourceError> {
    let params: Vec<&(dyn ToSql + Sync)> = texts.iter().map(|t| t as &(dyn ToSql + Sync)).collect();
    let portal = txn.bind(stmt, &params).map_err(|e| error(&e, limit))?;
    let mut values = Vec::with_capacity(indices.len());
    let mut delivered = 0u64;
    loop {
        let rows = txn
            .query_portal(&portal, BATCH_ROWS)
            .map_err(|e| match error(&e, limit) {
                SourceError::Query(m) if e.as_db_error().is_none() => SourceError::Lost(m),
                other => other,
            })?;
        for row in &rows {
            values.clear();
            for &i in indices {
                let Cell(value) = row
                    .try_get(i)
                    .map_err(|e| SourceError::Query(message(&e)))?;
                let field = || stmt.columns()[i].name().to_owned();
                values.push(value.map_err(|detail| SourceError::Unsupported {
                    field: field(),
                    detail,
                })?);
            }
            delivered += 1;
            if on_row(&values).is_break() {
                return Err(SourceError::Stopped);
            }
        }
        if rows.len() < BATCH_ROWS as usize {
            return Ok(delivered);
        }
    }
}

/// The SQL type a parameter's text is cast to.
fn cast_type(kind: ParamType) -> &'static str {
    match kind {
        ParamType::Text | ParamType::Choice => "text",
        ParamType::Integer => "bigint",
        ParamType::Decimal => "numeric",
        ParamType::Date => "date",
    }
}

/// A parameter as the text PostgreSQL casts; `None` is SQL NULL.
fn param_text(value: &ParamValue) -> Option<String> {
    match value {
        ParamValue::Text(s) | ParamValue::Decimal(s) => Some(s.clone()),
        ParamValue::Integer(n) => Some(n.to_string()),
        ParamValue::Date { year, month, day } => Some(date_text(*year, *month, *day)),
        ParamValue::Null => None,
    }
}

/// A readable message: the server's own words for a database error, else the driver's
/// with its cause.
fn message(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut m = db.message().to_owned();
        if let Some(detail) = db.detail() {
            let _ = write!(m, " ({detail})");
        }
        return m;
    }
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Sorts a driver error into the variant the user is told.
fn error(e: &::postgres::Error, limit: Duration) -> SourceError {
    let code = e.code();
    if code == Some(&SqlState::QUERY_CANCELED) {
        return SourceError::Timeout(limit);
    }
    let gone = e.is_closed()
        || code.is_some_and(|c| {
            c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
        });
    if gone {
        SourceError::Lost(message(e))
    } else {
        SourceError::Query(message(e))
    }
}

/// How a PostgreSQL type is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decode {
    Bool,
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    Text,
    Date,
    Timestamp,
    Uuid,
}

/// The decoder for `ty`, or why it has none.
fn printable(ty: &Type) -> Result<Decode, String> {
    // Built-in type OIDs (pg_type.dat); they never change.
    let decode = match ty.oid() {
        16 => Decode::Bool,
        21 => Decode::Int2,
        23 => Decode::Int4,
        20 => Decode::Int8,
        700 => Decode::Float4,
        701 => Decode::Float8,
        1700 => Decode::Numeric,
        // text, varchar, bpchar, name, unknown
        25 | 1043 | 1042 | 19 | 705 => Decode::Text,
        1082 => Decode::Date,
        // timestamp, timestamptz (UTC)
        1114 | 1184 => Decode::Timestamp,
        2950 => Decode::Uuid,
        _ => match ty.kind() {
            Kind::Enum(_) => Decode::Text,
            Kind::Domain(inner) => return printable(inner),
            _ if ty.name() == "citext" => Decode::Text,
            _ => return Err(format!("PostgreSQL type {} is not supported", ty.name())),
        },
    };
    Ok(decode)
}

/// One cell, decoded from the binary format; `Err` names what could not be printed.
struct Cell(Result<Value, String>);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Cell(printable(ty).and_then(|d| decode(d, raw))))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Cell(Ok(Value::Null)))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("a {}-byte value arrived as {} bytes", N, raw.len()))
}

fn decode(how: Decode, raw: &[u8]) -> Result<Value, String> {
    Ok(match how {
        Decode::Bool => Value::Bool(fixed::<1>(raw)?[0] != 0),
        Decode::Int2 => Value::Int(i16::from_be_bytes(fixed(raw)?).into()),
        Decode::Int4 => Value::Int(i32::from_be_bytes(fixed(raw)?).into()),
        Decode::Int8 => Value::Int(i64::from_be_bytes(fixed(raw)?)),
        Decode::Float4 => Value::Float(f32::from_be_bytes(fixed(raw)?).into()),
        Decode::Float8 => Value::Float(f64::from_be_bytes(fixed(raw)?)),
        Decode::Numeric => Value::Numeric(numeric(raw)?),
        Decode::Text => match std::str::from_utf8(raw) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Bytes(raw.len()),
        },
        Decode::Date => date(i32::from_be_bytes(fixed(raw)?))?,
        Decode::Timestamp => Value::Text(timestamp(i64::from_be_bytes(fixed(raw)?))?),
        Decode::Uuid => Value::Text(uuid(&fixed::<16>(raw)?)),
    })
}

/// The binary NUMERIC format: `ndigits`, `weight`, `sign`, `dscale` (each 16 bits), then
/// `ndigits` base-10000 digits; digit `k` is worth `10000^(weight - k)`.
fn numeric(raw: &[u8]) -> Result<String, String> {
    let word = |i: usize| -> Result<u16, String> {
        raw.get(2 * i..2 * i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a numeric value arrived truncated".to_owned())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i64::from(word(1)? as i16);
    let sign = word(2)?;
    let dscale = usize::from(word(3)?);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric NaN".to_owned()),
        0xD000 | 0xF000 => return Err("numeric infinity".to_owned()),
        other => return Err(format!("numeric with unknown sign {other:#x}")),
    }
    let digits = (0..ndigits)
        .map(|k| match word(4 + k)? {
            d @ 0..=9999 => Ok(d),
            d => Err(format!("numeric digit {d} out of range")),
        })
        .collect::<Result<Vec<u16>, String>>()?;
    let digit = |k: i64| usize::try_from(k).ok().and_then(|k| digits.get(k)).copied();
    let mut out = String::new();
    if sign == 0x4000 && digits.iter().any(|d| *d != 0) {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    }
    for k in 0..=weight {
        let d = digit(k).unwrap_or(0);
        let _ = if k == 0 {
            write!(out, "{d}")
        } else {
            write!(out, "{d:04}")
        };
    }
    if dscale > 0 {
        let mut frac = String::with_capacity(dscale + 4);
        let mut k = weight + 1;
        while frac.len() < dscale {
            let _ = write!(frac, "{:04}", digit(k).unwrap_or(0));
            k += 1;
        }
        frac.truncate(dscale);
        out.push('.');
        out.push_str(&frac);
    }
    Ok(out)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil(days: i64) -> (i64, u8, u8) {
    let (year, month, day) = crate::pdf::civil_from_days(days);
    // Month 1..=12 and day 1..=31 by construction.
    (year, month as u8, day as u8)
}

/// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;

fn date(days: i32) -> Result<Value, String> {
    if days == i32::MAX || days == i32::MIN {
        return Err("date infinity".to_owned());
    }
    let (year, month, day) = civil(i64::from(days) + PG_EPOCH_DAYS);
    let year = i32::try_from(year).map_err(|_| "a date out of range".to_owned())?;
    Ok(Value::Date { year, month, day })
}

/// Microseconds since 2000-01-01 00:00:00 → `YYYY-MM-DD HH:MM:SS`.
fn timestamp(micros: i64) -> Result<String, String> {
    if micros == i64::MAX || micros == i64::MIN {
        return Err("timestamp infinity".to_owned());
    }
    let secs = micros.div_euclid(1_000_000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil(days + PG_EPOCH_DAYS);
    Ok(format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    ))
}

fn uuid(b: &[u8; 16]) -> String {
    let mut out = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_numeric(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numeric_decodes_weights_scales_and_signs_exactly() {
        let n = |w, s, sc, d: &[u16]| numeric(&raw_numeric(w, s, sc, d));
        assert_eq!(n(1, 0, 2, &[12, 3456, 7800]), Ok("123456.78".into()));
        assert_eq!(n(0, 0x4000, 3, &[5, 1000]), Ok("-5.100".into()));
        assert_eq!(n(-2, 0, 8, &[1234]), Ok("0.00001234".into()));
        assert_eq!(n(2, 0, 0, &[1]), Ok("100000000".into()));
        assert_eq!(n(0, 0, 0, &[]), Ok("0".into()));
        assert_eq!(n(0, 0, 2, &[]), Ok("0.00".into()));
        assert_eq!(n(-1, 0x4000, 1, &[5000]), Ok("-0.5".into()));
        assert!(n(0, 0xC000, 0, &[]).is_err());
        assert!(numeric(&[0, 1, 0]).is_err());
    }

    #[test]
    fn dates_and_timestamps_count_from_2000() {
        let d = |days| date(days).ok();
        let v = |year, month, day| Some(Value::Date { year, month, day });
        assert_eq!(d(0), v(2000, 1, 1));
        assert_eq!(d(-1), v(1999, 12, 31));
        assert_eq!(d(8825), v(2024, 2, 29));
        assert!(date(i32::MAX).is_err());
        assert_eq!(
            timestamp(86_400_000_000 + 3_723_000_001).ok(),
            Some("2000-01-02 01:02:03".into())
        );
        assert_eq!(timestamp(-1).ok(), Some("1999-12-31 23:59:59".into()));
    }

    #[test]
    fn uuids_print_hyphenated() {
        let b = [
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        assert_eq!(uuid(&b), "12345678-9abc-def0-0102-030405060708");
    }
}
