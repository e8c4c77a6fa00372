//! NGINX as a peer: Debian's `nginx` with the bench's configuration
//! (`deploy/nginx/nginx.conf`, one worker), in front of an upstream, so a test can send the
//! same bytes to our proxy and to NGINX and compare what each did.
//!
//! ```no_run
//! let upstream = testkit::upstream().start();
//! let nginx = testkit::nginx::start(&upstream);
//! let raw = testkit::tcp::exchange(testkit::Listening::addr(&nginx), b"GET / HTTP/1.1\r\n\r\n");
//! # let _ = raw;
//! ```
//!
//! NGINX must be installed (`scripts/setup` does it); without it the test fails, naming
//! the command, rather than skipping.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::patience::wait;
use crate::Listening;

/// The bench's NGINX configuration template.
const CONF: &str = include_str!("../../../deploy/nginx/nginx.conf");

/// A running NGINX (master and one worker), stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
}

/// Where Debian's nginx is, if installed.
fn program() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Starts NGINX in front of `upstream` on a free port of 127.0.0.1; returns once it
/// accepts connections. Panics, naming what to do, when nginx is not installed.
pub fn start(upstream: &impl Listening) -> Nginx {
    let nginx = program().unwrap_or_else(|| {
        panic!("nginx is not installed: run scripts/setup (or apt-get install nginx-light)")
    });
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let dir = std::env::temp_dir().join(format!("testkit-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the nginx prefix directory");
    let conf = CONF
        .replace("{threads}", "1")
        .replace("{listen}", &addr.to_string())
        .replace("{upstream}", &upstream.addr().to_string())
        .replace("{prefix}", &dir.display().to_string())
        .replace("{ssl}", "")
        .replace("{ssl_directives}", "");
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let child = Command::new(&nginx)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .args(["-e", "stderr"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", nginx.display()));
    let mut n = Nginx { child, addr, dir };
    wait(format!("nginx to listen on {addr}"))
        .every(Duration::from_millis(20))
        .until(|| {
            if let Ok(Some(status)) = n.child.try_wait() {
                panic!("nginx exited with {status} before listening (its stderr is above)");
            }
            TcpStream::connect(addr).is_ok()
        });
    n
}

impl Nginx {
    /// The master's process id (its worker is its child).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The prefix directory (configuration, pid file).
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Listening for Nginx {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its worker and exits.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
