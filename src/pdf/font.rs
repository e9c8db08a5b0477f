//! The two embedded DejaVu faces and the text measurement the layout relies on.
//!
//! Owns: parsing the TTF bytes shipped in `assets/fonts/` (once per process) and measuring strings
//! with exactly the advance widths the PDF viewer will use. Depends on `std` and `printpdf` only.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::SystemTime;

use printpdf::ParsedFont;

use super::subset::strip_unused_glyphs;

const REGULAR_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const BOLD_TTF: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");

/// Width printpdf writes in `/W` for a glyph it never saw in a `ShowText`, i.e. the CIDFont
/// default `/DW` (PDF 32000-1 §9.7.4.3); characters missing from the font render as glyph 0
/// with this width.
const MISSING_GLYPH_UNITS: u32 = 1000;

/// One parsed face plus a width table for the characters the report prints most.
pub(crate) struct Face {
    /// PostScript name, for `/BaseFont`.
    name: String,
    pub(crate) parsed: ParsedFont,
    /// Advance of each ASCII character in thousandths of an em, as printpdf writes it into `/W`.
    ascii_units: [u32; 128],
    /// Glyph id of each ASCII character (0 = .notdef), so the per-row text of the report is
    /// encoded with table look-ups instead of a cmap search per character (issue #4).
    ascii_gids: [u16; 128],
}

impl Face {
    fn parse(bytes: &[u8], name: String) -> Result<Self, String> {
        let mut warnings = Vec::new();
        // printpdf's parser indexes tables by offsets read from the file; a broken file must
        // fail this report, not the worker.
        let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ParsedFont::from_bytes(bytes, 0, &mut warnings)
        }))
        .ok()
        .flatten()
        .ok_or_else(|| format!("the font {name} cannot be read"))?;
        if parsed.units_per_em == 0 {
            return Err(format!("the font {name} has unitsPerEm 0"));
        }
        let mut face = Face {
            name,
            parsed,
            ascii_units: [MISSING_GLYPH_UNITS; 128],
            ascii_gids: [0; 128],
        };
        for cp in 0..128u8 {
            let c = char::from(cp);
            face.ascii_units[usize::from(cp)] = face.char_units_slow(c);
            face.ascii_gids[usize::from(cp)] = face.gid_slow(c);
        }
        Ok(face)
    }

    /// Advance of `c` in thousandths of an em.
    ///
    /// Mirrors printpdf's `/W` computation (`(advance as f32 * 1000.0 / upm) as i64`, truncating)
    /// rather than the exact font-unit ratio: the viewer positions glyphs by `/W`, so measuring
    /// with the same integers makes right-aligned numbers end on exactly the same x.
    fn char_units_slow(&self, c: char) -> u32 {
        let Some(gid) = self.parsed.lookup_glyph_index(u32::from(c)) else {
            return MISSING_GLYPH_UNITS;
        };
        let advance = self.parsed.get_glyph_width(gid).unwrap_or(0);
        (f32::from(advance) * 1000.0 / f32::from(self.parsed.units_per_em)) as u32
    }

    /// Glyph id of `c`, or 0 (.notdef) if the font lacks it, which is what printpdf writes for
    /// such a character too.
    fn gid_slow(&self, c: char) -> u16 {
        self.parsed.lookup_glyph_index(u32::from(c)).unwrap_or(0)
    }

    /// Whether the face has a glyph for `c`.
    pub(crate) fn has(&self, c: char) -> bool {
        self.gid(c) != 0
    }

    /// Glyph id of `c` (0 if missing), the code an Identity-H content string carries for it.
    pub(crate) fn gid(&self, c: char) -> u16 {
        match self.ascii_gids.get(c as usize) {
            Some(&gid) => gid,
            None => self.gid_slow(c),
        }
    }

    /// Advance of `c` in thousandths of an em.
    pub(crate) fn char_units(&self, c: char) -> u32 {
        match self.ascii_units.get(c as usize) {
            Some(&units) => units,
            None => self.char_units_slow(c),
        }
    }

    /// Advance of `text` in thousandths of an em (saturating; a title is at most a few hundred
    /// characters, but nothing here may overflow on hostile input).
    pub(crate) fn units(&self, text: &str) -> u32 {
        text.chars()
            .fold(0u32, |acc, c| acc.saturating_add(self.char_units(c)))
    }

    /// The face to embed in a document that shows the characters of `alphabet`: outlines are
    /// kept only for those (see `subset`). Falls back to the whole font if stripping fails
    /// (a font without TrueType outlines, say).
    pub(crate) fn for_document(&self, alphabet: &str) -> ParsedFont {
        let used: BTreeSet<u16> = alphabet
            .chars()
            .filter_map(|c| self.parsed.lookup_glyph_index(u32::from(c)))
            .collect();
        let mut font = self.parsed.clone();
        match strip_unused_glyphs(&self.parsed.original_bytes, &used) {
            Some(bytes) => {
                font.original_bytes = bytes;
                // A reduced font program is named `TAG+Name` (ISO 32000-1 §9.6.4), the tag
                // being six capitals that differ between different subsets of one font.
                font.font_name = Some(format!("{}+{}", subset_tag(&used), self.name));
            }
            None => {
                log::warn!(
                    "pdf: stripping {} failed; embedding the whole font",
                    self.name
                );
                font.font_name = Some(self.name.clone());
            }
        }
        font
    }

    /// Width of `text` at `size` points, in points.
    pub(crate) fn width(&self, text: &str, size: f32) -> f32 {
        self.units(text) as f32 * size / 1000.0
    }
}

/// Six capital letters derived from the glyph set (FNV-1a), for the subset font name.
fn subset_tag(used: &BTreeSet<u16>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for gid in used {
        for b in gid.to_be_bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    (0..6)
        .map(|_| {
            let c = char::from(b'A' + (h % 26) as u8);
            h /= 26;
            c
        })
        .collect()
}

/// The regular and bold faces.
pub(crate) struct Fonts {
    pub(crate) regular: Face,
    pub(crate) bold: Face,
}

/// The bundled DejaVu faces, parsed on first use and shared by every render in the process
/// (parsing builds cmap and width maps for ~6,000 glyphs per face; doing that per job would
/// be wasted work).
///
/// # Errors
/// A message if the bundled TTF bytes cannot be parsed, which would mean a broken build.
pub(crate) fn fonts() -> Result<Arc<Fonts>, String> {
    static FONTS: OnceLock<Result<Arc<Fonts>, String>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            Ok(Arc::new(Fonts {
                regular: Face::parse(REGULAR_TTF, "DejaVuSans".into())?,
                bold: Face::parse(BOLD_TTF, "DejaVuSans-Bold".into())?,
            }))
        })
        .clone()
}

/// A report's own faces (TTF or OTF files), parsed once per file version and shared.
///
/// # Errors
/// A sentence naming the file that cannot be read or parsed.
pub(crate) fn font_files(regular: &Path, bold: &Path) -> Result<Arc<Fonts>, String> {
    type Key = (PathBuf, Option<SystemTime>, PathBuf, Option<SystemTime>);
    static CACHE: OnceLock<Mutex<HashMap<Key, Arc<Fonts>>>> = OnceLock::new();
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let key = (
        regular.to_owned(),
        mtime(regular),
        bold.to_owned(),
        mtime(bold),
    );
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(f) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(Arc::clone(f));
    }
    let face = |path: &Path| -> Result<Face, String> {
        let bytes = std::fs::read(path)
            .map_err(|e| format!("the font {} cannot be read: {e}", path.display()))?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // A PostScript name has no spaces or delimiters (ISO 32000-1 §9.6.2.1).
        let name: String = stem
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let name = if name.is_empty() {
            "Font".to_owned()
        } else {
            name
        };
        Face::parse(&bytes, name).map_err(|e| format!("{e} ({})", path.display()))
    };
    let fonts = Arc::new(Fonts {
        regular: face(regular)?,
        bold: face(bold)?,
    });
    let mut map = cache.lock().unwrap_or_else(PoisonError::into_inner);
    if map.len() > 16 {
        map.clear();
    }
    map.insert(key, Arc::clone(&fonts));
    Ok(fonts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faces_parse_and_measure() {
        let f = fonts().expect("bundled fonts parse");
        // DejaVu digits are tabular: every digit has the same advance.
        let zero = f.regular.char_units('0');
        assert!(zero > 0);
        for d in '1'..='9' {
            assert_eq!(f.regular.char_units(d), zero, "digit {d}");
        }
        assert!(f.bold.units("Total") > f.regular.units("Total"));
        assert_eq!(
            f.regular.units("ab"),
            f.regular.char_units('a') + f.regular.char_units('b')
        );
        // Greek, Cyrillic and the euro sign are in DejaVu Sans.
        for c in ['Ω', 'Ж', '€', '✓'] {
            assert!(
                f.regular.parsed.lookup_glyph_index(u32::from(c)).is_some(),
                "{c}"
            );
        }
    }
}
