//! Network clients for Polymarket's public market data: Gamma discovery and the CLOB REST
//! book over HTTP with retries, and the connection to the CLOB market channel.
//!
//! Owns transport only: URLs, TLS, timeouts, retries and turning bodies into the parsers'
//! types ([`super::gamma`], [`super::clob`]). It keeps no state between calls (the paper
//! venue caches markets and the [`super::stream`] task maintains books). Every base URL is
//! given by the caller, so the same code talks to Polymarket or to the loopback venue.
//!
//! Policy (reference `shared/reference/polymarket-api.md` §1.4, §3.1, §5):
//! - `429` and `5xx` answers, timeouts, dropped connections and bodies that do not decode
//!   (truncated or mangled by a proxy) are retried, up to [`RetryPolicy::attempts`] in all,
//!   with exponential backoff; a `Retry-After` header is honoured, and one asking for longer
//!   than [`RetryPolicy::max_retry_after`] ends the retries with that explanation rather than
//!   hammering the venue early.
//! - `404` is [`ClientError::NotFound`] (Gamma: no such market; CLOB: "No orderbook exists",
//!   also after a short-window market closed); `401`/`403` are [`ClientError::Refused`]
//!   (credentials, geoblock or Cloudflare, §5.2); other `4xx` are not retried.
//! - Discovery asks `GET /events?slug=<slug>` and falls back to `GET /markets?slug=<slug>`
//!   when the first answers nothing (§1.4).
//! - TLS is rustls with the ring provider and the bundled Mozilla roots; never OpenSSL.
//!   Plain `http://` and `ws://` URLs (the loopback venue) need none.

use super::clob::{BookSnapshot, ClobError, parse_book};
use super::gamma::{GammaError, MarketInfo, parse_events, parse_markets};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

/// A connected market-channel WebSocket.
pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest excerpt of a response body quoted in an error.
const BODY_EXCERPT: usize = 200;

/// Everything that can go wrong fetching from Polymarket. Each variant names the endpoint
/// (e.g. `gamma GET /events?slug=btc-updown-5m-1771691400`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No answer: connection refused or dropped, timeout, TLS failure.
    #[error("{endpoint}: no answer after {attempts} attempt(s): {detail}")]
    Transport {
        /// The endpoint.
        endpoint: String,
        /// Attempts made.
        attempts: u32,
        /// What the transport said.
        detail: String,
    },
    /// An HTTP error status that retries did not cure (429, 5xx) or that is not retried.
    #[error("{endpoint}: HTTP {status} after {attempts} attempt(s): {body}")]
    Status {
        /// The endpoint.
        endpoint: String,
        /// The last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Excerpt of the last body.
        body: String,
    },
    /// The venue asked to wait longer than the retry budget allows (`Retry-After`).
    #[error(
        "{endpoint}: HTTP {status} with Retry-After {retry_after_secs} s, longer than the {max_secs} s this client waits; giving up"
    )]
    RetryAfterTooLong {
        /// The endpoint.
        endpoint: String,
        /// The status (429 or 503).
        status: u16,
        /// Seconds the venue asked for.
        retry_after_secs: u64,
        /// The most this client waits.
        max_secs: u64,
    },
    /// `404`: no such market, or no order book for the token (closed or unknown).
    #[error("{endpoint}: not found (HTTP 404): {body}")]
    NotFound {
        /// The endpoint.
        endpoint: String,
        /// Excerpt of the body.
        body: String,
    },
    /// `401`/`403`: credentials refused, or access blocked (geoblock, Cloudflare).
    #[error(
        "{endpoint}: access refused (HTTP {status}; credentials, geoblock or Cloudflare): {body}"
    )]
    Refused {
        /// The endpoint.
        endpoint: String,
        /// The status.
        status: u16,
        /// Excerpt of the body.
        body: String,
    },
    /// A Gamma body that does not decode or is not a BTC Up/Down market.
    #[error("{endpoint}: {source}")]
    Gamma {
        /// The endpoint.
        endpoint: String,
        /// The parser's error (names the field).
        source: GammaError,
    },
    /// A CLOB body that does not decode or is an error answer.
    #[error("{endpoint}: {source}")]
    Clob {
        /// The endpoint.
        endpoint: String,
        /// The parser's error (names the field).
        source: ClobError,
    },
    /// The client could not be built (TLS configuration) or a URL is malformed.
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    /// Whether the failure says the thing asked for does not exist (as opposed to the venue
    /// being unreachable or answering nonsense).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound { .. })
    }
}

/// How HTTP requests are timed and retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, first included (default 3).
    pub attempts: u32,
    /// Delay before the second attempt; doubled for each further one (default 250 ms).
    pub base_delay: Duration,
    /// Ceiling of the backoff delay (default 4 s).
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one ends the retries (default 10 s).
    pub max_retry_after: Duration,
    /// Timeout of one request, connection included (default 5 s).
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_retry_after: Duration::from_secs(10),
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Backoff before attempt `next` (2, 3, …): `base × 2^(next−2)`, capped.
    pub fn backoff(&self, next: u32) -> Duration {
        let doublings = next.saturating_sub(2).min(16);
        self.base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }

    /// The longest a call under this policy can take: every attempt timing out plus every
    /// backoff (or `Retry-After`) between them.
    pub fn worst_case(&self) -> Duration {
        let waits = (2..=self.attempts.max(1))
            .map(|n| self.backoff(n).max(self.max_retry_after))
            .fold(Duration::ZERO, |a, b| a.saturating_add(b));
        self.request_timeout
            .saturating_mul(self.attempts.max(1))
            .saturating_add(waits)
    }
}

/// The TLS configuration every client shares: rustls, ring, Mozilla's roots (bundled).
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, ClientError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    Arc::new(
                        b.with_root_certificates(roots.clone())
                            .with_no_client_auth(),
                    )
                })
                .map_err(|e| format!("cannot configure TLS: {e}"))
        })
        .clone()
        .map_err(ClientError::Setup)
}

/// What one attempt produced.
enum Attempt<T> {
    Done(T),
    Retry {
        error: ClientError,
        after: Option<Duration>,
    },
    Fail(ClientError),
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    if body.chars().count() <= BODY_EXCERPT {
        body.to_string()
    } else {
        let cut: String = body.chars().take(BODY_EXCERPT).collect();
        format!("{cut}…")
    }
}

/// `Retry-After` as seconds (the HTTP-date form is not used by Polymarket or Cloudflare
/// answers seen so far; it falls back to the backoff).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A body that did not decode: the error, and whether a fresh answer might decode (a
/// truncated body) or not (a well-formed answer that is wrong).
#[derive(Debug)]
pub struct Undecodable {
    /// What is wrong.
    pub error: Box<ClientError>,
    /// Whether to ask again.
    pub retry: bool,
}

impl Undecodable {
    fn new(error: ClientError, retry: bool) -> Self {
        Undecodable {
            error: Box::new(error),
            retry,
        }
    }
}

/// An HTTP client with the retry policy; cheap to clone.
#[derive(Clone, Debug)]
pub struct Http {
    client: reqwest::Client,
    policy: RetryPolicy,
}

impl Http {
    /// A client with `policy`. No proxy from the environment is used.
    pub fn new(policy: RetryPolicy) -> Result<Self, ClientError> {
        let tls = tls_config()?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured((*tls).clone())
            .timeout(policy.request_timeout)
            .connect_timeout(policy.request_timeout)
            .user_agent(concat!("updown/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                ClientError::Setup(format!("cannot build the HTTP client: {}", error_chain(&e)))
            })?;
        Ok(Http { client, policy })
    }

    /// The retry policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// `GET url` and decode the body with `decode`, retrying as the module docs say.
    pub async fn get_decoded<T>(
        &self,
        endpoint: &str,
        url: &str,
        decode: impl Fn(&str) -> Result<T, Undecodable>,
    ) -> Result<T, ClientError> {
        let attempts = self.policy.attempts.max(1);
        let mut n = 1;
        loop {
            let outcome = self.attempt(endpoint, url, n, &decode).await;
            let (error, after) = match outcome {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { error, after } => (error, after),
            };
            if n >= attempts {
                return Err(error);
            }
            n += 1;
            let wait = match after {
                Some(a) if a > self.policy.max_retry_after => {
                    let status = match &error {
                        ClientError::Status { status, .. } => *status,
                        _ => 0,
                    };
                    return Err(ClientError::RetryAfterTooLong {
                        endpoint: endpoint.to_string(),
                        status,
                        retry_after_secs: a.as_secs(),
                        max_secs: self.policy.max_retry_after.as_secs(),
                    });
                }
                Some(a) => a,
                None => self.policy.backoff(n),
            };
            tracing::debug!(target: "updown::polymarket", "{error}; attempt {n} in {wait:?}");
            tokio::time::sleep(wait).await;
        }
    }

    async fn attempt<T>(
        &self,
        endpoint: &str,
        url: &str,
        n: u32,
        decode: &impl Fn(&str) -> Result<T, Undecodable>,
    ) -> Attempt<T> {
        let transport = |detail: String| ClientError::Transport {
            endpoint: endpoint.to_string(),
            attempts: n,
            detail,
        };
        let response = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    error: transport(error_chain(&e)),
                    after: None,
                };
            }
        };
        let status = response.status().as_u16();
        let after = retry_after(response.headers()).map(Duration::from_secs);
        let body = match response.text().await {
            Ok(b) => b,
            Err(e) => {
                return Attempt::Retry {
                    error: transport(format!("reading the body: {}", error_chain(&e))),
                    after: None,
                };
            }
        };
        match status {
            200..=299 => match decode(&body) {
                Ok(v) => Attempt::Done(v),
                Err(u) if u.retry => Attempt::Retry {
                    error: *u.error,
                    after: None,
                },
                Err(u) => Attempt::Fail(*u.error),
            },
            404 => Attempt::Fail(ClientError::NotFound {
                endpoint: endpoint.to_string(),
                body: excerpt(&body),
            }),
            401 | 403 => Attempt::Fail(ClientError::Refused {
                endpoint: endpoint.to_string(),
                status,
                body: excerpt(&body),
            }),
            429 | 500..=599 => Attempt::Retry {
                error: ClientError::Status {
                    endpoint: endpoint.to_string(),
                    status,
                    attempts: n,
                    body: excerpt(&body),
                },
                after,
            },
            _ => Attempt::Fail(ClientError::Status {
                endpoint: endpoint.to_string(),
                status,
                attempts: n,
                body: excerpt(&body),
            }),
        }
    }
}

/// An error and its causes on one line (reqwest hides the useful part in the source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s.push_str(": ");
            s.push_str(&c_s);
        }
        cur = c.source();
    }
    s
}

/// `base` + `path` with one `/` between them.
pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

fn with_query(
    base: &str,
    path: &str,
    key: &str,
    value: &str,
    endpoint: &str,
) -> Result<String, ClientError> {
    reqwest::Url::parse_with_params(&join_url(base, path), &[(key, value)])
        .map(String::from)
        .map_err(|e| {
            ClientError::Setup(format!(
                "{endpoint}: invalid base URL {base:?}: {e} (configure a full URL such as https://gamma-api.polymarket.com)"
            ))
        })
}

/// A Gamma decode error is worth retrying only when the body was not JSON at all (cut or
/// mangled in transit); a well-formed answer that is wrong stays wrong.
fn gamma_retryable(e: &GammaError) -> bool {
    match e {
        GammaError::Decode(d) => is_syntax(d),
        _ => false,
    }
}

fn is_syntax(d: &crate::feed::binance::DecodeError) -> bool {
    matches!(d.problem, crate::feed::binance::Problem::NotJson(_))
}

fn clob_retryable(e: &ClobError) -> bool {
    match e {
        ClobError::Decode(d) => is_syntax(d),
        _ => false,
    }
}

/// Gamma discovery (`https://gamma-api.polymarket.com` or the loopback's `/gamma`).
#[derive(Clone, Debug)]
pub struct GammaClient {
    http: Http,
    base: String,
}

impl GammaClient {
    /// A client for the Gamma API at `base`.
    pub fn new(http: Http, base: impl Into<String>) -> Self {
        GammaClient {
            http,
            base: base.into(),
        }
    }

    /// The market with `slug`: `GET /events?slug=` first, then `GET /markets?slug=` when
    /// that answers nothing (reference §1.4). `Ok(None)` when neither lists it (not created
    /// yet, or no such market).
    pub async fn market(&self, slug: &str) -> Result<Option<MarketInfo>, ClientError> {
        let endpoint = format!("gamma GET /events?slug={slug}");
        let url = with_query(&self.base, "events", "slug", slug, &endpoint)?;
        let first = self
            .http
            .get_decoded(&endpoint, &url, |body| {
                parse_events(body, slug).map_err(|e| {
                    let retry = gamma_retryable(&e);
                    let error = ClientError::Gamma {
                        endpoint: endpoint.clone(),
                        source: e,
                    };
                    Undecodable::new(error, retry)
                })
            })
            .await;
        match first {
            Ok(Some(m)) => return Ok(Some(m)),
            Ok(None) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
        let endpoint = format!("gamma GET /markets?slug={slug}");
        let url = with_query(&self.base, "markets", "slug", slug, &endpoint)?;
        let second = self
            .http
            .get_decoded(&endpoint, &url, |body| {
                parse_markets(body, slug).map_err(|e| {
                    let retry = gamma_retryable(&e);
                    let error = ClientError::Gamma {
                        endpoint: endpoint.clone(),
                        source: e,
                    };
                    Undecodable::new(error, retry)
                })
            })
            .await;
        match second {
            Err(e) if e.is_not_found() => Ok(None),
            other => other,
        }
    }
}

/// CLOB REST market data (`https://clob.polymarket.com` or the loopback's `/clob`).
#[derive(Clone, Debug)]
pub struct ClobRestClient {
    http: Http,
    base: String,
}

impl ClobRestClient {
    /// A client for the CLOB REST API at `base`.
    pub fn new(http: Http, base: impl Into<String>) -> Self {
        ClobRestClient {
            http,
            base: base.into(),
        }
    }

    /// `GET /book?token_id=<token>`: the full book of one outcome token. A `404` ("No
    /// orderbook exists for the requested token id") is [`ClientError::NotFound`].
    pub async fn book(&self, token_id: &str) -> Result<BookSnapshot, ClientError> {
        let endpoint = format!("clob GET /book?token_id={}", short_token(token_id));
        let url = with_query(&self.base, "book", "token_id", token_id, &endpoint)?;
        self.http
            .get_decoded(&endpoint, &url, |body| {
                let snap = parse_book(body).map_err(|e| {
                    let retry = clob_retryable(&e);
                    let error = ClientError::Clob {
                        endpoint: endpoint.clone(),
                        source: e,
                    };
                    Undecodable::new(error, retry)
                })?;
                if snap.asset_id != token_id {
                    let error = ClientError::Clob {
                        endpoint: endpoint.clone(),
                        source: ClobError::Inconsistent {
                            what: format!(
                                "asked for the book of {}, got asset_id {}",
                                short_token(token_id),
                                short_token(&snap.asset_id)
                            ),
                        },
                    };
                    return Err(Undecodable::new(error, false));
                }
                Ok(snap)
            })
            .await
    }
}

/// A token id shortened for messages (`7118…3351`): they are 77 digits long.
pub fn short_token(token: &str) -> String {
    if token.len() <= 12 {
        token.to_string()
    } else {
        format!("{}…{}", &token[..4], &token[token.len() - 4..])
    }
}

/// Opens the market channel at `url` (`wss://ws-subscriptions-clob.polymarket.com/ws/market`
/// or the loopback's `ws://…/clob-ws/ws/market`) within `timeout`. Nothing is sent: the
/// caller must subscribe before its first `PING` (reference §4.1).
pub async fn connect_market_ws(url: &str, timeout: Duration) -> Result<WsStream, ClientError> {
    let endpoint = "clob ws /ws/market";
    let tls = tls_config()?;
    let connect = tokio_tungstenite::connect_async_tls_with_config(
        url,
        None,
        true,
        Some(Connector::Rustls(tls)),
    );
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Err(ClientError::Transport {
            endpoint: endpoint.into(),
            attempts: 1,
            detail: format!("no handshake within {timeout:?} ({url})"),
        }),
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(r))) => {
            let status = r.status().as_u16();
            let body = r
                .body()
                .as_ref()
                .map(|b| excerpt(&String::from_utf8_lossy(b)))
                .unwrap_or_default();
            Err(match status {
                401 | 403 => ClientError::Refused {
                    endpoint: endpoint.into(),
                    status,
                    body,
                },
                404 => ClientError::NotFound {
                    endpoint: endpoint.into(),
                    body,
                },
                _ => ClientError::Status {
                    endpoint: endpoint.into(),
                    status,
                    attempts: 1,
                    body,
                },
            })
        }
        Ok(Err(e)) => Err(ClientError::Transport {
            endpoint: endpoint.into(),
            attempts: 1,
            detail: format!("{} ({url})", error_chain(&e)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(2), Duration::from_millis(250));
        assert_eq!(p.backoff(3), Duration::from_millis(500));
        assert_eq!(p.backoff(4), Duration::from_secs(1));
        assert_eq!(p.backoff(40), Duration::from_secs(4));
        assert!(p.worst_case() >= Duration::from_secs(15));
    }

    #[test]
    fn urls_join_and_encode() {
        assert_eq!(
            join_url("http://h/gamma/", "/events"),
            "http://h/gamma/events"
        );
        assert_eq!(
            with_query("http://h/gamma", "events", "slug", "a b&c", "e").unwrap(),
            "http://h/gamma/events?slug=a+b%26c"
        );
        assert!(matches!(
            with_query("gamma-api", "events", "slug", "x", "e"),
            Err(ClientError::Setup(_))
        ));
        assert_eq!(short_token("12345"), "12345");
        assert_eq!(
            short_token(
                "71183960810705820955071415844881728181970340514894896943812046065452395013351"
            ),
            "7118…3351"
        );
    }

    #[test]
    fn tls_configuration_builds_without_openssl() {
        assert!(tls_config().is_ok());
        assert!(Http::new(RetryPolicy::default()).is_ok());
    }
}
