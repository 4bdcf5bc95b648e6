use clap::Parser;

use patina_forge::cli::Cli;
use patina_forge::daemon::Busy;
use patina_forge::exit::ExitCode;

fn main() -> std::process::ExitCode {
    let config = patina_forge::Config::try_from(Cli::parse()).unwrap_or_else(|e| e.exit());
    match patina_forge::run(config) {
        Ok(code) => code.into(),
        Err(err) if is_broken_pipe(&err) => ExitCode::Success.into(),
        Err(err) if err.is::<Busy>() => {
            // Busy's words alone ("Already syncing (PID N). Check: --status"),
            // without the "error:" prefix, as timers and patina expect them.
            eprintln!("{err}");
            ExitCode::Busy.into()
        }
        Err(err) => {
            let mut message = patina_forge::report::one_line(&err);
            if let Some(hint) = patina_forge::store::locked_hint(&err) {
                message = format!("{message}: {hint}");
            }
            eprintln!("error: {message}");
            ExitCode::Failure.into()
        }
    }
}

/// `patina-forge --status | head -1` is not a failure.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
