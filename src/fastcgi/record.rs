//! The FastCGI 1.0 record codec: 8-byte headers, content, padding (spec §3.3).
//!
//! Parsing works on a borrowed buffer and never allocates from a length it has not checked:
//! a record's length fields are `u16`/`u8`, so a complete record is at most
//! `8 + 65535 + 255` bytes, and "need more bytes" is `Ok(None)`, not an error.

use std::fmt;

/// The only protocol version (spec §8, `FCGI_VERSION_1`).
pub const VERSION_1: u8 = 1;
/// Every record starts with this many header bytes.
pub const HEADER_LEN: usize = 8;
/// The largest content a single record can carry.
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;
/// The largest record on the wire: header, content and padding.
pub const MAX_RECORD_LEN: usize = HEADER_LEN + MAX_CONTENT_LEN + u8::MAX as usize;

/// Record types (spec §8).
pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const DATA: u8 = 8;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

/// Roles in `FCGI_BeginRequestBody`.
pub const ROLE_RESPONDER: u16 = 1;
pub const ROLE_AUTHORIZER: u16 = 2;
pub const ROLE_FILTER: u16 = 3;

/// `FCGI_KEEP_CONN`, the only flag of `FCGI_BeginRequestBody`.
pub const FLAG_KEEP_CONN: u8 = 1;

/// `protocolStatus` values of `FCGI_EndRequestBody`.
pub const REQUEST_COMPLETE: u8 = 0;
pub const CANT_MPX_CONN: u8 = 1;
pub const OVERLOADED: u8 = 2;
pub const UNKNOWN_ROLE: u8 = 3;

/// What makes a byte stream not FastCGI; the connection that sent it is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A header whose version byte is not 1.
    Version(u8),
    /// A BEGIN_REQUEST whose body is not the 8 bytes of `FCGI_BeginRequestBody`.
    BeginLength(usize),
    /// A name-value pair whose lengths run past the end of its stream.
    TruncatedPair,
    /// A name-value length with the high bit set whose 4 bytes are cut short.
    TruncatedLength,
    /// STDIN for a request whose PARAMS stream has not ended.
    StdinBeforeParams(u16),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Version(v) => write!(f, "unsupported FastCGI version {v}"),
            ProtocolError::BeginLength(n) => {
                write!(f, "BEGIN_REQUEST body of {n} bytes (expected 8)")
            }
            ProtocolError::TruncatedPair => f.write_str("name-value pair runs past its stream"),
            ProtocolError::TruncatedLength => f.write_str("name-value length cut short"),
            ProtocolError::StdinBeforeParams(id) => {
                write!(f, "request {id}: STDIN before the end of PARAMS")
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A decoded record header (spec §3.3, `FCGI_Header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub kind: u8,
    pub request_id: u16,
    pub content_len: u16,
    pub padding_len: u8,
}

impl Header {
    /// Bytes the whole record occupies on the wire.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.content_len as usize + self.padding_len as usize
    }
}

/// One record borrowed from a read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub header: Header,
    pub content: &'a [u8],
}

/// Parses the first record in `buf`.
///
/// Returns `Ok(None)` when `buf` does not yet hold a whole record, and otherwise the record
/// and the number of bytes it used (content plus padding).
///
/// # Errors
/// [`ProtocolError::Version`] when the header's version is not 1.
pub fn parse(buf: &[u8]) -> Result<Option<(Record<'_>, usize)>, ProtocolError> {
    // The version byte alone tells a peer that is not speaking FastCGI (an HTTP client on
    // the socket, say): drop it at once instead of waiting for a whole header.
    if let Some(&v) = buf.first()
        && v != VERSION_1
    {
        return Err(ProtocolError::Version(v));
    }
    let Some(head) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let header = Header {
        kind: head[1],
        request_id: u16::from_be_bytes([head[2], head[3]]),
        content_len: u16::from_be_bytes([head[4], head[5]]),
        padding_len: head[6],
    };
    let total = header.record_len();
    let Some(content) = buf.get(HEADER_LEN..HEADER_LEN + header.content_len as usize) else {
        return Ok(None);
    };
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((Record { header, content }, total)))
}

/// Appends one record with `content` (at most 65535 bytes), padded to a multiple of 8 as the
/// spec recommends (§3.3) so the peer's reads stay aligned.
///
/// # Panics
/// If `content` is longer than [`MAX_CONTENT_LEN`]; callers split streams with
/// [`push_stream`], so this is an invariant of this module.
pub fn push(out: &mut Vec<u8>, kind: u8, request_id: u16, content: &[u8]) {
    out.reserve(HEADER_LEN + content.len() + 7);
    let padding = push_header(out, kind, request_id, content.len());
    out.extend_from_slice(content);
    out.extend_from_slice(&[0u8; 8][..padding]);
}

/// Appends the header of a record with `len` bytes of content and returns the padding the
/// caller writes after the content (to a multiple of 8).
fn push_header(out: &mut Vec<u8>, kind: u8, request_id: u16, len: usize) -> usize {
    let l = u16::try_from(len)
        .expect("record content is split to 65535 bytes")
        .to_be_bytes();
    let padding = (8 - len % 8) % 8;
    let id = request_id.to_be_bytes();
    out.extend_from_slice(&[VERSION_1, kind, id[0], id[1], l[0], l[1], padding as u8, 0]);
    padding
}

/// Appends `data` as as many records of `kind` as it takes (none for empty `data`; the empty
/// record that ends a stream is written by the caller on purpose).
pub fn push_stream(out: &mut Vec<u8>, kind: u8, request_id: u16, data: &[u8]) {
    push_stream_parts(out, kind, request_id, &[data]);
}

/// [`push_stream`] of `parts` one after the other, without joining them first (a response's
/// head and its body go out in one record when they fit).
pub fn push_stream_parts(out: &mut Vec<u8>, kind: u8, request_id: u16, parts: &[&[u8]]) {
    // 65528 is the largest multiple of 8 under 65535: full chunks need no padding.
    const CHUNK: usize = MAX_CONTENT_LEN - MAX_CONTENT_LEN % 8;
    let mut left: usize = parts.iter().map(|p| p.len()).sum();
    out.reserve(left + left.div_ceil(CHUNK) * (HEADER_LEN + 8));
    let (mut part, mut at) = (0, 0);
    while left > 0 {
        let len = left.min(CHUNK);
        let padding = push_header(out, kind, request_id, len);
        let mut need = len;
        while need > 0 {
            let rest = &parts[part][at..];
            let take = rest.len().min(need);
            out.extend_from_slice(&rest[..take]);
            need -= take;
            at += take;
            if at == parts[part].len() {
                part += 1;
                at = 0;
            }
        }
        out.extend_from_slice(&[0u8; 8][..padding]);
        left -= len;
    }
}

/// Appends an END_REQUEST record (spec §5.5).
pub fn push_end_request(out: &mut Vec<u8>, request_id: u16, app_status: u32, protocol_status: u8) {
    let s = app_status.to_be_bytes();
    let body = [s[0], s[1], s[2], s[3], protocol_status, 0, 0, 0];
    push(out, END_REQUEST, request_id, &body);
}

/// Appends an UNKNOWN_TYPE record naming the type that was not understood (spec §4.2).
pub fn push_unknown_type(out: &mut Vec<u8>, kind: u8) {
    push(out, UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0]);
}

/// The body of a BEGIN_REQUEST record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeginRequest {
    pub role: u16,
    pub keep_conn: bool,
}

impl BeginRequest {
    /// Decodes `FCGI_BeginRequestBody` (spec §5.1).
    ///
    /// # Errors
    /// [`ProtocolError::BeginLength`] when the body is not 8 bytes long.
    pub fn parse(content: &[u8]) -> Result<BeginRequest, ProtocolError> {
        match content {
            [r0, r1, flags, _, _, _, _, _] => Ok(BeginRequest {
                role: u16::from_be_bytes([*r0, *r1]),
                keep_conn: flags & FLAG_KEEP_CONN != 0,
            }),
            _ => Err(ProtocolError::BeginLength(content.len())),
        }
    }
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // table-driven cases spell out their types
mod tests {
    use super::*;

    fn header(kind: u8, id: u16, len: u16, pad: u8) -> Vec<u8> {
        let i = id.to_be_bytes();
        let l = len.to_be_bytes();
        vec![1, kind, i[0], i[1], l[0], l[1], pad, 0]
    }

    #[test]
    fn parse_table() {
        let mut full = header(PARAMS, 7, 3, 5);
        full.extend_from_slice(b"abc\0\0\0\0\0");
        let cases: Vec<(
            &str,
            Vec<u8>,
            Result<Option<(u8, u16, &[u8], usize)>, ProtocolError>,
        )> = vec![
            ("empty buffer", vec![], Ok(None)),
            ("half a header", vec![1, 4, 0], Ok(None)),
            (
                "a wrong version byte alone",
                vec![2],
                Err(ProtocolError::Version(2)),
            ),
            (
                "header only, content missing",
                header(PARAMS, 1, 3, 0),
                Ok(None),
            ),
            ("content but no padding yet", full[..11].to_vec(), Ok(None)),
            (
                "whole record",
                full.clone(),
                Ok(Some((PARAMS, 7, b"abc", 16))),
            ),
            (
                "empty record",
                header(STDIN, 1, 0, 0),
                Ok(Some((STDIN, 1, b"", 8))),
            ),
            (
                "version 0",
                vec![0, 1, 0, 1, 0, 0, 0, 0],
                Err(ProtocolError::Version(0)),
            ),
            (
                "version 2",
                vec![2, 1, 0, 1, 0, 0, 0, 0],
                Err(ProtocolError::Version(2)),
            ),
            (
                "http bytes",
                b"GET / HTTP/1.1\r\n".to_vec(),
                Err(ProtocolError::Version(b'G')),
            ),
        ];
        for (name, input, want) in cases {
            let got = parse(&input)
                .map(|o| o.map(|(r, n)| (r.header.kind, r.header.request_id, r.content, n)));
            assert_eq!(got, want, "case {name:?}: expected {want:?}, got {got:?}");
        }
    }

    #[test]
    fn parse_leaves_following_bytes() {
        let mut buf = Vec::new();
        push(&mut buf, STDIN, 3, b"hello");
        push(&mut buf, STDIN, 3, b"");
        let (r, n) = parse(&buf).unwrap().unwrap();
        assert_eq!((r.content, n), (&b"hello"[..], 16));
        let (r, n) = parse(&buf[n..]).unwrap().unwrap();
        assert_eq!((r.content, n), (&b""[..], 8));
    }

    #[test]
    fn push_pads_to_eight() {
        for len in [0usize, 1, 7, 8, 9, 65535] {
            let mut out = Vec::new();
            push(&mut out, STDOUT, 1, &vec![b'x'; len]);
            assert_eq!(out.len() % 8, 0, "len {len}");
            let (r, n) = parse(&out).unwrap().unwrap();
            assert_eq!((r.content.len(), n), (len, out.len()));
        }
    }

    #[test]
    fn push_stream_splits_large_bodies() {
        let data = vec![7u8; 200_000];
        let mut out = Vec::new();
        push_stream(&mut out, STDOUT, 9, &data);
        let mut rest = &out[..];
        let mut got = Vec::new();
        while let Some((r, n)) = parse(rest).unwrap() {
            assert!(r.content.len() <= MAX_CONTENT_LEN);
            assert_eq!(r.header.request_id, 9);
            got.extend_from_slice(r.content);
            rest = &rest[n..];
        }
        assert!(rest.is_empty());
        assert_eq!(got, data);
    }

    #[test]
    fn begin_request_table() {
        let cases: Vec<(&[u8], Result<BeginRequest, ProtocolError>)> = vec![
            (
                &[0, 1, 1, 0, 0, 0, 0, 0],
                Ok(BeginRequest {
                    role: 1,
                    keep_conn: true,
                }),
            ),
            (
                &[0, 1, 0, 0, 0, 0, 0, 0],
                Ok(BeginRequest {
                    role: 1,
                    keep_conn: false,
                }),
            ),
            (
                &[0, 3, 0xfe, 0, 0, 0, 0, 0],
                Ok(BeginRequest {
                    role: 3,
                    keep_conn: false,
                }),
            ),
            (&[0, 1, 1], Err(ProtocolError::BeginLength(3))),
            (&[], Err(ProtocolError::BeginLength(0))),
            (&[0; 9], Err(ProtocolError::BeginLength(9))),
        ];
        for (input, want) in cases {
            assert_eq!(BeginRequest::parse(input), want, "input {input:?}");
        }
    }

    #[test]
    fn end_request_layout() {
        let mut out = Vec::new();
        push_end_request(&mut out, 0x0102, 0x0a0b0c0d, UNKNOWN_ROLE);
        assert_eq!(
            out,
            [1, 3, 1, 2, 0, 8, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 3, 0, 0, 0]
        );
    }

    /// A head and a body pushed as parts carry the same stream as the two joined, in as few
    /// records (one when they fit), whatever the split point and however many records it takes.
    #[test]
    fn parts_make_the_same_stream_as_the_joined_bytes() {
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 251) as u8).collect();
        for split in [0, 1, 7, 300, 65_527, 65_528, 65_529, 131_060, 150_000] {
            let (head, body) = data.split_at(split);
            let mut joined = Vec::new();
            push_stream(&mut joined, STDOUT, 4, &data);
            let mut parts = Vec::new();
            push_stream_parts(&mut parts, STDOUT, 4, &[head, body]);
            assert_eq!(parts, joined, "split at {split}");
            let mut at = 0;
            let mut stream = Vec::new();
            while let Some((rec, n)) = parse(&parts[at..]).expect("valid records") {
                stream.extend_from_slice(rec.content);
                at += n;
            }
            assert_eq!(
                (at, stream.len()),
                (parts.len(), data.len()),
                "split at {split}"
            );
            assert!(stream == data, "split at {split}");
        }
        let mut small = Vec::new();
        push_stream_parts(
            &mut small,
            STDOUT,
            1,
            &[b"Status: 200 OK\r\n\r\n", b"", b"ok"],
        );
        assert_eq!(small.len(), 8 + 24, "one record, padded to 8: {small:?}");
        let mut none = Vec::new();
        push_stream_parts(&mut none, STDOUT, 1, &[b"", b""]);
        assert!(none.is_empty());
    }
}
