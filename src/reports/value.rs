//! Values that cross the seams: what a source returns per cell ([`Value`]) and what a query
//! is bound with ([`ParamValue`]). Plain data; depends on `std` only.

/// One cell of a result row, as the driver gave it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    /// An exact decimal as text: optional `-`, digits, optional `.` and digits (PostgreSQL
    /// `numeric`, MySQL `DECIMAL`).
    Numeric(String),
    Text(String),
    /// A calendar date.
    Date {
        year: i32,
        month: u8,
        day: u8,
    },
    Bool(bool),
    /// Bytes that are not UTF-8 text (a BLOB); printed as a placeholder, never as raw bytes.
    Bytes(usize),
}

/// A checked parameter value, bound by the driver (never spliced into SQL text).
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    /// Text and choice parameters.
    Text(String),
    Integer(i64),
    /// A decimal as written by the user after validation: `-?[0-9]+(\.[0-9]+)?`.
    Decimal(String),
    /// `YYYY-MM-DD`.
    Date {
        year: i32,
        month: u8,
        day: u8,
    },
    /// An optional parameter left empty: SQL NULL.
    Null,
}
