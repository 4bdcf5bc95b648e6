//! The commit-message parser on any bytes, against a forge whose names come
//! from the input too: no panic, and every number found is in range, found
//! once, and stands in the message after `#` or an issue/PR path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patina_forge::discover::parser::{ForgeRef, refs_in_message};

fn stands_after_marker(hay: &[u8], n: u32) -> bool {
    let digits = n.to_string();
    let d = digits.as_bytes();
    (0..hay.len()).any(|i| {
        hay[i..].starts_with(d)
            && hay.get(i + d.len()).is_none_or(|b| !b.is_ascii_digit())
            && (hay[..i].ends_with(b"#")
                || hay[..i].ends_with(b"/issues/")
                || hay[..i].ends_with(b"/pull/"))
    })
}

fuzz_target!(|data: &[u8]| {
    // The first line names the forge (`host owner name`), the rest is the
    // message; without one, github.com/acme/widget.
    let (forge_line, message) = match data.iter().position(|b| *b == b'\0') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"github.com acme widget"[..], data),
    };
    let text = String::from_utf8_lossy(forge_line);
    let mut parts = text.splitn(3, ' ');
    let (host, owner, name) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let forge = ForgeRef { host, owner, name };
    let mut out = Vec::new();
    refs_in_message(message, &forge, &mut out);
    let mut seen = std::collections::BTreeSet::new();
    for f in &out {
        assert!(f.number >= 1 && f.number <= i32::MAX as u32, "{f:?}");
        assert!(seen.insert(f.number), "{f:?} twice");
        assert!(
            stands_after_marker(message, f.number),
            "{f:?} not in the message"
        );
    }
});
