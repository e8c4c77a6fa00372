//! The receivers: one OS thread per socket (UDP, and the Unix datagram `dsd.socket`),
//! each blocking in `recv` into one reused 64 KiB buffer and aggregating under a
//! mutex held per datagram. Threads keep the receiver off the async runtime, which in
//! the bench is busy generating load. A 100 ms receive timeout lets them notice
//! shutdown.
//!
//! Sockets get a large receive buffer ([`RECV_BUFFER`], capped by the kernel at
//! `net.core.rmem_max`), and the kernel's drop count for the UDP socket is read from
//! `/proc/net/udp{,6}` by the socket's inode.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

use crate::aggregate::Aggregator;
use crate::parse;

/// Receive buffer asked of the kernel for each socket.
pub const RECV_BUFFER: usize = 8 * 1024 * 1024;
/// Largest datagram read whole (bigger Unix datagrams are truncated).
pub const MAX_DATAGRAM: usize = 64 * 1024;
const POLL: Duration = Duration::from_millis(100);

/// The aggregators the receivers feed: the main window, the printer's interval
/// window when `--print` is on, and the per-second window of [`crate::series`] when the
/// live page is served.
#[derive(Debug, Default)]
pub struct Shared {
    main: Mutex<Aggregator>,
    print: Option<Mutex<Aggregator>>,
    series: Option<Mutex<Aggregator>>,
}

fn lock(m: &Mutex<Aggregator>) -> MutexGuard<'_, Aggregator> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Aggregators for a receiver; `print` adds the printer's interval window.
    pub fn new(print: bool) -> Self {
        Self::with_windows(print, false)
    }

    /// Aggregators for a receiver; `print` adds the printer's interval window, `series`
    /// the per-second window.
    pub fn with_windows(print: bool, series: bool) -> Self {
        Shared {
            main: Mutex::new(Aggregator::new()),
            print: print.then(|| Mutex::new(Aggregator::new())),
            series: series.then(|| Mutex::new(Aggregator::new())),
        }
    }

    /// Parses one datagram once and aggregates it into every window.
    pub fn ingest(&self, packet: &[u8]) {
        let mut main = lock(&self.main);
        if self.print.is_none() && self.series.is_none() {
            return main.ingest(packet);
        }
        let mut print = self.print.as_ref().map(lock);
        let mut series = self.series.as_ref().map(lock);
        main.count_packet(packet.len());
        for w in print.iter_mut().chain(series.iter_mut()) {
            w.count_packet(packet.len());
        }
        for item in parse::parse_packet(packet) {
            main.ingest_result(&item);
            for w in print.iter_mut().chain(series.iter_mut()) {
                w.ingest_result(&item);
            }
        }
    }

    /// Aggregates an item made inside the process (not received: no datagram or line
    /// is counted) into every window.
    pub fn ingest_item(&self, item: &parse::Item<'_>) {
        lock(&self.main).ingest_item(item);
        for w in self.print.iter().chain(self.series.iter()) {
            lock(w).ingest_item(item);
        }
    }

    /// The main window, locked.
    pub fn main(&self) -> MutexGuard<'_, Aggregator> {
        lock(&self.main)
    }

    /// Takes the printer's interval window, if printing.
    pub fn take_print(&self) -> Option<Aggregator> {
        self.print.as_ref().map(|p| std::mem::take(&mut *lock(p)))
    }

    /// Takes the per-second window, if keeping series.
    pub fn take_series(&self) -> Option<Aggregator> {
        self.series.as_ref().map(|p| std::mem::take(&mut *lock(p)))
    }
}

/// Binds a UDP socket with a large receive buffer; returns it and the buffer the
/// kernel granted.
pub fn bind_udp(addr: SocketAddr) -> io::Result<(UdpSocket, usize)> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    socket.bind(&addr.into())?;
    let granted = socket.recv_buffer_size().unwrap_or(0);
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(POLL))?;
    Ok((socket, granted))
}

/// Binds a Unix datagram socket at `path`, replacing a stale socket file that no one
/// listens on (as the agent does); a live one is an error.
pub fn bind_unix(path: &Path) -> io::Result<UnixDatagram> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ));
        }
        let probe = UnixDatagram::unbound()?;
        if probe.connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                "another process is listening on this socket",
            ));
        }
        std::fs::remove_file(path)?;
    }
    let socket = UnixDatagram::bind(path)?;
    let _ = SockRef::from(&socket).set_recv_buffer_size(RECV_BUFFER);
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// A datagram socket the receiver thread can read.
pub trait Datagram: Send + 'static {
    /// Receives one datagram into `buf`.
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Datagram for UdpSocket {
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

impl Datagram for UnixDatagram {
    fn recv_one(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv(buf)
    }
}

/// Starts a receiver thread that runs until `stop` is set.
pub fn spawn<S: Datagram>(
    name: &str,
    socket: S,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            while !stop.load(Ordering::Relaxed) {
                match socket.recv_one(&mut buf) {
                    Ok(n) => shared.ingest(&buf[..n]),
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock
                                | io::ErrorKind::TimedOut
                                | io::ErrorKind::Interrupted
                        ) => {}
                    // Transient errors (e.g. ICMP-induced on some systems): keep going,
                    // without spinning.
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
}

/// Reads the kernel's drop counter of a UDP socket.
#[derive(Debug, Clone)]
pub struct DropCounter {
    inode: u64,
    table: &'static str,
}

impl DropCounter {
    /// The counter of `socket`, or `None` where `/proc` cannot tell (not Linux).
    pub fn for_socket(socket: &UdpSocket) -> Option<Self> {
        let fd = socket.as_raw_fd();
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}")).ok()?.ino();
        let table = match socket.local_addr().ok()? {
            SocketAddr::V4(_) => "/proc/net/udp",
            SocketAddr::V6(_) => "/proc/net/udp6",
        };
        let c = DropCounter { inode, table };
        c.read().map(|_| c)
    }

    /// Datagrams dropped so far.
    pub fn read(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.table).ok()?;
        drops_for_inode(&text, self.inode)
    }
}

/// The `drops` column of the `/proc/net/udp` row whose `inode` column is `inode`.
pub fn drops_for_inode(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode ref pointer drops
        if cols.len() >= 13 && cols[9].parse::<u64>().ok()? == inode {
            cols[12].parse().ok()
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printing_feeds_a_second_window_taken_per_interval() {
        let shared = Shared::new(true);
        shared.ingest(b"a:1|c\nbad");
        let first = shared.take_print().unwrap().snapshot();
        assert_eq!((first.packets, first.lines, first.malformed), (1, 2, 1));
        shared.ingest(b"a:2|c");
        let second = shared.take_print().unwrap().snapshot();
        assert_eq!(second.metric("a", &[]).unwrap().value, Some(2.0));
        let main = shared.main().snapshot();
        assert_eq!(main.metric("a", &[]).unwrap().value, Some(3.0));
        assert_eq!((main.packets, main.malformed), (2, 1));
        assert!(Shared::new(false).take_print().is_none());
    }

    #[test]
    fn parses_proc_net_udp() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          812: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123456 2 0000000000000000 17\n\
          813: 0100007F:1FBE 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0\n";
        assert_eq!(drops_for_inode(table, 123456), Some(17));
        assert_eq!(drops_for_inode(table, 99), Some(0));
        assert_eq!(drops_for_inode(table, 5), None);
    }

    #[test]
    fn drop_counter_finds_a_real_socket() {
        let (s, granted) = bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(granted > 0);
        if std::path::Path::new("/proc/net/udp").exists() {
            let c = DropCounter::for_socket(&s).expect("socket in /proc/net/udp");
            assert_eq!(c.read(), Some(0));
        }
    }

    #[test]
    fn stale_unix_socket_is_replaced_live_one_is_not() {
        let dir = std::env::temp_dir().join(format!("agent-uds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dsd.socket");
        let _ = std::fs::remove_file(&path);
        let live = bind_unix(&path).unwrap();
        let e = bind_unix(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        drop(live); // leaves a stale file behind
        assert!(path.exists());
        let again = bind_unix(&path).unwrap();
        drop(again);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"not a socket").unwrap();
        assert!(bind_unix(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
