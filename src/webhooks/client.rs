//! One webhook POST over HTTP/1.1, plain or TLS (rustls with the Mozilla roots).
//!
//! Written here rather than taken from an HTTP client crate because the request must go to
//! the address that was checked against the allow list — resolved once, checked, connected
//! to directly, so a second DNS answer cannot point it elsewhere — and must never follow a
//! redirect; what it needs of HTTP is one request with a length and the status line and
//! `Retry-After` of the answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{AllowList, Target};

/// How an attempt went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this status.
    Status {
        status: u16,
        /// Its `Retry-After`, in seconds form.
        retry_after: Option<Duration>,
    },
    /// Not sent: the destination is not allowed (never retried).
    Refused(String),
    /// No answer: connection error, TLS error, timeout, a broken answer (retried).
    Failed(String),
}

/// The most of an answer's head that is read.
const MAX_HEAD: usize = 16 * 1024;

/// POSTs `body` as JSON to `target`, within `timeout` in all.
pub async fn post(
    target: &Target,
    allow: &AllowList,
    headers: &[(&str, String)],
    body: &[u8],
    timeout: Duration,
) -> Answer {
    match tokio::time::timeout(timeout, post_within(target, allow, headers, body)).await {
        Ok(answer) => answer,
        Err(_) => Answer::Failed(format!("no answer within {} s", timeout.as_secs())),
    }
}

async fn post_within(
    target: &Target,
    allow: &AllowList,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let addrs = match resolve(target, allow).await {
        Ok(addrs) => addrs,
        Err(answer) => return answer,
    };
    let mut last = String::new();
    let mut tcp = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                tcp = Some(stream);
                break;
            }
            Err(e) => last = format!("{addr}: {e}"),
        }
    }
    let Some(tcp) = tcp else {
        return Answer::Failed(format!("cannot connect: {last}"));
    };
    let _ = tcp.set_nodelay(true);
    let request = request_bytes(target, headers, body);
    if target.https {
        let name = match rustls::pki_types::ServerName::try_from(target.host.clone()) {
            Ok(name) => name,
            Err(e) => return Answer::Refused(format!("{}: {e}", target.host)),
        };
        let connector = tokio_rustls::TlsConnector::from(tls_config());
        match connector.connect(name, tcp).await {
            Ok(tls) => exchange(tls, &request).await,
            Err(e) => Answer::Failed(format!("TLS: {e}")),
        }
    } else {
        exchange(tcp, &request).await
    }
}

/// The addresses to try: the literal, or every address the name resolves to — all of which
/// must be allowed, or none is tried.
async fn resolve(target: &Target, allow: &AllowList) -> Result<Vec<SocketAddr>, Answer> {
    if let Ok(ip) = target.host.parse::<IpAddr>() {
        if !allow.allows_addr(ip, false) {
            return Err(Answer::Refused(format!("{ip} is not allowed")));
        }
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    if !allow.allows_name(&target.host) {
        return Err(Answer::Refused(format!(
            "{} is not in --webhook-allow",
            target.host
        )));
    }
    let found: Vec<SocketAddr> =
        match tokio::net::lookup_host((target.host.as_str(), target.port)).await {
            Ok(found) => found.collect(),
            Err(e) => return Err(Answer::Failed(format!("{}: {e}", target.host))),
        };
    if let Some(bad) = found.iter().find(|a| !allow.allows_addr(a.ip(), true)) {
        return Err(Answer::Refused(format!(
            "{} resolves to {}, a loopback, private or link-local address that \
             --webhook-allow does not list",
            target.host,
            bad.ip()
        )));
    }
    if found.is_empty() {
        return Err(Answer::Failed(format!("{}: no address", target.host)));
    }
    Ok(found)
}

fn request_bytes(target: &Target, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let default_port = if target.https { 443 } else { 80 };
    let host = match (target.host.parse::<IpAddr>(), target.port == default_port) {
        (Ok(IpAddr::V6(v6)), true) => format!("[{v6}]"),
        (Ok(IpAddr::V6(v6)), false) => format!("[{v6}]:{}", target.port),
        (_, true) => target.host.clone(),
        (_, false) => format!("{}:{}", target.host, target.port),
    };
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: pdfworker/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        target.path,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    for (name, value) in headers {
        // Our own values (hex, uuids): no line breaks can be in them, but never send one.
        if !value.contains(['\r', '\n']) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &[u8]) -> Answer {
    if let Err(e) = stream.write_all(request).await {
        return Answer::Failed(format!("sending: {e}"));
    }
    if let Err(e) = stream.flush().await {
        return Answer::Failed(format!("sending: {e}"));
    }
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 2048];
    loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            head.truncate(end);
            break;
        }
        if head.len() > MAX_HEAD {
            return Answer::Failed("the answer's head is too long".into());
        }
        match stream.read(&mut buf).await {
            Ok(0) if head.is_empty() => {
                return Answer::Failed("the receiver closed without answering".into());
            }
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Answer::Failed(format!("reading the answer: {e}")),
        }
    }
    parse_head(&head)
}

/// The status and `Retry-After` (seconds form) of an answer's head.
fn parse_head(head: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.split(' ');
    let status = match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(s))) if v.starts_with("HTTP/1.") && (100..600).contains(&s) => s,
        _ => {
            let shown: String = status_line.chars().take(80).collect();
            return Answer::Failed(format!("not an HTTP answer: {shown:?}"));
        }
    };
    let retry_after = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Answer::Status {
        status,
        retry_after,
    }
}

/// TLS with the Mozilla root certificates (webpki-roots), built once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    Arc::clone(CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        // Deprecated only because ring has no post-quantum key exchange (aws-lc-rs has, and
        // needs cmake to build); classical TLS 1.2/1.3 is what webhook receivers speak.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_heads_give_status_and_retry_after() {
        let cases: &[(&[u8], Answer)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 0",
                Answer::Status {
                    status: 200,
                    retry_after: None,
                },
            ),
            (
                b"HTTP/1.0 429 Too Many\r\nretry-after:  7\r\nX: y",
                Answer::Status {
                    status: 429,
                    retry_after: Some(Duration::from_secs(7)),
                },
            ),
            (
                b"HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT",
                Answer::Status {
                    status: 503,
                    retry_after: None,
                },
            ),
        ];
        for (head, want) in cases {
            assert_eq!(&parse_head(head), want);
        }
        for bad in [
            &b"SSH-2.0-OpenSSH"[..],
            b"HTTP/1.1 abc",
            b"HTTP/1.1 999 x",
            b"",
        ] {
            assert!(matches!(parse_head(bad), Answer::Failed(_)), "{bad:?}");
        }
    }

    #[test]
    fn requests_name_the_host_and_length_and_carry_the_headers() {
        let target = Target {
            https: false,
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/hook?a=1".into(),
        };
        let bytes = request_bytes(&target, &[("Pdfworker-Event", "e1".into())], b"{}");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(
            text.starts_with("POST /hook?a=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Length: 2\r\n"), "{text}");
        assert!(text.contains("Pdfworker-Event: e1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{}"), "{text}");
    }
}
