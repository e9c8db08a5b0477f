//! Glyph stripping for the embedded TrueType fonts.
//!
//! printpdf 0.12 only subsets fonts with its `text_layout` feature (which pulls in the azul
//! layout engine); without it every document would carry both DejaVu faces whole, ~1.4 MB.
//! This module owns a much simpler reduction that needs no renumbering: glyph ids stay as they
//! are, the outlines of glyphs the document does not use are emptied (zero-length `loca`
//! entries, OpenType `glyf` spec: "a glyph with no outline"), and the tables a PDF renderer
//! never reads (layout, kerning, glyph names, naming) are dropped. Because ids do not change,
//! printpdf's content stream, `/W` widths and `/ToUnicode` map stay correct untouched.
//!
//! Input is the font bundled at build time, but it is parsed defensively anyway: any
//! inconsistency yields `None` and the caller embeds the font whole. Depends on `std` only.

use std::collections::BTreeSet;

/// Tables copied unchanged. ISO 32000-1 §9.9 lists what a TrueType program embedded in a PDF
/// needs (`head hhea loca maxp cvt prep glyf hmtx fpgm`); `cmap` and `OS/2` are kept for
/// viewers that consult them anyway. `post` is rewritten (see below).
const KEEP: [&[u8; 4]; 9] = [
    b"OS/2", b"cmap", b"cvt ", b"fpgm", b"head", b"hhea", b"hmtx", b"maxp", b"prep",
];

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// The sfnt table directory: tag → byte range.
fn tables(font: &[u8]) -> Option<Vec<([u8; 4], &[u8])>> {
    let count = usize::from(u16_at(font, 4)?);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let rec = 12 + 16 * i;
        let tag: [u8; 4] = font.get(rec..rec + 4)?.try_into().ok()?;
        let off = u32_at(font, rec + 8)? as usize;
        let len = u32_at(font, rec + 12)? as usize;
        out.push((tag, font.get(off..off.checked_add(len)?)?));
    }
    Some(out)
}

fn find<'a>(tables: &[([u8; 4], &'a [u8])], tag: &[u8; 4]) -> Option<&'a [u8]> {
    tables.iter().find(|(t, _)| t == tag).map(|(_, data)| *data)
}

/// Glyph `gid`'s byte range in `glyf`, per `loca` (empty for glyphs without outline).
fn glyph_range(loca: &[u8], long: bool, gid: usize) -> Option<(usize, usize)> {
    let (start, end) = if long {
        (
            u32_at(loca, gid * 4)? as usize,
            u32_at(loca, gid * 4 + 4)? as usize,
        )
    } else {
        (
            usize::from(u16_at(loca, gid * 2)?) * 2,
            usize::from(u16_at(loca, gid * 2 + 2)?) * 2,
        )
    };
    (start <= end).then_some((start, end))
}

/// Glyph ids a composite glyph refers to (OpenType `glyf`, "Composite glyph description").
fn components(glyph: &[u8]) -> Option<Vec<u16>> {
    const ARG_1_AND_2_ARE_WORDS: u16 = 0x0001;
    const WE_HAVE_A_SCALE: u16 = 0x0008;
    const MORE_COMPONENTS: u16 = 0x0020;
    const WE_HAVE_AN_X_AND_Y_SCALE: u16 = 0x0040;
    const WE_HAVE_A_TWO_BY_TWO: u16 = 0x0080;

    let mut out = Vec::new();
    if glyph.len() < 10 || (u16_at(glyph, 0)? as i16) >= 0 {
        return Some(out);
    }
    let mut at = 10;
    loop {
        let flags = u16_at(glyph, at)?;
        out.push(u16_at(glyph, at + 2)?);
        at += 4;
        at += if flags & ARG_1_AND_2_ARE_WORDS != 0 {
            4
        } else {
            2
        };
        if flags & WE_HAVE_A_SCALE != 0 {
            at += 2;
        } else if flags & WE_HAVE_AN_X_AND_Y_SCALE != 0 {
            at += 4;
        } else if flags & WE_HAVE_A_TWO_BY_TWO != 0 {
            at += 8;
        }
        if flags & MORE_COMPONENTS == 0 {
            return Some(out);
        }
    }
}

/// Sum of big-endian u32 words, zero-padded (OpenType "Calculating checksums").
fn checksum(data: &[u8]) -> u32 {
    data.chunks(4).fold(0u32, |acc, c| {
        let mut w = [0u8; 4];
        w[..c.len()].copy_from_slice(c);
        acc.wrapping_add(u32::from_be_bytes(w))
    })
}

/// A copy of the TrueType `font` in which only the outlines of `used` glyphs (and the glyphs
/// they are composed of, and glyph 0) remain. `None` if the font is not a TrueType-outline
/// sfnt this code understands.
pub(crate) fn strip_unused_glyphs(font: &[u8], used: &BTreeSet<u16>) -> Option<Vec<u8>> {
    if u32_at(font, 0)? != 0x0001_0000 {
        return None;
    }
    let tables = tables(font)?;
    let head = find(&tables, b"head")?;
    let maxp = find(&tables, b"maxp")?;
    let loca = find(&tables, b"loca")?;
    let glyf = find(&tables, b"glyf")?;
    let long = u16_at(head, 50)? != 0;
    let num_glyphs = usize::from(u16_at(maxp, 4)?);

    // Close `used` over composite references.
    let mut keep = vec![false; num_glyphs];
    let mut todo: Vec<u16> = used.iter().copied().chain([0]).collect();
    while let Some(gid) = todo.pop() {
        let g = usize::from(gid);
        if g >= num_glyphs || keep[g] {
            continue;
        }
        keep[g] = true;
        let (s, e) = glyph_range(loca, long, g)?;
        todo.extend(components(glyf.get(s..e)?)?);
    }

    // New glyf (kept outlines only, 4-byte aligned) and a long-format loca.
    let mut new_glyf = Vec::new();
    let mut new_loca = Vec::with_capacity((num_glyphs + 1) * 4);
    for (g, &k) in keep.iter().enumerate() {
        new_loca.extend_from_slice(&u32::try_from(new_glyf.len()).ok()?.to_be_bytes());
        if k {
            let (s, e) = glyph_range(loca, long, g)?;
            new_glyf.extend_from_slice(glyf.get(s..e)?);
            new_glyf.resize(new_glyf.len().next_multiple_of(4), 0);
        }
    }
    new_loca.extend_from_slice(&u32::try_from(new_glyf.len()).ok()?.to_be_bytes());

    let mut new_head = head.to_vec();
    // indexToLocFormat = 1 (long offsets); checkSumAdjustment is recomputed below.
    new_head
        .get_mut(50..52)?
        .copy_from_slice(&1u16.to_be_bytes());
    new_head.get_mut(8..12)?.copy_from_slice(&[0; 4]);

    // post version 3.0: no glyph names (the 60 KB of names serve no purpose in a PDF); the
    // first 32 bytes (italic angle, underline metrics, isFixedPitch, memory hints) are kept.
    let new_post = find(&tables, b"post").and_then(|p| p.get(..32)).map(|p| {
        let mut p = p.to_vec();
        p[..4].copy_from_slice(&0x0003_0000u32.to_be_bytes());
        p
    });

    let mut out_tables: Vec<([u8; 4], Vec<u8>)> = Vec::new();
    for (tag, data) in &tables {
        let replaced = match tag {
            b"head" => Some(new_head.clone()),
            b"loca" => Some(new_loca.clone()),
            b"glyf" => Some(new_glyf.clone()),
            b"post" => new_post.clone(),
            t if KEEP.contains(&t) => Some(data.to_vec()),
            _ => None,
        };
        if let Some(bytes) = replaced {
            out_tables.push((*tag, bytes));
        }
    }
    // The directory must be sorted by tag; the input's order is kept, so sort to be sure.
    out_tables.sort_by_key(|t| t.0);

    let n = u16::try_from(out_tables.len()).ok()?;
    let entry_selector = 15 - n.max(1).leading_zeros() as u16; // floor(log2(n))
    let search_range = (1u16 << entry_selector) * 16;
    let mut out = Vec::with_capacity(new_glyf.len() + 64 * 1024);
    out.extend_from_slice(&0x0001_0000u32.to_be_bytes());
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&search_range.to_be_bytes());
    out.extend_from_slice(&entry_selector.to_be_bytes());
    out.extend_from_slice(&(n * 16 - search_range).to_be_bytes());
    let mut offset = 12 + 16 * out_tables.len();
    for (tag, data) in &out_tables {
        out.extend_from_slice(tag);
        out.extend_from_slice(&checksum(data).to_be_bytes());
        out.extend_from_slice(&u32::try_from(offset).ok()?.to_be_bytes());
        out.extend_from_slice(&u32::try_from(data.len()).ok()?.to_be_bytes());
        offset += data.len().next_multiple_of(4);
    }
    let mut head_at = None;
    for (tag, data) in &out_tables {
        if tag == b"head" {
            head_at = Some(out.len());
        }
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(4), 0);
    }
    let adjust = 0xB1B0_AFBAu32.wrapping_sub(checksum(&out));
    let at = head_at? + 8;
    out.get_mut(at..at + 4)?
        .copy_from_slice(&adjust.to_be_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripped_font_keeps_used_glyphs() {
        let f = super::super::font::fonts().expect("fonts");
        let full = &f.regular.parsed.original_bytes;
        let used: BTreeSet<u16> = "Total Ω Ж € ✓ é"
            .chars()
            .filter_map(|c| f.regular.parsed.lookup_glyph_index(u32::from(c)))
            .collect();
        let small = strip_unused_glyphs(full, &used).expect("DejaVu is plain TrueType");
        assert!(
            small.len() < full.len() / 4,
            "{} vs {}",
            small.len(),
            full.len()
        );
        assert_eq!(checksum(&small), 0xB1B0_AFBA, "whole-font checksum");

        let t_full = tables(full).expect("tables");
        let t_small = tables(&small).expect("tables of the stripped font");
        let (lf, gf) = (
            find(&t_full, b"loca").expect("loca"),
            find(&t_full, b"glyf").expect("glyf"),
        );
        let (ls, gs) = (
            find(&t_small, b"loca").expect("loca"),
            find(&t_small, b"glyf").expect("glyf"),
        );
        let long_full = u16_at(find(&t_full, b"head").expect("head"), 50) != Some(0);
        for &gid in &used {
            let (a, b) = glyph_range(lf, long_full, usize::from(gid)).expect("range");
            let (c, d) = glyph_range(ls, true, usize::from(gid)).expect("range");
            assert_eq!(&gf[a..b], &gs[c..c + (b - a)], "glyph {gid}");
            assert!(d - c >= b - a);
        }
        // printpdf can still read it (it parses the embedded bytes when building /W).
        let mut warnings = Vec::new();
        let parsed = printpdf::ParsedFont::from_bytes(&small, 0, &mut warnings);
        assert!(
            parsed.is_some(),
            "stripped font does not parse: {warnings:?}"
        );
    }

    #[test]
    fn garbage_is_rejected_not_panicked_on() {
        let used = BTreeSet::from([1u16, 2, 3]);
        assert!(strip_unused_glyphs(b"", &used).is_none());
        assert!(strip_unused_glyphs(&[0, 1, 0, 0, 0, 9, 0, 0], &used).is_none());
        let f = super::super::font::fonts().expect("fonts");
        let full = &f.regular.parsed.original_bytes;
        assert!(strip_unused_glyphs(&full[..4096], &used).is_none());
    }
}
