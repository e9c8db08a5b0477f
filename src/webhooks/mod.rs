//! Webhooks (issue #9): when a job with a `callback_url` ends — done, failed or cancelled —
//! its event is POSTed there, signed, and retried until a receiver answers 2xx or the retry
//! time runs out. At least once: the pending delivery lives in the job record (and a note in
//! `<data>/deliveries/`), so a worker killed before or during a delivery leaves it to the next
//! worker that looks.
//!
//! - Signature: `Pdfworker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`
//!   with the secret from `--webhook-secret-file`.
//! - Destinations (`--webhook-allow`): a host name must be listed (when the list is not
//!   empty), and every address the request goes to must be public or inside a listed range.
//!   A literal address is checked when the job is made (422); a name after DNS resolution,
//!   at each attempt, and the request goes to the address that was checked (no second
//!   lookup). Redirects are not followed.
//! - Retries: on connection errors, timeouts, 429 and 5xx, after 1 s, 2 s, 4 s … (±50 %
//!   jitter) up to 10 minutes apart, or the receiver's `Retry-After` (capped the same); any
//!   other answer ends the delivery as failed.
//!
//! May import: `jobs` (records, the store), `web::api` (a job as JSON), std, tokio, rustls.

mod client;

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::jobs::{Delivery, DeliveryAttempt, Job, JobId, MAX_ATTEMPTS_KEPT, Store, now_ms};

pub use client::{Answer, post};

/// How the deliverer behaves; from `serve`'s flags.
#[derive(Clone)]
pub struct WebhookConfig {
    /// `None`: no `--webhook-secret-file`, so no webhooks (a callback_url is refused).
    pub secret: Option<Arc<[u8]>>,
    pub allow: AllowList,
    /// How long after the job's end deliveries are retried.
    pub retry_for: Duration,
    /// One attempt's limit: connect, send, and the receiver's status line.
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles, up to `max_backoff`.
    pub first_retry: Duration,
    pub max_backoff: Duration,
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("allow", &self.allow)
            .field("retry_for", &self.retry_for)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            secret: None,
            allow: AllowList::default(),
            retry_for: Duration::from_secs(24 * 3600),
            timeout: Duration::from_secs(10),
            first_retry: Duration::from_secs(1),
            max_backoff: Duration::from_secs(600),
        }
    }
}

/// Reads the secret: the file's bytes, without a trailing newline; at least 16 bytes.
///
/// # Errors
/// A sentence naming the file (never its contents).
pub fn read_secret(path: &Path) -> Result<Arc<[u8]>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let trimmed = bytes.trim_ascii_end();
    if trimmed.len() < 16 {
        return Err(format!(
            "{}: a webhook secret must be at least 16 bytes long",
            path.display()
        ));
    }
    Ok(Arc::from(trimmed))
}

/// `--webhook-allow`: host names, and address ranges (`10.0.0.0/8`, `127.0.0.1`, `::1/128`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    names: Vec<String>,
    nets: Vec<(IpAddr, u8)>,
}

impl AllowList {
    /// Parses a comma-separated list; empty entries are ignored.
    ///
    /// # Errors
    /// Which entry is neither a host name nor an address range.
    pub fn parse(list: &str) -> Result<AllowList, String> {
        let mut allow = AllowList::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Some((addr, bits)) = entry.split_once('/') {
                let addr: IpAddr = addr
                    .parse()
                    .map_err(|_| format!("{entry:?} is not an address range"))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let bits: u8 = bits
                    .parse()
                    .ok()
                    .filter(|b| *b <= max)
                    .ok_or_else(|| format!("{entry:?}: the prefix must be 0 to {max}"))?;
                allow.nets.push((addr, bits));
            } else if let Ok(addr) = entry.parse::<IpAddr>() {
                allow
                    .nets
                    .push((addr, if addr.is_ipv4() { 32 } else { 128 }));
            } else if is_host_name(entry) {
                allow.names.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "{entry:?} is neither a host name nor an address range"
                ));
            }
        }
        Ok(allow)
    }

    /// Whether a host name may be sent to (any name when nothing is listed).
    fn allows_name(&self, host: &str) -> bool {
        self.is_empty() || self.names.iter().any(|n| n.eq_ignore_ascii_case(host))
    }

    /// Whether an address may be connected to: inside a listed range, or public when the
    /// host was allowed by name (or nothing is listed).
    fn allows_addr(&self, addr: IpAddr, by_name: bool) -> bool {
        if self
            .nets
            .iter()
            .any(|(net, bits)| contains(*net, *bits, addr))
        {
            return true;
        }
        (by_name || self.is_empty()) && is_public(addr)
    }

    fn is_empty(&self) -> bool {
        self.names.is_empty() && self.nets.is_empty()
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn contains(net: IpAddr, bits: u8, addr: IpAddr) -> bool {
    match (net, canonical(addr)) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// A globally routable unicast address: not loopback, private, link-local, shared (CGNAT),
/// documentation, benchmarking, multicast, broadcast or unspecified. Written out because
/// `IpAddr::is_global` is not stable.
pub fn is_public(addr: IpAddr) -> bool {
    match canonical(addr) {
        IpAddr::V4(a) => {
            let [o0, o1, o2, _] = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_multicast()
                || a.is_documentation()
                || o0 == 0
                || o0 >= 240
                || (o0 == 100 && (64..128).contains(&o1))
                || (o0 == 198 && (o1 == 18 || o1 == 19))
                || (o0 == 192 && o1 == 0 && o2 == 0))
        }
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && a.segments()[1] == 0x0db8
                || first == 0x0064 && a.segments()[1] == 0xff9b)
        }
    }
}

/// A callback URL split into what a request needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

/// Checks a `callback_url` when a job is made: http or https, a host, no user name, and a
/// destination the allow list lets through as far as can be known before DNS.
///
/// # Errors
/// A sentence for the API's 422.
pub fn check_url(raw: &str, config: &WebhookConfig) -> Result<Target, String> {
    if config.secret.is_none() {
        return Err(
            "webhooks are not enabled on this server (it has no --webhook-secret-file)".into(),
        );
    }
    if raw.len() > 2048 {
        return Err("at most 2048 characters".into());
    }
    let url = url::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    let https = match url.scheme() {
        "https" => true,
        "http" => false,
        other => return Err(format!("{other}: only http and https URLs are called")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("a user name or password in the URL is not allowed".into());
    }
    let port = url.port_or_known_default().ok_or("the URL has no port")?;
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => {
            if !config.allow.allows_name(name) {
                return Err(format!("{name} is not in --webhook-allow"));
            }
            name.to_owned()
        }
        Some(url::Host::Ipv4(v4)) => literal(IpAddr::V4(v4), config)?,
        Some(url::Host::Ipv6(v6)) => literal(IpAddr::V6(v6), config)?,
        None => return Err("the URL has no host".into()),
    };
    Ok(Target {
        https,
        host,
        port,
        path,
    })
}

fn literal(addr: IpAddr, config: &WebhookConfig) -> Result<String, String> {
    if config.allow.allows_addr(addr, false) {
        Ok(addr.to_string())
    } else if is_public(addr) {
        Err(format!("{addr} is not in --webhook-allow"))
    } else {
        Err(format!(
            "{addr} is a loopback, private or link-local address; list it in --webhook-allow \
             to call it"
        ))
    }
}

/// `t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={t},v1={}",
        crate::jobs::hex(&mac.finalize().into_bytes())
    )
}

/// The event for a job that has ended: `id` (the same for every attempt), `type`
/// (`job.done`, `job.failed`, `job.cancelled`), `created_at` and the job as the API shows it.
pub fn event_body(job: &Job, event_id: &str) -> Vec<u8> {
    let mut shown = crate::web::api::job_json(job, None);
    if let Some(obj) = shown.as_object_mut() {
        obj.remove("webhook");
    }
    serde_json::json!({
        "id": event_id,
        "type": format!("job.{}", job.state.as_str()),
        "created_at": crate::web::api::rfc3339_ms(job.finished_ms.unwrap_or(job.created_ms)),
        "job": shown,
    })
    .to_string()
    .into_bytes()
}

/// How often the deliverer looks for due deliveries (it also looks when told a job ended).
const LOOK_EVERY: Duration = Duration::from_millis(500);
/// A note whose job has no record this long after it was made is left over (its request
/// failed before the record was written).
const ORPHAN_NOTE_MS: u64 = 60_000;

/// Delivers due webhooks until `shutdown` resolves. One loop per process; several processes
/// on one data dir share the work through the jobs' claims.
pub async fn run(store: Store, config: Arc<WebhookConfig>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = pin!(shutdown);
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        let listed = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.pending_deliveries()).await
        };
        let notes = match listed {
            Ok(Ok(notes)) => notes,
            Ok(Err(e)) => {
                log::error!("webhooks: {e}");
                continue;
            }
            Err(e) => {
                log::error!("webhooks: listing ended abnormally: {e}");
                continue;
            }
        };
        for (id, noted_ms) in notes {
            // One at a time: deliveries are few, and a slow receiver only delays the others
            // by its timeout.
            let attempt = attempt(&store, &config, id, noted_ms);
            tokio::select! {
                biased;
                () = &mut shutdown => return,
                () = attempt => {}
            }
        }
    }
}

/// What a due delivery found when it claimed its job.
enum Due {
    /// Nothing to do now (not due, not final, someone else has it).
    Not,
    /// Settled or left over: forget the note.
    Forget,
    /// Attempt it: the job as claimed, with the attempt recorded.
    Attempt(Box<Job>, crate::jobs::Claim),
}

async fn attempt(store: &Store, config: &Arc<WebhookConfig>, id: JobId, noted_ms: u64) {
    let prepared = {
        let store = store.clone();
        let config = Arc::clone(config);
        // A settled note is removed there too: no file I/O on the runtime's threads.
        tokio::task::spawn_blocking(move || {
            let due = prepare(&store, &config, id, noted_ms);
            if matches!(due, Ok(Due::Forget)) {
                store.clear_delivery(id);
            }
            due
        })
        .await
    };
    let (mut job, claim) = match prepared {
        Ok(Ok(Due::Attempt(job, claim))) => (*job, claim),
        Ok(Ok(Due::Forget | Due::Not)) => return,
        Ok(Err(e)) => {
            log::error!("job {id}: webhook: {e}");
            return;
        }
        Err(e) => {
            log::error!("job {id}: webhook: ended abnormally: {e}");
            return;
        }
    };
    let Some(hook) = job.webhook.clone() else {
        return;
    };
    let secret = config.secret.clone().unwrap_or_else(|| Arc::from(&b""[..]));
    let body = event_body(&job, &hook.event_id);
    let attempt_id = hook
        .attempts
        .last()
        .map(|a| a.id.clone())
        .unwrap_or_default();
    let t = now_ms() / 1000;
    let headers = [
        ("Pdfworker-Signature", signature(&secret, t, &body)),
        ("Pdfworker-Event", hook.event_id.clone()),
        ("Pdfworker-Delivery", attempt_id),
    ];
    let answer = match check_url(&hook.url, config) {
        Ok(target) => post(&target, &config.allow, &headers, &body, config.timeout).await,
        Err(e) => Answer::Refused(e),
    };
    settle(&mut job, &answer, config);
    let state = job.webhook.as_ref().map_or(Delivery::Failed, |h| h.state);
    match &answer {
        Answer::Status { status, .. } => {
            log::info!(
                "job {id}: webhook answered {status}, delivery {}",
                state.as_str()
            );
        }
        Answer::Refused(why) | Answer::Failed(why) => {
            log::warn!(
                "job {id}: webhook attempt: {why}; delivery {}",
                state.as_str()
            );
        }
    }
    let store = store.clone();
    let saved = tokio::task::spawn_blocking(move || {
        let saved = store.save(&job);
        if saved.is_ok() && state != Delivery::Pending {
            store.clear_delivery(id);
        }
        drop(claim);
        saved
    })
    .await;
    match saved {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::error!("job {id}: webhook: could not record the attempt: {e}"),
        Err(e) => log::error!("job {id}: webhook: ended abnormally: {e}"),
    }
}

/// Claims the job if its delivery is due and records the attempt about to be made (before
/// it is made, so an attempt that dies with its worker is still counted). Blocking.
fn prepare(
    store: &Store,
    config: &WebhookConfig,
    id: JobId,
    noted_ms: u64,
) -> Result<Due, crate::jobs::StoreError> {
    let now = now_ms();
    let Some(job) = store.load(id)? else {
        let old = now.saturating_sub(noted_ms) > ORPHAN_NOTE_MS;
        return Ok(if old { Due::Forget } else { Due::Not });
    };
    match &job.webhook {
        None => return Ok(Due::Forget),
        Some(hook) if hook.state != Delivery::Pending => return Ok(Due::Forget),
        Some(hook) if !job.state.is_final() || hook.next_at_ms > now => return Ok(Due::Not),
        Some(_) => {}
    }
    let Some(claim) = store.claim(id)? else {
        return Ok(Due::Not);
    };
    // Read again under the claim: another worker may have attempted it meanwhile.
    let Some(mut job) = store.load(id)? else {
        return Ok(Due::Forget);
    };
    let Some(hook) = job.webhook.as_mut() else {
        return Ok(Due::Forget);
    };
    if hook.state != Delivery::Pending {
        return Ok(Due::Forget);
    }
    if hook.next_at_ms > now || !job.state.is_final() {
        return Ok(Due::Not);
    }
    if let Some(last) = hook.attempts.last_mut()
        && last.result.is_none()
    {
        last.result = Some("interrupted: the worker stopped during the attempt".into());
    }
    let give_up = job
        .finished_ms
        .unwrap_or(now)
        .saturating_add(millis(config.retry_for));
    if now > give_up {
        hook.state = Delivery::Failed;
        hook.error = Some(format!(
            "given up after {} attempts over {} s",
            hook.attempts_made,
            config.retry_for.as_secs()
        ));
        store.save(&job)?;
        return Ok(Due::Forget);
    }
    hook.attempts_made = hook.attempts_made.saturating_add(1);
    hook.attempts.push(DeliveryAttempt {
        id: JobId::new().to_string(),
        at_ms: now,
        status: None,
        result: None,
    });
    if hook.attempts.len() > MAX_ATTEMPTS_KEPT {
        let extra = hook.attempts.len() - MAX_ATTEMPTS_KEPT;
        hook.attempts.drain(..extra);
    }
    store.save(&job)?;
    Ok(Due::Attempt(Box::new(job), claim))
}

/// Applies an attempt's answer to the job's webhook: delivered, retried later, or given up.
fn settle(job: &mut Job, answer: &Answer, config: &WebhookConfig) {
    let finished = job.finished_ms.unwrap_or(0);
    let Some(hook) = job.webhook.as_mut() else {
        return;
    };
    let now = now_ms();
    let (status, result, retry, retry_after) = match answer {
        Answer::Status {
            status,
            retry_after,
        } => {
            let retry = *status == 429 || *status >= 500;
            (Some(*status), format!("HTTP {status}"), retry, *retry_after)
        }
        Answer::Refused(why) => (None, format!("refused: {why}"), false, None),
        Answer::Failed(why) => (None, why.clone(), true, None),
    };
    if let Some(last) = hook.attempts.last_mut() {
        last.status = status;
        last.result = Some(result.clone());
    }
    if status.is_some_and(|s| (200..300).contains(&s)) {
        hook.state = Delivery::Delivered;
        hook.error = None;
        return;
    }
    if !retry {
        hook.state = Delivery::Failed;
        hook.error = Some(format!("{result}; not retried"));
        return;
    }
    let delay = retry_after
        .unwrap_or_else(|| backoff(hook.attempts_made, config))
        .min(config.max_backoff);
    let next = now.saturating_add(millis(delay));
    if next > finished.saturating_add(millis(config.retry_for)) {
        hook.state = Delivery::Failed;
        hook.error = Some(format!(
            "{result}; given up after {} attempts",
            hook.attempts_made
        ));
        return;
    }
    hook.next_at_ms = next;
}

/// The delay before retry `n` (1 = after the first attempt): `first_retry × 2^(n-1)`, capped,
/// times a jitter between 0.5 and 1.5 so that many jobs' retries do not arrive together.
fn backoff(n: u32, config: &WebhookConfig) -> Duration {
    let doubled = config
        .first_retry
        .saturating_mul(1u32 << n.saturating_sub(1).min(20))
        .min(config.max_backoff);
    // Random bits from the v4 UUID generator the job ids already use.
    let random = uuid::Uuid::new_v4().as_u128();
    let factor = 0.5 + f64::from((random % 1000) as u16) / 1000.0;
    doubled.mul_f64(factor)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(allow: &str) -> WebhookConfig {
        WebhookConfig {
            secret: Some(Arc::from(&b"0123456789abcdef"[..])),
            allow: AllowList::parse(allow).expect("allow list"),
            ..WebhookConfig::default()
        }
    }

    #[test]
    fn literal_addresses_pass_only_when_public_or_listed() {
        let open = config("");
        assert!(check_url("https://93.184.215.14/hook", &open).is_ok());
        for refused in [
            "http://127.0.0.9:8080/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
        ] {
            assert!(check_url(refused, &open).is_err(), "{refused}");
        }
        let listed = config("127.0.0.1, 10.0.0.0/8, hooks.example.com");
        assert!(check_url("http://127.0.0.1:9000/x?y=1", &listed).is_ok());
        assert!(check_url("http://10.200.0.1/", &listed).is_ok());
        assert!(check_url("http://127.0.0.9/", &listed).is_err());
        assert!(check_url("https://hooks.example.com/", &listed).is_ok());
        assert!(check_url("https://other.example.com/", &listed).is_err());
        // A public address that is not listed is refused once a list exists.
        assert!(check_url("https://93.184.215.14/", &listed).is_err());
    }

    #[test]
    fn bad_callback_urls_are_refused_with_a_reason() {
        let open = config("");
        for bad in [
            "ftp://example.com/",
            "not a url",
            "http://user:pw@example.com/",
            "file:///etc/passwd",
        ] {
            assert!(check_url(bad, &open).is_err(), "{bad}");
        }
        let no_secret = WebhookConfig::default();
        let e = check_url("https://example.com/", &no_secret).expect_err("no secret");
        assert!(e.contains("--webhook-secret-file"), "{e}");
    }

    #[test]
    fn targets_keep_path_query_and_default_ports() {
        let t = check_url("https://example.com/a/b?c=d", &config("")).expect("ok");
        assert_eq!(
            t,
            Target {
                https: true,
                host: "example.com".into(),
                port: 443,
                path: "/a/b?c=d".into()
            }
        );
        assert_eq!(
            check_url("http://example.com", &config(""))
                .expect("ok")
                .path,
            "/"
        );
    }

    #[test]
    fn allow_list_entries_are_names_or_ranges() {
        assert!(AllowList::parse("a.example, 10.0.0.0/8, ::1, 2001:db8::/32").is_ok());
        for bad in ["10.0.0.0/33", "::/129", "exa mple", "1.2.3.4/x"] {
            assert!(AllowList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn signature_is_hmac_sha256_of_t_dot_body() {
        // RFC 4231-style check against an independently computed value:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 0123456789abcdef
        let sig = signature(b"0123456789abcdef", 1_700_000_000, br#"{"a":1}"#);
        assert!(sig.starts_with("t=1700000000,v1="), "{sig}");
        assert_eq!(sig.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(
            sig,
            signature(b"0123456789abcdeX", 1_700_000_000, br#"{"a":1}"#)
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let c = WebhookConfig::default();
        for (n, base) in [(1u32, 1u64), (2, 2), (3, 4), (10, 512)] {
            let d = backoff(n, &c).as_secs_f64();
            let base = base as f64;
            assert!(d >= base * 0.5 && d <= base * 1.5, "retry {n}: {d}");
        }
        assert!(backoff(30, &c) <= Duration::from_secs(900));
    }
}
