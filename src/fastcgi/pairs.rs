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
pub fn decode(mut buf: &[u8]) -> Result<Vec<Pair<'_>>, ProtocolError> {
    let mut pairs = Vec::new();
    while !buf.is_empty() {
        let (name_len, rest) = read_len(buf)?;
        let (value_len, rest) = read_len(rest)?;
        let name = rest.get(..name_len).ok_or(ProtocolError::TruncatedPair)?;
        let rest = &rest[name.len()..];
        let value = rest.get(..value_len).ok_or(ProtocolError::TruncatedPair)?;
        buf = &rest[value.len()..];
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn read_len(buf: &[u8]) -> Result<(usize, &[u8]), ProtocolError> {
    match buf {
        [b, rest @ ..] if b & 0x80 == 0 => Ok((*b as usize, rest)),
        [b0, b1, b2, b3, rest @ ..] => {
            let len = u32::from_be_bytes([b0 & 0x7f, *b1, *b2, *b3]);
            Ok((len as usize, rest))
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
