//! What a handler gets: a [`Request`] (params, bounded body, abort signal) and a [`Response`]
//! whose `finish()` sends FCGI_END_REQUEST exactly once and frees the connection at once.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::record;
use super::{Error, pairs};

/// Bytes of STDOUT a response buffers before it hands them to the connection's writer.
const WRITE_CHUNK: usize = 64 * 1024;

/// A message from a response (or the connection itself) to the connection's writer task.
#[derive(Debug)]
pub(crate) struct Out {
    pub(crate) bytes: Vec<u8>,
    /// Close the connection once these bytes are written (END_REQUEST without KEEP_CONN).
    pub(crate) close: bool,
}

/// Requests of one connection whose handler runs and has not finished: the reader uses it to
/// deliver FCGI_ABORT_REQUEST, a response removes itself when it ends.
#[derive(Debug, Default)]
pub(crate) struct Active {
    map: Mutex<std::collections::HashMap<u16, watch::Sender<bool>>>,
}

impl Active {
    pub(crate) fn insert(&self, id: u16, abort: watch::Sender<bool>) {
        self.lock().insert(id, abort);
    }

    /// Removes `id`; true if it was active. The caller that gets `true` owns the END_REQUEST.
    pub(crate) fn remove(&self, id: u16) -> bool {
        self.lock().remove(&id).is_some()
    }

    pub(crate) fn contains(&self, id: u16) -> bool {
        self.lock().contains_key(&id)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Signals the handler of `id`, if it still runs. Returns whether it did.
    pub(crate) fn abort(&self, id: u16) -> bool {
        match self.lock().get(&id) {
            Some(tx) => {
                tx.send_replace(true);
                true
            }
            None => false,
        }
    }

    pub(crate) fn abort_all(&self) {
        for tx in self.lock().values() {
            tx.send_replace(true);
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u16, watch::Sender<bool>>> {
        // A poisoned map only means a thread panicked while holding it; the map itself is
        // always consistent (single insert/remove calls), so keep using it.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One responder request: its params and its whole body (bounded by the server's limit).
#[derive(Debug)]
pub struct Request {
    id: u16,
    /// The PARAMS stream as received, and where each name and value lies in it: one buffer
    /// instead of two allocations per param.
    params: Vec<u8>,
    spans: Vec<(pairs::Span, pairs::Span)>,
    body: Vec<u8>,
    abort: Abort,
}

impl Request {
    pub(crate) fn new(
        id: u16,
        params: Vec<u8>,
        spans: Vec<(pairs::Span, pairs::Span)>,
        body: Vec<u8>,
        abort: Abort,
    ) -> Request {
        Request {
            id,
            params,
            spans,
            body,
            abort,
        }
    }

    /// The FastCGI request id (unique on its connection while the request is active).
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The value of a CGI param, if present and UTF-8.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.param_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The raw bytes of a CGI param.
    pub fn param_bytes(&self, name: &str) -> Option<&[u8]> {
        self.params()
            .find(|(n, _)| *n == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// Every param, in the order the web server sent them.
    pub fn params(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|(n, v)| {
            (
                pairs::slice(&self.params, *n),
                pairs::slice(&self.params, *v),
            )
        })
    }

    /// The request body (FCGI_STDIN), complete.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The signal that fires when the web server aborts this request.
    pub fn abort(&self) -> Abort {
        self.abort.clone()
    }
}

/// Fires when the web server sends FCGI_ABORT_REQUEST for the request or drops the
/// connection while its handler runs. Work continued after [`Response::finish`] should not
/// hold on to it: the request is over by then and nothing fires it.
#[derive(Debug, Clone)]
pub struct Abort {
    rx: watch::Receiver<bool>,
}

impl Abort {
    pub(crate) fn new(rx: watch::Receiver<bool>) -> Abort {
        Abort { rx }
    }

    /// Whether the request was aborted.
    pub fn is_aborted(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when the request is aborted; never resolves otherwise, even after the
    /// connection closes normally.
    pub async fn aborted(&mut self) {
        if self.rx.wait_for(|a| *a).await.is_err() {
            // The sender is gone: the request ended without an abort.
            std::future::pending::<()>().await;
        }
    }
}

/// Writes one request's response: CGI headers and body as STDOUT records, then the empty
/// STDOUT record and exactly one END_REQUEST.
///
/// Dropping a response that was not finished finishes it (a handler that panics or returns
/// early still ends its request); if nothing was written, a 500 is sent first.
#[derive(Debug)]
pub struct Response {
    id: u16,
    keep_conn: bool,
    tx: mpsc::Sender<Out>,
    active: Arc<Active>,
    buf: Vec<u8>,
    wrote_any: bool,
    ended: bool,
}

impl Response {
    pub(crate) fn new(
        id: u16,
        keep_conn: bool,
        tx: mpsc::Sender<Out>,
        active: Arc<Active>,
    ) -> Self {
        Response {
            id,
            keep_conn,
            tx,
            active,
            buf: Vec::new(),
            wrote_any: false,
            ended: false,
        }
    }

    /// Writes the CGI response head: `Status:` and the given headers, then the blank line.
    ///
    /// # Errors
    /// [`Error::InvalidHeader`] when a name or value holds CR, LF or NUL (header injection),
    /// or a name is empty or holds ':'; nothing is written then.
    pub fn write_head(&mut self, status: u16, headers: &[(&str, &str)]) -> Result<(), Error> {
        for (name, value) in headers {
            let bad_name =
                name.is_empty() || name.bytes().any(|b| b <= b' ' || b == b':' || b >= 0x7f);
            let bad_value = value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0);
            if bad_name || bad_value {
                return Err(Error::InvalidHeader(name.to_string()));
            }
        }
        let reason = reason(status);
        let size: usize = headers.iter().map(|(n, v)| n.len() + v.len() + 4).sum();
        self.buf.reserve(size + reason.len() + 16);
        let _ = write!(self.buf, "Status: {status} {reason}\r\n");
        for (name, value) in headers {
            for part in [name.as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
                self.buf.extend_from_slice(part);
            }
        }
        self.buf.extend_from_slice(b"\r\n");
        self.wrote_any = true;
        Ok(())
    }

    /// Appends body bytes; they are sent in STDOUT records of at most 65535 bytes.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is gone.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), Error> {
        self.wrote_any = true;
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_CHUNK {
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends what is buffered now (for Server-Sent Events and other progressive bodies).
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is gone.
    pub async fn flush(&mut self) -> Result<(), Error> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut out = Vec::with_capacity(self.buf.len() + 16);
        record::push_stream(&mut out, record::STDOUT, self.id, &self.buf);
        self.buf.clear();
        self.tx
            .send(Out {
                bytes: out,
                close: false,
            })
            .await
            .map_err(|_| Error::Closed)
    }

    /// Ends the request: the rest of the body, the empty STDOUT record and END_REQUEST. From
    /// this moment the connection serves other requests; the caller may keep working.
    ///
    /// # Errors
    /// [`Error::Closed`] when the connection is gone (the request was aborted or the web
    /// server went away); the request is over either way.
    pub async fn finish(self) -> Result<(), Error> {
        self.finish_with(&[]).await
    }

    /// [`Response::write`] of the whole rest of the body, then [`Response::finish`], in one
    /// message to the connection: the body is copied once, straight into its records.
    ///
    /// # Errors
    /// As [`Response::finish`].
    pub async fn finish_with(mut self, body: &[u8]) -> Result<(), Error> {
        self.ended = true;
        self.wrote_any |= !body.is_empty();
        match self.end_bytes(body) {
            Some(out) => self.tx.send(out).await.map_err(|_| Error::Closed),
            None => Ok(()),
        }
    }

    /// The final bytes (what is buffered, then `tail`), or `None` when the request is no
    /// longer active (it cannot be: only `finish_with`/`drop` remove it, and each runs once).
    fn end_bytes(&mut self, tail: &[u8]) -> Option<Out> {
        if !self.wrote_any {
            let page = b"Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nInternal Server Error\n";
            self.buf.extend_from_slice(page);
        }
        let mut out = Vec::with_capacity(self.buf.len() + tail.len() + 48);
        record::push_stream_parts(&mut out, record::STDOUT, self.id, &[&self.buf, tail]);
        record::push(&mut out, record::STDOUT, self.id, b"");
        record::push_end_request(&mut out, self.id, 0, record::REQUEST_COMPLETE);
        self.buf = Vec::new();
        // Removing before sending keeps a late FCGI_ABORT_REQUEST from reaching a handler
        // whose request the web server may already be reusing the id of.
        if !self.active.remove(self.id) {
            return None;
        }
        Some(Out {
            bytes: out,
            close: !self.keep_conn,
        })
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        if let Some(out) = self.end_bytes(&[]) {
            let tx = self.tx.clone();
            match tx.try_send(out) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(out)) => {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(async move {
                            let _ = tx.send(out).await;
                        });
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }
}

/// The reason phrase for the statuses this crate's users send ("Status" for others).
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        401 => "Unauthorized",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    /// Every status the app sends carries its own reason phrase (a 410 once went out as
    /// "410 Status").
    #[test]
    fn every_status_the_app_sends_has_its_reason_phrase() {
        let sent = [
            200, 202, 206, 303, 304, 400, 403, 404, 405, 409, 410, 413, 415, 416, 422, 429, 431,
            500, 503, 507,
        ];
        for status in sent {
            assert_ne!(super::reason(status), "Status", "{status}");
        }
        assert_eq!(super::reason(410), "Gone");
    }
}
