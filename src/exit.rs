//! Exit statuses, a contract with timers, scripts and patina (see
//! `docs/contracts.md`): one type instead of `process::exit` calls scattered
//! through the code.

/// How a run ended, as a timer or a script sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done.
    Success,
    /// Failed; one line on stderr says what and what to do.
    Failure,
    /// Bad usage (clap reports these itself, with this status).
    Usage,
    /// Another process holds this repository's sync lock (`EX_TEMPFAIL`).
    Busy,
}

impl ExitCode {
    /// The process's exit status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Failure => 1,
            ExitCode::Usage => 2,
            ExitCode::Busy => 75,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}
