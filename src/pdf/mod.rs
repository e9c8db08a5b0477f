//! The report document: a table specification and its rows in, a PDF file out.
//!
//! Owns the report's look (title block, table with the column headings on every page, zebra
//! rows, group headings, subtotals and totals, "Page X of Y" footers), the page geometry, the
//! fonts, and the file format. [`TableWriter`] takes rows one at a time and writes each page to
//! the file as soon as it is full, so memory does not grow with the number of rows (issue #7).
//! Also owns the built-in sample data ([`sample_row`]) that the demo database is made from.
//! Does no I/O except writing to the writer it is handed (and reading a report's own font
//! files), and must not depend on the rest of the crate: only `std`, `printpdf` (with the
//! `lopdf` and `flate2` it is built on), `serde`, `log`.
//!
//! Page content is written as bytes by `content` and deflated page by page by `file`, because
//! printpdf would hold every page's ops until the end and then deflate at the slowest level
//! (issue #4); printpdf builds the embedded fonts (`/W`, `/ToUnicode`, the font program) once,
//! at the end, for exactly the characters the report used.
//!
//! Text is set in the DejaVu Sans faces from `assets/fonts/` (or a report's own TTF/OTF files),
//! embedded as Unicode CID fonts, so any title survives `pdftotext`; a character the fonts lack
//! prints as U+FFFD and is reported in [`Rendered::missing_glyphs`].

mod content;
mod data;
mod file;
mod font;
mod layout;
mod subset;
mod table;

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

pub use data::{Row, civil_from_days, format_amount, sample_row, sample_total_cents};
pub use layout::rows_per_page;
pub use table::TableWriter;

/// Paper size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Paper {
    /// ISO A4, 210 × 297 mm.
    A4,
    /// US Letter, 8.5 × 11 in.
    Letter,
}

impl Paper {
    /// The lowercase name used in forms and job records.
    pub fn as_str(self) -> &'static str {
        match self {
            Paper::A4 => "a4",
            Paper::Letter => "letter",
        }
    }
}

/// A name that is not one of the accepted lowercase values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseNameError;

impl fmt::Display for ParseNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown name")
    }
}

impl std::error::Error for ParseNameError {}

impl FromStr for Paper {
    type Err = ParseNameError;

    /// Accepts exactly `a4` or `letter` (lowercase, as [`Paper::as_str`] writes them).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "a4" => Ok(Paper::A4),
            "letter" => Ok(Paper::Letter),
            _ => Err(ParseNameError),
        }
    }
}

/// Page orientation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Orientation {
    /// Long edge vertical.
    Portrait,
    /// Long edge horizontal; fewer rows per page.
    Landscape,
}

impl Orientation {
    /// The lowercase name used in forms and job records.
    pub fn as_str(self) -> &'static str {
        match self {
            Orientation::Portrait => "portrait",
            Orientation::Landscape => "landscape",
        }
    }
}

impl FromStr for Orientation {
    type Err = ParseNameError;

    /// Accepts exactly `portrait` or `landscape`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "portrait" => Ok(Orientation::Portrait),
            "landscape" => Ok(Orientation::Landscape),
            _ => Err(ParseNameError),
        }
    }
}

/// How a column's text sits in its cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
    Center,
}

/// One column of the table.
#[derive(Clone, Debug)]
pub struct ColumnSpec {
    pub heading: String,
    pub align: Align,
    /// Relative width; columns share the page width in proportion.
    pub width: f32,
    /// Too-wide text wraps onto more lines (`true`) or ends with "…".
    pub wrap: bool,
}

/// What the document looks like, apart from its rows.
#[derive(Clone, Debug)]
pub struct TableSpec {
    /// Any Unicode; shrunk, wrapped to two lines and finally cut with "…" on the page (never in
    /// the metadata).
    pub title: String,
    /// Lines under the title on page 1 ("Generated …", the parameters).
    pub info: Vec<String>,
    pub paper: Paper,
    pub orientation: Orientation,
    pub columns: Vec<ColumnSpec>,
    /// The PDF creation date.
    pub generated_at: SystemTime,
    /// A report's own regular and bold font files; `None` = the bundled DejaVu Sans.
    pub fonts: Option<(PathBuf, PathBuf)>,
    /// The render fails with [`RenderError::TooManyPages`] beyond this many pages.
    pub max_pages: u32,
}

/// Facts about a finished render.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub pages: u32,
    /// Body rows drawn.
    pub rows: u64,
    /// Up to 20 distinct characters the fonts lack (printed as a replacement).
    pub missing_glyphs: Vec<char>,
    /// How many characters were replaced in all.
    pub missing_count: u64,
}

/// Why a render did not produce a document.
#[derive(Debug)]
pub enum RenderError {
    /// The progress callback returned `false`; the file is incomplete.
    Cancelled,
    /// The report would have more pages than allowed.
    TooManyPages { max: u32 },
    /// A report's own font file cannot be used.
    Font(String),
    /// printpdf could not build the document (a broken font asset, say).
    Pdf(String),
    /// Writing the document failed.
    Io(io::Error),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Cancelled => f.write_str("render cancelled"),
            RenderError::TooManyPages { max } => write!(
                f,
                "the report has more than {max} pages, the most allowed; choose parameters that select fewer rows"
            ),
            RenderError::Font(msg) => write!(f, "the report's font cannot be used: {msg}"),
            RenderError::Pdf(msg) => write!(f, "building the PDF failed: {msg}"),
            RenderError::Io(e) => write!(f, "writing the PDF failed: {e}"),
        }
    }
}

impl std::error::Error for RenderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RenderError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for RenderError {
    fn from(e: io::Error) -> Self {
        RenderError::Io(e)
    }
}

/// Seconds since the Unix epoch, negative before it, saturating at the i64 range.
fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_utc(t: SystemTime) -> String {
    let secs = unix_seconds(t);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        data::format_date(days),
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests;
