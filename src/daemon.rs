//! The repository's sync lock: `$PATINA_HOME/run/forge-sync-<owner>-<repo>.pid`,
//! held with an exclusive `flock` for the whole life of the process that
//! drains. The lock, not the PID in the file, says whether a sync runs: a
//! PID can be reused, a lock dies with its holder.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::home::{self, PatinaHome};
use crate::target::ForgeName;

/// Another process holds the lock: exit status 75.
#[derive(Debug)]
pub struct Busy {
    /// What the PID file says; `None` when it cannot be read (a holder
    /// that has not written it yet).
    pub pid: Option<u32>,
    /// The command that shows the sync: `--status`, or `--status --all`.
    pub check: &'static str,
}

impl std::fmt::Display for Busy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let check = self.check;
        match self.pid {
            Some(pid) => write!(f, "Already syncing (PID {pid}). Check: {check}"),
            None => write!(f, "Already syncing. Check: {check}"),
        }
    }
}

impl std::error::Error for Busy {}

/// The held lock; dropping it (or dying) releases it. The file stays: removing
/// it would race with a process that has just opened it.
pub struct SyncLock {
    file: File,
    path: PathBuf,
}

impl SyncLock {
    /// Takes the lock without waiting. `Err` carries [`Busy`] when another
    /// process holds it.
    ///
    /// patina's own sync removes the PID file when it cannot read a PID in
    /// it, and a new file may then take its place: a lock on the removed
    /// file would guard nothing. So the file is created with the PID already
    /// in it, and once locked and written, it must still be the file at the
    /// path; if not, the lock is taken again on the one there.
    pub fn acquire(home: &PatinaHome, forge: &ForgeName) -> Result<Self> {
        Self::acquire_at(home, &home.pid_file(&forge.owner, &forge.name))
    }

    /// [`SyncLock::acquire`] for the lock at `path` in `run/` (the
    /// all-repositories lock of `--sync --all`).
    pub fn acquire_at(home: &PatinaHome, path: &Path) -> Result<Self> {
        home.run_dir()?;
        let path = path.to_owned();
        let pid = std::process::id();
        for _ in 0..LOCK_ATTEMPTS {
            let mut file = open_with_pid(&path, pid)
                .with_context(|| format!("cannot open the PID file {}", path.display()))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(Busy {
                        pid: read_pid(&mut file),
                        check: "--status",
                    }
                    .into());
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", path.display()));
                }
            }
            let mut lock = Self {
                file,
                path: path.clone(),
            };
            lock.write_pid(pid)?;
            if lock.is_at_path() {
                return Ok(lock);
            }
        }
        anyhow::bail!(
            "cannot hold {}: another program keeps removing or replacing it",
            path.display()
        )
    }

    /// Whether the locked file is the one at the path now.
    fn is_at_path(&self) -> bool {
        use std::os::unix::fs::MetadataExt;
        match (self.file.metadata(), std::fs::symlink_metadata(&self.path)) {
            (Ok(held), Ok(there)) => held.dev() == there.dev() && held.ino() == there.ino(),
            _ => false,
        }
    }

    /// Records the PID of the process that now holds the lock (after a fork,
    /// the child's).
    ///
    /// Positional writes: after a fork, parent and child share the file's
    /// offset, and both write the child's PID. One write of one width over
    /// the old record, never a truncation first: the file is never empty nor
    /// holds a piece of an older PID, either of which patina's own sync
    /// would take for a dead sync's file and remove.
    pub fn write_pid(&mut self, pid: u32) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let record = pid_record(pid);
        self.file
            .write_all_at(&record, 0)
            .and_then(|()| self.file.set_len(record.len() as u64))
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// How often [`SyncLock::acquire`] takes the lock again when the file was
/// replaced under it before giving up.
const LOCK_ATTEMPTS: usize = 8;

/// The PID file's content: `PID\n`, then spaces up to one width for every
/// PID, so that a new record covers the old one whole. Readers that trim, or
/// read the first line, see the PID alone.
fn pid_record(pid: u32) -> Vec<u8> {
    const WIDTH: usize = 12;
    let mut record = format!("{pid}\n").into_bytes();
    record.resize(WIDTH.max(record.len()), b' ');
    record
}

/// Opens the PID file; a missing one is created with `pid` already in it
/// (written to a file of its own, then linked into place, which fails when
/// another process was first), so that it is never seen empty.
fn open_with_pid(path: &Path, pid: u32) -> std::io::Result<File> {
    use std::io::ErrorKind;
    use std::os::unix::fs::FileExt;
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => return other,
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{}.new", std::process::id()));
    let fresh = PathBuf::from(name);
    let _ = std::fs::remove_file(&fresh);
    let linked = home::open_private(&fresh)
        .and_then(|file| file.write_all_at(&pid_record(pid), 0))
        .and_then(|()| std::fs::hard_link(&fresh, path));
    let _ = std::fs::remove_file(&fresh);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    open()
}

/// Who holds the lock, if anyone. Reads only: opens an existing PID file
/// (never creating one), tries a shared lock and lets go at once.
pub fn holder(home: &PatinaHome, forge: &ForgeName) -> Result<Option<Busy>> {
    holder_at(&home.pid_file(&forge.owner, &forge.name))
}

/// [`holder`] of the lock at `path`.
pub fn holder_at(path: &Path) -> Result<Option<Busy>> {
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Some(Busy {
            pid: read_pid(&mut file),
            check: "--status",
        })),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// Which side of [`detach`] we are on.
pub enum Detached {
    /// The caller, which should report and return at once.
    Parent {
        /// The background process, to report.
        pid: u32,
    },
    /// The background process: in its own session, stdin on `/dev/null`,
    /// stdout and stderr appended to the log, holding the lock.
    Child(SyncLock),
}

/// Forks the drain into the background. Must run before any thread, HTTP
/// client or database connection exists: only the calling thread survives a
/// fork, and locks or sockets held by others would be left in limbo.
///
/// The lock's file description is shared across the fork; the parent closes
/// its copy on return, the child keeps holding the lock for its whole life.
pub fn detach(mut lock: SyncLock, log: &Path) -> Result<Detached> {
    let log = open_log(log)?;
    let null = std::fs::File::open("/dev/null").context("cannot open /dev/null")?;
    // SAFETY: the process is single-threaded here (the caller's contract), so
    // the child may run any code, not only async-signal-safe functions.
    match unsafe { nix::unistd::fork() }.context("cannot fork the background sync")? {
        nix::unistd::ForkResult::Parent { child } => {
            // Before the parent returns, so that whoever reads the PID file
            // next (--status, --stop) never finds the parent's PID in it.
            let pid = child.as_raw() as u32;
            lock.write_pid(pid)?;
            Ok(Detached::Parent { pid })
        }
        nix::unistd::ForkResult::Child => {
            nix::unistd::setsid().context("cannot start a new session")?;
            nix::unistd::dup2_stdin(&null).context("cannot detach stdin")?;
            nix::unistd::dup2_stdout(&log).context("cannot redirect stdout to the log")?;
            nix::unistd::dup2_stderr(&log).context("cannot redirect stderr to the log")?;
            // A closed terminal must not end the sync.
            // SAFETY: SIG_IGN installs no code.
            unsafe {
                nix::sys::signal::signal(
                    nix::sys::signal::Signal::SIGHUP,
                    nix::sys::signal::SigHandler::SigIgn,
                )
            }
            .context("cannot ignore SIGHUP")?;
            lock.write_pid(std::process::id())?;
            Ok(Detached::Child(lock))
        }
    }
}

/// The sync log, appended, owner-only, never through a symlink.
pub fn open_log(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(path)
        .with_context(|| format!("cannot open the log {}", path.display()))
}

/// Asks the process holding the lock to stop after its request in flight,
/// and waits (up to `patience`) until the lock is free. Returns its PID, or
/// `None` when nothing was running.
pub fn stop(
    home: &PatinaHome,
    forge: &ForgeName,
    patience: std::time::Duration,
) -> Result<Option<u32>> {
    stop_at(&home.pid_file(&forge.owner, &forge.name), patience)
}

/// [`stop`] for the holder of the lock at `path`.
pub fn stop_at(path: &Path, patience: std::time::Duration) -> Result<Option<u32>> {
    let Some(busy) = holder_at(path)? else {
        return Ok(None);
    };
    let pid = busy
        .pid
        .context("a sync holds the lock but its PID file is empty: cannot signal it")?;
    let target = process(pid).with_context(|| {
        format!(
            "{} says PID {pid}, which no sync can have: not signalling it \
             (`fuser {}` names the holder)",
            path.display(),
            path.display()
        )
    })?;
    if !holds_open(target, path)? {
        anyhow::bail!(
            "PID {pid}, named in {}, does not hold it: the file was written by \
             someone else; not signalling it (`fuser {}` names the holder)",
            path.display(),
            path.display()
        );
    }
    nix::sys::signal::kill(target, nix::sys::signal::Signal::SIGTERM)
        .with_context(|| format!("cannot signal PID {pid}"))?;
    let started = std::time::Instant::now();
    while holder_at(path)?.is_some() {
        if started.elapsed() > patience {
            anyhow::bail!(
                "PID {pid} did not stop within {}s; it may be waiting on the network (kill -9 {pid} loses at most the request in flight)",
                patience.as_secs()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(Some(pid))
}

/// The process a PID file's number may name: never 0 or 1 (`kill` would
/// reach the whole process group, or init), nor a number that wraps to a
/// negative `pid_t` (-1 is every process the user may signal).
fn process(pid: u32) -> Option<nix::unistd::Pid> {
    let raw = i32::try_from(pid).ok().filter(|&raw| raw > 1)?;
    Some(nix::unistd::Pid::from_raw(raw))
}

/// Whether `pid` has `path` open, as the lock's holder has for its whole
/// life: a stale or forged PID names a process that does not. The kernel is
/// asked, by the file's device and inode: Linux lists a process's files in
/// `/proc/PID/fd`, macOS through libproc (what `lsof` reads). A process that
/// is gone or not ours to look at has nothing open that we can see, and
/// where the system cannot be asked at all the answer is an error: the PID
/// alone is never trusted.
fn holds_open(pid: nix::unistd::Pid, path: &Path) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let file =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let files = open_files::of(pid).with_context(|| {
        format!(
            "cannot tell on this system which process holds {}: not signalling PID {pid} \
             (`fuser {}` names the holder)",
            path.display(),
            path.display()
        )
    })?;
    Ok(files.contains(&(file.dev(), file.ino())))
}

/// The files a process has open, as `(device, inode)` in the form
/// `std::os::unix::fs::MetadataExt` gives them.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod open_files {
    use std::os::unix::fs::MetadataExt;

    /// Empty when the process is gone or not ours (or `/proc` is not
    /// mounted): nothing of it can be seen holding the file.
    pub fn of(pid: nix::unistd::Pid) -> anyhow::Result<Vec<(u64, u64)>> {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            return Ok(Vec::new());
        };
        Ok(fds
            .flatten()
            // Following the link stats the open file itself.
            .filter_map(|fd| std::fs::metadata(fd.path()).ok())
            .map(|m| (m.dev(), m.ino()))
            .collect())
    }
}

/// The files a process has open, as `(device, inode)` in the form
/// `std::os::unix::fs::MetadataExt` gives them.
#[cfg(target_os = "macos")]
mod open_files {
    use std::ffi::c_int;
    use std::mem::{MaybeUninit, size_of};

    /// `struct proc_fileinfo` of `<sys/proc_info.h>`, which libc lacks.
    #[repr(C)]
    struct ProcFileInfo {
        fi_openflags: u32,
        fi_status: u32,
        fi_offset: i64,
        fi_type: i32,
        fi_guardflags: u32,
    }

    /// `struct vnode_fdinfo`: what `PROC_PIDFDVNODEINFO` fills.
    #[repr(C)]
    struct VnodeFdInfo {
        pfi: ProcFileInfo,
        pvi: libc::vnode_info,
    }

    const PROC_PIDFDVNODEINFO: c_int = 1;

    /// Empty when the process is gone or not ours: nothing of it can be
    /// seen holding the file.
    pub fn of(pid: nix::unistd::Pid) -> anyhow::Result<Vec<(u64, u64)>> {
        let pid = pid.as_raw();
        let entry = size_of::<libc::proc_fdinfo>();
        // SAFETY: a null buffer asks only how many bytes the list takes.
        let needed =
            unsafe { libc::proc_pidinfo(pid, libc::PROC_PIDLISTFDS, 0, std::ptr::null_mut(), 0) };
        let Ok(needed) = usize::try_from(needed) else {
            return Ok(Vec::new());
        };
        // Room for files opened between the two calls.
        let capacity = needed / entry + 32;
        let mut fds: Vec<libc::proc_fdinfo> = Vec::with_capacity(capacity);
        // SAFETY: the buffer holds `capacity` entries, and its size in bytes
        // is what the kernel is told.
        let got = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDLISTFDS,
                0,
                fds.as_mut_ptr().cast(),
                c_int::try_from(capacity * entry)?,
            )
        };
        let Ok(got) = usize::try_from(got) else {
            return Ok(Vec::new());
        };
        // SAFETY: the kernel wrote `got` bytes of whole entries, within capacity.
        unsafe { fds.set_len((got / entry).min(capacity)) };
        let mut files = Vec::new();
        for fd in fds
            .iter()
            .filter(|fd| fd.proc_fdtype == libc::PROX_FDTYPE_VNODE as u32)
        {
            let mut info = MaybeUninit::<VnodeFdInfo>::zeroed();
            let size = size_of::<VnodeFdInfo>();
            // SAFETY: `info` is `size` bytes, which the kernel is told.
            let wrote = unsafe {
                libc::proc_pidfdinfo(
                    pid,
                    fd.proc_fd,
                    PROC_PIDFDVNODEINFO,
                    info.as_mut_ptr().cast(),
                    c_int::try_from(size)?,
                )
            };
            // Closed since the list was made, or not a file after all.
            if usize::try_from(wrote).ok() != Some(size) {
                continue;
            }
            // SAFETY: zeroed, then filled whole by the kernel; plain integers.
            let info = unsafe { info.assume_init() };
            let stat = &info.pvi.vi_stat;
            // `st_dev` is a 32-bit `dev_t` that MetadataExt widens with its sign.
            files.push((stat.vst_dev as i32 as u64, stat.vst_ino));
        }
        Ok(files)
    }
}

/// Elsewhere the open files of another process cannot be listed the same
/// way: `--stop` refuses rather than trust the PID file.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "macos")))]
mod open_files {
    pub fn of(_: nix::unistd::Pid) -> anyhow::Result<Vec<(u64, u64)>> {
        anyhow::bail!("no way to list another process's open files here")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_that_reach_more_than_one_process_are_refused() {
        for pid in [0, 1, 1 << 31, u32::MAX] {
            assert_eq!(process(pid), None, "{pid}");
        }
        assert_eq!(process(2), Some(nix::unistd::Pid::from_raw(2)));
        assert_eq!(
            process(i32::MAX as u32),
            Some(nix::unistd::Pid::from_raw(i32::MAX))
        );
    }

    #[test]
    fn only_a_process_with_the_file_open_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        let open = std::fs::File::create(&path).unwrap();
        assert!(holds_open(nix::unistd::Pid::this(), &path).unwrap());
        drop(open);
        assert!(!holds_open(nix::unistd::Pid::this(), &path).unwrap());
    }

    /// What `--stop` asks: does another process hold the file? Asked of a
    /// child that has it open as its stdin, then of one that has not.
    #[test]
    fn another_process_is_seen_holding_the_file_only_while_it_has_it_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pid");
        std::fs::write(&path, "").unwrap();
        let spawn = |stdin: std::process::Stdio| {
            std::process::Command::new("sleep")
                .arg("60")
                .stdin(stdin)
                .spawn()
                .unwrap()
        };
        let mut holder = spawn(File::open(&path).unwrap().into());
        let mut other = spawn(std::process::Stdio::null());
        let pid = |child: &std::process::Child| nix::unistd::Pid::from_raw(child.id() as i32);
        // Asked before any assertion, so that both are ended, pass or fail.
        let seen = (
            holds_open(pid(&holder), &path).ok(),
            holds_open(pid(&other), &path).ok(),
        );
        for child in [&mut holder, &mut other] {
            let _ = child.kill();
            child.wait().unwrap();
        }
        assert_eq!(seen, (Some(true), Some(false)));
        // Gone: nothing of it holds anything.
        assert!(!holds_open(pid(&holder), &path).unwrap());
    }
}
