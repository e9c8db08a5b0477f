//! The paginated table: rows in, pages out, one page at a time.
//!
//! Owns the report's look — title block on page 1, the column headings on every page, zebra
//! rows, group headings (repeated as "(continued)" after a page break), subtotal and total
//! rows, "Page X of Y" footers — and the pagination: a row goes on the current page when it
//! fits above the bottom margin, else the page is finished, handed to `file`, and a new one
//! begins. Cells too wide for their column wrap (at spaces, or anywhere in a long word) or end
//! with "…"; characters the fonts lack print as a visible replacement and are counted.
//!
//! Depends on `std` and the sibling modules only.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use super::content::{Content, TjLine};
use super::file::{self, FontPlan, Info, PdfFile};
use super::font::{Face, Fonts};
use super::layout::{self, BASELINE_RISE, BODY_SIZE, FOOTER_SIZE, INFO_SIZE, MARGIN, PAD, ROW_H};
use super::{Align, RenderError, Rendered, TableSpec};

/// Extra height of each wrapped line after a cell's first.
const LINE_STEP: f32 = 11.0;
/// A cell wraps onto at most this many lines; the last one ends with "…" if text remains.
const MAX_LINES: usize = 12;
/// Grey levels (0 = black, 1 = white).
const HEADER_GREY: f32 = 0.82;
const SUBTOTAL_GREY: f32 = 0.89;
const ZEBRA_GREY: f32 = 0.94;
/// Shown for a character the fonts lack (U+FFFD when the face has it, else `?`).
const REPLACEMENT: char = '\u{FFFD}';

/// What kind of row is being drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Body,
    /// The column headings at the top of every page.
    Columns,
    /// A group heading: one cell across the whole table.
    Group,
    Subtotal,
    Total,
}

struct Col {
    left: f32,
    right: f32,
    align: Align,
    wrap: bool,
}

/// Writes a table report to `out` as rows arrive. Call [`TableWriter::finish`] at the end;
/// dropping it instead leaves `out` with an incomplete file.
pub struct TableWriter<'w> {
    file: PdfFile<'w>,
    fonts: Arc<Fonts>,
    spec_title: String,
    info_lines: Vec<String>,
    producer: String,
    date: String,
    cols: Vec<Col>,
    headings: Vec<String>,
    page_w: f32,
    page_h: f32,
    max_pages: u32,
    progress: &'w mut dyn FnMut(u32, u32) -> bool,
    expected_rows: Option<u64>,
    /// Page being drawn: backgrounds and text go to separate buffers, joined when the page
    /// is finished, so every fill lies under the text.
    bg: Content,
    text: Content,
    /// Fill grey of the rectangles added since the last `f`.
    bg_grey: Option<f32>,
    cursor: TextCursor,
    /// Top of the next row.
    y: f32,
    page_started: bool,
    rows: u64,
    group: Option<String>,
    used: Alphabet,
    missing: BTreeSet<char>,
    missing_count: u64,
    scratch: String,
}

struct TextCursor {
    line_x: f32,
    line_y: f32,
    font: Option<(bool, u32)>,
}

impl<'w> TableWriter<'w> {
    /// Starts the document; nothing is drawn until the first row (or `finish`).
    ///
    /// `progress(pages_done, pages_estimated)` is called after each page is written (the
    /// estimate is 0 while unknown, see [`TableWriter::expect_rows`]); returning `false` stops
    /// the render with [`RenderError::Cancelled`].
    ///
    /// # Errors
    /// [`RenderError::Font`] if the report's own fonts cannot be read, [`RenderError::Io`]
    /// if `out` fails.
    pub fn new(
        spec: &TableSpec,
        out: &'w mut dyn Write,
        progress: &'w mut dyn FnMut(u32, u32) -> bool,
    ) -> Result<TableWriter<'w>, RenderError> {
        let fonts = match &spec.fonts {
            None => super::font::fonts().map_err(RenderError::Pdf)?,
            Some((regular, bold)) => {
                super::font::font_files(regular, bold).map_err(RenderError::Font)?
            }
        };
        let (page_w, page_h) = layout::page_pt(spec.paper, spec.orientation);
        let cols = columns(spec, page_w);
        let file = PdfFile::new(out, (page_w, page_h))?;
        let mut writer = TableWriter {
            file,
            fonts,
            spec_title: spec.title.clone(),
            info_lines: spec.info.clone(),
            producer: concat!("pdfworker ", env!("CARGO_PKG_VERSION")).to_owned(),
            date: pdf_date(spec.generated_at),
            cols,
            headings: Vec::new(),
            page_w,
            page_h,
            max_pages: spec.max_pages.max(1),
            progress,
            expected_rows: None,
            bg: Content::new(),
            text: Content::new(),
            bg_grey: None,
            cursor: TextCursor {
                line_x: 0.0,
                line_y: 0.0,
                font: None,
            },
            y: 0.0,
            page_started: false,
            rows: 0,
            group: None,
            used: Alphabet::default(),
            missing: BTreeSet::new(),
            missing_count: 0,
            scratch: String::new(),
        };
        writer.headings = spec.columns.iter().map(|c| c.heading.clone()).collect();
        // Digits and the footer's words are always needed (the page count is drawn last).
        writer.used.add("0123456789Page of…");
        Ok(writer)
    }

    /// The number of body rows the report will have, if known (a count query), so progress
    /// can estimate the page count.
    pub fn expect_rows(&mut self, rows: u64) {
        self.expected_rows = Some(rows);
    }

    /// Body rows drawn so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// A group heading; the rows after it belong to the group until the next heading.
    ///
    /// # Errors
    /// As [`TableWriter::row`].
    pub fn group_heading(&mut self, text: &str) -> Result<(), RenderError> {
        self.ensure_page()?;
        let lines = self.layout_cells(&[text], Kind::Group);
        // A heading stays with the group's first row.
        if self.y - height_of(&lines) - ROW_H < MARGIN {
            self.break_page()?;
            self.start_page(false);
        }
        self.group = Some(text.to_owned());
        self.draw_lines(&lines, Kind::Group);
        Ok(())
    }

    /// One body row, a cell per column (missing cells are empty, extra ones ignored).
    ///
    /// # Errors
    /// [`RenderError::Cancelled`] if `progress` said stop, [`RenderError::TooManyPages`]
    /// past the page cap, [`RenderError::Io`] if `out` fails.
    pub fn row(&mut self, cells: &[&str]) -> Result<(), RenderError> {
        self.rows += 1;
        self.line(cells, Kind::Body)
    }

    /// A subtotal row (bold on a grey band), e.g. after a group.
    ///
    /// # Errors
    /// As [`TableWriter::row`].
    pub fn subtotal(&mut self, cells: &[&str]) -> Result<(), RenderError> {
        self.line(cells, Kind::Subtotal)
    }

    /// Draws the grand total row (if any), finishes the last page and writes the rest of the
    /// file: fonts, page tree, page count, cross-reference table.
    ///
    /// # Errors
    /// As [`TableWriter::row`], and [`RenderError::Pdf`] if the fonts cannot be built.
    pub fn finish(mut self, total: Option<&[&str]>) -> Result<Rendered, RenderError> {
        self.ensure_page()?;
        if let Some(cells) = total {
            self.line(cells, Kind::Total)?;
        }
        self.break_page()?;
        let pages = self.file.page_count();
        let mut count = Content::new();
        count.raw(b"BT\n");
        count.set_font(file::REGULAR_NAME, FOOTER_SIZE);
        self.scratch.clear();
        let _ = write!(self.scratch, "{pages}");
        count.show(&self.fonts.regular, &self.scratch);
        count.raw(b"ET\n");
        let alphabet: String = self.used.chars().collect();
        let plan = FontPlan {
            regular: self.fonts.regular.for_document(&alphabet),
            bold: self.fonts.bold.for_document(&alphabet),
            alphabet,
        };
        let info = Info {
            title: self.spec_title.clone(),
            producer: self.producer.clone(),
            date: self.date.clone(),
        };
        self.file.finish(plan, count.bytes(), &info)?;
        Ok(Rendered {
            pages,
            rows: self.rows,
            missing_glyphs: self.missing.iter().take(20).copied().collect(),
            missing_count: self.missing_count,
        })
    }

    fn line(&mut self, cells: &[&str], kind: Kind) -> Result<(), RenderError> {
        self.ensure_page()?;
        if kind == Kind::Body && self.single_line(cells) {
            if self.y - ROW_H < MARGIN {
                self.new_page_in_group()?;
            }
            self.draw_with(1, cells.len(), kind, true, &|i, k| {
                if k == 0 { cells.get(i).copied() } else { None }
            });
            return Ok(());
        }
        let lines = self.layout_cells(cells, kind);
        if self.y - height_of(&lines) < MARGIN {
            if kind == Kind::Body {
                self.new_page_in_group()?;
            } else {
                self.break_page()?;
                self.start_page(false);
            }
        }
        if kind == Kind::Subtotal {
            // The group ends with its subtotal.
            self.group = None;
        }
        self.draw_lines(&lines, kind);
        Ok(())
    }

    /// A new page for the next body row, the group heading repeated as "(continued)".
    fn new_page_in_group(&mut self) -> Result<(), RenderError> {
        self.break_page()?;
        self.start_page(false);
        if let Some(group) = self.group.clone() {
            let text = format!("{group} (continued)");
            let heading = self.layout_cells(&[&text], Kind::Group);
            self.draw_lines(&heading, Kind::Group);
        }
        Ok(())
    }

    fn ensure_page(&mut self) -> Result<(), RenderError> {
        if !self.page_started {
            let first = self.file.page_count() == 0;
            self.start_page(first);
        }
        Ok(())
    }

    /// Finishes the current page: footer, then the page goes to the file.
    fn break_page(&mut self) -> Result<(), RenderError> {
        if !self.page_started {
            return Ok(());
        }
        let page_no = self.file.page_count() + 1;
        if page_no > self.max_pages {
            return Err(RenderError::TooManyPages {
                max: self.max_pages,
            });
        }
        self.footer(page_no);
        self.flush_bg();
        let mut page = std::mem::replace(&mut self.bg, Content::new());
        page.raw(self.text.bytes());
        self.file.add_page(page.bytes())?;
        page.clear();
        self.bg = page;
        self.text.clear();
        self.page_started = false;
        let done = self.file.page_count();
        let estimate = self.estimate_pages(done);
        if !(self.progress)(done, estimate) {
            return Err(RenderError::Cancelled);
        }
        Ok(())
    }

    fn estimate_pages(&self, done: u32) -> u32 {
        match self.expected_rows {
            Some(expected) if self.rows > 0 => {
                let est = (u64::from(done) * expected).div_ceil(self.rows);
                u32::try_from(est).unwrap_or(u32::MAX).max(done)
            }
            Some(0) => done,
            _ => 0,
        }
    }

    fn start_page(&mut self, first: bool) {
        self.page_started = true;
        self.bg_grey = None;
        self.cursor = TextCursor {
            line_x: 0.0,
            line_y: 0.0,
            font: None,
        };
        self.text.begin_text();
        let top = self.page_h - MARGIN;
        self.y = if first { self.title_block(top) } else { top };
        let headings = std::mem::take(&mut self.headings);
        let cells: Vec<&str> = headings.iter().map(String::as_str).collect();
        let lines = self.layout_cells(&cells, Kind::Columns);
        self.draw_lines(&lines, Kind::Columns);
        self.headings = headings;
    }

    /// Title and info lines above the table on page 1; returns where the table starts.
    fn title_block(&mut self, top: f32) -> f32 {
        let left = MARGIN;
        let width = self.page_w - 2.0 * MARGIN;
        let title = self.prepare(true, &self.spec_title.clone()).into_owned();
        let fitted = layout::fit_title(&self.fonts.bold, &title, width);
        self.set_font(true, fitted.size);
        let mut base = top - fitted.size;
        for line in &fitted.lines {
            self.used.add(line);
            self.move_to(left, base);
            self.text.show(&self.fonts.bold, line);
            base -= fitted.size * 1.2;
        }
        base -= 4.0;
        self.set_font(false, INFO_SIZE);
        for line in self.info_lines.clone() {
            let line = self.prepare(false, &line).into_owned();
            let line = layout::ellipsize(&self.fonts.regular, &line, INFO_SIZE, width);
            self.used.add(&line);
            self.move_to(left, base);
            self.text.show(&self.fonts.regular, &line);
            base -= INFO_SIZE * 1.4;
        }
        base + INFO_SIZE * 1.4 - 12.0
    }

    fn footer(&mut self, page_no: u32) {
        self.scratch.clear();
        let _ = write!(self.scratch, "Page {page_no} of ");
        let label = std::mem::take(&mut self.scratch);
        let face = &self.fonts.regular;
        // The total is drawn by the /TP form, so its width is guessed from this page's number.
        let digits = page_no.max(self.estimate_pages(page_no)).to_string();
        let w = face.width(&label, FOOTER_SIZE) + face.width(&digits, FOOTER_SIZE);
        let x = (self.page_w - w) / 2.0;
        let y = MARGIN / 2.0;
        self.set_font(false, FOOTER_SIZE);
        self.move_to(x, y);
        self.text.show(&self.fonts.regular, &label);
        self.text.end_text();
        let x_total = x + self.fonts.regular.width(&label, FOOTER_SIZE);
        self.text.raw(b"q 1 0 0 1 ");
        self.text.number(x_total);
        self.text.raw(b" ");
        self.text.number(y);
        self.text.raw(b" cm ");
        self.text.raw(file::TOTAL_NAME);
        self.text.raw(b" Do Q\n");
        self.scratch = label;
    }

    /// Each cell's lines, text already mapped to what the fonts can show.
    fn layout_cells(&mut self, cells: &[&str], kind: Kind) -> Vec<Vec<String>> {
        let fonts = Arc::clone(&self.fonts);
        let face = if kind == Kind::Body {
            &fonts.regular
        } else {
            &fonts.bold
        };
        let spans_table = kind == Kind::Group;
        let table_right = self.cols.last().map_or(self.page_w - MARGIN, |c| c.right);
        let mut out = Vec::with_capacity(cells.len());
        for (i, col) in self.cols.iter().enumerate() {
            let raw = cells.get(i).copied().unwrap_or("");
            let right = if spans_table {
                table_right
            } else {
                self.span_right(cells, i, kind)
            };
            let width = (right - col.left - 2.0 * PAD).max(1.0);
            let text = prepare_with(face, raw, &mut self.missing, &mut self.missing_count);
            let total_row = matches!(kind, Kind::Subtotal | Kind::Total);
            // Column headings never wrap: a long one ends with "…". A total's figures are
            // never cut: they may run on into the empty cells to their left.
            // Figures (right-aligned or centred cells that do not wrap, and every total) are
            // never cut: one that is too wide is drawn smaller (see `draw_with`).
            let figure = !col.wrap && col.align != Align::Left && kind != Kind::Columns;
            let lines = if (total_row && i > 0) || figure {
                vec![text.replace('\n', " ")]
            } else if total_row {
                let limit = self.label_limit(face, cells, right);
                vec![layout::ellipsize(
                    face,
                    &text.replace('\n', " "),
                    BODY_SIZE,
                    limit,
                )]
            } else if col.wrap && kind != Kind::Columns {
                layout::wrap_lines(face, &text, BODY_SIZE, width, MAX_LINES)
            } else {
                vec![layout::ellipsize(
                    face,
                    &text.replace('\n', " "),
                    BODY_SIZE,
                    width,
                )]
            };
            out.push(lines);
            if spans_table {
                break;
            }
        }
        out
    }

    /// Width for a total row's label: up to `right`, but not into the first figure's text.
    fn label_limit(&self, face: &Face, cells: &[&str], right: f32) -> f32 {
        let first = self.cols.first().map_or(MARGIN, |c| c.left);
        let figure_left = self
            .cols
            .iter()
            .zip(cells)
            .skip(1)
            .find(|(_, text)| !text.is_empty())
            .map(|(col, text)| {
                let room = col.right - col.left - 2.0 * PAD;
                col.right - PAD - face.width(text, BODY_SIZE).min(room)
            });
        let right = figure_left.map_or(right, |x| x.min(right));
        (right - first - 2.0 * PAD).max(1.0)
    }

    /// A total row's label may run on over the empty cells to its right.
    fn span_right(&self, cells: &[&str], i: usize, kind: Kind) -> f32 {
        let own = self.cols.get(i).map_or(0.0, |c| c.right);
        if !matches!(kind, Kind::Subtotal | Kind::Total) || i != 0 {
            return own;
        }
        let mut right = own;
        for (j, col) in self.cols.iter().enumerate().skip(1) {
            if cells.get(j).is_some_and(|c| !c.is_empty()) {
                break;
            }
            right = col.right;
        }
        right
    }

    fn draw_lines(&mut self, lines: &[Vec<String>], kind: Kind) {
        let n = lines.iter().map(Vec::len).max().unwrap_or(1).max(1);
        self.draw_with(n, lines.len(), kind, false, &|i, k| {
            lines.get(i).and_then(|c| c.get(k)).map(String::as_str)
        });
    }

    /// A body row whose cells all fit on one line, drawn without copying them (issue #7: the
    /// common case must stay cheap; this runs once per row).
    fn single_line(&mut self, cells: &[&str]) -> bool {
        let fonts = Arc::clone(&self.fonts);
        let face = &fonts.regular;
        self.cols.iter().zip(cells).all(|(col, text)| {
            let fine = text
                .chars()
                .all(|c| c == ' ' || (!c.is_control() && face.has(c)));
            fine && face.width(text, BODY_SIZE) <= col.right - col.left - 2.0 * PAD
        })
    }

    /// Background band, then one `TJ` per line; `cell(i, k)` is line `k` of cell `i`.
    /// `fits`: every cell is known to fit its column (`single_line` measured them), so no
    /// cell is measured again here.
    fn draw_with<'c>(
        &mut self,
        n: usize,
        cells: usize,
        kind: Kind,
        fits: bool,
        cell: &dyn Fn(usize, usize) -> Option<&'c str>,
    ) {
        let h = row_height(n);
        let left = self.cols.first().map_or(MARGIN, |c| c.left);
        let right = self.cols.last().map_or(self.page_w - MARGIN, |c| c.right);
        let grey = match kind {
            Kind::Columns | Kind::Total => Some(HEADER_GREY),
            Kind::Group | Kind::Subtotal => Some(SUBTOTAL_GREY),
            // Rows are counted before they are drawn: the 2nd, 4th, … get the band.
            Kind::Body => self.rows.is_multiple_of(2).then_some(ZEBRA_GREY),
        };
        if let Some(grey) = grey {
            self.rect(grey, left, self.y - h, right - left, h);
        }
        let bold = kind != Kind::Body;
        self.set_font(bold, BODY_SIZE);
        let fonts = Arc::clone(&self.fonts);
        let face = if bold { &fonts.bold } else { &fonts.regular };
        let mut smaller: Vec<(usize, &str)> = Vec::new();
        for k in 0..n {
            let base = self.y - ROW_H + BASELINE_RISE - k as f32 * LINE_STEP;
            self.move_to(left, base);
            let mut tj: TjLine<'_, '_> = self.text.tj(face, BODY_SIZE);
            for i in 0..cells {
                let Some(text) = cell(i, k).filter(|t| !t.is_empty()) else {
                    continue;
                };
                self.used.add(text);
                let Some(col) = self.cols.get(i) else { break };
                let label = i == 0 && matches!(kind, Kind::Subtotal | Kind::Total);
                let spans = kind == Kind::Group || label;
                if !fits && !spans && face.width(text, BODY_SIZE) > col.right - col.left - 2.0 * PAD
                {
                    smaller.push((i, text));
                    continue;
                }
                let align = if spans { Align::Left } else { col.align };
                match align {
                    Align::Left => tj.left(col.left + PAD - left, text),
                    Align::Right => tj.right(col.right - PAD - left, text),
                    Align::Center => tj.center((col.left + col.right) / 2.0 - left, text),
                }
            }
            tj.end();
            for (i, text) in smaller.drain(..) {
                self.draw_shrunk(face, bold, i, text, base);
            }
        }
        self.y -= h;
    }

    /// A figure too wide for its column at the body size, set smaller to fit whole (down to
    /// 4 pt; past that it is cut with "…").
    fn draw_shrunk(&mut self, face: &Face, bold: bool, i: usize, text: &str, base: f32) {
        let Some(col) = self.cols.get(i) else { return };
        let room = (col.right - col.left - 2.0 * PAD).max(1.0);
        let natural = face.width(text, BODY_SIZE).max(f32::MIN_POSITIVE);
        // A hair under the exact ratio, so rounding cannot push it past the room.
        let size = (BODY_SIZE * room / natural * 0.99).clamp(4.0, BODY_SIZE);
        let text = layout::ellipsize(face, text, size, room);
        self.used.add(&text);
        let w = face.width(&text, size);
        let x = match col.align {
            Align::Right => col.right - PAD - w,
            Align::Center => (col.left + col.right - w) / 2.0,
            Align::Left => col.left + PAD,
        };
        self.set_font(bold, size);
        self.move_to(x, base);
        self.text.show(face, &text);
        self.set_font(bold, BODY_SIZE);
    }

    fn rect(&mut self, grey: f32, x: f32, y: f32, w: f32, h: f32) {
        if self.bg_grey != Some(grey) {
            self.flush_bg();
            self.bg.fill_grey(grey);
            self.bg_grey = Some(grey);
        }
        self.bg.rect(x, y, w, h);
    }

    fn flush_bg(&mut self) {
        if self.bg_grey.take().is_some() {
            self.bg.fill();
            self.bg.fill_grey(0.0);
        }
    }

    /// `text` with every character the face lacks replaced, counting them.
    fn prepare<'t>(&mut self, bold: bool, text: &'t str) -> Cow<'t, str> {
        let fonts = Arc::clone(&self.fonts);
        let face = if bold { &fonts.bold } else { &fonts.regular };
        match prepare_with(face, text, &mut self.missing, &mut self.missing_count) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            Cow::Owned(s) => Cow::Owned(s),
        }
    }

    fn set_font(&mut self, bold: bool, size: f32) {
        let key = (bold, size.to_bits());
        if self.cursor.font == Some(key) {
            return;
        }
        self.cursor.font = Some(key);
        let name = if bold {
            file::BOLD_NAME
        } else {
            file::REGULAR_NAME
        };
        self.text.set_font(name, size);
    }

    /// `Td` is relative to the start of the current line, so track where that is.
    fn move_to(&mut self, x: f32, y: f32) {
        self.text
            .move_text(x - self.cursor.line_x, y - self.cursor.line_y);
        self.cursor.line_x = x;
        self.cursor.line_y = y;
    }
}

fn height_of(lines: &[Vec<String>]) -> f32 {
    row_height(lines.iter().map(Vec::len).max().unwrap_or(1))
}

fn row_height(lines: usize) -> f32 {
    ROW_H + lines.saturating_sub(1) as f32 * LINE_STEP
}

/// Column edges from the relative widths.
fn columns(spec: &TableSpec, page_w: f32) -> Vec<Col> {
    let width = page_w - 2.0 * MARGIN;
    let sum: f32 = spec
        .columns
        .iter()
        .map(|c| sanitize_width(c.width))
        .sum::<f32>()
        .max(f32::MIN_POSITIVE);
    let mut x = MARGIN;
    spec.columns
        .iter()
        .map(|c| {
            let w = sanitize_width(c.width) / sum * width;
            let col = Col {
                left: x,
                right: x + w,
                align: c.align,
                wrap: c.wrap,
            };
            x += w;
            col
        })
        .collect()
}

fn sanitize_width(w: f32) -> f32 {
    if w.is_finite() && w > 0.0 { w } else { 1.0 }
}

/// `text` as the face can show it: control characters other than line breaks become spaces,
/// characters without a glyph become [`REPLACEMENT`] (or `?`), counted in `missing`.
fn prepare_with<'t>(
    face: &Face,
    text: &'t str,
    missing: &mut BTreeSet<char>,
    count: &mut u64,
) -> Cow<'t, str> {
    let fine = |c: char| (c == '\n' || !c.is_control()) && (c == ' ' || c == '\n' || face.has(c));
    if text.chars().all(fine) {
        return Cow::Borrowed(text);
    }
    let replacement = if face.has(REPLACEMENT) {
        REPLACEMENT
    } else {
        '?'
    };
    let mapped = text
        .chars()
        .map(|c| {
            if c == '\n' || c == ' ' {
                c
            } else if c.is_control() {
                ' '
            } else if face.has(c) {
                c
            } else if is_invisible(c) {
                // Joiners, marks and variation selectors have no glyph of their own.
                '\u{0}'
            } else {
                missing.insert(c);
                *count += 1;
                replacement
            }
        })
        .filter(|&c| c != '\u{0}')
        .collect();
    Cow::Owned(mapped)
}

/// Format characters that print as nothing (ZWJ, ZWNJ, variation selectors, BOM, bidi marks).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}')
}

/// Every character drawn, with a fast path for ASCII.
struct Alphabet {
    ascii: [bool; 128],
    other: BTreeSet<char>,
}

impl Default for Alphabet {
    fn default() -> Self {
        Alphabet {
            ascii: [false; 128],
            other: BTreeSet::new(),
        }
    }
}

impl Alphabet {
    fn add(&mut self, text: &str) {
        for c in text.chars() {
            match self.ascii.get_mut(c as usize) {
                Some(seen) => *seen = true,
                None => {
                    self.other.insert(c);
                }
            }
        }
    }

    fn chars(&self) -> impl Iterator<Item = char> + '_ {
        (0u8..128)
            .filter(|&b| self.ascii[usize::from(b)] && !char::from(b).is_control())
            .map(char::from)
            .chain(self.other.iter().copied())
    }
}

/// `D:YYYYMMDDHHmmSSZ` (§7.9.4).
fn pdf_date(t: std::time::SystemTime) -> String {
    let secs = super::unix_seconds(t);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = super::data::civil_from_days(days);
    format!(
        "D:{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}
