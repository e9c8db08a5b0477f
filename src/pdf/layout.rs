//! Page geometry: sizes, margins, how many rows fit, column positions and title fitting.
//!
//! Owns the numbers that decide where things go (margins, row heights, font sizes), line
//! breaking and title fitting. Depends on `std` and the sibling `font` module only.

use super::font::Face;
use super::{Orientation, Paper};

/// Height of every table row (header, body, totals), in points.
pub(crate) const ROW_H: f32 = 18.0;
/// Page margin on all four sides, in points; the footer sits inside the bottom margin.
pub(crate) const MARGIN: f32 = 40.0;
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

/// Single-line body rows that fit on a page after the first, for estimates made before a
/// render (the page cap at submission). Wrapped rows and group rows make real pages hold
/// fewer.
pub fn rows_per_page(paper: Paper, orientation: Orientation) -> u32 {
    let (_, h) = page_pt(paper, orientation);
    // One slot for the column headings; the footer sits in the bottom margin.
    (((h - 2.0 * MARGIN) / ROW_H).floor() as u32)
        .saturating_sub(1)
        .max(1)
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

/// `text` cut to fit `max_w` at `size`, ending with "…" when something was cut.
pub(crate) fn ellipsize(face: &Face, text: &str, size: f32, max_w: f32) -> String {
    if face.width(text, size) <= max_w {
        return text.to_owned();
    }
    let budget = max_w - face.width("…", size);
    let mut out = String::new();
    let mut w = 0.0;
    for c in text.chars() {
        let cw = face.char_units(c) as f32 * size / 1000.0;
        if w + cw > budget {
            break;
        }
        w += cw;
        out.push(c);
    }
    let keep = out.trim_end().len();
    out.truncate(keep);
    out.push('…');
    out
}

/// `text` broken into lines no wider than `max_w` (at spaces, at `\n`, or inside a word too
/// long for a line), at most `max_lines` of them; the last ends with "…" if text was left over.
pub(crate) fn wrap_lines(
    face: &Face,
    text: &str,
    size: f32,
    max_w: f32,
    max_lines: usize,
) -> Vec<String> {
    if !text.contains('\n') && face.width(text, size) <= max_w {
        return vec![text.to_owned()];
    }
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        lines.extend(wrap(face, paragraph, size, max_w));
        if lines.len() > max_lines {
            break;
        }
    }
    if lines.len() > max_lines {
        lines.truncate(max_lines);
        if let Some(last) = lines.last_mut() {
            let cut = format!("{last}…");
            *last = ellipsize(face, &cut, size, max_w);
            if !last.ends_with('…') {
                last.push('…');
            }
        }
    }
    lines
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
    fn landscape_pages_hold_fewer_rows() {
        for paper in [Paper::A4, Paper::Letter] {
            let p = rows_per_page(paper, Orientation::Portrait);
            let l = rows_per_page(paper, Orientation::Landscape);
            assert!(l < p, "{paper:?}: landscape {l} vs portrait {p}");
        }
    }

    #[test]
    fn long_cells_wrap_within_the_column_and_stop_at_the_line_cap() {
        let f = fonts().expect("fonts");
        let text = "word ".repeat(200);
        let lines = wrap_lines(&f.regular, &text, 9.0, 100.0, 5);
        assert_eq!(lines.len(), 5);
        assert!(lines[4].ends_with('…'), "{lines:?}");
        for l in &lines {
            assert!(f.regular.width(l, 9.0) <= 100.0, "{l:?} too wide");
        }
        let two = wrap_lines(&f.regular, "a\nb", 9.0, 100.0, 5);
        assert_eq!(two, vec!["a".to_string(), "b".to_string()]);
        let cut = ellipsize(&f.regular, &"W".repeat(100), 9.0, 50.0);
        assert!(cut.ends_with('…') && f.regular.width(&cut, 9.0) <= 50.0);
        assert_eq!(ellipsize(&f.regular, "ok", 9.0, 50.0), "ok");
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
