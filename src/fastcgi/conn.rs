//! One transport connection: a reader loop that turns records into requests, and a writer
//! task that owns the write half and sends what responses hand it, in order.
//!
//! Requests are multiplexed (FCGI_MPXS_CONNS=1): every request gets its own handler task, so a
//! slow or long-running handler never holds up the next record on the connection, and a
//! handler that finished early frees its request id at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use super::record::{self, BeginRequest, ProtocolError};
use super::request::{Abort, Active, Out, Request, Response};
use super::{Config, Handler, ProtocolErrorKind, Stats, pairs};

/// Messages queued towards one connection's writer; a bound gives back-pressure to handlers
/// that write faster than the web server reads.
const WRITE_QUEUE: usize = 32;

/// A request still receiving its PARAMS or STDIN stream.
struct Incoming {
    /// When BEGIN_REQUEST arrived: the whole request must arrive within `request_timeout`.
    begun: Instant,
    keep_conn: bool,
    params: Vec<u8>,
    /// Set when the PARAMS stream has ended: where each pair lies in `params`.
    spans: Option<Vec<(pairs::Span, pairs::Span)>>,
    body: Vec<u8>,
}

/// Why the reader loop stopped; logged once.
enum Stop {
    Eof,
    Closed,
    Shutdown,
    Malformed(ProtocolError),
    TooLarge,
    Timeout(&'static str),
    Io(std::io::Error),
}

/// Serves one connection until the peer closes it, a protocol error, a timeout, or shutdown.
/// Returns once every response of this connection has been written (or the writer died).
pub(crate) async fn run<S, H>(
    stream: S,
    conn_id: u64,
    handler: Arc<H>,
    config: Arc<Config>,
    stats: Arc<Stats>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: Handler,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (tx, rx) = mpsc::channel::<Out>(WRITE_QUEUE);
    let closed = Arc::new(Closed::default());
    let writer_task = tokio::spawn(write_loop(
        writer,
        rx,
        closed.clone(),
        config.write_timeout,
        conn_id,
    ));

    let mut conn = Conn {
        conn_id,
        handler,
        config: config.clone(),
        stats,
        tx,
        active: Arc::new(Active::default()),
        incoming: HashMap::new(),
        reject_drain: None,
    };
    let stop = conn.read_loop(&mut reader, &closed, &mut shutdown).await;
    if let Some(kind) = stop.error_kind() {
        conn.stats.count_error(kind);
    }
    match &stop {
        Stop::Eof | Stop::Closed | Stop::Shutdown => {
            log::debug!("conn {conn_id}: closed ({})", stop.describe())
        }
        _ => log::warn!("conn {conn_id}: closing: {}", stop.describe()),
    }
    // The web server is gone or we are closing: handlers still streaming (Server-Sent
    // Events) stop and end their requests, so shutdown is not held up by them. Work that a
    // handler continued after finish() holds no abort signal and is not affected.
    conn.active.abort_all();
    drop(conn);
    // The writer ends when every response has been dropped or finished, and shuts its side.
    let _ = writer_task.await;
    // A clean close (issue #10): what the peer still sends — a trailing DATA record, the
    // records of a request it sent before it saw our close — is read and thrown away until it
    // closes too, for a bounded time and amount. Closing with unread input would make the
    // kernel send a reset, which can destroy an answer the peer has not read yet.
    if !matches!(stop, Stop::Eof | Stop::Io(_)) {
        linger(&mut reader, conn_id).await;
    }
}

/// How long a closing connection reads what the peer still sends before it closes anyway.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// The most it reads (and discards) meanwhile.
const CLOSE_LINGER_BYTES: usize = 1024 * 1024;

/// Reads and discards until the peer closes, [`CLOSE_LINGER`] passes or
/// [`CLOSE_LINGER_BYTES`] were read. Nothing read here is parsed or answered.
async fn linger<R: AsyncRead + Unpin>(reader: &mut R, conn_id: u64) {
    let deadline = tokio::time::Instant::now() + CLOSE_LINGER;
    let mut buf = vec![0u8; 16 * 1024];
    let mut read = 0usize;
    loop {
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => {
                read += n;
                if read > CLOSE_LINGER_BYTES {
                    log::debug!("conn {conn_id}: closing; the peer kept sending");
                    return;
                }
            }
            Err(_) => {
                log::debug!(
                    "conn {conn_id}: closing; the peer did not close within {CLOSE_LINGER:?}"
                );
                return;
            }
        }
    }
}

impl Stop {
    fn describe(&self) -> String {
        match self {
            Stop::Eof => "peer closed".into(),
            Stop::Closed => "after END_REQUEST without KEEP_CONN or a write failure".into(),
            Stop::Shutdown => "shutdown".into(),
            Stop::Malformed(e) => format!("malformed input: {e}"),
            Stop::TooLarge => "request over the size limit".into(),
            Stop::Timeout(what) => format!("read timeout ({what})"),
            Stop::Io(e) => format!("read error: {e}"),
        }
    }

    /// The protocol error this stop counts as, if any. A refused request is counted when it
    /// is refused (`refuse_too_large`), not again when the connection closes after it.
    fn error_kind(&self) -> Option<ProtocolErrorKind> {
        match self {
            Stop::Malformed(e) => Some(match e {
                ProtocolError::Version(_) => ProtocolErrorKind::Version,
                ProtocolError::BeginLength(_) => ProtocolErrorKind::BeginRequest,
                ProtocolError::TruncatedPair | ProtocolError::TruncatedLength => {
                    ProtocolErrorKind::Pairs
                }
                ProtocolError::StdinBeforeParams(_) => ProtocolErrorKind::StdinBeforeParams,
            }),
            Stop::Timeout(what) if *what != IDLE => Some(ProtocolErrorKind::Timeout),
            Stop::Eof
            | Stop::Closed
            | Stop::Shutdown
            | Stop::TooLarge
            | Stop::Timeout(_)
            | Stop::Io(_) => None,
        }
    }
}

/// Set by the writer when the connection must not be read any more.
#[derive(Default)]
struct Closed {
    flag: AtomicBool,
    notify: Notify,
}

impl Closed {
    fn close(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

struct Conn<H> {
    conn_id: u64,
    handler: Arc<H>,
    config: Arc<Config>,
    stats: Arc<Stats>,
    tx: mpsc::Sender<Out>,
    active: Arc<Active>,
    incoming: HashMap<u16, Incoming>,
    /// After a request was refused for its size, the id whose streams are read and discarded
    /// (so the web server can finish sending and read our answer) before the connection closes.
    reject_drain: Option<(u16, usize, Instant)>,
}

/// Bytes read and thrown away after a 413 before the connection is closed regardless.
const DRAIN_LIMIT: usize = 4 * 1024 * 1024;

/// After shutdown begins, an idle connection stays open this long for a request the web server
/// may already have sent on it (nginx does not retry a POST on another connection).
const SHUTDOWN_LINGER: Duration = Duration::from_millis(500);

/// What a timeout between requests is called: closing an idle connection is no error.
const IDLE: &str = "idle";

impl<H: Handler> Conn<H> {
    async fn read_loop<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
        closed: &Closed,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Stop {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut draining_for_shutdown = false;
        // When the first byte of the record still incomplete in `buf` arrived.
        let mut record_started: Option<Instant> = None;
        loop {
            // Handle every complete record already buffered.
            let mut used = 0;
            loop {
                match record::parse(&buf[used..]) {
                    Ok(Some((rec, n))) => {
                        used += n;
                        if let Err(stop) = self.on_record(rec).await {
                            return stop;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Stop::Malformed(e),
                }
            }
            buf.drain(..used);
            if buf.is_empty() {
                record_started = None;
            } else if used > 0 || record_started.is_none() {
                record_started = Some(Instant::now());
            }
            if closed.is_closed() {
                return Stop::Closed;
            }
            if let Some((_, drained, _)) = self.reject_drain
                && drained > DRAIN_LIMIT
            {
                return Stop::TooLarge;
            }

            let (deadline, what) = self.deadline(record_started, draining_for_shutdown);
            let idle =
                record_started.is_none() && self.incoming.is_empty() && self.reject_drain.is_none();
            if buf.capacity() - buf.len() < 4096 {
                buf.reserve(16 * 1024);
            }
            tokio::select! {
                r = tokio::time::timeout_at(deadline, reader.read_buf(&mut buf)) => match r {
                    Ok(Ok(0)) => return Stop::Eof,
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Stop::Io(e),
                    Err(_) if idle && draining_for_shutdown => return Stop::Shutdown,
                    Err(_) if idle && self.active.len() > 0 => {
                        // Idle only in the reading direction: a handler is still streaming.
                    }
                    Err(_) => return Stop::Timeout(what),
                },
                _ = closed.notify.notified() => return Stop::Closed,
                r = shutdown.changed(), if !draining_for_shutdown => {
                    if r.is_err() || *shutdown.borrow() {
                        draining_for_shutdown = true;
                    }
                }
            }
        }
    }

    /// When the next read must have happened, and what it is called if it does not.
    ///
    /// Idle between requests: `idle_timeout` (nginx's upstream keepalive_timeout, 60 s by
    /// default, is below our 75 s so nginx closes first), or [`SHUTDOWN_LINGER`] once shutdown
    /// began. Otherwise the peer must keep sending: every read within `read_timeout`, a record
    /// complete within `read_timeout` of its first byte, and a whole request within
    /// `request_timeout` of its BEGIN_REQUEST, so a peer trickling a byte at a time is dropped.
    fn deadline(
        &self,
        record_started: Option<Instant>,
        shutting_down: bool,
    ) -> (Instant, &'static str) {
        let now = Instant::now();
        let idle =
            record_started.is_none() && self.incoming.is_empty() && self.reject_drain.is_none();
        if idle {
            let wait = if shutting_down {
                SHUTDOWN_LINGER
            } else {
                self.config.idle_timeout
            };
            return (now + wait, IDLE);
        }
        let mut deadline = (now + self.config.read_timeout, "stalled mid-request");
        if let Some(t) = record_started {
            deadline = deadline.min((t + self.config.read_timeout, "stalled mid-record"));
        }
        if let Some(t) = self.incoming.values().map(|r| r.begun).min() {
            deadline = deadline.min((
                t + self.config.request_timeout,
                "request not received in time",
            ));
        }
        if let Some((_, _, t)) = self.reject_drain {
            deadline = deadline.min((t + self.config.read_timeout, "draining a refused request"));
        }
        deadline
    }

    async fn on_record(&mut self, rec: record::Record<'_>) -> Result<(), Stop> {
        let id = rec.header.request_id;
        let kind = rec.header.kind;
        if let Some((drain_id, drained, _)) = &mut self.reject_drain
            && id == *drain_id
        {
            *drained += rec.content.len();
            // The end of the refused body, or the web server already reusing the id (our
            // END_REQUEST freed it): close now rather than swallow a new request.
            let body_ended = kind == record::STDIN && rec.content.is_empty();
            if body_ended || kind == record::BEGIN_REQUEST {
                return Err(Stop::TooLarge);
            }
            return Ok(());
        }
        if id == 0 {
            return self.on_management(kind, rec.content).await;
        }
        match kind {
            record::BEGIN_REQUEST => self.on_begin(id, rec.content).await,
            record::ABORT_REQUEST => self.on_abort(id).await,
            record::PARAMS => self.on_params(id, rec.content).await,
            record::STDIN => self.on_stdin(id, rec.content).await,
            // A responder ignores DATA (spec §6.2 defines it for filters only).
            record::DATA => Ok(()),
            record::END_REQUEST
            | record::STDOUT
            | record::STDERR
            | record::GET_VALUES_RESULT
            | record::UNKNOWN_TYPE => {
                log::debug!(
                    "conn {}: ignoring application-to-server record type {kind}",
                    self.conn_id
                );
                Ok(())
            }
            _ => {
                self.stats.count_error(ProtocolErrorKind::UnknownType);
                let mut out = Vec::new();
                record::push_unknown_type(&mut out, kind);
                self.send(out, false).await
            }
        }
    }

    async fn on_management(&mut self, kind: u8, content: &[u8]) -> Result<(), Stop> {
        let mut out = Vec::new();
        if kind == record::GET_VALUES {
            let asked = pairs::decode(content).map_err(Stop::Malformed)?;
            let mut body = Vec::new();
            let mut answered: Vec<&[u8]> = Vec::new();
            for (name, _) in asked {
                // Each known name once: a peer repeating a name thousands of times must not
                // make the answer outgrow one record.
                if answered.contains(&name) {
                    continue;
                }
                if let Some(value) = self.config.value(name) {
                    pairs::encode(&mut body, name, value.as_bytes());
                    answered.push(name);
                }
            }
            record::push(&mut out, record::GET_VALUES_RESULT, 0, &body);
        } else {
            self.stats.count_error(ProtocolErrorKind::UnknownType);
            record::push_unknown_type(&mut out, kind);
        }
        self.send(out, false).await
    }

    async fn on_begin(&mut self, id: u16, content: &[u8]) -> Result<(), Stop> {
        let begin = BeginRequest::parse(content).map_err(Stop::Malformed)?;
        if self.incoming.contains_key(&id) || self.active.contains(id) {
            // Spec §3.3: a BEGIN_REQUEST for an active id is a web-server bug; ignoring it
            // keeps the running request intact.
            self.stats
                .count_error(ProtocolErrorKind::DuplicateRequestId);
            log::warn!(
                "conn {}: BEGIN_REQUEST for active request {id} ignored",
                self.conn_id
            );
            return Ok(());
        }
        let refuse = if begin.role != record::ROLE_RESPONDER {
            self.stats.count_error(ProtocolErrorKind::UnknownRole);
            Some(record::UNKNOWN_ROLE)
        } else if self.incoming.len() + self.active.len() >= self.config.max_requests_per_conn {
            Some(record::OVERLOADED)
        } else {
            None
        };
        if let Some(status) = refuse {
            log::info!(
                "conn {}: request {id} refused (role {}, status {status})",
                self.conn_id,
                begin.role
            );
            let mut out = Vec::new();
            record::push_end_request(&mut out, id, 0, status);
            return self.send(out, !begin.keep_conn).await;
        }
        self.incoming.insert(
            id,
            Incoming {
                begun: Instant::now(),
                keep_conn: begin.keep_conn,
                params: Vec::new(),
                spans: None,
                body: Vec::new(),
            },
        );
        Ok(())
    }

    async fn on_abort(&mut self, id: u16) -> Result<(), Stop> {
        if let Some(req) = self.incoming.remove(&id) {
            // Not handed to a handler yet: end it here (spec §5.4).
            log::info!(
                "conn {}: request {id} aborted before its handler started",
                self.conn_id
            );
            let mut out = Vec::new();
            record::push_end_request(&mut out, id, 0, record::REQUEST_COMPLETE);
            return self.send(out, !req.keep_conn).await;
        }
        if self.active.abort(id) {
            log::info!(
                "conn {}: request {id} aborted by the web server",
                self.conn_id
            );
        }
        Ok(())
    }

    async fn on_params(&mut self, id: u16, content: &[u8]) -> Result<(), Stop> {
        let Some(req) = self.incoming.get_mut(&id) else {
            return Ok(());
        };
        if req.spans.is_some() {
            return Ok(());
        }
        if content.is_empty() {
            // Decode now to fail early on malformed pairs and to check CONTENT_LENGTH before
            // the body arrives.
            let spans = pairs::spans(&req.params).map_err(Stop::Malformed)?;
            let declared = spans
                .iter()
                .find(|(n, _)| pairs::slice(&req.params, *n) == b"CONTENT_LENGTH")
                .and_then(|(_, v)| std::str::from_utf8(pairs::slice(&req.params, *v)).ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            req.spans = Some(spans);
            if declared.is_some_and(|n| n > self.config.max_body_bytes as u64) {
                return self.refuse_too_large(id, 413).await;
            }
            return Ok(());
        }
        if req.params.len() + content.len() > self.config.max_params_bytes {
            return self.refuse_too_large(id, 431).await;
        }
        req.params.extend_from_slice(content);
        Ok(())
    }

    async fn on_stdin(&mut self, id: u16, content: &[u8]) -> Result<(), Stop> {
        let Some(req) = self.incoming.get_mut(&id) else {
            return Ok(());
        };
        if req.spans.is_none() {
            return Err(Stop::Malformed(ProtocolError::StdinBeforeParams(id)));
        }
        if !content.is_empty() {
            if req.body.len() + content.len() > self.config.max_body_bytes {
                return self.refuse_too_large(id, 413).await;
            }
            req.body.extend_from_slice(content);
            return Ok(());
        }
        let Some(req) = self.incoming.remove(&id) else {
            return Ok(());
        };
        let spans = req.spans.unwrap_or_default();
        let (abort_tx, abort_rx) = watch::channel(false);
        self.active.insert(id, abort_tx);
        let request = Request::new(id, req.params, spans, req.body, Abort::new(abort_rx));
        let response = Response::new(id, req.keep_conn, self.tx.clone(), self.active.clone());
        let handler = self.handler.clone();
        tokio::spawn(async move { handler.handle(request, response).await });
        Ok(())
    }

    /// Answers a request that is over a size limit with a plain error page and END_REQUEST,
    /// then reads and discards the rest of its streams before closing (issue #2: "413, then
    /// close"); discarding first lets the web server finish writing and read the answer.
    async fn refuse_too_large(&mut self, id: u16, status: u16) -> Result<(), Stop> {
        log::warn!(
            "conn {}: request {id} over the size limit, answering {status}",
            self.conn_id
        );
        self.stats.count_error(ProtocolErrorKind::TooLarge);
        self.incoming.remove(&id);
        let page = if status == 431 {
            "Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain\r\n\r\nRequest header fields too large\n"
        } else {
            "Status: 413 Content Too Large\r\nContent-Type: text/plain\r\n\r\nRequest body too large\n"
        };
        let mut out = Vec::new();
        record::push_stream(&mut out, record::STDOUT, id, page.as_bytes());
        record::push(&mut out, record::STDOUT, id, b"");
        record::push_end_request(&mut out, id, 0, record::REQUEST_COMPLETE);
        // Not closing via the writer: the reader still drains; it closes when done.
        self.send(out, false).await?;
        self.reject_drain = Some((id, 0, Instant::now()));
        Ok(())
    }

    async fn send(&self, bytes: Vec<u8>, close: bool) -> Result<(), Stop> {
        self.tx
            .send(Out { bytes, close })
            .await
            .map_err(|_| Stop::Closed)
    }
}

/// Writes queued responses in order, coalescing what is queued into one write; closes the
/// connection after an END_REQUEST without KEEP_CONN, on a write error or a write timeout.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut writer: W,
    mut rx: mpsc::Receiver<Out>,
    closed: Arc<Closed>,
    timeout: Duration,
    conn_id: u64,
) {
    let mut batch: Vec<u8> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.clear();
        let mut close = first.close;
        batch.extend_from_slice(&first.bytes);
        while !close && batch.len() < 256 * 1024 {
            match rx.try_recv() {
                Ok(more) => {
                    close = more.close;
                    batch.extend_from_slice(&more.bytes);
                }
                Err(_) => break,
            }
        }
        match tokio::time::timeout(timeout, writer.write_all(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                log::debug!("conn {conn_id}: write failed: {e}");
                break;
            }
            Err(_) => {
                log::warn!("conn {conn_id}: write timed out after {timeout:?}");
                break;
            }
        }
        if close {
            break;
        }
    }
    // Our side is done, however it ended: the peer sees the end of the stream (a FIN, not a
    // reset), and the reader drains what it still sends (`linger`).
    let _ = tokio::time::timeout(timeout, writer.shutdown()).await;
    closed.close();
    // Later responses of this connection fail with Error::Closed instead of queueing.
    rx.close();
}
