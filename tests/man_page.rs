//! `man/patina-forge.1` is generated from the clap definition, like `--help`;
//! this test fails when the checked-in page is stale.
//!
//! Regenerate it with: `PATINA_FORGE_BLESS=1 cargo test --test man_page`

use std::path::Path;

fn render() -> String {
    let mut page = Vec::new();
    clap_mangen::Man::new(patina_forge::cli::command())
        .render(&mut page)
        .expect("rendering to memory cannot fail");
    String::from_utf8(page).expect("clap_mangen writes UTF-8")
}

#[test]
fn checked_in_man_page_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("man/patina-forge.1");
    let fresh = render();
    if std::env::var_os("PATINA_FORGE_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("cannot write the man page");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == fresh,
        "{} is stale: run `PATINA_FORGE_BLESS=1 cargo test --test man_page` and commit it",
        path.display()
    );
}

#[test]
fn man_page_names_every_long_flag() {
    let page = render();
    for arg in patina_forge::cli::command().get_arguments() {
        if let Some(long) = arg.get_long() {
            // roff escapes the dashes of an option name.
            let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(
                page.contains(&escaped),
                "--{long} missing from the man page"
            );
        }
    }
}
