//! Properties of the FastCGI codec that the fuzz targets check on arbitrary bytes.
//!
//! The codec files are mounted from the main crate's source rather than imported through a
//! dependency on `pdfworker`, which would compile the whole app (printpdf, tokio, ...) for
//! every CI run. They use only std, and `pairs.rs` reaches the error type as
//! `super::record::ProtocolError`, so the module tree here mirrors `fastcgi::{record, pairs}`.
//!
//! Every check panics on a broken property; that panic is the fuzzer's finding. Nothing here
//! may depend on anything but std and the two mounted files.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

/// The main crate's `fastcgi::{record, pairs}`, compiled from the same files.
//
// A `#[path]` on an inline module names the directory its file modules are read from,
// relative to this file's directory. (A `#[path]` on a file module *inside* an inline module
// would instead be taken relative to `fuzz/src/fastcgi/`, a directory that does not exist,
// and the OS will not step `..` out of a missing directory.)
#[path = "../../src/fastcgi"]
pub mod fastcgi {
    pub mod pairs;
    pub mod record;
}

use fastcgi::pairs::{self, Pair};
use fastcgi::record::{self, BeginRequest, HEADER_LEN, ProtocolError};

/// How many PARAMS streams the harness joins at once, as the connection caps its concurrent
/// requests; streams past the cap are still decoded record by record.
const MAX_OPEN_STREAMS: usize = 64;

/// Reads `data` as a connection does: record after record until the buffer ends in a partial
/// record (`Ok(None)`) or turns out not to be FastCGI (`Err`), checking each one.
///
/// PARAMS contents are joined per request id and decoded when the empty PARAMS record ends
/// the stream, as the connection does (a pair may span records, spec §3.4); each PARAMS
/// record is also decoded on its own, since a record boundary is arbitrary input too.
pub fn check_records(data: &[u8]) {
    let mut params: BTreeMap<u16, Vec<u8>> = BTreeMap::new();
    let mut rest = data;
    loop {
        let (rec, used) = match record::parse(rest) {
            Ok(Some(found)) => found,
            Ok(None) => {
                check_incomplete(rest);
                break;
            }
            Err(e) => {
                check_error(rest, &e);
                break;
            }
        };
        check_record(rest, rec, used);
        let id = rec.header.request_id;
        match rec.header.kind {
            record::BEGIN_REQUEST => check_begin(rec.content),
            record::GET_VALUES | record::GET_VALUES_RESULT => check_pairs(rec.content),
            record::PARAMS if rec.content.is_empty() => {
                if let Some(stream) = params.remove(&id) {
                    check_pairs(&stream);
                }
            }
            record::PARAMS => {
                check_pairs(rec.content);
                if params.len() < MAX_OPEN_STREAMS || params.contains_key(&id) {
                    params.entry(id).or_default().extend_from_slice(rec.content);
                }
            }
            _ => {}
        }
        rest = &rest[used..];
    }
    // The connection never decodes a stream that did not end; the harness does, since the
    // input may stop anywhere and the joined bytes are still bytes the decoder must survive.
    for stream in params.values() {
        check_pairs(stream);
    }
}

/// Checks one record `parse` found at the start of `buf`, having used `used` bytes.
fn check_record(buf: &[u8], rec: record::Record<'_>, used: usize) {
    let h = rec.header;
    assert!(
        used <= buf.len(),
        "used {used} of a {}-byte buffer",
        buf.len()
    );
    assert_eq!(
        used,
        HEADER_LEN + h.content_len as usize + h.padding_len as usize
    );
    assert_eq!(used, h.record_len());
    assert_eq!(rec.content.len(), h.content_len as usize);
    assert_eq!(
        rec.content,
        &buf[HEADER_LEN..HEADER_LEN + rec.content.len()]
    );
    assert_eq!(buf[0], record::VERSION_1);
    assert_eq!(h.kind, buf[1]);
    assert_eq!(h.request_id, u16::from_be_bytes([buf[2], buf[3]]));

    // "Need more bytes" is exact: the record alone parses to itself, one byte less to None.
    let alone = record::parse(&buf[..used]);
    assert_eq!(alone, Ok(Some((rec, used))), "record cut to its own length");
    assert_eq!(
        record::parse(&buf[..used - 1]),
        Ok(None),
        "record short by one byte"
    );

    // What we write, we read back: same type, id and content, padded to 8 (spec §3.3).
    let mut out = Vec::new();
    record::push(&mut out, h.kind, h.request_id, rec.content);
    assert_eq!(out.len() % 8, 0, "pushed record of {} bytes", out.len());
    let (back, back_used) = record::parse(&out)
        .expect("a pushed record parses")
        .expect("a pushed record is complete");
    assert_eq!(back_used, out.len());
    assert_eq!(
        (back.header.kind, back.header.request_id, back.content),
        (h.kind, h.request_id, rec.content)
    );
    assert!(
        out[HEADER_LEN + rec.content.len()..]
            .iter()
            .all(|&b| b == 0)
    );

    // push_stream writes no record for no data, and otherwise the same bytes split up.
    let mut stream = Vec::new();
    record::push_stream(&mut stream, h.kind, h.request_id, rec.content);
    let mut joined = Vec::new();
    let mut rest = &stream[..];
    while let Some((r, n)) = record::parse(rest).expect("push_stream output parses") {
        assert!(!r.content.is_empty(), "push_stream wrote an empty record");
        joined.extend_from_slice(r.content);
        rest = &rest[n..];
    }
    assert!(
        rest.is_empty(),
        "push_stream left {} stray bytes",
        rest.len()
    );
    assert_eq!(joined, rec.content);
}

/// `Ok(None)` only when the buffer really ends before the record does.
fn check_incomplete(buf: &[u8]) {
    if let [1, _, _, _, l0, l1, pad, _, ..] = *buf {
        let need = HEADER_LEN + u16::from_be_bytes([l0, l1]) as usize + pad as usize;
        assert!(
            buf.len() < need,
            "None for {} bytes of a {need}-byte record",
            buf.len()
        );
    } else {
        assert!(
            buf.len() < HEADER_LEN,
            "None for a {}-byte buffer",
            buf.len()
        );
    }
}

/// The only error `parse` has is a version byte other than 1, and it names that byte; it is
/// reported as soon as that first byte has arrived.
fn check_error(buf: &[u8], e: &ProtocolError) {
    assert!(!buf.is_empty(), "{e} for an empty buffer");
    assert_ne!(buf[0], record::VERSION_1, "{e} for version 1");
    assert_eq!(*e, ProtocolError::Version(buf[0]));
}

/// BEGIN_REQUEST bodies are exactly 8 bytes (spec §5.1); the reserved bytes are ignored.
fn check_begin(content: &[u8]) {
    match BeginRequest::parse(content) {
        Ok(b) => {
            assert_eq!(content.len(), 8);
            assert_eq!(b.role, u16::from_be_bytes([content[0], content[1]]));
            assert_eq!(b.keep_conn, content[2] & record::FLAG_KEEP_CONN != 0);
        }
        Err(e) => {
            assert_ne!(content.len(), 8, "{e} for an 8-byte body");
            assert_eq!(e, ProtocolError::BeginLength(content.len()));
        }
    }
}

/// Decodes `stream` as name-value pairs; when that succeeds, the pairs re-encode to bytes that
/// decode to the same pairs, and the pairs account for every byte of `stream`.
pub fn check_pairs(stream: &[u8]) {
    let Ok(decoded) = pairs::decode(stream) else {
        // The errors are "the stream ends inside a pair": a stream of whole pairs with
        // something appended that is not one. Nothing more to check without re-parsing.
        return;
    };
    let mut encoded = Vec::new();
    for (name, value) in &decoded {
        pairs::encode(&mut encoded, name, value);
    }
    let again = pairs::decode(&encoded).expect("encoded pairs decode");
    assert_eq!(again, decoded, "decode(encode(pairs)) != pairs");

    // Each length takes 1 or 4 bytes; the input may use the 4-byte form where 1 would do
    // (spec §3.4 allows it), encode never does, so encoded is at most as long as the input.
    let payload: usize = decoded.iter().map(|(n, v)| n.len() + v.len()).sum();
    let (min_len, max_len) = (payload + 2 * decoded.len(), payload + 8 * decoded.len());
    assert!(
        (min_len..=max_len).contains(&stream.len()),
        "{} bytes for {payload} of pairs",
        stream.len()
    );
    assert_eq!(encoded.len(), minimal_len(&decoded));
    assert!(encoded.len() <= stream.len());
}

/// The length of the shortest encoding of `pairs`.
fn minimal_len(pairs: &[Pair<'_>]) -> usize {
    let len_of = |n: usize| if n < 0x80 { 1 } else { 4 };
    pairs
        .iter()
        .map(|(n, v)| len_of(n.len()) + len_of(v.len()) + n.len() + v.len())
        .sum()
}
