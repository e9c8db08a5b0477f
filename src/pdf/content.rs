//! Page content streams, written directly as bytes (ISO 32000-1 §7.8.2, operators from §8.5,
//! §8.6 and §9.4).
//!
//! Owns the byte-level encoding of the few operators the report uses: grey fills, rectangles,
//! one text object per page, `Tf`, `Td` and `TJ` with Identity-H glyph-id strings. printpdf 0.12
//! can only turn `Op`s into content at `PdfDocument` save time, for all pages at once, so a
//! report held as `Op`s costs ~29 KB per page until the end (issue #4); writing the bytes here
//! lets each page be compressed and its ops never exist. The strings encode glyph ids exactly
//! as printpdf's own serialiser does for an embedded font (big-endian `u16` per character,
//! 0 for a character the font lacks), so the `/W` and `/ToUnicode` tables it builds still apply.
//! Depends on `std` and the sibling `font` module only.

use super::font::Face;

/// A content stream being written; reused from page to page so its buffer is allocated once.
pub(crate) struct Content {
    buf: Vec<u8>,
}

impl Content {
    pub(crate) fn new() -> Self {
        Content {
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    pub(crate) fn clear(&mut self) {
        self.buf.clear();
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// `g`: set the fill colour to a grey level (0 = black, 1 = white).
    pub(crate) fn fill_grey(&mut self, grey: f32) {
        self.num(grey);
        self.buf.extend_from_slice(b" g\n");
    }

    /// `re`: add a rectangle with its lower-left corner at (`x`, `y`) to the current path.
    pub(crate) fn rect(&mut self, x: f32, y: f32, w: f32, h: f32) {
        self.num(x);
        self.buf.push(b' ');
        self.num(y);
        self.buf.push(b' ');
        self.num(w);
        self.buf.push(b' ');
        self.num(h);
        self.buf.extend_from_slice(b" re\n");
    }

    /// `f`: fill the current path (every rectangle added since the last fill).
    pub(crate) fn fill(&mut self) {
        self.buf.extend_from_slice(b"f\n");
    }

    pub(crate) fn begin_text(&mut self) {
        self.buf.extend_from_slice(b"BT\n");
    }

    pub(crate) fn end_text(&mut self) {
        self.buf.extend_from_slice(b"ET\n");
    }

    /// `Tf`; `name` is the resource name with its leading slash (see [`pdf_name`]).
    pub(crate) fn set_font(&mut self, name: &[u8], size: f32) {
        self.buf.extend_from_slice(name);
        self.buf.push(b' ');
        self.num(size);
        self.buf.extend_from_slice(b" Tf\n");
    }

    /// `Td`: start a new line offset by (`dx`, `dy`) from the start of the current one.
    pub(crate) fn move_text(&mut self, dx: f32, dy: f32) {
        self.num(dx);
        self.buf.push(b' ');
        self.num(dy);
        self.buf.extend_from_slice(b" Td\n");
    }

    /// `Tj` of `text` in `face`.
    pub(crate) fn show(&mut self, face: &Face, text: &str) {
        self.string(face, text);
        self.buf.extend_from_slice(b" Tj\n");
    }

    /// Raw operators, for what this module has no method for (`q … cm /TP Do Q`).
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// A number as the other operators write it.
    pub(crate) fn number(&mut self, v: f32) {
        self.num(v);
    }

    /// Start a `TJ` whose strings are placed at x positions relative to the line start; finish
    /// it with [`TjLine::end`].
    pub(crate) fn tj<'c, 'f>(&'c mut self, face: &'f Face, size: f32) -> TjLine<'c, 'f> {
        self.buf.push(b'[');
        TjLine {
            content: self,
            face,
            size,
            pen: 0.0,
        }
    }

    /// A glyph-id string for `text`: a literal string of big-endian `u16`s, with the bytes that
    /// are special inside `(...)` escaped (§7.3.4.2). Half the size of the hex form printpdf
    /// writes, which halves the deflate input.
    fn string(&mut self, face: &Face, text: &str) {
        self.buf.push(b'(');
        for c in text.chars() {
            for b in face.gid(c).to_be_bytes() {
                match b {
                    b'(' | b')' | b'\\' => self.buf.extend_from_slice(&[b'\\', b]),
                    // A bare CR would be read as an end-of-line marker, i.e. as LF.
                    b'\r' => self.buf.extend_from_slice(b"\\r"),
                    _ => self.buf.push(b),
                }
            }
        }
        self.buf.push(b')');
    }

    /// A number with at most two decimals and no trailing zeros (`12`, `-0.5`, `527.25`).
    /// Two decimals are 1/7200 in at the coordinates used here and 1/100 of a TJ unit (1/1000
    /// em) in offsets, well below anything visible. Non-finite values are written as `0` so
    /// that the stream stays well-formed whatever the arithmetic produced.
    fn num(&mut self, v: f32) {
        let hundredths = if v.is_finite() {
            // `as` saturates; page coordinates are far inside the i64 range anyway.
            (f64::from(v) * 100.0).round() as i64
        } else {
            0
        };
        if hundredths < 0 {
            self.buf.push(b'-');
        }
        let abs = hundredths.unsigned_abs();
        push_u64(&mut self.buf, abs / 100);
        let frac = abs % 100;
        if frac != 0 {
            self.buf.push(b'.');
            self.buf.push(b'0' + (frac / 10) as u8);
            if frac % 10 != 0 {
                self.buf.push(b'0' + (frac % 10) as u8);
            }
        }
    }
}

/// Decimal digits of `n`.
fn push_u64(buf: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut rest = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[at..]);
}

/// `/name` with the characters that may not appear in a name written as `#xx` (§7.3.5).
#[cfg(test)]
pub(crate) fn pdf_name(name: &str) -> Vec<u8> {
    pdf_name_bytes(name.as_bytes())
}

/// [`pdf_name`] for a name given as bytes (names need not be UTF-8).
pub(crate) fn pdf_name_bytes(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 1);
    out.push(b'/');
    for &b in name {
        if b"()<>[]{}/%#".contains(&b) || !(b'!'..=b'~').contains(&b) {
            out.push(b'#');
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        } else {
            out.push(b);
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// One `TJ` being written: strings at absolute x positions on the same baseline, the gaps
/// between them expressed as TJ offsets rather than a text matrix per cell.
pub(crate) struct TjLine<'c, 'f> {
    content: &'c mut Content,
    face: &'f Face,
    size: f32,
    /// Pen position relative to the line start, in points, computed from the same `/W` widths
    /// the viewer uses (see [`Face::units`]).
    pen: f32,
}

impl TjLine<'_, '_> {
    /// Place `text` so that it starts at `x` (relative to the line start).
    pub(crate) fn left(&mut self, x: f32, text: &str) {
        let w = self.face.width(text, self.size);
        self.put(x, w, text);
    }

    /// Place `text` so that it ends at `x_right`.
    pub(crate) fn right(&mut self, x_right: f32, text: &str) {
        let w = self.face.width(text, self.size);
        self.put(x_right - w, w, text);
    }

    /// Place `text` centred on `x_mid`.
    pub(crate) fn center(&mut self, x_mid: f32, text: &str) {
        let w = self.face.width(text, self.size);
        self.put(x_mid - w / 2.0, w, text);
    }

    fn put(&mut self, x: f32, w: f32, text: &str) {
        let gap = x - self.pen;
        if gap.abs() > 0.001 {
            // TJ numbers are thousandths of an em and move the pen left when positive.
            self.content.num(-gap * 1000.0 / self.size);
        }
        self.content.string(self.face, text);
        self.pen = x + w;
    }

    pub(crate) fn end(self) {
        self.content.buf.extend_from_slice(b"] TJ\n");
    }
}

#[cfg(test)]
mod tests {
    use super::super::font::fonts;
    use super::*;

    #[test]
    fn numbers() {
        let cases: &[(f32, &str)] = &[
            (0.0, "0"),
            (-0.0, "0"),
            (0.004, "0"),
            (-0.004, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (527.25, "527.25"),
            (0.82, "0.82"),
            (0.94, "0.94"),
            (841.889_7, "841.89"),
            (f32::NAN, "0"),
            (f32::INFINITY, "0"),
        ];
        for &(v, want) in cases {
            let mut c = Content::new();
            c.num(v);
            assert_eq!(String::from_utf8_lossy(c.bytes()), want, "num({v})");
        }
    }

    #[test]
    fn strings_escape_special_bytes() {
        let f = fonts().expect("fonts");
        let mut c = Content::new();
        // Find characters whose glyph id contains a byte that needs escaping, so the test does
        // not depend on DejaVu's glyph order.
        let special: Vec<char> = ('\u{20}'..='\u{2000}')
            .filter(|&ch| {
                f.regular
                    .gid(ch)
                    .to_be_bytes()
                    .iter()
                    .any(|b| b"()\\\r".contains(b))
            })
            .take(20)
            .collect();
        assert!(!special.is_empty());
        let text: String = special.iter().collect();
        c.string(&f.regular, &text);
        let bytes = c.bytes();
        // Decode the literal string again and compare glyph ids.
        assert_eq!(bytes.first(), Some(&b'('));
        assert_eq!(bytes.last(), Some(&b')'));
        let mut decoded = Vec::new();
        let mut it = bytes[1..bytes.len() - 1].iter();
        while let Some(&b) = it.next() {
            if b == b'\\' {
                match it.next() {
                    Some(b'r') => decoded.push(b'\r'),
                    Some(&e) => decoded.push(e),
                    None => panic!("dangling backslash"),
                }
            } else {
                assert!(!b"()\r".contains(&b), "unescaped {b:#x}");
                decoded.push(b);
            }
        }
        let want: Vec<u8> = special
            .iter()
            .flat_map(|&ch| f.regular.gid(ch).to_be_bytes())
            .collect();
        assert_eq!(decoded, want);
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(pdf_name("F1"), b"/F1");
        assert_eq!(pdf_name("a b/#"), b"/a#20b#2F#23");
    }
}
