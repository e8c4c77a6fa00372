//! A non-blocking TCP client socket that reads with the kernel's receive timestamps.
//!
//! With `SO_TIMESTAMPNS` on, every `recvmsg` on a TCP socket carries the time the kernel
//! received the last segment it returned (`SCM_TIMESTAMPNS`, CLOCK_REALTIME). That is the
//! moment the response's last byte reached this host, whenever the load generator gets
//! round to reading it: a reader woken late, or one that reads on purpose later (see
//! `event_loop`), measures the same latency. Where the kernel gives no timestamp, the
//! read's own time stands in and [`TimestampSource::UserSpace`] says so.

use std::io::{self, IoSliceMut, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use nix::sys::time::TimeSpec;
use socket2::{Domain, Protocol, Socket, Type};

/// Where response arrival times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimestampSource {
    /// The kernel's receive timestamp of the response's last segment (`SO_TIMESTAMPNS`).
    Kernel,
    /// The load generator's clock right after the read (timestamps unavailable).
    UserSpace,
}

/// A buffer for one `SCM_TIMESTAMPNS` control message.
pub(crate) fn control_buffer() -> Vec<u8> {
    nix::cmsg_space!(TimeSpec)
}

/// One client connection's socket.
#[derive(Debug)]
pub(crate) struct ClientSocket {
    stream: TcpStream,
    /// Whether the kernel was asked for receive timestamps (and accepted).
    timestamps: bool,
}

/// What one read returned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received {
    /// Bytes read (0: the peer closed).
    pub n: usize,
    /// When the last byte arrived, on the monotonic clock ([`Instant`]).
    pub arrival: Instant,
    /// How long after that arrival the load generator read it (its own delay).
    pub read_delay: Duration,
    /// Whether `arrival` is the kernel's timestamp.
    pub kernel: bool,
}

impl Received {
    /// A read of nothing, now, on the load generator's clock.
    pub fn now() -> Self {
        Received {
            n: 0,
            arrival: Instant::now(),
            read_delay: Duration::ZERO,
            kernel: false,
        }
    }
}

impl ClientSocket {
    /// Starts a non-blocking connect with `TCP_NODELAY` (and receive timestamps when
    /// `timestamps`); `Ok((socket, true))` when it completed at once (loopback often does),
    /// `Ok((socket, false))` while in progress: wait for writability, then call
    /// [`ClientSocket::finish_connect`].
    ///
    /// Receive timestamps are not free for the machine: once any socket asks, the kernel
    /// stamps every packet it receives (in the closed loop that cost the app about 4 % of its
    /// throughput here), so a caller that does not need arrival times should not ask.
    pub fn connect(addr: SocketAddr, timestamps: bool) -> io::Result<(ClientSocket, bool)> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        let done = match socket.connect(&addr.into()) {
            Ok(()) => true,
            Err(e) if e.raw_os_error() == Some(nix::libc::EINPROGRESS) => false,
            Err(e) => return Err(e),
        };
        let stream: TcpStream = socket.into();
        let timestamps =
            timestamps && setsockopt(&stream, sockopt::ReceiveTimestampns, &true).is_ok();
        Ok((ClientSocket { stream, timestamps }, done))
    }

    /// Connects and waits (blocking, at most `timeout`) until established; for setting up
    /// connections before a run starts.
    pub fn connect_blocking(
        addr: SocketAddr,
        timeout: Duration,
        timestamps: bool,
    ) -> io::Result<ClientSocket> {
        let (sock, done) = Self::connect(addr, timestamps)?;
        if !done {
            let fd = sock.stream.as_fd();
            let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
            let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
            let ready = loop {
                match nix::poll::poll(&mut fds, ms) {
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => break r.map_err(io::Error::from)?,
                }
            };
            if ready == 0 {
                return Err(io::ErrorKind::TimedOut.into());
            }
            sock.finish_connect()?;
        }
        Ok(sock)
    }

    /// Waits (blocking, at most `timeout`) until the socket has room to write.
    pub fn wait_writable(&self, timeout: Duration) -> io::Result<()> {
        let fd = self.stream.as_fd();
        let mut fds = [nix::poll::PollFd::new(fd, nix::poll::PollFlags::POLLOUT)];
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        loop {
            match nix::poll::poll(&mut fds, ms) {
                Err(nix::errno::Errno::EINTR) => continue,
                r => return r.map(|_| ()).map_err(io::Error::from),
            }
        }
    }

    /// After writability: the connect's outcome.
    pub fn finish_connect(&self) -> io::Result<()> {
        match self.stream.take_error()? {
            Some(e) => Err(e),
            None => match self.stream.peer_addr() {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    Err(io::ErrorKind::ConnectionRefused.into())
                }
                Err(e) => Err(e),
            },
        }
    }

    /// Whether the peer has closed (an EOF is waiting): a one-byte peek that consumes
    /// nothing and does not block.
    pub fn peer_closed(&self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            nix::sys::socket::recv(
                self.stream.as_raw_fd(),
                &mut b,
                MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT
            ),
            Ok(0)
        )
    }

    /// Writes what the socket takes now (`WouldBlock` when nothing).
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.stream).write(buf)
    }

    /// Reads what has arrived, with its arrival time (`WouldBlock` when nothing).
    pub fn recv(&self, buf: &mut [u8], cmsg: &mut Vec<u8>) -> io::Result<Received> {
        recv_stamped(self.stream.as_raw_fd(), buf, cmsg, self.timestamps)
    }

    /// Gives the socket up as a std stream (for the HTTP/2 driver's runtime) and whether it
    /// asked for receive timestamps.
    pub fn into_std(self) -> (TcpStream, bool) {
        (self.stream, self.timestamps)
    }
}

/// One `recvmsg` on `fd` with its arrival time: the kernel's receive timestamp when
/// `timestamps` (the socket has `SO_TIMESTAMPNS` on) and it came, else the read's own time.
pub(crate) fn recv_stamped(
    fd: std::os::fd::RawFd,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
    timestamps: bool,
) -> io::Result<Received> {
    let mut iov = [IoSliceMut::new(buf)];
    let (n, stamp) = loop {
        match recvmsg::<()>(fd, &mut iov, Some(&mut *cmsg), MsgFlags::empty()) {
            Ok(msg) => {
                let stamp = msg.cmsgs().ok().and_then(|mut c| {
                    c.find_map(|m| match m {
                        ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                        _ => None,
                    })
                });
                break (msg.bytes, stamp);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    // The realtime clock first, then the monotonic one: the arrival computed below can
    // only come out a few ns late, never early.
    let real_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let now = Instant::now();
    let Some(ts) = stamp.filter(|_| timestamps && n > 0) else {
        return Ok(Received {
            n,
            arrival: now,
            read_delay: Duration::ZERO,
            kernel: false,
        });
    };
    // The delay is the difference of two realtime readings, the arrival and now; it is
    // exact unless the realtime clock is stepped in between (slewing changes it by
    // parts per million), and the caller never lets an arrival precede its send.
    let stamped = Duration::new(ts.tv_sec().max(0) as u64, ts.tv_nsec().max(0) as u32);
    let read_delay = real_now.saturating_sub(stamped);
    Ok(Received {
        n,
        arrival: now.checked_sub(read_delay).unwrap_or(now),
        read_delay,
        kernel: true,
    })
}

impl AsFd for ClientSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn loopback_reads_carry_kernel_timestamps_between_send_and_read() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let sock = ClientSocket::connect_blocking(
            listener.local_addr().unwrap(),
            Duration::from_secs(5),
            true,
        )
        .unwrap();
        let (mut server, _) = listener.accept().unwrap();
        // The kernel turns packet timestamping on shortly after the first socket asks for
        // it: a segment in the first milliseconds may arrive unstamped, so wait for it.
        std::thread::sleep(Duration::from_millis(20));
        sock.send(b"ping").unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).unwrap();
        let before = Instant::now();
        server.write_all(b"pong").unwrap();
        // Read late on purpose: the kernel's timestamp still says when it arrived.
        std::thread::sleep(Duration::from_millis(30));
        let mut buf = [0u8; 16];
        let mut cmsg = control_buffer();
        let r = loop {
            match sock.recv(&mut buf, &mut cmsg) {
                Ok(r) => break r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..r.n], b"pong");
        assert!(r.kernel, "loopback TCP should carry SO_TIMESTAMPNS");
        assert!(
            r.arrival >= before - Duration::from_millis(1),
            "arrival before the send"
        );
        assert!(
            r.read_delay >= Duration::from_millis(25),
            "the 30 ms we slept before reading must show as read delay: {:?}",
            r.read_delay
        );
    }

    #[test]
    fn a_refused_connect_is_an_error() {
        let port = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let e = ClientSocket::connect_blocking(addr, Duration::from_secs(5), true).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    }
}
