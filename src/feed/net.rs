//! Network plumbing of the live feed: one TLS setup (rustls with the ring provider and the
//! bundled Mozilla roots, never OpenSSL), an HTTP GET that retries what is worth retrying,
//! exponential backoff with jitter, and errors that name the host.
//!
//! Retry policy of [`Http::get`] (DESIGN.md §8: "retries (3, exponential backoff) on
//! 429/5xx"): a network failure (refused, reset, timed out), `429` or a `5xx` is tried again
//! after a growing, jittered delay (or the server's `Retry-After`, capped), for at most
//! `attempts` requests in all; any other status fails at once. Every error says which host
//! failed, so "cannot reach api.binance.com" reaches the person, not "error sending
//! request".

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What a network call can fail with. Every variant names the host.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// No answer at all: the name does not resolve, the connection is refused or reset, or
    /// it timed out, on every attempt.
    #[error("cannot reach {host} ({url}): {detail}")]
    Unreachable {
        /// Host (and port, if given) of the URL.
        host: String,
        /// The URL asked for.
        url: String,
        /// What the network stack said on the last attempt.
        detail: String,
    },
    /// The server answered with an error status (after retries, for 429 and 5xx).
    #[error("{host} answered HTTP {status} to {url} (attempt {attempts}): {body}")]
    Status {
        /// Host of the URL.
        host: String,
        /// The URL asked for.
        url: String,
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
        /// Requests made.
        attempts: u32,
    },
    /// The answer arrived but is not what the endpoint sends.
    #[error("{host}: unreadable answer from {url}: {detail}")]
    Decode {
        /// Host of the URL.
        host: String,
        /// The URL asked for.
        url: String,
        /// What is wrong with it.
        detail: String,
    },
    /// The client could not be set up (TLS, a malformed URL).
    #[error("{0}")]
    Setup(String),
}

impl NetError {
    /// The host the error is about (empty for a setup error).
    pub fn host(&self) -> &str {
        match self {
            NetError::Unreachable { host, .. }
            | NetError::Status { host, .. }
            | NetError::Decode { host, .. } => host,
            NetError::Setup(_) => "",
        }
    }

    /// A decoding failure of `url`'s answer.
    pub fn decode(url: &str, detail: impl Into<String>) -> Self {
        NetError::Decode {
            host: host_of(url),
            url: url.to_string(),
            detail: detail.into(),
        }
    }
}

/// The `host[:port]` part of a URL, e.g. `api.binance.com` or `127.0.0.1:4000`.
pub fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, h)| h)
        .to_string()
}

/// Exponential backoff with jitter: `min × 2^n`, capped at `max`, each delay drawn from its
/// upper half so that many clients do not retry in step.
#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    /// Delays from `min` up to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        let seed = Instant::now().elapsed().as_nanos() as u64
            ^ u64::from(std::process::id()).rotate_left(32)
            ^ (std::ptr::from_ref(&min) as u64);
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt; grows with each call until [`Backoff::reset`].
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        let full = self
            .min
            .saturating_mul(1u32 << exp)
            .min(self.max)
            .as_secs_f64();
        // xorshift64: jitter needs no cryptographic randomness.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        Duration::from_secs_f64(full * (0.5 + 0.5 * unit))
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Back to the shortest delay (after a success).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The TLS client configuration every live connection uses: rustls, ring, Mozilla's roots.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, NetError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NetError::Setup(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Counters of an [`Http`] client, shared with whoever watches it.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Requests sent (retries included).
    pub requests: AtomicU64,
    /// Requests that were retries.
    pub retries: AtomicU64,
}

/// An HTTP client for GETs with the retry policy of this module.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    attempts: u32,
    backoff_min: Duration,
    backoff_max: Duration,
    counters: Arc<HttpCounters>,
}

/// Longest body excerpt an error carries.
const BODY_EXCERPT: usize = 200;

fn describe(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    if e.is_timeout() {
        parts.push("timed out".to_string());
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

impl Http {
    /// A client whose requests time out after `timeout`, trying each GET at most `attempts`
    /// times, backing off from `backoff_min` to `backoff_max`.
    pub fn new(
        timeout: Duration,
        attempts: u32,
        backoff_min: Duration,
        backoff_max: Duration,
    ) -> Result<Self, NetError> {
        let tls = tls_config()?;
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("updown/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NetError::Setup(format!("HTTP client setup failed: {}", describe(&e))))?;
        Ok(Http {
            client,
            attempts: attempts.max(1),
            backoff_min,
            backoff_max,
            counters: Arc::new(HttpCounters::default()),
        })
    }

    /// The client's counters.
    pub fn counters(&self) -> Arc<HttpCounters> {
        self.counters.clone()
    }

    /// GET `url` and return its body, retrying network failures, 429 and 5xx.
    pub async fn get(&self, url: &str) -> Result<String, NetError> {
        self.get_timed(url).await.map(|(body, _)| body)
    }

    /// GET `url`; the body and when the request that succeeded was sent.
    pub async fn get_timed(&self, url: &str) -> Result<(String, Instant), NetError> {
        let host = host_of(url);
        let mut backoff = Backoff::new(self.backoff_min, self.backoff_max);
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            if attempt > 1 {
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
            let sent = Instant::now();
            let (err, retry_after) = match self.client.get(url).send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match resp.text().await {
                        Ok(body) if (200..300).contains(&status) => return Ok((body, sent)),
                        Ok(body) => {
                            let err = NetError::Status {
                                host: host.clone(),
                                url: url.to_string(),
                                status,
                                body: super::binance::excerpt(body.trim())
                                    .chars()
                                    .take(BODY_EXCERPT + 1)
                                    .collect(),
                                attempts: attempt,
                            };
                            if status != 429 && status < 500 {
                                return Err(err);
                            }
                            (err, retry_after)
                        }
                        Err(e) => (
                            NetError::Unreachable {
                                host: host.clone(),
                                url: url.to_string(),
                                detail: format!("the answer broke off: {}", describe(&e)),
                            },
                            None,
                        ),
                    }
                }
                Err(e) if e.is_builder() => {
                    return Err(NetError::Setup(format!("bad URL {url}: {}", describe(&e))));
                }
                Err(e) => (
                    NetError::Unreachable {
                        host: host.clone(),
                        url: url.to_string(),
                        detail: describe(&e),
                    },
                    None,
                ),
            };
            if attempt >= self.attempts {
                return Err(err);
            }
            let delay = backoff.next_delay();
            let delay = retry_after.map_or(delay, |r| r.max(delay).min(self.backoff_max));
            tracing::debug!(
                "{host}: attempt {attempt}/{} failed ({err}); retrying in {} ms",
                self.attempts,
                delay.as_millis()
            );
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_is_taken_from_any_url() {
        assert_eq!(
            host_of("https://api.binance.com/api/v3/time"),
            "api.binance.com"
        );
        assert_eq!(
            host_of("ws://127.0.0.1:4000/binance-ws/stream?x=1"),
            "127.0.0.1:4000"
        );
        assert_eq!(host_of("http://u:p@h:1?q"), "h:1");
        assert_eq!(host_of("nonsense"), "nonsense");
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d: Vec<Duration> = (0..6).map(|_| b.next_delay()).collect();
        for (i, want) in [100u64, 200, 400, 800, 1000, 1000].iter().enumerate() {
            let want = Duration::from_millis(*want);
            assert!(d[i] <= want && d[i] >= want / 2, "{i}: {:?}", d[i]);
        }
        assert_eq!(b.failures(), 6);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn tls_config_builds_with_the_bundled_roots() {
        assert!(tls_config().is_ok());
    }
}
