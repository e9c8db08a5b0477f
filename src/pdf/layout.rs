//! Page geometry: sizes, margins, how many rows fit, column positions and title fitting.
//!
//! Owns every number that decides where things go, so that [`super::page_count`] and
//! [`super::render`] cannot disagree: both ask [`Capacity::of`]. Depends on `std` and the
//! sibling `font` module only.

use super::font::Face;
use super::{Orientation, Paper};

/// Height of every table row (header, body, totals), in points.
pub(crate) const ROW_H: f32 = 18.0;
/// Page margin on all four sides, in points; the footer sits inside the bottom margin.
pub(crate) const MARGIN: f32 = 40.0;
/// Row slots the title block takes on page 1.
pub(crate) const TITLE_SLOTS: u32 = 4;
/// Inner horizontal padding of a cell, in points.
pub(crate) const PAD: f32 = 4.0;
/// Font sizes, in points.
pub(crate) const BODY_SIZE: f32 = 9.0;
pub(crate) const FOOTER_SIZE: f32 = 8.0;
pub(crate) const INFO_SIZE: f32 = 10.0;
/// Distance from a row's bottom edge to the text baseline: centres DejaVu's cap height
/// (~0.73 em) in the row.
pub(crate) const BASELINE_RISE: f32 = (ROW_H - 0.73 * BODY_SIZE) / 2.0;

/// Millimetres to points, with printpdf's own factor so our geometry matches its media box.
const PT_PER_MM: f32 = 2.834_646;

/// Page width and height in millimetres.
pub(crate) fn page_mm(paper: Paper, orientation: Orientation) -> (f32, f32) {
    let (w, h) = match paper {
        Paper::A4 => (210.0, 297.0),
        Paper::Letter => (215.9, 279.4),
    };
    match orientation {
        Orientation::Portrait => (w, h),
        Orientation::Landscape => (h, w),
    }
}

/// Page width and height in points.
pub(crate) fn page_pt(paper: Paper, orientation: Orientation) -> (f32, f32) {
    let (w, h) = page_mm(paper, orientation);
    (w * PT_PER_MM, h * PT_PER_MM)
}

/// Body rows per page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Rows on page 1, below the title block.
    pub first: u32,
    /// Rows on every later page.
    pub rest: u32,
}

impl Capacity {
    /// Rows that fit for a paper size and orientation.
    ///
    /// Every page reserves one slot for the header row and one for the totals row, so the
    /// totals always fit on the page that holds the last row.
    pub fn of(paper: Paper, orientation: Orientation) -> Capacity {
        let (_, h) = page_pt(paper, orientation);
        let slots = ((h - 2.0 * MARGIN) / ROW_H).floor() as u32;
        let rest = slots.saturating_sub(2).max(1);
        let first = rest.saturating_sub(TITLE_SLOTS).max(1);
        Capacity { first, rest }
    }

    /// Pages needed for `rows` body rows (at least one: an empty report still has a header and
    /// a total).
    pub fn pages(self, rows: u32) -> u32 {
        if rows <= self.first {
            1
        } else {
            // `rows - first` > 0 here, and the quotient is < u32::MAX, so `+ 1` cannot overflow.
            1 + (rows - self.first).div_ceil(self.rest)
        }
    }

    /// Body rows on page `page_no` (1-based) of a `rows`-row report, as `(first row, count)`.
    /// `count` is 0 past the end (and on the single page of an empty report).
    pub(crate) fn rows_on(self, page_no: u32, rows: u32) -> (u32, u32) {
        // u64: `first + (page_no - 2) * rest` can exceed u32 for page numbers past the end.
        let (before, room) = match page_no {
            0 => return (1, 0),
            1 => (0, u64::from(self.first)),
            p => (
                u64::from(self.first) + u64::from(p - 2) * u64::from(self.rest),
                u64::from(self.rest),
            ),
        };
        let count = room.min(u64::from(rows).saturating_sub(before));
        // `before < rows <= u32::MAX` whenever count > 0, so both fit; clamp for the rest.
        let first = u32::try_from(before + 1).unwrap_or(u32::MAX);
        (first, u32::try_from(count).unwrap_or(0))
    }
}

/// Column of the table.
#[derive(Clone, Copy)]
pub(crate) struct Column {
    pub(crate) left: f32,
    pub(crate) right: f32,
}

/// The five columns: #, Date, Description, Category, Amount.
pub(crate) struct Columns {
    pub(crate) index: Column,
    pub(crate) date: Column,
    pub(crate) description: Column,
    pub(crate) category: Column,
    pub(crate) amount: Column,
}

impl Columns {
    /// Fixed widths for the short columns; the description takes what is left, so landscape
    /// pages get a wider description rather than wider gaps.
    pub(crate) fn for_width(page_w: f32) -> Columns {
        let left = MARGIN;
        let right = page_w - MARGIN;
        let index = Column {
            left,
            right: left + 55.0,
        };
        let date = Column {
            left: index.right,
            right: index.right + 70.0,
        };
        let amount = Column {
            left: right - 90.0,
            right,
        };
        let category = Column {
            left: amount.left - 80.0,
            right: amount.left,
        };
        let description = Column {
            left: date.right,
            right: category.left,
        };
        Columns {
            index,
            date,
            description,
            category,
            amount,
        }
    }

    pub(crate) fn table_left(&self) -> f32 {
        self.index.left
    }

    pub(crate) fn table_width(&self) -> f32 {
        self.amount.right - self.index.left
    }
}

/// The title as it will be drawn: a size and one or two lines.
pub(crate) struct FittedTitle {
    pub(crate) size: f32,
    pub(crate) lines: Vec<String>,
}

/// Fit `title` into the title area (`max_w` wide, two lines at most), shrinking first and
/// wrapping second. The title block has a fixed height because [`super::page_count`] cannot
/// see the title; a title that still does not fit at the smallest size is cut with an
/// ellipsis (the full title is always in the document metadata).
pub(crate) fn fit_title(face: &Face, title: &str, max_w: f32) -> FittedTitle {
    // Control characters have no glyph and would only draw .notdef boxes.
    let clean: String = title
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    let units = face.units(clean) as f32;
    for size in (10..=18).rev().map(|s| s as f32) {
        if units * size / 1000.0 <= max_w {
            return FittedTitle {
                size,
                lines: vec![clean.to_string()],
            };
        }
    }
    for size in (6..=13).rev().map(|s| s as f32) {
        let lines = wrap(face, clean, size, max_w);
        if lines.len() <= 2 {
            return FittedTitle { size, lines };
        }
    }
    let size = 6.0;
    let mut lines = wrap(face, clean, size, max_w);
    lines.truncate(2);
    if let Some(last) = lines.last_mut() {
        let ellipsis_w = face.width("…", size);
        while !last.is_empty() && face.width(last, size) + ellipsis_w > max_w {
            last.pop();
        }
        last.push('…');
    }
    FittedTitle { size, lines }
}

/// Greedy line breaking at spaces (or anywhere, for a word wider than the line).
fn wrap(face: &Face, text: &str, size: f32, max_w: f32) -> Vec<String> {
    let max_units = (max_w * 1000.0 / size) as u32;
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut line_units = 0u32;
    for word in text.split(' ').filter(|w| !w.is_empty()) {
        let word_units = face.units(word);
        let space_units = if line.is_empty() {
            0
        } else {
            face.char_units(' ')
        };
        if line_units
            .saturating_add(space_units)
            .saturating_add(word_units)
            <= max_units
        {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
            line_units = line_units
                .saturating_add(space_units)
                .saturating_add(word_units);
            continue;
        }
        if !line.is_empty() {
            lines.push(std::mem::take(&mut line));
            line_units = 0;
        }
        // The word alone may still be too wide: break it between characters.
        for c in word.chars() {
            let cu = face.char_units(c);
            if line_units.saturating_add(cu) > max_units && !line.is_empty() {
                lines.push(std::mem::take(&mut line));
                line_units = 0;
            }
            line.push(c);
            line_units = line_units.saturating_add(cu);
        }
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::super::font::fonts;
    use super::*;

    #[test]
    fn capacities() {
        let a4p = Capacity::of(Paper::A4, Orientation::Portrait);
        assert_eq!(a4p.rest, super::super::ROWS_PER_PAGE);
        assert!(a4p.first < a4p.rest);
        for paper in [Paper::A4, Paper::Letter] {
            let p = Capacity::of(paper, Orientation::Portrait);
            let l = Capacity::of(paper, Orientation::Landscape);
            assert!(
                l.rest < p.rest,
                "{paper:?}: landscape {l:?} vs portrait {p:?}"
            );
            assert!(l.first >= 1);
        }
    }

    #[test]
    fn titles_fit() {
        let f = fonts().expect("fonts");
        let max_w = 500.0;
        let short = fit_title(&f.bold, "Monthly report", max_w);
        assert_eq!((short.size, short.lines.len()), (18.0, 1));
        let long = "Quarterly expenses ".repeat(10);
        let t = fit_title(&f.bold, &long, max_w);
        assert!(t.lines.len() <= 2);
        let huge = "W".repeat(1000);
        let t = fit_title(&f.bold, &huge, max_w);
        assert_eq!(t.lines.len(), 2);
        assert!(t.lines[1].ends_with('…'));
        for line in &t.lines {
            assert!(f.bold.width(line, t.size) <= max_w, "{line:?} too wide");
        }
        let empty = fit_title(&f.bold, "", max_w);
        assert_eq!(empty.lines, vec![String::new()]);
    }
}
