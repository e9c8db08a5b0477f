//! Name-value pairs (spec §3.4): each length is one byte below 128, else four bytes with the
//! high bit set. PARAMS and GET_VALUES carry them; a pair may span PARAMS records, so the
//! connection joins a whole stream before decoding it here.

use super::record::ProtocolError;

/// A name and its value, borrowed from the stream they were decoded from.
pub type Pair<'a> = (&'a [u8], &'a [u8]);

/// Decodes every pair in `buf`, borrowing names and values from it.
///
/// Each length is checked against the bytes that remain before anything is sliced, so a
/// hostile length cannot make this allocate or read past the buffer.
///
/// # Errors
/// [`ProtocolError::TruncatedLength`] or [`ProtocolError::TruncatedPair`] when the stream ends
/// inside a pair.
pub fn decode(buf: &[u8]) -> Result<Vec<Pair<'_>>, ProtocolError> {
    Ok(spans(buf)?
        .into_iter()
        .map(|(n, v)| (slice(buf, n), slice(buf, v)))
        .collect())
}

/// Where a name or a value lies in its stream: `start..end`.
pub type Span = (usize, usize);

/// Like [`decode`], but gives positions, so a caller can keep the stream as one buffer and
/// look pairs up in it later without an allocation per name and value.
///
/// # Errors
/// As [`decode`].
pub fn spans(buf: &[u8]) -> Result<Vec<(Span, Span)>, ProtocolError> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < buf.len() {
        let (name_len, at) = read_len(buf, pos)?;
        let (value_len, at) = read_len(buf, at)?;
        let name_end = at.checked_add(name_len).filter(|e| *e <= buf.len());
        let name_end = name_end.ok_or(ProtocolError::TruncatedPair)?;
        let value_end = name_end.checked_add(value_len).filter(|e| *e <= buf.len());
        let value_end = value_end.ok_or(ProtocolError::TruncatedPair)?;
        out.push(((at, name_end), (name_end, value_end)));
        pos = value_end;
    }
    Ok(out)
}

/// The bytes of a span [`spans`] produced for `buf` (empty for any other span).
pub fn slice(buf: &[u8], (start, end): Span) -> &[u8] {
    buf.get(start..end).unwrap_or_default()
}

/// A length at `pos`, and the position after it.
fn read_len(buf: &[u8], pos: usize) -> Result<(usize, usize), ProtocolError> {
    match buf.get(pos..).unwrap_or_default() {
        [b, ..] if b & 0x80 == 0 => Ok((*b as usize, pos + 1)),
        [b0, b1, b2, b3, ..] => {
            let len = u32::from_be_bytes([b0 & 0x7f, *b1, *b2, *b3]);
            Ok((len as usize, pos + 4))
        }
        _ => Err(ProtocolError::TruncatedLength),
    }
}

/// Appends one pair, choosing the 1- or 4-byte form for each length.
///
/// Lengths over 2^31 - 1 cannot be encoded; the pairs this crate writes (GET_VALUES_RESULT)
/// are a few bytes long, and test clients stay far below that.
pub fn encode(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    push_len(out, name.len());
    push_len(out, value.len());
    out.extend_from_slice(name);
    out.extend_from_slice(value);
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let len = (len as u32 & 0x7fff_ffff) | 0x8000_0000;
        out.extend_from_slice(&len.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_short_and_long() {
        let long = vec![b'v'; 300];
        let mut buf = Vec::new();
        encode(&mut buf, b"A", b"1");
        encode(&mut buf, b"EMPTY", b"");
        encode(&mut buf, b"LONG", &long);
        encode(&mut buf, &[b'n'; 128], b"x");
        let got = decode(&buf).unwrap();
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], (&b"A"[..], &b"1"[..]));
        assert_eq!(got[1], (&b"EMPTY"[..], &b""[..]));
        assert_eq!(got[2], (&b"LONG"[..], &long[..]));
        assert_eq!(got[3].0.len(), 128);
    }

    #[test]
    fn four_byte_form_is_used_from_128() {
        let mut buf = Vec::new();
        encode(&mut buf, &[b'n'; 127], &[b'v'; 128]);
        assert_eq!(buf[0], 127);
        assert_eq!(&buf[1..5], &[0x80, 0, 0, 128]);
    }

    #[test]
    fn malformed_table() {
        let cases: Vec<(&str, Vec<u8>, ProtocolError)> = vec![
            (
                "only a name length",
                vec![3],
                ProtocolError::TruncatedLength,
            ),
            (
                "4-byte length cut short",
                vec![0x80, 0, 1],
                ProtocolError::TruncatedLength,
            ),
            (
                "value length cut short",
                vec![1, 0x80, 0],
                ProtocolError::TruncatedLength,
            ),
            (
                "name runs past the end",
                vec![5, 0, b'a', b'b'],
                ProtocolError::TruncatedPair,
            ),
            (
                "value runs past the end",
                vec![1, 5, b'a', b'b'],
                ProtocolError::TruncatedPair,
            ),
            (
                "huge lengths are checked, not allocated",
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, b'x'],
                ProtocolError::TruncatedPair,
            ),
            (
                "second pair truncated",
                vec![1, 1, b'a', b'b', 2],
                ProtocolError::TruncatedLength,
            ),
        ];
        for (name, input, want) in cases {
            let got = decode(&input);
            assert_eq!(
                got,
                Err(want.clone()),
                "case {name:?}: expected {want:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn empty_stream_has_no_pairs() {
        assert_eq!(decode(&[]), Ok(vec![]));
    }
}
