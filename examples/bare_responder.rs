//! A FastCGI responder that does no work, for `bench/run` only: the floor of one request
//! through nginx's FastCGI module on the same machine, measured in the same run as the
//! status page and nginx's own `return 200`.
//!
//!     bare_responder SOCKET_PATH
//!
//! It answers every request with `200` and a three-byte body, one thread per connection and
//! blocking reads and writes: of pdfworker it uses only the record codec
//! (`pdfworker::fastcgi::record`), nothing of what its connections do (limits, timeouts,
//! multiplexed handler tasks, a runtime). It has no limits and trusts its peer, so it must
//! never face anything but a benchmark's nginx.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};

use pdfworker::fastcgi::record::{self, BeginRequest};

const ANSWER: &[u8] =
    b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";

/// Serves one connection until the peer closes it, sends something that is not FastCGI, or
/// a request without FCGI_KEEP_CONN ends.
fn serve(mut conn: UnixStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; record::MAX_RECORD_LEN];
    let mut have = 0;
    let mut keep_conn = HashMap::new();
    loop {
        let (mut used, mut out, mut close) = (0, Vec::new(), false);
        while let Ok(Some((rec, n))) = record::parse(&buf[used..have]) {
            let id = rec.header.request_id;
            match rec.header.kind {
                record::BEGIN_REQUEST => {
                    let keep = BeginRequest::parse(rec.content).is_ok_and(|b| b.keep_conn);
                    keep_conn.insert(id, keep);
                }
                record::STDIN if rec.content.is_empty() => {
                    record::push(&mut out, record::STDOUT, id, ANSWER);
                    record::push(&mut out, record::STDOUT, id, b"");
                    record::push_end_request(&mut out, id, 0, record::REQUEST_COMPLETE);
                    close |= !keep_conn.remove(&id).unwrap_or(false);
                }
                _ => {}
            }
            used += n;
        }
        if !out.is_empty() {
            conn.write_all(&out)?;
        }
        if close || record::parse(&buf[used..have]).is_err() {
            return Ok(());
        }
        buf.copy_within(used..have, 0);
        have -= used;
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
