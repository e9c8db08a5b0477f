//! The pages' stylesheet and the wait page's script, compiled in and served by the worker
//! under names that carry a digest of their content (`/static/app.<digest>.css`), so that
//! they can be cached for a year and a new version is a new URL. Files of their own (not
//! inline) so that the Content-Security-Policy needs no `'unsafe-inline'` (issue #11).

use std::sync::LazyLock;

/// One file under `/static/`.
pub struct Asset {
    /// `app.1a2b3c4d5e6f7a8b.css`: stem, digest, extension.
    pub name: String,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

fn asset(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Asset {
    let digest = crate::jobs::digest(&[body.as_bytes()]);
    Asset {
        name: format!("{stem}.{}.{ext}", &digest[..16]),
        content_type,
        body: body.as_bytes(),
    }
}

static CSS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "app",
        "css",
        "text/css; charset=utf-8",
        include_str!("../../templates/static/app.css"),
    )
});

static WAIT_JS: LazyLock<Asset> = LazyLock::new(|| {
    asset(
        "wait",
        "js",
        "text/javascript; charset=utf-8",
        include_str!("../../templates/static/wait.js"),
    )
});

/// The stylesheet's URL, for `<link>`.
pub fn css_href() -> String {
    super::url(&format!("/static/{}", CSS.name))
}

/// The wait page's script's URL, for `<script src>`.
pub fn wait_js_src() -> String {
    super::url(&format!("/static/{}", WAIT_JS.name))
}

/// The asset named `name` (the last segment of `/static/<name>`), if there is one.
pub fn get(name: &str) -> Option<&'static Asset> {
    [&*CSS, &*WAIT_JS].into_iter().find(|a| a.name == name)
}

/// Sent with every answer, whatever the front end (issue #11): no script but our own files,
/// no styles but ours, no framing, no plugins, forms post only here; no MIME sniffing; no
/// Referer (a job's URL is all it takes to fetch its PDF, so it must not leak to other
/// sites).
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asset_names_follow_their_content_and_resolve() {
        assert!(css_href().starts_with("/static/app.") && css_href().ends_with(".css"));
        assert!(wait_js_src().starts_with("/static/wait.") && wait_js_src().ends_with(".js"));
        let css = get(css_href().trim_start_matches("/static/")).expect("css");
        assert_eq!(css.content_type, "text/css; charset=utf-8");
        assert!(get("app.css").is_none(), "only the digest name is served");
        assert!(get("../Cargo.toml").is_none());
    }
}
