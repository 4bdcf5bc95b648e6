//! What the decoders of REST's and GraphQL's answers share.

/// serde's message without the input: a body can be large and is the forge's text.
pub(super) fn describe(e: &serde_json::Error) -> String {
    format!(
        "malformed response body ({} at line {} column {})",
        classify(e),
        e.line(),
        e.column()
    )
}

fn classify(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "read error",
        Category::Syntax => "not JSON",
        Category::Data => "unexpected JSON shape",
        Category::Eof => "truncated JSON",
    }
}
