//! Listening (unix socket, TCP, or a socket passed by systemd) and the accept loop with its
//! connection limit and graceful shutdown.

use std::fmt;
use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};

use super::{Config, Handler, Stats, conn};

/// Where to listen: `unix:PATH` or `tcp:HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Tcp(String),
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("unix: needs a socket path".into());
            }
            Ok(ListenAddr::Unix(PathBuf::from(path)))
        } else if let Some(addr) = s.strip_prefix("tcp:") {
            if !addr.contains(':') {
                return Err(format!("tcp:{addr} needs HOST:PORT"));
            }
            Ok(ListenAddr::Tcp(addr.to_string()))
        } else {
            Err(format!("{s:?} is neither unix:PATH nor tcp:HOST:PORT"))
        }
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            ListenAddr::Tcp(a) => write!(f, "tcp:{a}"),
        }
    }
}

/// A bound listening socket.
#[derive(Debug)]
pub enum Listener {
    /// A unix socket; `path` is removed on drop when we created it.
    Unix {
        listener: UnixListener,
        path: Option<PathBuf>,
    },
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `addr`. For a unix socket, a stale socket file left by a dead process is replaced
    /// (nothing answers on it), a live one is an error, and `mode` is applied to the new file.
    ///
    /// # Errors
    /// The bind error; `AddrInUse` when another process serves the unix socket; or
    /// `AlreadyExists` when the path is not a socket (we never delete other files).
    pub async fn bind(addr: &ListenAddr, mode: u32) -> io::Result<Listener> {
        match addr {
            ListenAddr::Tcp(a) => Ok(Listener::Tcp(TcpListener::bind(a).await?)),
            ListenAddr::Unix(path) => {
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path)?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
                Ok(Listener::Unix {
                    listener,
                    path: Some(path.clone()),
                })
            }
        }
    }

    /// The socket systemd passed (LISTEN_PID is us, LISTEN_FDS ≥ 1: fd 3), if any.
    ///
    /// # Errors
    /// When fd 3 is announced but is not a listening socket we can use.
    pub fn from_systemd() -> io::Result<Option<Listener>> {
        let pid_matches = std::env::var("LISTEN_PID")
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok())
            .is_some_and(|p| p == std::process::id());
        let fds = std::env::var("LISTEN_FDS")
            .ok()
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if !pid_matches || fds == 0 {
            return Ok(None);
        }
        systemd_fd().map(Some)
    }

    /// A printable name for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Unix { listener, path } => match path {
                Some(p) => format!("unix:{}", p.display()),
                None => format!("unix:{:?} (from systemd)", listener.local_addr().ok()),
            },
            Listener::Tcp(l) => match l.local_addr() {
                Ok(a) => format!("tcp:{a}"),
                Err(_) => "tcp:?".into(),
            },
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Listener::Unix { path: Some(p), .. } = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn remove_stale_socket(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket", path.display()),
        ));
    }
    match tokio::net::UnixStream::connect(path).await {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another process is serving {}", path.display()),
        )),
        Err(_) => {
            log::info!("removing stale socket {}", path.display());
            std::fs::remove_file(path)
        }
    }
}

/// Takes ownership of fd 3 (`SD_LISTEN_FDS_START`), once per process.
fn systemd_fd() -> io::Result<Listener> {
    use std::os::fd::{FromRawFd, OwnedFd};

    static TAKEN: AtomicBool = AtomicBool::new(false);
    const FD: i32 = 3;
    let is_socket = std::fs::metadata(format!("/proc/self/fd/{FD}"))
        .map(|m| m.file_type().is_socket())
        .unwrap_or(false);
    if !is_socket {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "LISTEN_FDS is set but fd 3 is not a socket",
        ));
    }
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the systemd socket was already taken",
        ));
    }
    // SAFETY: systemd's socket activation protocol passes fd 3 open to this process
    // (LISTEN_PID was checked by the caller); /proc confirmed it is a socket, and TAKEN makes
    // this the only owner. The whole crate denies unsafe code; this is its one exception.
    #[allow(unsafe_code)]
    let fd = unsafe { OwnedFd::from_raw_fd(FD) };
    // Try TCP first: getsockname on a unix socket gives an address std rejects as TCP.
    let tcp = std::net::TcpListener::from(fd);
    if tcp.local_addr().is_ok() {
        tcp.set_nonblocking(true)?;
        return Ok(Listener::Tcp(TcpListener::from_std(tcp)?));
    }
    let unix = std::os::unix::net::UnixListener::from(OwnedFd::from(tcp));
    unix.set_nonblocking(true)?;
    Ok(Listener::Unix {
        listener: UnixListener::from_std(unix)?,
        path: None,
    })
}

/// Accepts connections until `shutdown` resolves, serving each in its own task; then stops
/// accepting and waits up to `grace` for open connections to finish their requests.
///
/// At most `config.max_conns` connections are served: a permit is taken *before* accept, so
/// extra clients wait in the kernel backlog instead of being accepted and starved. Accept
/// errors (EMFILE, ECONNABORTED) are logged and retried with a back-off; they never end the
/// server. `stats` counts the connections and every protocol error on them.
///
/// # Errors
/// None today; the signature leaves room for fatal listener errors.
pub async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    config: Config,
    stats: Arc<Stats>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = Arc::new(config);
    let permits = Arc::new(Semaphore::new(config.max_conns));
    let (stop_tx, stop_rx) = watch::channel(false);
    let next_id = AtomicU64::new(1);
    tokio::pin!(shutdown);
    log::info!("listening on {}", listener.describe());
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = &mut shutdown => break,
        };
        match accepted {
            Ok(stream) => {
                backoff = Duration::from_millis(5);
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let handler = handler.clone();
                let config = config.clone();
                let stop = stop_rx.clone();
                let open = stats.open_connection();
                let stats = Arc::clone(&stats);
                tokio::spawn(async move {
                    match stream {
                        Stream::Unix(s) => conn::run(s, id, handler, config, stats, stop).await,
                        Stream::Tcp(s) => conn::run(s, id, handler, config, stats, stop).await,
                    }
                    drop(open);
                    drop(permit);
                });
            }
            Err(e) => {
                log::warn!("accept failed: {e}; retrying in {backoff:?}");
                drop(permit);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    log::info!("stopped accepting; waiting up to {grace:?} for open connections");
    drop(listener);
    stop_tx.send_replace(true);
    let all = u32::try_from(config.max_conns).unwrap_or(u32::MAX);
    match tokio::time::timeout(grace, permits.acquire_many(all)).await {
        Ok(_) => log::info!("all connections closed"),
        Err(_) => log::warn!("shutdown grace of {grace:?} passed with connections still open"),
    }
    Ok(())
}

enum Stream {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(listener: &Listener) -> io::Result<Stream> {
    match listener {
        Listener::Unix { listener, .. } => listener.accept().await.map(|(s, _)| Stream::Unix(s)),
        Listener::Tcp(l) => {
            let (s, _) = l.accept().await?;
            // FastCGI responses are written in whole batches; Nagle would only add latency.
            let _ = s.set_nodelay(true);
            Ok(Stream::Tcp(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addr_table() {
        let cases = [
            (
                "unix:/run/x.sock",
                Ok(ListenAddr::Unix("/run/x.sock".into())),
            ),
            (
                "tcp:127.0.0.1:9000",
                Ok(ListenAddr::Tcp("127.0.0.1:9000".into())),
            ),
            ("unix:", Err(())),
            ("tcp:9000", Err(())),
            ("/run/x.sock", Err(())),
            ("", Err(())),
        ];
        for (input, want) in cases {
            let got = input.parse::<ListenAddr>().map_err(|_| ());
            assert_eq!(got, want, "input {input:?}");
        }
    }
}
