//! `--send-file body` (issue #10): the PDF through the worker itself, for front ends that
//! cannot send a file (cgi-fcgi, a proxy without X-Sendfile). Memory stays bounded: the file
//! is read and written in [`CHUNK`]-sized pieces. `HEAD`, `If-None-Match` (ETag from size and
//! modification time) and one `Range` (`bytes=a-b`, `a-`, `-n`; `If-Range` honoured) work as
//! browsers and download managers expect; several ranges get the whole file.

use std::io::SeekFrom;
use std::time::UNIX_EPOCH;

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::http::HttpRequest;
use super::{App, Reply, assets};
use crate::fastcgi::Response;
use crate::jobs::JobId;

/// Bytes read from the file and written to the connection at a time.
const CHUNK: usize = 64 * 1024;

/// What to send of a file of `size` bytes for a `Range` header.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Whole,
    /// Inclusive byte offsets.
    Range(u64, u64),
    Unsatisfiable,
}

fn part(range: Option<&str>, size: u64) -> Part {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Part::Whole;
    };
    if spec.contains(',') {
        return Part::Whole;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Part::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    match (a.parse::<u64>().ok(), b.parse::<u64>().ok()) {
        // `-n`: the last n bytes.
        (None, Some(n)) if a.is_empty() => {
            if n == 0 || size == 0 {
                Part::Unsatisfiable
            } else {
                Part::Range(size.saturating_sub(n), size - 1)
            }
        }
        (Some(start), None) if b.is_empty() => {
            if start >= size {
                Part::Unsatisfiable
            } else {
                Part::Range(start, size - 1)
            }
        }
        (Some(start), Some(end)) if start <= end => {
            if start >= size {
                Part::Unsatisfiable
            } else {
                Part::Range(start, end.min(size - 1))
            }
        }
        _ => Part::Whole,
    }
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (RFC 9110 §5.6.7).
fn http_date(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = super::pages::Civil::of(secs);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[c.weekday_from_thursday as usize],
        c.day,
        MONTHS[(c.month as usize).saturating_sub(1) % 12],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

impl App {
    /// Sends job `id`'s PDF as the response body, with `reply`'s headers (type, disposition,
    /// cache) less the hand-over header. Returns the status sent.
    pub(super) async fn send_body(
        &self,
        id: JobId,
        reply: Reply,
        req: &HttpRequest<'_>,
        mut response: Response,
    ) -> u16 {
        let path = self.files_dir.join(format!("{id}.pdf"));
        let opened = tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::OpenOptionsExt;
            let file = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Err(std::io::Error::other("not a regular file"));
            }
            Ok((file, meta))
        })
        .await;
        let (file, meta) = match opened {
            Ok(Ok(found)) => found,
            Ok(Err(e)) => {
                log::warn!("job {id}: its PDF cannot be opened: {e}");
                let _ = super::send(super::AppError::NotFound.reply(), response).await;
                return 404;
            }
            Err(e) => {
                let reply = super::AppError::Internal(format!("job {id}: {e}")).reply();
                let _ = super::send(reply, response).await;
                return 500;
            }
        };
        let size = meta.len();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        let etag = format!("\"{size:x}-{:x}\"", mtime.as_nanos());
        let mut headers: Vec<(&str, String)> = reply
            .headers
            .into_iter()
            .filter(|(n, _)| *n != "X-Accel-Redirect" && *n != "X-Sendfile")
            .collect();
        headers.push(("ETag", etag.clone()));
        headers.push(("Last-Modified", http_date(mtime.as_secs())));
        headers.push(("Accept-Ranges", "bytes".into()));
        let matches = |v: &str| v.split(',').any(|t| t.trim() == etag || t.trim() == "*");
        let not_modified = req.header("If-None-Match").is_some_and(matches);
        let range = req
            .header("Range")
            .filter(|_| req.header("If-Range").is_none_or(|t| t.trim() == etag));
        let (status, start, len) = if not_modified {
            (304, 0, 0)
        } else {
            match part(range, size) {
                Part::Whole => (200, 0, size),
                Part::Range(a, b) => {
                    headers.push(("Content-Range", format!("bytes {a}-{b}/{size}")));
                    (206, a, b - a + 1)
                }
                Part::Unsatisfiable => {
                    headers.push(("Content-Range", format!("bytes */{size}")));
                    (416, 0, 0)
                }
            }
        };
        if status != 304 {
            headers.push(("Content-Length", len.to_string()));
        }
        let mut head: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        head.extend(assets::SECURITY_HEADERS);
        if response.write_head(status, &head).is_err() {
            return status;
        }
        if req.is("HEAD") || len == 0 {
            let _ = response.finish().await;
            return status;
        }
        let mut file = tokio::fs::File::from_std(file);
        if file.seek(SeekFrom::Start(start)).await.is_err() {
            return status;
        }
        let mut left = len;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 {
            let want = usize::try_from(left.min(CHUNK as u64)).unwrap_or(CHUNK);
            let got = match file.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if response.write(&buf[..got]).await.is_err() {
                // The client went away; nothing to clean up.
                return status;
            }
            left -= got as u64;
        }
        let _ = response.finish().await;
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_single_byte_ranges_or_the_whole_file() {
        let cases = [
            (None, Part::Whole),
            (Some("bytes=0-99"), Part::Range(0, 99)),
            (Some("bytes=100-"), Part::Range(100, 999)),
            (Some("bytes=-50"), Part::Range(950, 999)),
            (Some("bytes=-5000"), Part::Range(0, 999)),
            (Some("bytes=900-5000"), Part::Range(900, 999)),
            (Some("bytes=1000-"), Part::Unsatisfiable),
            (Some("bytes=-0"), Part::Unsatisfiable),
            (Some("bytes=5-1"), Part::Whole),
            (Some("bytes=0-1,5-6"), Part::Whole),
            (Some("items=0-1"), Part::Whole),
            (Some("bytes=x-y"), Part::Whole),
        ];
        for (range, want) in cases {
            assert_eq!(part(range, 1000), want, "{range:?}");
        }
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    }
}
