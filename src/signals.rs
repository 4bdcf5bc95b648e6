//! SIGINT and SIGTERM end a drain after the request in flight: the handler
//! only raises a flag that the drain and its waits look at.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_: nix::libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM ask for a stop instead of killing. The
/// handler resets itself, so a second Ctrl-C ends the process at once.
pub fn install() -> Result<()> {
    let action = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::SA_RESETHAND | SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe, and replaces no handler anyone else relies on.
        unsafe { sigaction(signal, &action) }.with_context(|| format!("cannot handle {signal}"))?;
    }
    Ok(())
}

/// Whether SIGINT or SIGTERM came: looked at between requests and
/// during every wait.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
