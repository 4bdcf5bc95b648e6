//! An answer's classification on any status, headers and body, for every
//! kind of forge, and the `Link` header's `next`: no panic, and the answer
//! agrees with the status.
//!
//! Input: two bytes of status, then `name: value` lines up to an empty line,
//! then the body.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use patina_forge::forge::github::{Answer, classify, next_link};
use patina_forge::forge::http::Reply;
use patina_forge::forge::kind::ForgeKind;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let rest = &data[2..];
    let split = rest
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or(rest.len());
    let (head, body) = (&rest[..split], rest.get(split + 2..).unwrap_or(&[]));
    let mut headers = HeaderMap::new();
    for line in head.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    if let Some(link) = headers.get("link").and_then(|v| v.to_str().ok()) {
        let _ = next_link(link);
    }
    let reply = Reply {
        status: StatusCode::from_u16(status).expect("100..600"),
        headers,
        body: body.to_vec(),
    };
    for kind in [
        ForgeKind::Github,
        ForgeKind::GithubEnterprise,
        ForgeKind::Gitea,
    ] {
        let answer = classify(&reply, SystemTime::now(), kind);
        let ok = match answer {
            Answer::Ok => (200..300).contains(&status),
            Answer::NotModified => status == 304,
            Answer::NotFound => status == 404,
            Answer::Gone => status == 410,
            Answer::Moved(_) => [301, 302, 307, 308].contains(&status),
            Answer::Limited(_) | Answer::Denied(_) => [401, 403, 429].contains(&status),
            Answer::Transient(_) => true,
            // Made only when no connection was: never from an answer.
            Answer::Unreachable(_) => false,
        };
        assert!(ok, "{status} classified as {answer:?}");
    }
});
