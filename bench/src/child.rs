//! Child processes of a bench run: started, watched, and always stopped.
//!
//! Every child runs in a process group of its own (so a terminal's Ctrl-C reaches
//! only the bench, which then stops its children in order), and gets a parent-death
//! signal, so no child outlives the bench even when the bench is killed with SIGKILL.
//! A [`Child`] is stopped when dropped: SIGTERM to its group, then SIGKILL after a
//! short grace. Its stderr is kept (the last lines) so that a child that dies can be
//! reported with what it said.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// Lines of stderr kept per child.
const STDERR_LINES: usize = 40;

/// Why a child could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    /// The program could not be executed.
    #[error("cannot start {name} ({program}): {source}")]
    Spawn {
        /// Role name.
        name: String,
        /// Program path.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The child exited before it was ready or during a trial.
    #[error("{name} exited ({status}) {when}; its last output:\n{stderr}")]
    Died {
        /// Role name.
        name: String,
        /// Exit status.
        status: String,
        /// When it was noticed.
        when: String,
        /// Last stderr lines, indented.
        stderr: String,
    },
    /// The child did not become ready in time.
    #[error("{name} did not become ready within {timeout:?} ({what}); its last output:\n{stderr}")]
    NotReady {
        /// Role name.
        name: String,
        /// The wait.
        timeout: Duration,
        /// What was awaited.
        what: String,
        /// Last stderr lines, indented.
        stderr: String,
    },
}

/// A running child process, stopped on drop.
pub struct Child {
    name: String,
    inner: std::process::Child,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stdout_lines: Option<mpsc::Receiver<String>>,
}

impl std::fmt::Debug for Child {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Child")
            .field("name", &self.name)
            .field("pid", &self.inner.id())
            .finish()
    }
}

impl Child {
    /// Spawns `cmd` as `name`, in its own process group, with stdout and stderr captured.
    pub fn spawn(name: &str, mut cmd: Command, parent_death: Signal) -> Result<Child, ChildError> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        set_parent_death_signal(&mut cmd, parent_death);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let mut inner = cmd.spawn().map_err(|source| ChildError::Spawn {
            name: name.to_owned(),
            program,
            source,
        })?;
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES)));
        if let Some(err) = inner.stderr.take() {
            let buf = stderr.clone();
            thread::Builder::new()
                .name(format!("{name}-stderr"))
                .spawn(move || {
                    for line in BufReader::new(err).lines() {
                        let Ok(line) = line else { break };
                        let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
                        if b.len() == STDERR_LINES {
                            b.pop_front();
                        }
                        b.push_back(line);
                    }
                })
                .ok();
        }
        let stdout_lines = inner.stdout.take().and_then(|out| {
            let (tx, rx) = mpsc::channel();
            thread::Builder::new()
                .name(format!("{name}-stdout"))
                .spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            // Nobody listens any more: keep draining so the child never blocks.
                            continue;
                        }
                    }
                })
                .ok()
                .map(|_| rx)
        });
        Ok(Child {
            name: name.to_owned(),
            inner,
            stderr,
            stdout_lines,
        })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.inner.id()
    }

    /// Its role name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for the `listening on http://ADDR` line that the app and proxy print.
    pub fn wait_listening(&mut self, timeout: Duration) -> Result<SocketAddr, ChildError> {
        let deadline = Instant::now() + timeout;
        let rx = self.stdout_lines.take();
        let result = loop {
            self.check_alive("before it was ready")?;
            let Some(rx) = &rx else {
                break Err(self.not_ready(timeout, "no stdout"));
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break Err(self.not_ready(timeout, "no `listening on` line"));
            }
            match rx.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) => {
                    let addr = line.trim().strip_prefix("listening on ").and_then(|a| {
                        a.strip_prefix("http://")
                            .or_else(|| a.strip_prefix("https://"))
                    });
                    if let Some(addr) = addr {
                        if let Ok(a) = addr.trim_end_matches('/').parse() {
                            break Ok(a);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: either it died (reported next round) or it never prints.
                    thread::sleep(Duration::from_millis(20));
                    self.check_alive("before it was ready")?;
                }
            }
        };
        self.stdout_lines = rx;
        result
    }

    /// Waits until `addr` accepts TCP connections (for programs that print nothing).
    pub fn wait_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<(), ChildError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive("before it was ready")?;
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(
                    self.not_ready(timeout, &format!("nothing accepted connections on {addr}"))
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the Unix socket `path` accepts connections.
    pub fn wait_unix(
        &mut self,
        path: &std::path::Path,
        timeout: Duration,
    ) -> Result<(), ChildError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive("before it was ready")?;
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(
                    timeout,
                    &format!("nothing accepted connections on {}", path.display()),
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// An error if the child has exited.
    pub fn check_alive(&mut self, when: &str) -> Result<(), ChildError> {
        match self.inner.try_wait() {
            Ok(Some(status)) => {
                // Give the stderr reader a moment to collect the last words.
                thread::sleep(Duration::from_millis(50));
                Err(ChildError::Died {
                    name: self.name.clone(),
                    status: describe_status(status),
                    when: when.to_owned(),
                    stderr: self.last_stderr(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The last lines the child wrote to stderr, indented for an error message.
    pub fn last_stderr(&self) -> String {
        let b = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        if b.is_empty() {
            return "  (nothing on stderr)".to_owned();
        }
        b.iter()
            .map(|l| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn not_ready(&self, timeout: Duration, what: &str) -> ChildError {
        ChildError::NotReady {
            name: self.name.clone(),
            timeout,
            what: what.to_owned(),
            stderr: self.last_stderr(),
        }
    }

    /// Stops the child's process group: SIGTERM, then SIGKILL after `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if matches!(self.inner.try_wait(), Ok(Some(_))) {
            self.kill_group(Signal::SIGKILL); // stray grandchildren, if any
            return;
        }
        self.kill_group(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.inner.try_wait(), Ok(Some(_))) {
                self.kill_group(Signal::SIGKILL);
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.kill_group(Signal::SIGKILL);
        let _ = self.inner.wait();
    }

    fn kill_group(&self, sig: Signal) {
        let pgid = Pid::from_raw(self.inner.id() as i32);
        let _ = killpg(pgid, sig);
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(3));
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!(
            "killed by {}",
            Signal::try_from(s)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {s}"))
        ),
        _ => status.to_string(),
    }
}

/// Asks the kernel to send `sig` to the child when the bench's thread that spawned
/// it dies, and exits the child at once if the bench is already gone.
#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command, sig: Signal) {
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs between fork and exec and only calls prctl(2),
    // getppid(2) and _exit(2), which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(sig).map_err(std::io::Error::from)?;
            if nix::unistd::getppid().as_raw() != parent {
                libc::_exit(70);
            }
            Ok(())
        });
    }
}
