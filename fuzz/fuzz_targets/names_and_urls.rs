//! Names and URLs from outside, before they touch a path or a request:
//! `check_name`, `ForgeName::parse`, `parse_remote_url`, `api_base`. No
//! panic; whatever is accepted obeys the rules.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patina_forge::forge::github::api_base;
use patina_forge::forge::kind::ForgeKind;
use patina_forge::home::check_name;
use patina_forge::target::{ForgeName, parse_remote_url};

fn allowed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(check_name(text).is_ok(), allowed(text), "{text:?}");
    if let Ok(name) = ForgeName::parse(text) {
        assert!(allowed(&name.owner) && allowed(&name.name), "{text:?}");
    }
    if let Ok(forge) = parse_remote_url(text) {
        assert!(
            allowed(&forge.repo.owner) && allowed(&forge.repo.name),
            "{text:?}"
        );
        assert!(
            !forge.host.is_empty() && forge.host.len() <= 253,
            "{text:?}"
        );
    }
    for kind in [
        ForgeKind::Github,
        ForgeKind::GithubEnterprise,
        ForgeKind::Gitea,
    ] {
        if let Ok(url) = api_base("github.com", Some(text), kind) {
            assert!(
                url.username().is_empty() && url.password().is_none(),
                "{url}"
            );
            assert!(url.scheme() == "https" || url.scheme() == "http", "{url}");
        }
    }
});
