//! One GET over HTTPS: GitHub's headers on every request, the token only to
//! the API's own origin, no redirect followed behind our back, and a body
//! read with a cap so that a hostile or broken server cannot exhaust memory.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};

use super::token::Token;

/// A page of 100 issues with the longest bodies GitHub allows is under 7 MB.
pub const BODY_CAP: u64 = 32 * 1024 * 1024;

/// Far above GitHub's own 10 s for a request, far below "hung".
pub const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the token is sent: GitHub's `Bearer`, Gitea's `token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    Bearer,
    Token,
}

/// Asking a host what it is should not hang a run for long.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Http {
    client: Client,
    auth: Auth,
    /// Where the token may go: the API base's scheme, host and port.
    origin: url_origin::Origin,
    token: Option<Token>,
}

/// An answer from the server, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

mod url_origin {
    use reqwest::Url;

    /// scheme, host, port: two URLs with equal origins reach the same server.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Origin(String, String, Option<u16>);

    impl Origin {
        pub fn of(url: &Url) -> Self {
            Origin(
                url.scheme().to_owned(),
                url.host_str().unwrap_or_default().to_ascii_lowercase(),
                url.port_or_known_default(),
            )
        }
    }
}

impl Http {
    /// `timeout` bounds a whole request, answer included.
    pub fn new(
        api_base: &Url,
        token: Option<Token>,
        auth: Auth,
        timeout: Duration,
    ) -> Result<Self> {
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
            auth,
            origin: url_origin::Origin::of(api_base),
            token,
        })
    }

    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// Whether `url` is on the API's own server (and may carry the token).
    pub fn same_origin(&self, url: &Url) -> bool {
        url_origin::Origin::of(url) == self.origin
    }

    /// Sends one GET. `Err` is a transport failure (no answer, a timeout, a
    /// body over the cap): transient by nature, described without secrets.
    pub fn get(&self, url: &Url, etag: Option<&str>) -> Result<Reply> {
        let mut request = self.authorized(self.client.get(url.clone()), url)?;
        if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        self.send(request)
    }

    /// Sends one POST of a JSON body (GraphQL), like [`Http::get`].
    pub fn post_json(&self, url: &Url, body: Vec<u8>) -> Result<Reply> {
        let request = self
            .authorized(self.client.post(url.clone()), url)?
            .header(header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(request)
    }

    fn authorized(&self, request: RequestBuilder, url: &Url) -> Result<RequestBuilder> {
        Ok(match (&self.token, self.same_origin(url)) {
            (Some(token), true) => {
                let scheme = match self.auth {
                    Auth::Bearer => "Bearer",
                    Auth::Token => "token",
                };
                let mut value = HeaderValue::from_str(&format!("{scheme} {}", token.secret()))
                    .context("the token is not a valid header value")?;
                value.set_sensitive(true);
                request.header(header::AUTHORIZATION, value)
            }
            _ => request,
        })
    }

    fn send(&self, request: RequestBuilder) -> Result<Reply> {
        let response = request.send().map_err(|e| anyhow::anyhow!(describe(&e)))?;
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
