//! The report document: parameters and sample data in, PDF bytes out.
//!
//! Owns the report's look (title block, table with a header on every page, zebra rows, totals,
//! "Page X of Y" footer), the built-in sample data ([`sample_row`]) and the page arithmetic that
//! admission control relies on ([`page_count`]). Does no I/O except writing to the writer it is
//! handed, and must not depend on the rest of the crate: only `std`, `printpdf` (with the
//! `lopdf` and `flate2` it is built on), `serde`, `log`.
//!
//! printpdf builds the document (fonts, metadata, page tree); page content is written as bytes
//! by `content` and compressed page by page by `document`, because printpdf would hold every
//! page's ops until the end and then deflate at the slowest level (issue #4).
//!
//! Text is set in the DejaVu Sans faces from `assets/fonts/`, embedded as Unicode CID fonts, so
//! any title (Latin, Greek, Cyrillic, symbols) survives `pdftotext`; printpdf's built-in
//! Helvetica would turn everything outside WinAnsi into `?`.

mod content;
mod data;
mod document;
mod font;
mod layout;
mod subset;

use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use printpdf::PdfDocument;

pub use data::{Row, format_amount, sample_row, sample_total_cents};
pub use layout::Capacity;

use content::Content;
use document::{Document, FontNames, Shared};
use font::Fonts;
use layout::{BASELINE_RISE, BODY_SIZE, Columns, FOOTER_SIZE, INFO_SIZE, MARGIN, PAD, ROW_H};

/// Body rows on every page after the first, on A4 portrait (the shape the FPDF benchmark
/// report has). Other sizes: see [`Capacity::of`].
pub const ROWS_PER_PAGE: u32 = 40;

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

/// What to render.
#[derive(Clone, Debug)]
pub struct Report<'a> {
    /// Any Unicode; the caller limits it to 1..=200 characters. Longer titles are shrunk,
    /// wrapped to two lines and finally cut with "…" on the page (never in the metadata).
    pub title: &'a str,
    /// Number of sample rows.
    pub rows: u32,
    pub paper: Paper,
    pub orientation: Orientation,
    /// Shown in the title block (UTC) and used as the PDF creation date.
    pub generated_at: SystemTime,
}

/// Facts about a finished render.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rendered {
    pub pages: u32,
}

/// Why a render did not produce a document.
#[derive(Debug)]
pub enum RenderError {
    /// The progress callback returned `false`; nothing was written.
    Cancelled,
    /// printpdf could not build the document (a broken font asset, say).
    Pdf(String),
    /// Writing the finished document failed.
    Io(io::Error),
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Cancelled => f.write_str("render cancelled"),
            RenderError::Pdf(msg) => write!(f, "building the PDF failed: {msg}"),
            RenderError::Io(e) => write!(f, "writing the PDF failed: {e}"),
        }
    }
}

impl std::error::Error for RenderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RenderError::Io(e) => Some(e),
            RenderError::Cancelled | RenderError::Pdf(_) => None,
        }
    }
}

impl From<io::Error> for RenderError {
    fn from(e: io::Error) -> Self {
        RenderError::Io(e)
    }
}

/// Pages the report will have, computed without rendering (used to enforce a page cap before a
/// job is admitted). Always equal to [`Rendered::pages`] for the same arguments.
pub fn page_count(rows: u32, paper: Paper, orientation: Orientation) -> u32 {
    Capacity::of(paper, orientation).pages(rows)
}

/// Render `report` and write the PDF to `out`.
///
/// `progress(pages_done, pages_total)` is called after each page is laid out and compressed;
/// returning `false` stops the render with [`RenderError::Cancelled`] before anything is
/// written. What remains after the last call is writing the file out, a small fraction of the
/// work (the pages are compressed as they are made), so a deadline checked in `progress` is
/// overrun by little more than the time to write the file.
///
/// # Errors
/// [`RenderError::Cancelled`] as above, [`RenderError::Pdf`] if printpdf reports an error while
/// building the document, [`RenderError::Io`] if `out` fails. On `Io`, `out` may hold a partial
/// document.
pub fn render(
    report: &Report<'_>,
    progress: &mut dyn FnMut(u32, u32) -> bool,
    out: &mut dyn Write,
) -> Result<Rendered, RenderError> {
    let fonts = font::fonts().map_err(RenderError::Pdf)?;
    let capacity = Capacity::of(report.paper, report.orientation);
    let total_pages = capacity.pages(report.rows);

    let mut doc = PdfDocument::new(report.title);
    set_metadata(&mut doc, report.generated_at);
    let alphabet: String = data::FIXED_ALPHABET
        .chars()
        .chain(report.title.chars())
        .chain(['…'])
        .collect();
    let (mut document, names) = Document::new(Shared {
        doc,
        regular: fonts.regular.for_document(report.title),
        bold: fonts.bold.for_document(report.title),
        alphabet,
        page_mm: layout::page_mm(report.paper, report.orientation),
        page_pt: layout::page_pt(report.paper, report.orientation),
    })?;

    let mut painter = Painter::new(report, fonts, &names, total_pages);
    let mut content = Content::new();
    for page_no in 1..=total_pages {
        let (first_row, count) = capacity.rows_on(page_no, report.rows);
        content.clear();
        painter.page(&mut content, page_no, first_row, count);
        document.add_page(content.bytes())?;
        if !progress(page_no, total_pages) {
            return Err(RenderError::Cancelled);
        }
    }
    document.save(out)?;
    Ok(Rendered { pages: total_pages })
}

/// Title, dates and producer in the document information dictionary.
fn set_metadata(doc: &mut PdfDocument, generated_at: SystemTime) {
    let info = &mut doc.metadata.info;
    info.producer = concat!("pdfworker ", env!("CARGO_PKG_VERSION")).to_string();
    info.creator = "pdfworker".to_string();
    // Out-of-range times (years beyond the `time` crate's range) keep printpdf's epoch default
    // rather than failing the render over a metadata field.
    if let Ok(dt) = printpdf::OffsetDateTime::from_unix_timestamp(unix_seconds(generated_at)) {
        info.creation_date = dt;
        info.modification_date = dt;
        info.metadata_date = dt;
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
fn format_utc(t: SystemTime) -> String {
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

/// Grey levels (0 = black, 1 = white).
const HEADER_GREY: f32 = 0.82;
const ZEBRA_GREY: f32 = 0.94;

/// Writes the content stream of one page at a time.
///
/// Content is kept lean because it is compressed per page (issue #4): one fill per batch of
/// rectangles, one text object (`BT`..`ET`) per page, and one `Td` + one `TJ` per table row,
/// with the gaps between cells expressed as TJ offsets instead of a text matrix per cell.
struct Painter<'a> {
    report: &'a Report<'a>,
    fonts: &'a Fonts,
    /// `/name` of each face in the page resources.
    regular: Vec<u8>,
    bold: Vec<u8>,
    total_pages: u32,
    page_w: f32,
    page_h: f32,
    cols: Columns,
    total_text: String,
    /// Reused per row, so a row costs no allocation beyond [`sample_row`]'s own.
    scratch: String,
}

/// Text state of the page's single text object: where the current line starts, and which font
/// is selected, so `Td`/`Tf` are only emitted when something changes.
struct TextCursor {
    line_x: f32,
    line_y: f32,
    font: Option<(bool, u32)>,
}

impl<'a> Painter<'a> {
    fn new(report: &'a Report<'a>, fonts: &'a Fonts, names: &FontNames, total_pages: u32) -> Self {
        let (page_w, page_h) = layout::page_pt(report.paper, report.orientation);
        Painter {
            report,
            fonts,
            regular: content::pdf_name(&names.regular),
            bold: content::pdf_name(&names.bold),
            total_pages,
            page_w,
            page_h,
            cols: Columns::for_width(page_w),
            total_text: format_amount(sample_total_cents(report.rows)),
            scratch: String::with_capacity(32),
        }
    }

    /// Content of page `page_no`, holding body rows `first_row .. first_row + count`.
    fn page(&mut self, out: &mut Content, page_no: u32, first_row: u32, count: u32) {
        let is_first = page_no == 1;
        let is_last = page_no == self.total_pages;
        let top = self.page_h - MARGIN;
        let header_top = if is_first {
            top - layout::TITLE_SLOTS as f32 * ROW_H
        } else {
            top
        };
        // Slot 0 is the header row, slots 1..=count the body rows, slot count + 1 the totals.
        let bottom = |slot: u32| header_top - (slot + 1) as f32 * ROW_H;
        let left = self.cols.table_left();
        let width = self.cols.table_width();

        // Backgrounds first, so text is drawn over them.
        out.fill_grey(HEADER_GREY);
        out.rect(left, bottom(0), width, ROW_H);
        if is_last {
            out.rect(left, bottom(count + 1), width, ROW_H);
        }
        out.fill();
        out.fill_grey(ZEBRA_GREY);
        let mut zebra = false;
        for k in 0..count {
            if first_row.wrapping_add(k) % 2 == 0 {
                out.rect(left, bottom(k + 1), width, ROW_H);
                zebra = true;
            }
        }
        if zebra {
            out.fill();
        }
        out.fill_grey(0.0);

        out.begin_text();
        let mut cur = TextCursor {
            line_x: 0.0,
            line_y: 0.0,
            font: None,
        };
        if is_first {
            self.title_block(out, &mut cur, top);
        }

        let header_base = bottom(0) + BASELINE_RISE;
        self.set_font(out, &mut cur, true, BODY_SIZE);
        move_to(out, &mut cur, left, header_base);
        let c = &self.cols;
        let mut line = out.tj(&self.fonts.bold, BODY_SIZE);
        line.right(c.index.right - PAD - left, "#");
        line.left(c.date.left + PAD - left, "Date");
        line.left(c.description.left + PAD - left, "Description");
        line.left(c.category.left + PAD - left, "Category");
        line.right(c.amount.right - PAD - left, "Amount");
        line.end();

        self.set_font(out, &mut cur, false, BODY_SIZE);
        for k in 0..count {
            let row = sample_row(first_row.saturating_add(k));
            move_to(out, &mut cur, left, bottom(k + 1) + BASELINE_RISE);
            let c = &self.cols;
            let mut line = out.tj(&self.fonts.regular, BODY_SIZE);
            self.scratch.clear();
            // Writing to a String cannot fail.
            let _ = write!(self.scratch, "{}", row.index);
            line.right(c.index.right - PAD - left, &self.scratch);
            line.left(c.date.left + PAD - left, &row.date);
            line.left(c.description.left + PAD - left, &row.description);
            line.left(c.category.left + PAD - left, row.category);
            self.scratch.clear();
            data::push_amount(&mut self.scratch, row.amount_cents);
            line.right(c.amount.right - PAD - left, &self.scratch);
            line.end();
        }

        if is_last {
            self.set_font(out, &mut cur, true, BODY_SIZE);
            move_to(out, &mut cur, left, bottom(count + 1) + BASELINE_RISE);
            let c = &self.cols;
            let mut line = out.tj(&self.fonts.bold, BODY_SIZE);
            line.left(c.index.left + PAD - left, "Total");
            line.right(c.amount.right - PAD - left, &self.total_text);
            line.end();
        }

        self.scratch.clear();
        let _ = write!(self.scratch, "Page {page_no} of {}", self.total_pages);
        self.set_font(out, &mut cur, false, FOOTER_SIZE);
        let fw = self.fonts.regular.width(&self.scratch, FOOTER_SIZE);
        move_to(out, &mut cur, (self.page_w - fw) / 2.0, MARGIN / 2.0);
        out.show(&self.fonts.regular, &self.scratch);
        out.end_text();
    }

    /// Title (one or two lines), generation time and row count, above the table on page 1.
    fn title_block(&self, out: &mut Content, cur: &mut TextCursor, top: f32) {
        let left = self.cols.table_left();
        let fitted =
            layout::fit_title(&self.fonts.bold, self.report.title, self.cols.table_width());
        self.set_font(out, cur, true, fitted.size);
        let mut base = top - fitted.size;
        for line in &fitted.lines {
            move_to(out, cur, left, base);
            out.show(&self.fonts.bold, line);
            base -= fitted.size * 1.2;
        }
        self.set_font(out, cur, false, INFO_SIZE);
        let generated = format!("Generated {}", format_utc(self.report.generated_at));
        move_to(out, cur, left, top - 50.0);
        out.show(&self.fonts.regular, &generated);
        let rows = format!("Rows: {}", self.report.rows);
        move_to(out, cur, left, top - 64.0);
        out.show(&self.fonts.regular, &rows);
    }

    fn set_font(&self, out: &mut Content, cur: &mut TextCursor, bold: bool, size: f32) {
        let key = (bold, size.to_bits());
        if cur.font == Some(key) {
            return;
        }
        cur.font = Some(key);
        out.set_font(if bold { &self.bold } else { &self.regular }, size);
    }
}

/// `Td` is relative to the start of the current line, so track where that is.
fn move_to(out: &mut Content, cur: &mut TextCursor, x: f32, y: f32) {
    out.move_text(x - cur.line_x, y - cur.line_y);
    cur.line_x = x;
    cur.line_y = y;
}

#[cfg(test)]
mod tests;
