//! A program of the workspace run as a child [`Process`] that prints `listening on
//! http://ADDR` as its first stdout line (the app, the proxy, the bench's subcommands), with
//! its output kept for the test, signals, a bounded wait for its exit, and a kill on drop.
//! [`TempFile`] holds a file the process reads (a configuration) for as long as it runs.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::patience::{scaled, wait, WAIT};

/// The workspace's root directory (where scenario files name their templates from).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/testkit is two levels below the workspace root")
        .to_path_buf()
}

/// The binary `name` of this workspace, next to the running test's executable
/// (`target/<profile>/<name>`). Cargo builds a package's binaries before its integration
/// tests, so a package's own binary is always there; prefer `env!("CARGO_BIN_EXE_<name>")`
/// when the test can name it.
pub fn cargo_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("the test executable's directory");
    let dir = if dir.ends_with("deps") {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "no {name} binary at {}: build it first (cargo build -p {name})",
        path.display()
    );
    path
}

/// A running child; killed (and reaped) on drop if still running.
#[derive(Debug)]
pub struct Process {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<Output>>,
    stdout_rest: Arc<Mutex<Output>>,
    _files: Vec<TempFile>,
}

/// Text read from a pipe so far, and whether the pipe closed.
#[derive(Debug, Default)]
struct Output {
    text: String,
    closed: bool,
}

impl Process {
    /// Spawns `cmd` with stdout and stderr piped and waits (bounded) for its first stdout
    /// line, `listening on http://ADDR` (`https://` for a TLS listener). Panics with its stderr if that never comes.
    pub fn start(cmd: &mut Command) -> Process {
        Process::start_with_files(cmd, Vec::new())
    }

    /// [`Process::start`], keeping `files` until the process is dropped.
    pub fn start_with_files(cmd: &mut Command, files: Vec<TempFile>) -> Process {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let err_text = Arc::new(Mutex::new(Output::default()));
        let et = err_text.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stderr);
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                et.lock().unwrap().text.push_str(&line);
                line.clear();
            }
            et.lock().unwrap().closed = true;
        });
        let (tx, rx) = mpsc::channel();
        let rest_text = Arc::new(Mutex::new(Output::default()));
        let rt = rest_text.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let _ = tx.send(line);
            // Keep reading until the process exits: a test may check nothing else came.
            let mut rest = String::new();
            let _ = r.read_to_string(&mut rest);
            let mut out = rt.lock().unwrap();
            out.text = rest;
            out.closed = true;
        });
        let stderr_now = || err_text.lock().unwrap().text.clone();
        let line = rx.recv_timeout(scaled(WAIT)).unwrap_or_else(|_| {
            panic!(
                "{:?} did not print its address within {:?}; stderr: {}",
                cmd.get_program(),
                scaled(WAIT),
                stderr_now()
            )
        });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| {
                a.strip_prefix("http://")
                    .or_else(|| a.strip_prefix("https://"))
            })
            .and_then(|a| a.trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "{:?}: unexpected first stdout line {line:?}; stderr: {}",
                    cmd.get_program(),
                    stderr_now()
                )
            });
        Process {
            child,
            addr,
            stderr: err_text,
            stdout_rest: rest_text,
            _files: files,
        }
    }

    /// The address it printed.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its process id.
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    /// Sends `sig`.
    pub fn signal(&self, sig: Signal) {
        nix::sys::signal::kill(self.pid(), sig).unwrap_or_else(|e| panic!("send {sig}: {e}"));
    }

    /// Waits up to `within` (scaled) for the process to exit; its exit code (`None`: it
    /// did not exit, or a signal ended it).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let child = &mut self.child;
        wait("the process to exit")
            .within(within)
            .poll(|| child.try_wait().expect("try_wait"))
            .and_then(|status| status.code())
    }

    /// [`Process::wait_exit`], panicking with the process's stderr if it does not exit.
    pub fn expect_exit(&mut self, within: Duration) -> i32 {
        match self.wait_exit(within) {
            Some(code) => code,
            None => panic!(
                "did not exit with a code within {:?}; stderr: {}",
                scaled(within),
                self.stderr()
            ),
        }
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().text.clone()
    }

    /// Everything it wrote to stderr, once it has closed it (exited); bounded.
    pub fn stderr_at_exit(&self) -> String {
        closed_text(&self.stderr)
    }

    /// What it wrote to stdout after its first line, once it has closed it (exited).
    pub fn stdout_at_exit(&self) -> String {
        closed_text(&self.stdout_rest)
    }
}

fn closed_text(out: &Mutex<Output>) -> String {
    wait("the process to close its output").until_some(|| {
        let o = out.lock().unwrap();
        o.closed.then(|| o.text.clone())
    })
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A file in the temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Writes `contents` to a fresh file whose name ends with `name`.
    pub fn new(name: &str, contents: impl AsRef<[u8]>) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tinyfish-test-{}-{}-{name}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        TempFile { path }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl AsRef<OsStr> for TempFile {
    fn as_ref(&self) -> &OsStr {
        self.path.as_os_str()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Every descendant of `root`, with its command line.
pub fn descendants(root: u32) -> Vec<(u32, String)> {
    let mut parents = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if let Some(ppid) = f.get(1).and_then(|p| p.parse::<u32>().ok()) {
            parents.push((pid, ppid));
        }
    }
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (c, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            let command = std::fs::read(format!("/proc/{c}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            out.push((*c, command));
            frontier.push(*c);
        }
    }
    out
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits until every pid is gone (10 s, scaled); kills what is left and fails naming it.
pub fn assert_all_gone(pids: &[u32]) {
    let wait = wait("every child of the bench to be gone")
        .within(Duration::from_secs(10))
        .every(Duration::from_millis(50));
    let gone = wait.holds(|| pids.iter().all(|p| !alive(*p)));
    if !gone {
        let left: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
        for p in &left {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*p as i32), Signal::SIGKILL);
        }
        panic!("orphans left behind after {:?}: {left:?}", wait.bound());
    }
}

/// A finished child's status, stdout and stderr, for an assertion message.
pub fn describe(o: &std::process::Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
