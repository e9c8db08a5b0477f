//! Counters of the FastCGI layer: connections and protocol errors, kept in atomics that the
//! accept loop and the connections bump and that the application reads when it likes (for
//! metrics, issue #8). Plain numbers only: how they are exported is the application's business.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A kind of protocol error: the web server (or whatever is on the socket) broke the FastCGI
/// spec or our limits. A fixed set, so a label made of it stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolErrorKind {
    /// A record whose version byte is not 1 (spec §3.3).
    Version,
    /// A BEGIN_REQUEST whose body is not 8 bytes (spec §5.1).
    BeginRequest,
    /// A name-value pair or its length running past its stream (spec §3.4).
    Pairs,
    /// STDIN before the end of PARAMS.
    StdinBeforeParams,
    /// A record type this responder does not know; answered with FCGI_UNKNOWN_TYPE (§4.2).
    UnknownType,
    /// A role other than RESPONDER; answered with FCGI_UNKNOWN_ROLE (§5.5).
    UnknownRole,
    /// A BEGIN_REQUEST for a request id still in use (§3.3); ignored.
    DuplicateRequestId,
    /// PARAMS or a body over the configured limits; answered 431 or 413, then closed.
    TooLarge,
    /// A peer that stalled mid-record or mid-request, or sent a request too slowly.
    Timeout,
}

impl ProtocolErrorKind {
    /// Every kind, in a fixed order.
    pub const ALL: [ProtocolErrorKind; 9] = [
        ProtocolErrorKind::Version,
        ProtocolErrorKind::BeginRequest,
        ProtocolErrorKind::Pairs,
        ProtocolErrorKind::StdinBeforeParams,
        ProtocolErrorKind::UnknownType,
        ProtocolErrorKind::UnknownRole,
        ProtocolErrorKind::DuplicateRequestId,
        ProtocolErrorKind::TooLarge,
        ProtocolErrorKind::Timeout,
    ];

    /// A short snake_case name, fit for a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolErrorKind::Version => "bad_version",
            ProtocolErrorKind::BeginRequest => "bad_begin_request",
            ProtocolErrorKind::Pairs => "bad_name_value_pair",
            ProtocolErrorKind::StdinBeforeParams => "stdin_before_params",
            ProtocolErrorKind::UnknownType => "unknown_record_type",
            ProtocolErrorKind::UnknownRole => "unknown_role",
            ProtocolErrorKind::DuplicateRequestId => "duplicate_request_id",
            ProtocolErrorKind::TooLarge => "too_large",
            ProtocolErrorKind::Timeout => "timeout",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ProtocolErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Connection and protocol-error counters of one server. Share it (`Arc`) between
/// [`serve`](super::serve) and whoever reads it; every method is a relaxed atomic operation.
#[derive(Debug, Default)]
pub struct Stats {
    open: AtomicU64,
    accepted: AtomicU64,
    errors: [AtomicU64; ProtocolErrorKind::ALL.len()],
}

impl Stats {
    /// Connections being served now.
    pub fn connections_open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections accepted since the start.
    pub fn connections_accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Protocol errors of `kind` since the start.
    pub fn protocol_errors(&self, kind: ProtocolErrorKind) -> u64 {
        self.errors[kind.index()].load(Ordering::Relaxed)
    }

    pub(super) fn count_error(&self, kind: ProtocolErrorKind) {
        self.errors[kind.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an accepted connection as open until the guard is dropped (also on a panic).
    pub(super) fn open_connection(self: &Arc<Self>) -> OpenConnection {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        self.open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(Arc::clone(self))
    }
}

/// One open connection in [`Stats`]; counted closed on drop.
pub(super) struct OpenConnection(Arc<Stats>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_counter_and_label() {
        let stats = Stats::default();
        for (i, kind) in ProtocolErrorKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind}: ALL is in declaration order");
            for _ in 0..=i {
                stats.count_error(*kind);
            }
        }
        for (i, kind) in ProtocolErrorKind::ALL.iter().enumerate() {
            assert_eq!(stats.protocol_errors(*kind), i as u64 + 1, "{kind}");
        }
        let mut labels: Vec<&str> = ProtocolErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(
            labels.len(),
            ProtocolErrorKind::ALL.len(),
            "labels are unique"
        );
    }

    #[test]
    fn a_connection_counts_as_open_until_its_guard_drops() {
        let stats = Arc::new(Stats::default());
        let first = stats.open_connection();
        let second = stats.open_connection();
        assert_eq!(
            (stats.connections_open(), stats.connections_accepted()),
            (2, 2)
        );
        drop(first);
        assert_eq!(
            (stats.connections_open(), stats.connections_accepted()),
            (1, 2)
        );
        drop(second);
        assert_eq!(
            (stats.connections_open(), stats.connections_accepted()),
            (0, 2)
        );
    }
}
