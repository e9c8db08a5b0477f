//! The PDF file around the page contents: printpdf builds everything shared (embedded fonts
//! with their `/W` and `/ToUnicode` tables, metadata, catalog, page tree), this module adds the
//! pages as they are drawn, each as an already-deflated content stream, and lopdf writes the
//! file.
//!
//! Why not hand printpdf the pages (issue #4): printpdf 0.12 keeps every page as a `Vec<Op>`
//! until `to_lopdf_document`, which needs all pages at once (its per-page serialiser,
//! `translate_operations`, is crate-private, and `Op::Unknown` raw operators are dropped in
//! `secure` mode), and then lopdf's `compress()` deflates at `Compression::best()`, which is not
//! configurable. That cost ~29 KB of ops plus ~12 KB of uncompressed content per page and ~40%
//! of the render time. Here printpdf is given a single placeholder page that shows every
//! character the report can print, in both faces, so the font tables it builds cover the real
//! pages; the placeholder is then removed and the real pages take its place.
//!
//! Depends on `std`, `printpdf`, `lopdf`, `flate2` and the sibling modules.

use std::io::Write;

use flate2::{Compress, Compression, FlushCompress, Status};
use lopdf::{Dictionary, Object, ObjectId, Stream};
use printpdf::{
    FontId, Mm, Op, PdfDocument, PdfFontHandle, PdfPage, PdfParseErrorSeverity, PdfSaveOptions, Pt,
    TextItem,
};

use super::RenderError;

/// Deflate level for page content (issue #4). Measured on 1,000 / 5,000 A4 pages (load ~2):
/// level 1 renders in 0.10 / 0.58 s at 2.6 KB per page, levels 2 and 3 in 0.14 / 0.69 s at
/// 2.0 / 1.9 KB per page (lopdf's level 9 on printpdf's hex strings gave 2.2 KB). Level 1 keeps
/// the render ≥ 3× FPDF's speed with a margin; raise it if file size starts to matter more.
const CONTENT_LEVEL: u32 = 1;
/// Deflate level for the streams printpdf builds once per document (font programs, CMaps,
/// ~250 KB in all): level 2 takes ~2 ms less than level 6 per document for 0.5 KB more, and
/// per-document time is most of a 100-page render.
const SHARED_LEVEL: u32 = 2;

/// A document being assembled.
pub(crate) struct Document {
    lo: lopdf::Document,
    /// The page tree root printpdf created; every page is its direct kid.
    pages_id: ObjectId,
    /// The resource dictionary printpdf made for its placeholder page; it only refers to the
    /// document-wide font (and empty XObject, ExtGState, Shading) dictionaries, so every page
    /// shares it.
    resources_id: ObjectId,
    kids: Vec<Object>,
    deflate: Deflater,
}

/// What the document's pages need to know about its fonts: their resource names.
pub(crate) struct FontNames {
    pub(crate) regular: String,
    pub(crate) bold: String,
}

/// The shared parts of a document.
pub(crate) struct Shared {
    /// A document without pages and fonts, its metadata already set.
    pub(crate) doc: PdfDocument,
    pub(crate) regular: printpdf::ParsedFont,
    pub(crate) bold: printpdf::ParsedFont,
    /// Every character any page will show (both faces get all of them).
    pub(crate) alphabet: String,
    pub(crate) page_mm: (f32, f32),
    pub(crate) page_pt: (f32, f32),
}

impl Document {
    /// Let printpdf build the shared objects.
    ///
    /// # Errors
    /// [`RenderError::Pdf`] if printpdf reports an error, or its output lacks the page tree
    /// this module fills in (a printpdf change would show up here, not as a broken file).
    pub(crate) fn new(shared: Shared) -> Result<(Document, FontNames), RenderError> {
        let mut doc = shared.doc;
        let regular = doc.add_font(&shared.regular);
        let bold = doc.add_font(&shared.bold);
        let show_all = |id: &FontId| {
            [
                Op::SetFont {
                    font: PdfFontHandle::External(id.clone()),
                    size: Pt(10.0),
                },
                Op::ShowText {
                    items: vec![TextItem::Text(shared.alphabet.clone())],
                },
            ]
        };
        let mut ops = vec![Op::StartTextSection];
        ops.extend(show_all(&regular));
        ops.extend(show_all(&bold));
        ops.push(Op::EndTextSection);
        let (w_mm, h_mm) = shared.page_mm;
        doc.with_pages(vec![PdfPage::new(Mm(w_mm), Mm(h_mm), ops)]);

        let opts = PdfSaveOptions {
            // Compression is done here instead (see CONTENT_LEVEL / SHARED_LEVEL).
            optimize: false,
            // Only honoured with printpdf's `text_layout` feature, which this crate does not
            // enable; `Face::for_document` has already stripped the fonts instead.
            subset_fonts: true,
            secure: true,
            image_optimization: None,
        };
        let mut warnings = Vec::new();
        let mut lo = doc.to_lopdf_document(&opts, &mut warnings);
        drop(doc);
        if let Some(w) = warnings
            .iter()
            .find(|w| w.severity == PdfParseErrorSeverity::Error)
        {
            return Err(RenderError::Pdf(w.msg.clone()));
        }
        let names = FontNames {
            regular: regular.0,
            bold: bold.0,
        };

        let missing = |what: &str| RenderError::Pdf(format!("printpdf output lacks {what}"));
        let placeholder = lo
            .get_pages()
            .into_values()
            .next()
            .ok_or_else(|| missing("the placeholder page"))?;
        let page = lo
            .get_dictionary(placeholder)
            .map_err(|_| missing("the placeholder page dictionary"))?;
        let reference = |key: &[u8]| page.get(key).and_then(Object::as_reference).ok();
        let pages_id = reference(b"Parent").ok_or_else(|| missing("/Parent"))?;
        let resources_id = reference(b"Resources").ok_or_else(|| missing("/Resources"))?;
        let contents_id = reference(b"Contents");
        lo.objects.remove(&placeholder);
        if let Some(id) = contents_id {
            lo.objects.remove(&id);
        }

        let mut deflate = Deflater::new(SHARED_LEVEL);
        for object in lo.objects.values_mut() {
            if let Object::Stream(stream) = object
                && stream.allows_compression
                && stream.dict.get(b"Filter").is_err()
            {
                let packed = deflate.run(&stream.content)?;
                stream.dict.set("Filter", "FlateDecode");
                stream.set_content(packed);
            }
        }

        // All pages have the same size, so the box is set once on the root and inherited
        // (ISO 32000-1 §7.7.3.4, Table 30: MediaBox is inheritable).
        let (w_pt, h_pt) = shared.page_pt;
        let root = lo
            .get_dictionary_mut(pages_id)
            .map_err(|_| missing("the page tree root"))?;
        root.set(
            "MediaBox",
            vec![
                Object::Integer(0),
                Object::Integer(0),
                Object::Real(w_pt),
                Object::Real(h_pt),
            ],
        );

        let document = Document {
            lo,
            pages_id,
            resources_id,
            kids: Vec::new(),
            deflate: Deflater::new(CONTENT_LEVEL),
        };
        Ok((document, names))
    }

    /// Append a page whose content stream is `content`, deflated now so that only the
    /// compressed bytes are kept until [`Document::save`].
    ///
    /// # Errors
    /// [`RenderError::Pdf`] if deflate fails (it does not on in-memory input).
    pub(crate) fn add_page(&mut self, content: &[u8]) -> Result<(), RenderError> {
        let packed = self.deflate.run(content)?;
        let mut dict = Dictionary::new();
        dict.set("Filter", "FlateDecode");
        let contents = self
            .lo
            .add_object(Stream::new(dict, packed).with_compression(false));
        let page = Dictionary::from_iter([
            ("Type", Object::from("Page")),
            ("Parent", Object::Reference(self.pages_id)),
            ("Resources", Object::Reference(self.resources_id)),
            ("Contents", Object::Reference(contents)),
        ]);
        let id = self.lo.add_object(page);
        self.kids.push(Object::Reference(id));
        Ok(())
    }

    /// Fill in the page tree and write the file.
    ///
    /// # Errors
    /// [`RenderError::Pdf`] if the page tree root vanished or lopdf fails for a reason other
    /// than I/O, [`RenderError::Io`] if `out` fails.
    pub(crate) fn save(mut self, out: &mut dyn Write) -> Result<(), RenderError> {
        let count = i64::try_from(self.kids.len()).unwrap_or(i64::MAX);
        let root = self
            .lo
            .get_dictionary_mut(self.pages_id)
            .map_err(|e| RenderError::Pdf(e.to_string()))?;
        root.set("Count", count);
        root.set("Kids", std::mem::take(&mut self.kids));

        let mut sink = Sink {
            inner: std::io::BufWriter::with_capacity(64 * 1024, out),
            error: None,
        };
        let saved = self.lo.save_to(&mut sink);
        // lopdf wraps I/O failures in its own error type; the sink kept the original.
        if let Some(e) = sink.error.take() {
            return Err(RenderError::Io(e));
        }
        saved.map_err(|e| RenderError::Pdf(e.to_string()))?;
        sink.inner.flush()?;
        Ok(())
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
            // zlib header: /FlateDecode is the zlib format (RFC 1950), not raw deflate.
            z: Compress::new(Compression::new(level), true),
            out: Vec::new(),
        }
    }

    /// `input` as one complete zlib stream, in a vector of exactly its size.
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

/// Writer adapter that remembers the first I/O error, because lopdf converts it into its own
/// error type and the caller wants the `io::Error`.
struct Sink<'w> {
    inner: std::io::BufWriter<&'w mut dyn Write>,
    error: Option<std::io::Error>,
}

impl Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf).map_err(|e| self.keep(e))
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf).map_err(|e| self.keep(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush().map_err(|e| self.keep(e))
    }
}

impl Sink<'_> {
    fn keep(&mut self, e: std::io::Error) -> std::io::Error {
        let copy = std::io::Error::new(e.kind(), e.to_string());
        self.error.get_or_insert(e);
        copy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflater_round_trips_and_is_reusable() {
        use std::io::Read;
        let mut d = Deflater::new(CONTENT_LEVEL);
        // Incompressible input larger than the first reservation exercises the grow path.
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
}
