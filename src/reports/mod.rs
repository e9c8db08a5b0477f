//! Reports: the definitions a site owner writes (one TOML file per report in `--reports-dir`),
//! their validation, the parameter values a user submits, and the SQL sources rows come from.
//!
//! Owns: [`Definition`] and its parts (plain data, below), parsing and checking a definition
//! file with file:line:column messages (`definition`), the catalog of all definitions
//! (`catalog`), validating submitted parameter values (`params`, shared by the form, the CLI
//! and later the API), translating `:name` placeholders for each driver (`sql`), and one row
//! stream per database kind (`source`). Turning rows into a PDF is `render`'s job, which
//! feeds `pdf`'s table writer.
//!
//! Must not depend on `web`, `fastcgi` or `jobs`.

pub mod catalog;
pub mod definition;
pub mod demo;
pub mod params;
pub mod render;
pub mod source;
pub mod sql;
pub mod value;

use std::path::PathBuf;
use std::time::Duration;

pub use catalog::Catalog;
pub use definition::DefinitionError;
pub use value::{ParamValue, Value};

use crate::pdf::{Orientation, Paper};

/// A report as declared in `<reports-dir>/<id>.toml`, checked.
#[derive(Clone, Debug)]
pub struct Definition {
    /// The file stem, `[a-z0-9-]+`.
    pub id: String,
    /// The file it was read from (absolute or relative to the working directory).
    pub path: PathBuf,
    /// Hex digest of the file's bytes; a job records it so a changed definition is noticed.
    pub hash: String,
    /// May contain `{param}` placeholders, filled with the submitted values.
    pub title: String,
    pub description: String,
    pub paper: Paper,
    pub orientation: Orientation,
    /// Whether the form lets the user choose the paper size / orientation.
    pub paper_choice: bool,
    pub orientation_choice: bool,
    /// A column's `field` whose change starts a new group (rows arrive ordered by the query).
    pub group_by: Option<String>,
    /// Number formatting for the whole report.
    pub thousands_separator: String,
    pub decimal_mark: String,
    pub source: SourceDef,
    /// Line and column of the source's `database`/`url_env` value in the file.
    pub database_at: (usize, usize),
    pub params: Vec<ParamDef>,
    pub columns: Vec<ColumnDef>,
    /// Own fonts (TTF/OTF paths, resolved against the report file's folder); `None` = DejaVu.
    pub fonts: Option<FontsDef>,
    /// `reuse_for`: an identical request within this long of an earlier job's creation gets
    /// that job (done, or still on its way) instead of a new render. `None`: never.
    pub reuse_for: Option<std::time::Duration>,
    /// Where every job of the report is told its end, unless its request names another.
    pub callback_url: Option<String>,
    /// How long its finished jobs are kept, when shorter than the server's retention.
    pub retention: Option<std::time::Duration>,
}

/// `[source]`.
#[derive(Clone, Debug)]
pub struct SourceDef {
    pub kind: SourceKind,
    pub database: DatabaseRef,
    /// SQL with `:name` placeholders, every one a declared param.
    pub query: String,
    /// A query returning one integer: the number of rows `query` will return (for progress).
    pub count_query: Option<String>,
    /// Each statement's time limit.
    pub timeout: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Sqlite,
    Postgres,
    Mysql,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Sqlite => "sqlite",
            SourceKind::Postgres => "postgres",
            SourceKind::Mysql => "mysql",
        }
    }
}

/// Where the database is. Its `Debug` form never shows a URL (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseRef {
    /// SQLite: a file, already resolved against the report file's folder.
    Path(PathBuf),
    /// PostgreSQL / MySQL: a connection URL written in the file. A secret: never log or show it.
    Url(String),
    /// PostgreSQL / MySQL: the name of an environment variable holding the URL, read when a
    /// connection is opened.
    UrlEnv(String),
}

impl std::fmt::Debug for DatabaseRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatabaseRef::Path(p) => f.debug_tuple("Path").field(p).finish(),
            DatabaseRef::Url(_) => f.write_str("Url(<redacted>)"),
            DatabaseRef::UrlEnv(name) => f.debug_tuple("UrlEnv").field(name).finish(),
        }
    }
}

/// `[[param]]`.
#[derive(Clone, Debug)]
pub struct ParamDef {
    /// `[a-z_][a-z0-9_]*`; used as `:name` in the query and `{name}` in the title.
    pub name: String,
    pub label: String,
    pub kind: ParamType,
    pub required: bool,
    /// Shown in the form; the value used when the field is left empty (if not required).
    pub default: Option<String>,
    /// Bounds: numbers for integer/decimal, `YYYY-MM-DD` for date. Checked on the server too.
    pub min: Option<String>,
    pub max: Option<String>,
    /// Text: the most characters allowed (default 200).
    pub max_length: Option<u32>,
    /// Choice: the allowed values, from `options` or, when that is empty, `options_query`.
    pub options: Vec<String>,
    pub options_query: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    Text,
    Integer,
    Decimal,
    Date,
    Choice,
}

/// `[[column]]`.
#[derive(Clone, Debug)]
pub struct ColumnDef {
    /// The result column's name.
    pub field: String,
    pub heading: String,
    pub format: Format,
    /// Decimal places for `decimal` (default 2).
    pub decimals: u8,
    pub align: Align,
    /// Relative width (default 1.0).
    pub width: f32,
    pub total: Option<Total>,
    /// Too-wide text: wrap onto more lines (default) or end with "…".
    pub overflow: Overflow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Integer,
    Decimal,
    Date,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
    Center,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Total {
    Sum,
    Count,
    Avg,
    Min,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Overflow {
    Wrap,
    Ellipsis,
}

/// `[fonts]`: a report's own faces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FontsDef {
    pub regular: PathBuf,
    pub bold: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::DatabaseRef;

    #[test]
    fn a_database_url_never_shows_in_debug_output() {
        let url = DatabaseRef::Url("postgresql://reports:s3cret@db/sales".into());
        let shown = format!("{url:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("db/sales"),
            "{shown}"
        );
        let env = format!("{:?}", DatabaseRef::UrlEnv("SALES_URL".into()));
        assert!(env.contains("SALES_URL"), "{env}");
    }
}
