//! The report document: parameters and sample data in, PDF bytes out.
//!
//! Owns the report's look (title block, table with a header on every page, zebra rows, totals,
//! "Page X of Y" footer), the built-in sample data ([`sample_row`]) and the page arithmetic that
//! admission control relies on ([`page_count`]). Does no I/O except writing to the writer it is
//! handed, and must not depend on the rest of the crate: only `std`, `printpdf`, `serde`, `log`.
//!
//! Text is set in the DejaVu Sans faces from `assets/fonts/`, embedded as Unicode CID fonts, so
//! any title (Latin, Greek, Cyrillic, symbols) survives `pdftotext`; printpdf's built-in
//! Helvetica would turn everything outside WinAnsi into `?`.

mod data;
mod font;
mod layout;
mod subset;

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use printpdf::{
    Color, FontId, Greyscale, Mm, Op, PaintMode, PdfDocument, PdfFontHandle, PdfPage,
    PdfParseErrorSeverity, PdfSaveOptions, Point, Pt, Rect, TextItem,
};

pub use data::{Row, format_amount, sample_row, sample_total_cents};
pub use layout::Capacity;

use font::{Face, Fonts};
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
/// `progress(pages_done, pages_total)` is called after each page is laid out; returning `false`
/// stops the render with [`RenderError::Cancelled`] before anything is written. Serialising the
/// laid-out document (content encoding, compression) happens after the last call, cannot be
/// interrupted, and is most of the work: ~0.8 s of ~0.9 s for 1,000 A4 pages in a release
/// build, so a deadline checked only in `progress` can be overrun by that much.
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
    let regular = doc.add_font(&fonts.regular.for_document(report.title));
    let bold = doc.add_font(&fonts.bold.for_document(report.title));

    let mut painter = Painter::new(report, fonts, regular, bold, total_pages);
    let (w_mm, h_mm) = layout::page_mm(report.paper, report.orientation);
    // Vec::with_capacity would trust `total_pages` from the caller's row count; let it grow.
    let mut pages = Vec::new();
    for page_no in 1..=total_pages {
        let (first_row, count) = capacity.rows_on(page_no, report.rows);
        let ops = painter.page(page_no, first_row, count);
        pages.push(PdfPage::new(Mm(w_mm), Mm(h_mm), ops));
        if !progress(page_no, total_pages) {
            return Err(RenderError::Cancelled);
        }
    }
    doc.with_pages(pages);

    let opts = PdfSaveOptions {
        optimize: true,
        // Only honoured with printpdf's `text_layout` feature, which this crate does not enable;
        // `Face::for_document` has already stripped the fonts instead.
        subset_fonts: true,
        secure: true,
        image_optimization: None,
    };
    let mut warnings = Vec::new();
    let mut lo = doc.to_lopdf_document(&opts, &mut warnings);
    // The page ops are now encoded into content streams; free them before compressing.
    drop(doc);
    if let Some(w) = warnings
        .iter()
        .find(|w| w.severity == PdfParseErrorSeverity::Error)
    {
        return Err(RenderError::Pdf(w.msg.clone()));
    }
    lo.compress();
    let mut sink = Sink {
        inner: io::BufWriter::with_capacity(64 * 1024, out),
        error: None,
    };
    let saved = lo.save_to(&mut sink);
    // lopdf wraps I/O failures in its own error type; the sink kept the original.
    if let Some(e) = sink.error.take() {
        return Err(RenderError::Io(e));
    }
    saved.map_err(|e| RenderError::Pdf(e.to_string()))?;
    sink.inner.flush()?;
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

/// Writer adapter that remembers the first I/O error, because lopdf converts it into its own
/// error type and the caller wants the `io::Error`.
struct Sink<'w> {
    inner: io::BufWriter<&'w mut dyn Write>,
    error: Option<io::Error>,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.keep(e))
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf).map_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().map_err(|e| self.keep(e))
    }
}

impl Sink<'_> {
    fn keep(&mut self, e: io::Error) -> io::Error {
        let copy = io::Error::new(e.kind(), e.to_string());
        self.error.get_or_insert(e);
        copy
    }
}

/// Grey levels (0 = black, 1 = white).
const HEADER_GREY: f32 = 0.82;
const ZEBRA_GREY: f32 = 0.94;

/// Builds the op list of one page at a time.
///
/// Ops are kept lean because printpdf holds every page in memory until the document is
/// serialised: one fill colour per batch of rectangles, one text object (`BT`..`ET`) per page,
/// and one `Td` + one `TJ` per table row, with the gaps between cells expressed as TJ offsets
/// instead of a text matrix per cell.
struct Painter<'a> {
    report: &'a Report<'a>,
    fonts: &'a Fonts,
    regular: FontId,
    bold: FontId,
    total_pages: u32,
    page_w: f32,
    page_h: f32,
    cols: Columns,
    total_text: String,
}

/// Text state of the page's single text object: where the current line starts, and which font
/// is selected, so `Td`/`Tf` are only emitted when something changes.
struct TextCursor {
    line_x: f32,
    line_y: f32,
    font: Option<(bool, u32)>,
}

/// One `TJ` being assembled: strings at absolute x positions on the same baseline.
struct TjLine<'f> {
    face: &'f Face,
    size: f32,
    /// Pen position relative to the line start, in points, computed from the same `/W` widths
    /// the viewer uses (see [`Face::units`]).
    pen: f32,
    items: Vec<TextItem>,
}

impl<'f> TjLine<'f> {
    fn new(face: &'f Face, size: f32, cells: usize) -> Self {
        TjLine {
            face,
            size,
            pen: 0.0,
            items: Vec::with_capacity(cells * 2),
        }
    }

    /// Place `text` so that it starts at `x` (relative to the line start).
    fn left(&mut self, x: f32, text: String) {
        let w = self.face.width(&text, self.size);
        self.put(x, w, text);
    }

    /// Place `text` so that it ends at `x_right`.
    fn right(&mut self, x_right: f32, text: String) {
        let w = self.face.width(&text, self.size);
        self.put(x_right - w, w, text);
    }

    fn put(&mut self, x: f32, w: f32, text: String) {
        let gap = x - self.pen;
        if gap.abs() > 0.001 {
            // TJ numbers are thousandths of an em and move the pen left when positive.
            self.items.push(TextItem::Offset(-gap * 1000.0 / self.size));
        }
        self.items.push(TextItem::Text(text));
        self.pen = x + w;
    }
}

impl<'a> Painter<'a> {
    fn new(
        report: &'a Report<'a>,
        fonts: &'a Fonts,
        regular: FontId,
        bold: FontId,
        total_pages: u32,
    ) -> Self {
        let (page_w, page_h) = layout::page_pt(report.paper, report.orientation);
        Painter {
            report,
            fonts,
            regular,
            bold,
            total_pages,
            page_w,
            page_h,
            cols: Columns::for_width(page_w),
            total_text: format_amount(sample_total_cents(report.rows)),
        }
    }

    /// Ops for page `page_no`, holding body rows `first_row .. first_row + count`.
    fn page(&mut self, page_no: u32, first_row: u32, count: u32) -> Vec<Op> {
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

        // ~2 ops per body row plus a fixed handful per page.
        let mut ops = Vec::with_capacity(count as usize * 2 + 32);

        // Backgrounds first, so text is drawn over them.
        ops.push(fill(HEADER_GREY));
        ops.push(rect(left, bottom(0), width, ROW_H));
        if is_last {
            ops.push(rect(left, bottom(count + 1), width, ROW_H));
        }
        ops.push(fill(ZEBRA_GREY));
        for k in 0..count {
            if first_row.wrapping_add(k) % 2 == 0 {
                ops.push(rect(left, bottom(k + 1), width, ROW_H));
            }
        }
        ops.push(fill(0.0));

        ops.push(Op::StartTextSection);
        let mut cur = TextCursor {
            line_x: 0.0,
            line_y: 0.0,
            font: None,
        };
        if is_first {
            self.title_block(&mut ops, &mut cur, top);
        }

        let header_base = bottom(0) + BASELINE_RISE;
        self.set_font(&mut ops, &mut cur, true, BODY_SIZE);
        self.move_to(&mut ops, &mut cur, left, header_base);
        let c = &self.cols;
        let mut line = TjLine::new(&self.fonts.bold, BODY_SIZE, 5);
        line.right(c.index.right - PAD - left, "#".to_string());
        line.left(c.date.left + PAD - left, "Date".to_string());
        line.left(c.description.left + PAD - left, "Description".to_string());
        line.left(c.category.left + PAD - left, "Category".to_string());
        line.right(c.amount.right - PAD - left, "Amount".to_string());
        ops.push(Op::ShowText { items: line.items });

        self.set_font(&mut ops, &mut cur, false, BODY_SIZE);
        for k in 0..count {
            let row = sample_row(first_row.saturating_add(k));
            self.move_to(&mut ops, &mut cur, left, bottom(k + 1) + BASELINE_RISE);
            let mut line = TjLine::new(&self.fonts.regular, BODY_SIZE, 5);
            line.right(c.index.right - PAD - left, row.index.to_string());
            line.left(c.date.left + PAD - left, row.date);
            line.left(c.description.left + PAD - left, row.description);
            line.left(c.category.left + PAD - left, row.category.to_string());
            line.right(c.amount.right - PAD - left, format_amount(row.amount_cents));
            ops.push(Op::ShowText { items: line.items });
        }

        if is_last {
            self.set_font(&mut ops, &mut cur, true, BODY_SIZE);
            self.move_to(&mut ops, &mut cur, left, bottom(count + 1) + BASELINE_RISE);
            let mut line = TjLine::new(&self.fonts.bold, BODY_SIZE, 2);
            line.left(c.index.left + PAD - left, "Total".to_string());
            line.right(c.amount.right - PAD - left, self.total_text.clone());
            ops.push(Op::ShowText { items: line.items });
        }

        let footer = format!("Page {page_no} of {}", self.total_pages);
        self.set_font(&mut ops, &mut cur, false, FOOTER_SIZE);
        let fw = self.fonts.regular.width(&footer, FOOTER_SIZE);
        self.move_to(&mut ops, &mut cur, (self.page_w - fw) / 2.0, MARGIN / 2.0);
        ops.push(Op::ShowText {
            items: vec![TextItem::Text(footer)],
        });
        ops.push(Op::EndTextSection);
        ops
    }

    /// Title (one or two lines), generation time and row count, above the table on page 1.
    fn title_block(&self, ops: &mut Vec<Op>, cur: &mut TextCursor, top: f32) {
        let left = self.cols.table_left();
        let fitted =
            layout::fit_title(&self.fonts.bold, self.report.title, self.cols.table_width());
        self.set_font(ops, cur, true, fitted.size);
        let mut base = top - fitted.size;
        for line in fitted.lines {
            self.move_to(ops, cur, left, base);
            ops.push(Op::ShowText {
                items: vec![TextItem::Text(line)],
            });
            base -= fitted.size * 1.2;
        }
        self.set_font(ops, cur, false, INFO_SIZE);
        let generated = format!("Generated {}", format_utc(self.report.generated_at));
        self.move_to(ops, cur, left, top - 50.0);
        ops.push(Op::ShowText {
            items: vec![TextItem::Text(generated)],
        });
        let rows = format!("Rows: {}", self.report.rows);
        self.move_to(ops, cur, left, top - 64.0);
        ops.push(Op::ShowText {
            items: vec![TextItem::Text(rows)],
        });
    }

    fn set_font(&self, ops: &mut Vec<Op>, cur: &mut TextCursor, bold: bool, size: f32) {
        let key = (bold, size.to_bits());
        if cur.font == Some(key) {
            return;
        }
        cur.font = Some(key);
        let id = if bold { &self.bold } else { &self.regular };
        ops.push(Op::SetFont {
            font: PdfFontHandle::External(id.clone()),
            size: Pt(size),
        });
    }

    /// `Td` is relative to the start of the current line, so track where that is.
    fn move_to(&self, ops: &mut Vec<Op>, cur: &mut TextCursor, x: f32, y: f32) {
        ops.push(Op::SetTextCursor {
            pos: Point {
                x: Pt(x - cur.line_x),
                y: Pt(y - cur.line_y),
            },
        });
        cur.line_x = x;
        cur.line_y = y;
    }
}

fn fill(grey: f32) -> Op {
    Op::SetFillColor {
        col: Color::Greyscale(Greyscale {
            percent: grey,
            icc_profile: None,
        }),
    }
}

/// A filled rectangle with its lower-left corner at (`x`, `y`).
fn rect(x: f32, y: f32, w: f32, h: f32) -> Op {
    Op::DrawRectangle {
        rectangle: Rect {
            x: Pt(x),
            y: Pt(y),
            width: Pt(w),
            height: Pt(h),
            mode: Some(PaintMode::Fill),
            winding_order: None,
        },
    }
}

#[cfg(test)]
mod tests;
