//! The PDF file itself, written front to back while the report is drawn (ISO 32000-1 §7.5).
//!
//! Owns object numbering, byte offsets, the cross-reference table and the trailer. Each page's
//! content stream is deflated and written the moment the page is finished, so a render keeps
//! only what the objects still to come need: one offset per object and the list of page ids
//! (16 bytes per page), never the pages themselves (issue #7: memory must not grow with rows).
//!
//! What is only known at the end goes at the end: the embedded fonts (which glyphs a report
//! uses is known after its last row), the page tree (`/Count`, `/Kids`), and the total page
//! count that every page's footer shows — a form XObject (`/TP`, §8.10) each page paints after
//! "Page X of ", whose content is written last. printpdf still builds the font objects
//! (`/W` widths, `/ToUnicode`, the stripped font program) from a placeholder page that shows
//! every character the report used; those objects are copied into this file with new numbers.
//!
//! Depends on `std`, `printpdf`, `lopdf`, `flate2` and the sibling modules.

use std::collections::HashMap;
use std::io::{self, Write};

use flate2::{Compress, Compression, FlushCompress, Status};
use lopdf::{Object, ObjectId, StringFormat};
use printpdf::{
    FontId, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfParseErrorSeverity, PdfSaveOptions, Pt,
    TextItem,
};

use super::RenderError;

/// Deflate level for page content. Measured in issue #4 on 1,000 / 5,000 A4 pages: level 1
/// renders in 0.10 / 0.58 s at 2.6 KB per page, levels 2–3 take 40% longer for 25% less.
const CONTENT_LEVEL: u32 = 1;
/// Deflate level for the streams built once per document (font programs, CMaps).
const SHARED_LEVEL: u32 = 2;

/// Objects with fixed numbers, written at the end.
const CATALOG: u32 = 1;
const PAGES: u32 = 2;
const RESOURCES: u32 = 3;
const TOTAL_XOBJECT: u32 = 4;
const INFO: u32 = 5;
const FIRST_FREE: u32 = 6;

/// Resource names the page content uses.
pub(crate) const REGULAR_NAME: &[u8] = b"/R";
pub(crate) const BOLD_NAME: &[u8] = b"/B";
pub(crate) const TOTAL_NAME: &[u8] = b"/TP";

/// Document information (§14.3.3).
pub(crate) struct Info {
    pub(crate) title: String,
    pub(crate) producer: String,
    /// `D:YYYYMMDDHHmmSSZ`.
    pub(crate) date: String,
}

/// What the end of the file needs to know about the fonts.
pub(crate) struct FontPlan {
    pub(crate) regular: printpdf::ParsedFont,
    pub(crate) bold: printpdf::ParsedFont,
    /// Every character any page shows (both faces get all of them).
    pub(crate) alphabet: String,
}

/// A PDF being written to `out`.
pub(crate) struct PdfFile<'w> {
    out: Counting<'w>,
    /// Byte offset of each object, by number; 0 = not written yet.
    offsets: Vec<u64>,
    /// Object number of each page dictionary, in page order.
    pages: Vec<u32>,
    page_pt: (f32, f32),
    deflate: Pages,
    /// Pages handed to [`PdfFile::add_page`], written or still being compressed.
    submitted: u32,
}

impl<'w> PdfFile<'w> {
    /// Writes the header.
    ///
    /// # Errors
    /// [`RenderError::Io`] if `out` fails.
    pub(crate) fn new(out: &'w mut dyn Write, page_pt: (f32, f32)) -> Result<Self, RenderError> {
        let mut file = PdfFile {
            out: Counting {
                inner: io::BufWriter::with_capacity(256 * 1024, out),
                written: 0,
            },
            offsets: vec![0; FIRST_FREE as usize],
            pages: Vec::new(),
            page_pt,
            deflate: Pages::new(),
            submitted: 0,
        };
        // The comment's high bytes mark the file as binary (§7.5.2).
        file.out.write_all(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n")?;
        Ok(file)
    }

    /// Pages written so far.
    pub(crate) fn page_count(&self) -> u32 {
        self.submitted
    }

    fn next_id(&mut self) -> u32 {
        let id = u32::try_from(self.offsets.len()).unwrap_or(u32::MAX);
        self.offsets.push(0);
        id
    }

    fn begin_object(&mut self, id: u32) -> io::Result<()> {
        if let Some(slot) = self.offsets.get_mut(id as usize) {
            *slot = self.out.written;
        }
        writeln!(self.out, "{id} 0 obj")
    }

    /// Writes one finished page: its deflated content stream and its page dictionary.
    ///
    /// # Errors
    /// [`RenderError::Io`] if `out` fails, [`RenderError::Pdf`] if deflate does.
    pub(crate) fn add_page(&mut self, content: &[u8]) -> Result<(), RenderError> {
        self.submitted = self.submitted.saturating_add(1);
        if let Some(packed) = self.deflate.submit(content)? {
            self.write_page(&packed)?;
        }
        Ok(())
    }

    fn write_page(&mut self, packed: &[u8]) -> Result<(), RenderError> {
        let contents = self.next_id();
        let page = self.next_id();
        self.begin_object(contents)?;
        write!(
            self.out,
            "<</Length {}/Filter/FlateDecode>>\nstream\n",
            packed.len()
        )?;
        self.out.write_all(packed)?;
        self.out.write_all(b"\nendstream\nendobj\n")?;
        self.begin_object(page)?;
        write!(
            self.out,
            "<</Type/Page/Parent {PAGES} 0 R/Resources {RESOURCES} 0 R/Contents {contents} 0 R>>\nendobj\n"
        )?;
        self.pages.push(page);
        Ok(())
    }

    /// Writes everything that had to wait for the last page, then the cross-reference table.
    ///
    /// `total_content` paints the page count for the footers' `/TP` form, drawn in the fonts of
    /// `fonts`.
    ///
    /// # Errors
    /// [`RenderError::Pdf`] if printpdf fails to build the fonts, [`RenderError::Io`] if `out`
    /// fails.
    pub(crate) fn finish(
        mut self,
        fonts: FontPlan,
        total_content: &[u8],
        info: &Info,
    ) -> Result<(), RenderError> {
        while let Some(packed) = self.deflate.next_done()? {
            self.write_page(&packed)?;
        }
        let (regular, bold) = self.write_fonts(fonts)?;
        self.write_resources(regular, bold)?;
        self.write_total(total_content)?;
        self.write_page_tree()?;
        self.begin_object(CATALOG)?;
        write!(self.out, "<</Type/Catalog/Pages {PAGES} 0 R>>\nendobj\n")?;
        self.begin_object(INFO)?;
        let mut dict = Vec::new();
        dict.extend_from_slice(b"<</Title");
        text_string(&mut dict, &info.title);
        dict.extend_from_slice(b"/Producer");
        text_string(&mut dict, &info.producer);
        dict.extend_from_slice(b"/Creator(pdfworker)/CreationDate");
        text_string(&mut dict, &info.date);
        dict.extend_from_slice(b"/ModDate");
        text_string(&mut dict, &info.date);
        dict.extend_from_slice(b">>\nendobj\n");
        self.out.write_all(&dict)?;
        self.write_xref()?;
        self.out.inner.flush()?;
        Ok(())
    }

    fn write_page_tree(&mut self) -> Result<(), RenderError> {
        self.begin_object(PAGES)?;
        let (w, h) = self.page_pt;
        let mut head = Vec::new();
        head.extend_from_slice(b"<</Type/Pages/MediaBox[0 0 ");
        push_real(&mut head, w);
        head.push(b' ');
        push_real(&mut head, h);
        write!(head, "]/Count {}/Kids[", self.pages.len())?;
        self.out.write_all(&head)?;
        for (i, page) in self.pages.iter().enumerate() {
            let sep = if i % 16 == 15 { "\n" } else { " " };
            write!(self.out, "{page} 0 R{sep}")?;
        }
        self.out.write_all(b"]>>\nendobj\n")?;
        Ok(())
    }

    fn write_resources(&mut self, regular: ObjectId, bold: ObjectId) -> Result<(), RenderError> {
        self.begin_object(RESOURCES)?;
        write!(
            self.out,
            "<</Font<<{} {} 0 R {} {} 0 R>>/XObject<<{} {TOTAL_XOBJECT} 0 R>>>>\nendobj\n",
            String::from_utf8_lossy(REGULAR_NAME),
            regular.0,
            String::from_utf8_lossy(BOLD_NAME),
            bold.0,
            String::from_utf8_lossy(TOTAL_NAME),
        )?;
        Ok(())
    }

    fn write_total(&mut self, content: &[u8]) -> Result<(), RenderError> {
        self.begin_object(TOTAL_XOBJECT)?;
        write!(
            self.out,
            "<</Type/XObject/Subtype/Form/BBox[-10 -10 200 30]/Resources {RESOURCES} 0 R/Length {}>>\nstream\n",
            content.len()
        )?;
        self.out.write_all(content)?;
        self.out.write_all(b"\nendstream\nendobj\n")?;
        Ok(())
    }

    fn write_xref(&mut self) -> Result<(), RenderError> {
        let start = self.out.written;
        let size = self.offsets.len();
        write!(self.out, "xref\n0 {size}\n0000000000 65535 f \n")?;
        for &offset in &self.offsets[1..] {
            // Every number is written by now; a 0 would be a bug, kept well-formed as free.
            if offset == 0 {
                self.out.write_all(b"0000000000 65535 f \n")?;
            } else {
                writeln!(self.out, "{offset:010} 00000 n ")?;
            }
        }
        write!(
            self.out,
            "trailer\n<</Size {size}/Root {CATALOG} 0 R/Info {INFO} 0 R>>\nstartxref\n{start}\n%%EOF\n"
        )?;
        Ok(())
    }

    /// Lets printpdf build both fonts for a placeholder page showing `alphabet`, then copies
    /// the font dictionaries and everything they refer to into this file. Returns the new
    /// numbers of the regular and bold font dictionaries.
    fn write_fonts(&mut self, plan: FontPlan) -> Result<(ObjectId, ObjectId), RenderError> {
        let (lo, regular, bold) = build_fonts(plan, self.page_pt)?;
        let mut copier = Copier {
            lo: &lo,
            map: HashMap::new(),
            queue: Vec::new(),
        };
        let regular = copier.font_ref(&regular, self)?;
        let bold = copier.font_ref(&bold, self)?;
        let mut shared = Deflater::new(SHARED_LEVEL);
        while let Some((old, new)) = copier.queue.pop() {
            let object = lo
                .objects
                .get(&old)
                .ok_or_else(|| RenderError::Pdf(format!("printpdf object {old:?} missing")))?;
            let mut bytes = Vec::new();
            copier.serialize(object, &mut bytes, &mut shared, self)?;
            self.begin_object(new)?;
            self.out.write_all(&bytes)?;
            self.out.write_all(b"\nendobj\n")?;
        }
        Ok(((regular, 0), (bold, 0)))
    }
}

/// printpdf's document for a page showing every used character in both faces, and the
/// resource names it gave the two fonts.
fn build_fonts(
    plan: FontPlan,
    page_pt: (f32, f32),
) -> Result<(lopdf::Document, FontId, FontId), RenderError> {
    let mut doc = PdfDocument::new("fonts");
    let regular = doc.add_font(&plan.regular);
    let bold = doc.add_font(&plan.bold);
    let show_all = |id: &FontId| {
        [
            Op::SetFont {
                font: PdfFontHandle::External(id.clone()),
                size: Pt(10.0),
            },
            Op::ShowText {
                items: vec![TextItem::Text(plan.alphabet.clone())],
            },
        ]
    };
    let mut ops = vec![Op::StartTextSection];
    ops.extend(show_all(&regular));
    ops.extend(show_all(&bold));
    ops.push(Op::EndTextSection);
    let mm = |pt: f32| Mm(pt / 2.834_646);
    doc.with_pages(vec![PdfPage::new(mm(page_pt.0), mm(page_pt.1), ops)]);
    let opts = PdfSaveOptions {
        // Compression is done here, at levels chosen for speed.
        optimize: false,
        // Only honoured with printpdf's `text_layout` feature; `Face::for_document` strips.
        subset_fonts: true,
        secure: true,
        image_optimization: None,
    };
    let mut warnings = Vec::new();
    let lo = doc.to_lopdf_document(&opts, &mut warnings);
    if let Some(w) = warnings
        .iter()
        .find(|w| w.severity == PdfParseErrorSeverity::Error)
    {
        return Err(RenderError::Pdf(w.msg.clone()));
    }
    Ok((lo, regular, bold))
}

/// Copies objects out of printpdf's document with new numbers.
struct Copier<'d> {
    lo: &'d lopdf::Document,
    /// Old number → new number.
    map: HashMap<ObjectId, u32>,
    /// Objects numbered but not written yet.
    queue: Vec<(ObjectId, u32)>,
}

impl Copier<'_> {
    /// The new number of the font dictionary printpdf filed under resource name `id`.
    fn font_ref(&mut self, id: &FontId, file: &mut PdfFile<'_>) -> Result<u32, RenderError> {
        let missing = |what: &str| RenderError::Pdf(format!("printpdf output lacks {what}"));
        let page = self
            .lo
            .get_pages()
            .into_values()
            .next()
            .ok_or_else(|| missing("the placeholder page"))?;
        let page = self
            .lo
            .get_dictionary(page)
            .map_err(|_| missing("the page dictionary"))?;
        let resources = self.resolve(page.get(b"Resources").ok());
        let fonts = resources
            .and_then(|r| r.as_dict().ok())
            .and_then(|r| self.resolve(r.get(b"Font").ok()))
            .and_then(|f| f.as_dict().ok())
            .ok_or_else(|| missing("a font resource dictionary"))?;
        let old = fonts
            .get(id.0.as_bytes())
            .and_then(Object::as_reference)
            .map_err(|_| missing("a font reference"))?;
        Ok(self.number(old, file))
    }

    fn resolve<'a>(&'a self, object: Option<&'a Object>) -> Option<&'a Object> {
        match object? {
            Object::Reference(id) => self.lo.objects.get(id),
            other => Some(other),
        }
    }

    fn number(&mut self, old: ObjectId, file: &mut PdfFile<'_>) -> u32 {
        if let Some(&new) = self.map.get(&old) {
            return new;
        }
        let new = file.next_id();
        self.map.insert(old, new);
        self.queue.push((old, new));
        new
    }

    /// `object` in PDF syntax, references renumbered; streams printpdf left uncompressed are
    /// deflated on the way.
    fn serialize(
        &mut self,
        object: &Object,
        out: &mut Vec<u8>,
        deflate: &mut Deflater,
        file: &mut PdfFile<'_>,
    ) -> Result<(), RenderError> {
        match object {
            Object::Null => out.extend_from_slice(b"null"),
            Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            Object::Integer(i) => write!(out, "{i}")?,
            Object::Real(r) => push_real(out, *r),
            Object::Name(name) => out.extend_from_slice(&super::content::pdf_name_bytes(name)),
            Object::String(bytes, format) => match format {
                StringFormat::Literal => literal_string(out, bytes),
                StringFormat::Hexadecimal => hex_string(out, bytes),
            },
            Object::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    self.serialize(item, out, deflate, file)?;
                }
                out.push(b']');
            }
            Object::Dictionary(dict) => self.dictionary(dict, None, out, deflate, file)?,
            Object::Stream(stream) => {
                let compress = stream.allows_compression && stream.dict.get(b"Filter").is_err();
                let content = if compress {
                    deflate.run(&stream.content)?
                } else {
                    stream.content.clone()
                };
                let filter = compress.then_some(content.len());
                self.dictionary(
                    &stream.dict,
                    Some((content.len(), filter)),
                    out,
                    deflate,
                    file,
                )?;
                out.extend_from_slice(b"\nstream\n");
                out.extend_from_slice(&content);
                out.extend_from_slice(b"\nendstream");
            }
            Object::Reference(old) => {
                let new = self.number(*old, file);
                write!(out, "{new} 0 R")?;
            }
        }
        Ok(())
    }

    /// A dictionary; for a stream, `/Length` (and `/Filter` when deflated here) are set anew.
    fn dictionary(
        &mut self,
        dict: &lopdf::Dictionary,
        stream: Option<(usize, Option<usize>)>,
        out: &mut Vec<u8>,
        deflate: &mut Deflater,
        file: &mut PdfFile<'_>,
    ) -> Result<(), RenderError> {
        out.extend_from_slice(b"<<");
        for (key, value) in dict.iter() {
            if stream.is_some() && (key.as_slice() == b"Length" || key.as_slice() == b"Filter") {
                continue;
            }
            out.extend_from_slice(&super::content::pdf_name_bytes(key));
            out.push(b' ');
            self.serialize(value, out, deflate, file)?;
        }
        if let Some((length, deflated)) = stream {
            write!(out, "/Length {length}")?;
            if deflated.is_some() {
                out.extend_from_slice(b"/Filter/FlateDecode");
            } else if let Ok(filter) = dict.get(b"Filter") {
                out.extend_from_slice(b"/Filter ");
                self.serialize(filter, out, deflate, file)?;
            }
        }
        out.extend_from_slice(b">>");
        Ok(())
    }
}

/// A real number in PDF syntax (no exponent, at most 4 decimals).
fn push_real(out: &mut Vec<u8>, v: f32) {
    let v = if v.is_finite() { f64::from(v) } else { 0.0 };
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    out.extend_from_slice(if s.is_empty() || s == "-0" {
        b"0"
    } else {
        s.as_bytes()
    });
}

/// `(…)` with the bytes that are special inside a literal string escaped (§7.3.4.2).
fn literal_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.push(b')');
}

fn hex_string(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'<');
    for &b in bytes {
        out.push(HEX[usize::from(b >> 4)]);
        out.push(HEX[usize::from(b & 0x0f)]);
    }
    out.push(b'>');
}

/// A text string (§7.9.2.2): PDFDocEncoding when ASCII, else UTF-16BE with a byte order mark.
fn text_string(out: &mut Vec<u8>, text: &str) {
    let clean: String = text.chars().filter(|c| !c.is_control()).collect();
    if clean.is_ascii() {
        literal_string(out, clean.as_bytes());
    } else {
        let mut bytes = vec![0xFE, 0xFF];
        for unit in clean.encode_utf16() {
            bytes.extend_from_slice(&unit.to_be_bytes());
        }
        hex_string(out, &bytes);
    }
}

/// Pages compressed on a thread of their own, so the next page is drawn while the last one
/// is deflated (deflate is a third of a render's time, issue #7). At most [`IN_FLIGHT`] pages
/// wait, so memory stays bounded; pages come back in order. Without a thread (spawn failed)
/// pages are compressed inline.
struct Pages {
    worker: Option<Worker>,
    inline: Deflater,
    waiting: usize,
}

struct Worker {
    to: std::sync::mpsc::SyncSender<Vec<u8>>,
    from: std::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
}

/// Pages handed to the compressor before the writer waits for the oldest.
const IN_FLIGHT: usize = 3;

impl Pages {
    fn new() -> Pages {
        let (to, inbox) = std::sync::mpsc::sync_channel::<Vec<u8>>(IN_FLIGHT);
        let (outbox, from) = std::sync::mpsc::sync_channel(IN_FLIGHT + 1);
        let spawned = std::thread::Builder::new()
            .name("deflate".into())
            .spawn(move || {
                let mut d = Deflater::new(CONTENT_LEVEL);
                // Ends when the sender is dropped with the file.
                for page in inbox {
                    let packed = d.run(&page).map_err(|e| e.to_string());
                    if outbox.send(packed).is_err() {
                        break;
                    }
                }
            });
        let worker = match spawned {
            Ok(_) => Some(Worker { to, from }),
            Err(e) => {
                log::debug!("pdf: no compressor thread ({e}); compressing inline");
                None
            }
        };
        Pages {
            worker,
            inline: Deflater::new(CONTENT_LEVEL),
            waiting: 0,
        }
    }

    /// Hands over a page; returns the oldest compressed page once the pipeline is full.
    fn submit(&mut self, content: &[u8]) -> Result<Option<Vec<u8>>, RenderError> {
        let Some(worker) = &self.worker else {
            return self.inline.run(content).map(Some);
        };
        if worker.to.send(content.to_vec()).is_err() {
            return Err(RenderError::Pdf("the compressor thread stopped".into()));
        }
        self.waiting += 1;
        if self.waiting > IN_FLIGHT {
            return self.next_done();
        }
        Ok(None)
    }

    /// The oldest page still being compressed, waiting for it; `None` when none is left.
    fn next_done(&mut self) -> Result<Option<Vec<u8>>, RenderError> {
        let Some(worker) = &self.worker else {
            return Ok(None);
        };
        if self.waiting == 0 {
            return Ok(None);
        }
        self.waiting -= 1;
        match worker.from.recv() {
            Ok(Ok(packed)) => Ok(Some(packed)),
            Ok(Err(e)) => Err(RenderError::Pdf(e)),
            Err(_) => Err(RenderError::Pdf("the compressor thread stopped".into())),
        }
    }
}

/// A zlib stream compressor kept across pages: miniz_oxide's state is a few hundred KB of
/// hash tables, too much to allocate per page.
struct Deflater {
    z: Compress,
    out: Vec<u8>,
}

impl Deflater {
    fn new(level: u32) -> Self {
        Deflater {
            // /FlateDecode is the zlib format (RFC 1950), not raw deflate.
            z: Compress::new(Compression::new(level), true),
            out: Vec::new(),
        }
    }

    /// `input` as one complete zlib stream.
    fn run(&mut self, input: &[u8]) -> Result<Vec<u8>, RenderError> {
        self.z.reset();
        self.out.clear();
        self.out.reserve(input.len() / 2 + 64);
        loop {
            let done = usize::try_from(self.z.total_in()).unwrap_or(usize::MAX);
            let rest = input.get(done..).unwrap_or_default();
            let status = self
                .z
                .compress_vec(rest, &mut self.out, FlushCompress::Finish)
                .map_err(|e| RenderError::Pdf(format!("deflate failed: {e}")))?;
            if status == Status::StreamEnd {
                return Ok(self.out.as_slice().to_vec());
            }
            // Output space ran out: compress_vec only writes into spare capacity.
            self.out.reserve(self.out.capacity().max(4096));
        }
    }
}

/// A buffered writer that knows how many bytes went through it (for the xref offsets).
struct Counting<'w> {
    inner: io::BufWriter<&'w mut dyn Write>,
    written: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflater_round_trips_and_is_reusable() {
        use std::io::Read;
        let mut d = Deflater::new(CONTENT_LEVEL);
        let mut noise = Vec::with_capacity(100_000);
        let mut x: u32 = 1;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        for input in [b"BT /F 9 Tf ET\n".repeat(500), noise, Vec::new()] {
            let packed = d.run(&input).expect("deflate");
            let mut back = Vec::new();
            flate2::read::ZlibDecoder::new(packed.as_slice())
                .read_to_end(&mut back)
                .expect("inflate");
            assert_eq!(back, input);
        }
    }

    #[test]
    fn text_strings_and_reals() {
        let mut out = Vec::new();
        text_string(&mut out, "a(b)");
        assert_eq!(out, b"(a\\(b\\))");
        out.clear();
        text_string(&mut out, "Ω");
        assert_eq!(out, b"<FEFF03A9>");
        for (v, want) in [
            (0.0, "0"),
            (595.2756, "595.2756"),
            (12.5, "12.5"),
            (-0.00001, "0"),
        ] {
            let mut out = Vec::new();
            push_real(&mut out, v);
            assert_eq!(String::from_utf8_lossy(&out), want);
        }
    }
}
