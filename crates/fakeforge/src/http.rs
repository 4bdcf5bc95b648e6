//! Just enough HTTP/1.1 for the fake: read one request head (and a
//! `Content-Length` body), write one answer with `connection: close`, close.
//! Every blocking call wakes up every `POLL` to look at the stop flag, so that
//! dropping the `FakeForge` ends every connection thread promptly.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Largest request head accepted (request line and headers); a larger one
/// is answered 431.
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest request body read (a GraphQL query; elsewhere it is ignored).
const MAX_BODY: usize = 1024 * 1024;
/// How often a blocked read or write looks at the stop flag.
pub const POLL: Duration = Duration::from_millis(50);
/// A client that sends nothing for this long is dropped without an answer.
const IDLE_LIMIT: Duration = Duration::from_secs(30);
/// How long to keep reading after the answer, waiting for the client's close
/// (see `finish`).
const LINGER: Duration = Duration::from_secs(2);

/// Locks, ignoring poisoning: a panicking connection thread must not take the
/// whole fake (and every later assertion) down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The stop flag shared by every thread of one `FakeForge`, with a condition
/// variable so that sleeps (latency, `Hang`) end at once on drop.
#[derive(Default)]
pub struct Stop {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Stop {
    pub fn set(&self) {
        *lock(&self.flag) = true;
        self.cv.notify_all();
    }

    pub fn is_set(&self) -> bool {
        *lock(&self.flag)
    }

    /// Sleeps for `d`, or less if stopped meanwhile; true when stopped.
    pub fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopped = lock(&self.flag);
        loop {
            if *stopped {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            stopped = self
                .cv
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// One parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The request target in origin form: path and query, as sent.
    pub target: String,
    /// Names in lower case, values trimmed, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body (`Content-Length` bytes), once `read_body` has read it.
    pub body: Vec<u8>,
    /// Bytes of the head, up to and including the blank line.
    head_len: usize,
    content_length: usize,
    /// Bytes already taken off the socket (by `read_body`).
    consumed: usize,
}

impl Request {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split_once('?').map_or(&self.target, |(p, _)| p)
    }

    /// The raw query (after `?`), or "".
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

/// What arrived on a connection.
pub enum Incoming {
    Request(Request),
    /// Not a request we can serve: answer `status` and close. `method` and
    /// `target` are what could be read of the request line, for the log.
    Invalid {
        status: u16,
        method: String,
        target: String,
    },
    /// The client closed, went idle, or the fake is stopping.
    Gone,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Waits for a complete request head and parses it, **without consuming it**
/// (`peek`): a `Reset` fault then closes the socket with the request still
/// unread, and Linux answers that with a real TCP RST instead of a FIN (std
/// cannot set `SO_LINGER` without unstable APIs or `unsafe`). Every other
/// answer calls `consume` first. Partial heads are waited for.
pub fn peek_request(stream: &TcpStream, stop: &Stop) -> Incoming {
    let mut buf = vec![0u8; MAX_HEAD + 1];
    let mut seen = 0;
    let mut last_progress = Instant::now();
    loop {
        if stop.is_set() || last_progress.elapsed() > IDLE_LIMIT {
            return Incoming::Gone;
        }
        let n = match stream.peek(&mut buf) {
            Ok(0) => return Incoming::Gone,
            Ok(n) => n,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return Incoming::Gone,
        };
        if let Some(end) = find(&buf[..n], b"\r\n\r\n") {
            return parse_head(&buf[..end + 4]);
        }
        if n > MAX_HEAD {
            let (method, target) = request_line(&buf[..n]);
            return Incoming::Invalid {
                status: 431,
                method,
                target,
            };
        }
        if n == seen {
            // `peek` returns at once while any byte is buffered, so without a
            // pause this would spin until the rest of the head arrives.
            if stop.sleep(Duration::from_millis(1)) {
                return Incoming::Gone;
            }
        } else {
            seen = n;
            last_progress = Instant::now();
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn request_line(head: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(head);
    let line = text.split("\r\n").next().unwrap_or("");
    let mut parts = line.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    (method, target)
}

fn parse_head(head: &[u8]) -> Incoming {
    let (method, target) = request_line(head);
    let invalid = |status| Incoming::Invalid {
        status,
        method: method.clone(),
        target: target.clone(),
    };
    let Ok(text) = std::str::from_utf8(head) else {
        return invalid(400);
    };
    let mut lines = text.split("\r\n");
    let parts: Vec<&str> = lines.next().unwrap_or("").split(' ').collect();
    let [m, t, version] = parts.as_slice() else {
        return invalid(400);
    };
    if m.is_empty() || !version.starts_with("HTTP/1.") {
        return invalid(400);
    }
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        // Obsolete line folding and header lines without a colon are errors
        // (RFC 9112 §5.2); a lenient parser here would hide client bugs.
        let Some((name, value)) = line.split_once(':') else {
            return invalid(400);
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return invalid(400);
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut request = Request {
        method: m.to_string(),
        target: origin_form(t),
        headers,
        body: Vec::new(),
        head_len: head.len(),
        content_length: 0,
        consumed: 0,
    };
    if let Some(len) = request.header("content-length") {
        match len.parse::<usize>() {
            Ok(n) if n <= MAX_BODY => request.content_length = n,
            Ok(_) => return invalid(413),
            Err(_) => return invalid(400),
        }
    }
    Incoming::Request(request)
}

/// `http://host:port/path?q` (absolute form, as sent to proxies) → `/path?q`.
fn origin_form(target: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target.strip_prefix(scheme) {
            return match rest.find(['/', '?']) {
                Some(i) if rest[i..].starts_with('/') => rest[i..].to_string(),
                Some(i) => format!("/{}", &rest[i..]),
                None => "/".to_string(),
            };
        }
    }
    target.to_string()
}

/// Reads exactly `n` bytes (discarding them), waking up for the stop flag.
fn discard(stream: &mut TcpStream, mut n: usize, stop: &Stop) -> bool {
    let mut buf = [0u8; 8192];
    let started = Instant::now();
    while n > 0 {
        if stop.is_set() || started.elapsed() > IDLE_LIMIT {
            return false;
        }
        match stream.read(&mut buf[..n.min(8192)]) {
            Ok(0) => return false,
            Ok(k) => n -= k,
            Err(e) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads the body into `request.body`, but leaves its last byte unread
/// (peeked), so that a `Reset` fault still closes with unread data and the
/// kernel still sends an RST. Any size works: only one byte waits in the
/// kernel's buffer. False when the client went away or the fake stops.
pub fn read_body(stream: &mut TcpStream, request: &mut Request, stop: &Stop) -> bool {
    let len = request.content_length;
    if len == 0 {
        return true;
    }
    let total = request.head_len + len;
    let mut buf = vec![0u8; total];
    let mut got = 0;
    let started = Instant::now();
    while got < total - 1 {
        if stop.is_set() || started.elapsed() > IDLE_LIMIT {
            return false;
        }
        match stream.read(&mut buf[got..total - 1]) {
            Ok(0) => return false,
            Ok(k) => got += k,
            Err(e) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    loop {
        if stop.is_set() || started.elapsed() > IDLE_LIMIT {
            return false;
        }
        match stream.peek(&mut buf[total - 1..]) {
            Ok(0) => return false,
            Ok(_) => break,
            Err(e) if is_timeout(&e) => {}
            Err(_) => return false,
        }
    }
    request.body = buf.split_off(request.head_len);
    request.consumed = total - 1;
    true
}

/// Takes the peeked head and the body off the socket (what `read_body` has
/// not already taken), so that closing after the answer is a clean FIN.
pub fn consume(stream: &mut TcpStream, request: &Request, stop: &Stop) -> bool {
    let total = request.head_len + request.content_length;
    discard(stream, total - request.consumed, stop)
}

/// Reads whatever has arrived (an invalid or oversized request), briefly.
pub fn drain_available(stream: &mut TcpStream) {
    let mut buf = [0u8; 8192];
    let started = Instant::now();
    while started.elapsed() < POLL * 4 {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return,
            Err(_) => return,
        }
    }
}

/// Writes all of `buf`, retrying write timeouts until stopped: a client that
/// reads slowly is waited for, one that is gone (EPIPE, ECONNRESET) ends it.
pub fn write_all(stream: &mut TcpStream, mut buf: &[u8], stop: &Stop) -> io::Result<()> {
    while !buf.is_empty() {
        match stream.write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if is_timeout(&e) => {
                if stop.is_set() {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// After the answer: half-close, then read until the client closes (bounded).
/// Closing outright while request bytes are still unread would make the
/// kernel send an RST that can destroy the answer in the client's buffer.
pub fn finish(stream: &mut TcpStream, stop: &Stop) {
    let _ = stream.shutdown(Shutdown::Write);
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    while !stop.is_set() && started.elapsed() < LINGER {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// One answer: status, headers (lower-case names) and body. `body: None` sends
/// no body and no `content-length` (304). `content_length` overrides the
/// declared length (the `Huge` fault declares more than it sends up front).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The head bytes; `declared` is the content-length to announce.
    pub fn head(&self, declared: Option<u64>) -> Vec<u8> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(len) = declared {
            head.push_str(&format!("content-length: {len}\r\n"));
        }
        head.push_str("connection: close\r\n\r\n");
        head.into_bytes()
    }
}

/// Reason phrases for the statuses the fake sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
