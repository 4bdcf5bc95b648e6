//! `man/patina-forge.1` is what `patina-forge --generate man` prints: the clap
//! definition, like `--help`, with the sections clap does not know appended
//! (`src/manpage.rs`); this test fails when the checked-in page is stale.
//!
//! Regenerate it with: `PATINA_FORGE_BLESS=1 cargo test --test man_page`

use std::path::Path;
use std::process::Command;

/// The page as the binary prints it: what `man patina-forge` shows after
/// `patina-forge --generate man > ~/.local/share/man/man1/patina-forge.1`.
fn render() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_patina-forge"))
        .args(["--generate", "man"])
        .env_clear()
        .output()
        .expect("run patina-forge");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("the page is UTF-8")
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
fn man_page_names_every_long_flag_of_help() {
    let page = render();
    let help = patina_forge::cli::command().render_long_help().to_string();
    for arg in patina_forge::cli::command().get_arguments() {
        if arg.is_hide_set() {
            assert!(!page.contains(&format!("--{}", arg.get_id())));
            continue;
        }
        if let Some(long) = arg.get_long() {
            assert!(
                help.contains(&format!("--{long}")),
                "--{long} missing from --help"
            );
            // roff escapes the dashes of an option name.
            let escaped = format!("\\-\\-{}", long.replace('-', "\\-"));
            assert!(
                page.contains(&escaped),
                "--{long} missing from the man page"
            );
        }
    }
    for section in [
        "ENVIRONMENT",
        "FILES",
        "EXIT STATUS",
        "EXAMPLES",
        "SEE ALSO",
        "PATINA",
    ] {
        assert!(
            page.contains(&format!(".SH {section}")),
            "no {section} section"
        );
    }
}
