//! One GET over HTTPS: GitHub's headers on every request, the credential
//! (an `Authorization` value, built by `token`) only to the API's own
//! origin, no redirect followed behind our back, and a body read with a cap
//! so that a hostile or broken server cannot exhaust memory.
//!
//! The lowest layer of the forge: it knows no forge kind and no token.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use url::Origin;

/// A page of 100 issues with the longest bodies GitHub allows is under 7 MB.
pub const BODY_CAP: u64 = 32 * 1024 * 1024;

/// Far above GitHub's own 10 s for a request, far below "hung".
pub const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Asking a host what it is should not hang a run for long.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// No connection could be made: the name did not resolve, the host
/// refused, or TLS failed. The network or the host is down, not the request,
/// and asking again at once will not help.
#[derive(Debug)]
pub struct Unreachable(pub String);

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unreachable {}

/// Whether `e` is a connection that could not be made ([`Unreachable`]).
pub fn unreachable(e: &anyhow::Error) -> Option<&Unreachable> {
    e.chain()
        .find_map(|cause| cause.downcast_ref::<Unreachable>())
}

/// The HTTP client of one API base, with its credential.
pub struct Http {
    client: Client,
    /// Where the credential may go: the API base's scheme, host and port
    /// (hosts compare case-insensitively: `Url` lowercases them).
    origin: Origin,
    /// The whole `Authorization` value (scheme and token), built by whoever
    /// knows the forge's scheme; sensitive, so that no `Debug` shows it.
    authorization: Option<HeaderValue>,
}

/// An answer from the server, whatever its status.
#[derive(Debug)]
pub struct Reply {
    /// Not judged here: the forge layer classifies it.
    pub status: StatusCode,
    /// All of them: rate limits, `etag`, `link` and `location` are read.
    pub headers: HeaderMap,
    /// At most [`BODY_CAP`] bytes.
    pub body: Vec<u8>,
}

impl Reply {
    /// A header's value, when present and readable as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl Http {
    /// `authorization` is sent only to `api_base`'s origin; `timeout` bounds
    /// a whole request, answer included.
    pub fn new(
        api_base: &Url,
        mut authorization: Option<HeaderValue>,
        timeout: Duration,
    ) -> Result<Self> {
        if let Some(value) = &mut authorization {
            value.set_sensitive(true);
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static("2022-11-28"),
        );
        let client = Client::builder()
            .user_agent(concat!("patina-forge/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            // A 301 is an answer about the ref (a transfer); the caller
            // decides whether and how to follow it.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Self {
            client,
            origin: api_base.origin(),
            authorization,
        })
    }

    /// Whether a credential was given.
    pub fn has_authorization(&self) -> bool {
        self.authorization.is_some()
    }

    /// Whether `url` is on the API's own server (and may carry the token).
    pub fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.origin
    }

    /// Sends one GET. `Err` is a transport failure (no answer, a timeout, a
    /// body over the cap): transient by nature, described without secrets.
    pub fn get(&self, url: &Url, etag: Option<&str>) -> Result<Reply> {
        let mut request = self.authorized(self.client.get(url.clone()), url);
        if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        self.send(request)
    }

    /// Sends one POST of a JSON body (GraphQL), like [`Http::get`].
    pub fn post_json(&self, url: &Url, body: Vec<u8>) -> Result<Reply> {
        let request = self
            .authorized(self.client.post(url.clone()), url)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request)
    }

    fn authorized(&self, request: RequestBuilder, url: &Url) -> RequestBuilder {
        match (&self.authorization, self.same_origin(url)) {
            (Some(value), true) => request.header(header::AUTHORIZATION, value.clone()),
            _ => request,
        }
    }

    fn send(&self, request: RequestBuilder) -> Result<Reply> {
        let response = request.send().map_err(|e| {
            // A connect timeout is a host that does not answer: unreachable
            // too. A timeout after connecting is the request's.
            if e.is_connect() {
                anyhow::Error::new(Unreachable(describe(&e)))
            } else {
                anyhow::anyhow!(describe(&e))
            }
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(length) = response.content_length()
            && length > BODY_CAP
        {
            bail!("the server announced a {length}-byte body, over the {BODY_CAP}-byte cap");
        }
        let mut body = Vec::new();
        response
            .take(BODY_CAP + 1)
            .read_to_end(&mut body)
            .map_err(|e| anyhow::anyhow!("the answer broke off: {}", io_reason(&e)))?;
        if body.len() as u64 > BODY_CAP {
            bail!("the body is over the {BODY_CAP}-byte cap");
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

/// reqwest's errors chain several layers; one short reason is enough.
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut root = None;
    while let Some(s) = source {
        root = Some(s.to_string());
        source = s.source();
    }
    match root {
        Some(root) => format!("{what}: {root}"),
        None => what.to_owned(),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent_authorization(http: &Http, url: &str) -> Option<HeaderValue> {
        let url = Url::parse(url).unwrap();
        let request = http.authorized(http.client.get(url.clone()), &url);
        request
            .build()
            .unwrap()
            .headers()
            .get(header::AUTHORIZATION)
            .cloned()
    }

    #[test]
    fn the_credential_goes_only_to_the_apis_origin_and_stays_sensitive() {
        let base = Url::parse("https://ghe.example.org/api/v3/").unwrap();
        // Not marked by its maker: the client marks it all the same.
        let http = Http::new(&base, Some(HeaderValue::from_static("Bearer x")), TIMEOUT).unwrap();
        assert!(http.has_authorization());
        for same in [
            "https://ghe.example.org/api/v3/repos/o/r/issues?page=2",
            "https://GHE.Example.ORG:443/elsewhere",
        ] {
            let value = sent_authorization(&http, same).expect(same);
            assert!(value.is_sensitive(), "{same}");
            assert_eq!(value, "Bearer x");
        }
        for other in [
            "http://ghe.example.org/api/v3/",
            "https://ghe.example.org:8443/api/v3/",
            "https://api.github.com/",
            "https://ghe.example.org.evil.test/api/v3/",
        ] {
            assert_eq!(sent_authorization(&http, other), None, "{other}");
        }
        let anonymous = Http::new(&base, None, TIMEOUT).unwrap();
        assert!(!anonymous.has_authorization());
        assert_eq!(sent_authorization(&anonymous, base.as_str()), None);
    }
}
