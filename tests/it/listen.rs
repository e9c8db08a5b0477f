//! Listening: a stale unix socket file is replaced, a live one is not stolen, TCP works, and a
//! socket passed by systemd (LISTEN_FDS/LISTEN_PID) takes precedence over `--listen`.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::util::*;

fn healthz_over(stream: &mut (impl Read + Write)) -> u16 {
    let mut out = begin(1, 1, false);
    out.extend(record(PARAMS, 1, &cgi_params("GET", "/healthz", 0, "")));
    out.extend(record(PARAMS, 1, b""));
    out.extend(record(STDIN, 1, b""));
    stream.write_all(&out).expect("send");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    if text.contains("Status: 200") { 200 } else { 0 }
}

/// Runs `pdfworker serve` on `socket` to its end; used where it must refuse to start.
fn serve_expecting_failure(socket: &Path, data: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pdfworker"))
        .arg("serve")
        .arg("--listen")
        .arg(format!("unix:{}", socket.display()))
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .expect("run pdfworker")
}

#[test]
fn a_stale_socket_file_is_replaced_and_the_mode_applied() {
    let dir = TempDir::new("stale");
    let sock = dir.0.join("w.sock");
    // A socket file nobody listens on, as a killed worker leaves behind.
    drop(std::os::unix::net::UnixListener::bind(&sock).expect("bind"));
    assert!(sock.exists());
    let mut srv = TestServer::start(&[
        "--listen",
        &format!("unix:{}", sock.display()),
        "--socket-mode",
        "0640",
    ]);
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "socket mode");
    let mut c = FcgiConn::connect(&sock);
    assert_eq!(c.get(1, "/healthz").status(), 200);
    // A second worker must not steal a live socket.
    let out = serve_expecting_failure(&sock, &dir.0.join("data2"));
    assert!(
        !out.status.success(),
        "second worker must refuse a live socket"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another process is serving"),
        "clear error: {err}"
    );
    assert_eq!(
        c.get(1, "/healthz").status(),
        200,
        "the first worker still serves"
    );
    srv.terminate();
}

#[test]
fn a_regular_file_in_the_socket_path_is_not_deleted() {
    let dir = TempDir::new("notsock");
    let path = dir.0.join("important.txt");
    std::fs::write(&path, b"keep me").expect("write");
    let out = serve_expecting_failure(&path, &dir.0.join("data"));
    assert!(!out.status.success());
    assert_eq!(std::fs::read(&path).expect("still there"), b"keep me");
}

#[test]
fn tcp_listening_works() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let _srv = TestServer::start(&["--listen", &format!("tcp:127.0.0.1:{port}")]);
    let mut s = wait_for(Duration::from_secs(10), "the TCP listener", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(healthz_over(&mut s), 200);
}

#[test]
fn a_socket_passed_by_systemd_takes_precedence() {
    let dir = TempDir::new("sd");
    let sock = dir.0.join("activated.sock");
    let unused = dir.0.join("unused.sock");
    // systemd-socket-activate binds the socket, passes it as fd 3 with LISTEN_FDS/LISTEN_PID
    // set for the worker, as pdfworker@.socket does.
    let mut child = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(env!("CARGO_BIN_EXE_pdfworker"))
        .args([
            "serve",
            "--listen",
            &format!("unix:{}", unused.display()),
            "--data-dir",
        ])
        .arg(dir.0.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate (package systemd; ./deploy/test installs it)");
    let mut s = wait_for(Duration::from_secs(10), "the activated socket", || {
        std::os::unix::net::UnixStream::connect(&sock).ok()
    });
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let status = healthz_over(&mut s);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "answered on the socket systemd passed");
    assert!(
        !unused.exists(),
        "--listen is ignored when systemd passes a socket"
    );
}
