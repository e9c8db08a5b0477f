//! CGI params → an HTTP view of the request (method, path, body), and
//! `application/x-www-form-urlencoded` decoding.

use std::borrow::Cow;

use crate::fastcgi::Request;

/// The parts of a request the router looks at.
/// Borrowed from the FastCGI request where it can be: only a path put together from
/// `SCRIPT_NAME` + `PATH_INFO` is copied.
#[derive(Debug, Clone)]
pub struct HttpRequest<'a> {
    /// As sent (CGI says upper case); compare with [`HttpRequest::is`].
    pub method: &'a str,
    /// The path of `REQUEST_URI` without the query, as the client sent it (not decoded); or,
    /// when the web server sends no `REQUEST_URI` (RFC 3875 does not define it; flup, for
    /// one, does not send it), `SCRIPT_NAME` + `PATH_INFO`. Never `DOCUMENT_URI` or
    /// `SCRIPT_FILENAME`: one source per request, no fallback.
    pub path: Cow<'a, str>,
    pub content_type: &'a str,
    pub body: &'a [u8],
    /// The query string (after `?`, not decoded); empty if none.
    pub query: &'a str,
    /// Why the request's address cannot be routed (answered 400), if it cannot.
    pub bad_uri: Option<&'static str>,
    raw: &'a Request,
}

impl<'a> HttpRequest<'a> {
    /// Whether the method is `method` (case-insensitively).
    pub fn is(&self, method: &str) -> bool {
        self.method.eq_ignore_ascii_case(method)
    }

    /// A CGI param as the web server passes it (`REMOTE_ADDR`, `REMOTE_USER` …); `None` if
    /// absent or not UTF-8.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.raw.param(name)
    }

    /// A request header, as the web server passes it (`HTTP_<NAME>`); `None` if absent or
    /// not UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        let cgi: String = name
            .chars()
            .map(|c| {
                if c == '-' {
                    '_'
                } else {
                    c.to_ascii_uppercase()
                }
            })
            .collect();
        self.raw.param(&format!("HTTP_{cgi}"))
    }

    /// The value of `name` in the query string, percent-decoded; `None` if absent or broken.
    pub fn query_param(&self, name: &str) -> Option<String> {
        parse_urlencoded(self.query.as_bytes())
            .ok()?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// Reads the CGI params the web server sends.
    pub fn from_fastcgi(req: &'a Request) -> HttpRequest<'a> {
        let (path, bad_uri) = match req.param_bytes("REQUEST_URI") {
            Some(raw) => match std::str::from_utf8(raw) {
                // No route takes a query string; the path is what comes before it.
                Ok(uri) => (
                    Cow::Borrowed(uri.split_once('?').map_or(uri, |(p, _)| p)),
                    None,
                ),
                Err(_) => (
                    Cow::Borrowed(""),
                    Some("the request's address (REQUEST_URI) is not UTF-8"),
                ),
            },
            None => {
                let part = |name| match req.param_bytes(name) {
                    None => Ok(""),
                    Some(raw) => std::str::from_utf8(raw).map_err(|_| ()),
                };
                match (part("SCRIPT_NAME"), part("PATH_INFO")) {
                    (Ok(script), Ok(info)) if script.is_empty() && info.is_empty() => {
                        (Cow::Borrowed("/"), None)
                    }
                    (Ok(script), Ok("")) => (Cow::Borrowed(script), None),
                    (Ok(""), Ok(info)) => (Cow::Borrowed(info), None),
                    (Ok(script), Ok(info)) => (Cow::Owned(format!("{script}{info}")), None),
                    _ => (
                        Cow::Borrowed(""),
                        Some("the request's address (SCRIPT_NAME, PATH_INFO) is not UTF-8"),
                    ),
                }
            }
        };
        // With `REQUEST_URI`, its own query, so that path and query come from one source.
        let query = match req.param("REQUEST_URI") {
            Some(uri) => uri.split_once('?').map_or("", |(_, q)| q),
            None => req.param("QUERY_STRING").unwrap_or(""),
        };
        HttpRequest {
            method: req.param("REQUEST_METHOD").unwrap_or("GET"),
            path,
            content_type: req.param("CONTENT_TYPE").unwrap_or(""),
            body: req.body(),
            query,
            bad_uri,
            raw: req,
        }
    }

    /// Whether a browser says another site made it send this request (CSRF). Fetch
    /// metadata decides where the browser sends it: `Sec-Fetch-Site` other than
    /// `same-origin` or `none` (typed or bookmarked) is another site. Without it, an `Origin`
    /// that is not the scheme, host and port this request came in on (`REQUEST_SCHEME` or
    /// `HTTPS`, `HTTP_HOST` without its port, `SERVER_PORT`, as nginx's `fastcgi_params`
    /// pass them) is. Browsers send `Origin: null` for a form posted from a page whose
    /// `Referrer-Policy` is `no-referrer` (ours), so `null` is only trusted next to fetch
    /// metadata. A request with neither header (curl, a backend) is not cross-site.
    pub fn is_cross_site(&self) -> bool {
        if let Some(site) = self.header("Sec-Fetch-Site") {
            let site = site.trim();
            return !(site.eq_ignore_ascii_case("same-origin")
                || site.eq_ignore_ascii_case("none"));
        }
        match self.header("Origin").map(str::trim) {
            None => false,
            Some(origin) => self
                .own_origin()
                .is_none_or(|own| !origin.eq_ignore_ascii_case(&own)),
        }
    }

    /// `scheme://host[:port]` of this request as the web server saw it; `None` without a
    /// host.
    fn own_origin(&self) -> Option<String> {
        let https = self
            .raw
            .param("HTTPS")
            .is_some_and(|v| v.eq_ignore_ascii_case("on"));
        let scheme = match self.raw.param("REQUEST_SCHEME") {
            Some(s) if !s.is_empty() => s.to_ascii_lowercase(),
            _ if https => "https".to_owned(),
            _ => "http".to_owned(),
        };
        let host = self
            .header("Host")
            .or_else(|| self.raw.param("SERVER_NAME"))
            .filter(|h| !h.is_empty())?;
        // `[::1]:8080`, `example.com:8080` → the host alone; the port is SERVER_PORT's.
        let host = match host.rfind(':') {
            Some(i) if !host[i..].contains(']') => &host[..i],
            _ => host,
        };
        let port = self.raw.param("SERVER_PORT").unwrap_or("");
        let default = (scheme == "https" && port == "443") || (scheme == "http" && port == "80");
        Some(if port.is_empty() || default {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{host}:{port}")
        })
    }

    /// Whether the body is declared as JSON (`application/json`, parameters allowed).
    pub fn is_json(&self) -> bool {
        self.content_type
            .split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
    }

    /// Whether the body is declared as an urlencoded form (parameters such as charset allowed).
    pub fn is_urlencoded(&self) -> bool {
        self.content_type.split(';').next().is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    }
}

/// Why a form body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// A decoded value that is not UTF-8.
    NotUtf8,
}

/// Decodes `a=1&b=x+y%21` into pairs, in order.
///
/// # Errors
/// [`FormError`] for a broken `%` escape or a value that is not UTF-8.
pub fn parse_urlencoded(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let mut out = Vec::new();
    for part in body.split(|b| *b == b'&') {
        if part.is_empty() {
            continue;
        }
        let (name, value) = match part.iter().position(|b| *b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        out.push((decode_component(name)?, decode_component(value)?));
    }
    Ok(out)
}

fn decode_component(raw: &[u8]) -> Result<String, FormError> {
    let mut bytes = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hi = raw.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                let lo = raw.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                match (hi, lo) {
                    (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                    _ => return Err(FormError::BadEscape),
                }
                i += 2;
            }
            _ => bytes.push(b),
        }
        i += 1;
    }
    String::from_utf8(bytes).map_err(|_| FormError::NotUtf8)
}

/// Percent-encodes `s` for RFC 5987/6266 `filename*` (attr-char stays, the rest is `%XX`).
pub fn encode_rfc5987(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::type_complexity)] // table-driven cases spell out their types
mod tests {
    use super::*;

    #[test]
    fn urlencoded_table() {
        let cases: Vec<(&[u8], Result<Vec<(&str, &str)>, FormError>)> = vec![
            (b"a=1&b=2", Ok(vec![("a", "1"), ("b", "2")])),
            (b"t=x+y%21", Ok(vec![("t", "x y!")])),
            (b"t=%CE%B1%CE%B2", Ok(vec![("t", "αβ")])),
            (b"&&a=&b", Ok(vec![("a", ""), ("b", "")])),
            (b"a=%zz", Err(FormError::BadEscape)),
            (b"a=%4", Err(FormError::BadEscape)),
            (b"a=%ff", Err(FormError::NotUtf8)),
            (b"", Ok(vec![])),
        ];
        for (input, want) in cases {
            let got = parse_urlencoded(input);
            let want: Result<Vec<(String, String)>, FormError> =
                want.map(|v| v.into_iter().map(|(a, b)| (a.into(), b.into())).collect());
            assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn rfc5987_table() {
        assert_eq!(encode_rfc5987("Report 1.pdf"), "Report%201.pdf");
        assert_eq!(encode_rfc5987("Ω"), "%CE%A9");
        assert_eq!(encode_rfc5987("a\"b;c"), "a%22b%3Bc");
    }
}
