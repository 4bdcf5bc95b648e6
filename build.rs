//! Names the commit the binary was built from, for `--version`.

use std::path::Path;
use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        // A source tarball has no history to name.
        .unwrap_or_else(|| "unknown commit".to_owned());
    println!("cargo:rustc-env=PATINA_FORGE_COMMIT={commit}");

    // Rebuild when HEAD moves: HEAD itself, the branch it points at, packed refs.
    let git = Path::new(".git");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/packed-refs");
    if let Ok(head) = std::fs::read_to_string(git.join("HEAD"))
        && let Some(branch) = head.trim().strip_prefix("ref: ")
    {
        println!("cargo:rerun-if-changed=.git/{branch}");
    }
}
