//! A FastCGI responder that does no work, for `bench/run` only: the floor of one request
//! through nginx's FastCGI module on the same machine, measured in the same run as the
//! status page and nginx's own `return 200`.
//!
//!     bare_responder SOCKET_PATH
//!
//! It answers every request with `200` and a three-byte body, one thread per connection and
//! blocking reads and writes: nothing pdfworker's FastCGI layer does (limits, timeouts,
//! multiplexing, a runtime). It has no limits and trusts its peer, so it must never face
//! anything but a benchmark's nginx. Written by hand because it exists to have no library in
//! the way; std only, so building it costs the benchmark nothing.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};

const HEADER: usize = 8;
const STDIN: u8 = 5;
const STDOUT: u8 = 6;
const END_REQUEST: u8 = 3;
const BEGIN_REQUEST: u8 = 1;
const KEEP_CONN: u8 = 1;
const ANSWER: &[u8] =
    b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";

fn record(out: &mut Vec<u8>, kind: u8, id: u16, content: &[u8]) {
    let [hi, lo] = id.to_be_bytes();
    let [lhi, llo] = u16::try_from(content.len())
        .expect("a bare answer fits one record")
        .to_be_bytes();
    out.extend_from_slice(&[1, kind, hi, lo, lhi, llo, 0, 0]);
    out.extend_from_slice(content);
}

/// Serves one connection until the peer closes it or a request without KEEP_CONN ends.
fn serve(mut conn: UnixStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut have = 0;
    let mut keep = std::collections::HashMap::new();
    loop {
        let mut used = 0;
        let mut out = Vec::new();
        let mut close = false;
        while have - used >= HEADER {
            let h = &buf[used..used + HEADER];
            let (kind, id) = (h[1], u16::from_be_bytes([h[2], h[3]]));
            let len = HEADER + usize::from(u16::from_be_bytes([h[4], h[5]])) + usize::from(h[6]);
            if have - used < len {
                break;
            }
            if kind == BEGIN_REQUEST && len >= HEADER + 3 {
                keep.insert(id, buf[used + HEADER + 2] & KEEP_CONN != 0);
            } else if kind == STDIN && len == HEADER + usize::from(h[6]) {
                record(&mut out, STDOUT, id, ANSWER);
                record(&mut out, STDOUT, id, b"");
                record(&mut out, END_REQUEST, id, &[0; 8]);
                close |= !keep.remove(&id).unwrap_or(false);
            }
            used += len;
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
        }
        if close {
            return Ok(());
        }
        buf.copy_within(used..have, 0);
        have -= used;
        if have == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        match conn.read(&mut buf[have..])? {
            0 => return Ok(()),
            n => have += n,
        }
    }
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: bare_responder SOCKET_PATH");
        std::process::exit(2);
    };
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap_or_else(|e| {
        eprintln!("bare_responder: {path}: {e}");
        std::process::exit(1);
    });
    // The benchmark's nginx may run as another user.
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666));
    for conn in listener.incoming().flatten() {
        std::thread::spawn(move || serve(conn));
    }
}
