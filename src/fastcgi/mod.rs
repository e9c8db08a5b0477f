//! A FastCGI 1.0 responder: records and bytes only.
//!
//! This module owns the wire protocol (record codec, name-value pairs), connections
//! (keep-conn, multiplexing, GET_VALUES, UNKNOWN_TYPE, roles, ABORT_REQUEST), the response
//! writer whose [`Response::finish`] sends FCGI_END_REQUEST exactly once and frees the
//! connection while the caller keeps working, limits and timeouts, and listening on a unix
//! socket, TCP, or a socket passed by systemd. [`Stats`] counts connections and protocol
//! errors for the application to export.
//!
//! It must not import anything from the rest of the crate: it could become its own crate
//! unchanged. The application plugs in through [`Handler`].

mod conn;
pub mod pairs;
pub mod record;
mod request;
mod server;
mod stats;

use std::fmt;
use std::future::Future;
use std::time::Duration;

pub use request::{Abort, Request, Response, reason};
pub use server::{ListenAddr, Listener, serve};
pub use stats::{ProtocolErrorKind, Stats};

/// The application side: called once per responder request, in its own task.
///
/// The handler owns the [`Response`]; calling [`Response::finish`] ends the request at once,
/// and the handler may go on working afterwards (or spawn work) without holding anything of
/// the connection.
pub trait Handler: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request, response: Response) -> impl Future<Output = ()> + Send;
}

/// Limits and timeouts; every one has a default sized for a worker behind nginx.
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections served at once; the next accept waits for a free slot. Advertised as
    /// FCGI_MAX_CONNS.
    pub max_conns: usize,
    /// Requests in progress on one connection (we multiplex); one more is answered
    /// FCGI_OVERLOADED. FCGI_MAX_REQS advertises `max_conns * max_requests_per_conn`.
    pub max_requests_per_conn: usize,
    /// Total bytes of one request's PARAMS stream; over it: 431 and close.
    pub max_params_bytes: usize,
    /// Bytes of one request's body (STDIN); over it, or a larger CONTENT_LENGTH: 413 and close.
    pub max_body_bytes: usize,
    /// How long a peer may stall in the middle of a record or a request (per read, and from a
    /// record's first byte to its last).
    pub read_timeout: Duration,
    /// How long one request may take to arrive whole, from BEGIN_REQUEST to the end of STDIN.
    pub request_timeout: Duration,
    /// How long a connection may sit idle between requests.
    pub idle_timeout: Duration,
    /// How long one write to the peer may take.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_conns: 8192,
            max_requests_per_conn: 16,
            max_params_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(30),
        }
    }
}

impl Config {
    /// The answer to one FCGI_GET_VALUES name (spec §4.1), or `None` for names we do not know
    /// (those are left out of the result, as the spec asks).
    pub fn value(&self, name: &[u8]) -> Option<String> {
        match name {
            b"FCGI_MAX_CONNS" => Some(self.max_conns.to_string()),
            b"FCGI_MAX_REQS" => Some(
                self.max_conns
                    .saturating_mul(self.max_requests_per_conn)
                    .to_string(),
            ),
            b"FCGI_MPXS_CONNS" => Some("1".to_string()),
            _ => None,
        }
    }
}

/// What a handler's writes can fail with. Socket and protocol failures never reach a
/// handler as such: the connection logs them once and closes, and every response on it then
/// sees [`Error::Closed`].
#[derive(Debug)]
pub enum Error {
    /// The connection is gone: the request was aborted or the web server went away.
    Closed,
    /// A response header name or value that would break the CGI head.
    InvalidHeader(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("connection closed"),
            Error::InvalidHeader(name) => write!(f, "invalid response header {name:?}"),
        }
    }
}

impl std::error::Error for Error {}
