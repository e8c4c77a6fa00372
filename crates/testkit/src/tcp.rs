//! Raw sockets: exact bytes in, everything until close out; a reset instead of a close; and
//! the kernel's own view of a loopback connection (`sock_diag`, `/proc/net/tcp`), so a test
//! can wait for "the peer has read what I sent" or "the peer has seen my FIN" instead of
//! sleeping.
//!
//! - [`exchange`]: write bytes on a new connection, read until the server closes;
//! - [`connect`], [`read_to_close`], [`closed_port`], [`reset`];
//! - [`Socket`], [`socket`] (one socket, asked of the kernel by netlink `sock_diag`),
//!   [`sockets`], [`close_wait_to`] (`/proc/net/tcp`, every socket of the machine);
//! - [`wait_read_by_peer`], [`wait_fin_seen`], [`fin_seen`]: waits on those entries.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use crate::patience::wait;

/// Connects to `addr` with the client's timeouts ([`crate::http::TIMEOUT`], scaled) and no
/// Nagle delay. Panics if the connection is refused.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    crate::http::set_timeouts(&s);
    s.set_nodelay(true).expect("set_nodelay");
    s
}

/// Writes `bytes` to a new connection and returns everything the server sends until it
/// closes (or resets) the connection, or the read timeout passes with nothing new. Put
/// `Connection: close` in the last request, or the call waits for the timeout.
pub fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    // A server may answer early (413) and close: what it sent still counts.
    let _ = stream.write_all(bytes);
    read_to_close(&mut stream)
}

/// Everything `stream` receives until EOF, a reset or a timeout (what arrived is kept).
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    out
}

/// An address on 127.0.0.1 where nothing listens (bound, then released).
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local_addr")
}

/// Closes `stream` with a RST (SO_LINGER 0) instead of a FIN.
pub fn reset(stream: TcpStream) {
    socket2::SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("set SO_LINGER 0");
    drop(stream);
}

/// TCP states as `/proc/net/tcp` numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// 01
    Established,
    /// 02
    SynSent,
    /// 03
    SynRecv,
    /// 04
    FinWait1,
    /// 05
    FinWait2,
    /// 06
    TimeWait,
    /// 07
    Close,
    /// 08: the peer closed, this side has not.
    CloseWait,
    /// 09
    LastAck,
    /// 0A
    Listen,
    /// 0B
    Closing,
    /// Anything else.
    Other(u8),
}

impl State {
    pub(crate) fn from_code(code: u8) -> State {
        match code {
            0x01 => State::Established,
            0x02 => State::SynSent,
            0x03 => State::SynRecv,
            0x04 => State::FinWait1,
            0x05 => State::FinWait2,
            0x06 => State::TimeWait,
            0x07 => State::Close,
            0x08 => State::CloseWait,
            0x09 => State::LastAck,
            0x0A => State::Listen,
            0x0B => State::Closing,
            c => State::Other(c),
        }
    }
}

/// One IPv4 TCP socket of this machine, as `/proc/net/tcp` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    /// Its own address.
    pub local: SocketAddr,
    /// Its peer's.
    pub remote: SocketAddr,
    /// Its state.
    pub state: State,
    /// Bytes sent and not yet acknowledged by the peer.
    pub tx_queue: u64,
    /// Bytes received and not yet read by the process that owns the socket.
    pub rx_queue: u64,
}

fn parse_addr(hex: &str) -> Option<SocketAddr> {
    let (ip, port) = hex.split_once(':')?;
    // The address is the kernel's network-order u32 printed as a native integer.
    let ip = u32::from_str_radix(ip, 16).ok()?.to_ne_bytes();
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
}

/// Every IPv4 TCP socket of this machine (empty where `/proc/net/tcp` is unreadable).
pub fn sockets() -> Vec<Socket> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (tx, rx) = f.get(4)?.split_once(':')?;
            Some(Socket {
                local: parse_addr(f.get(1)?)?,
                remote: parse_addr(f.get(2)?)?,
                state: State::from_code(u8::from_str_radix(f.get(3)?, 16).ok()?),
                tx_queue: u64::from_str_radix(tx, 16).ok()?,
                rx_queue: u64::from_str_radix(rx, 16).ok()?,
            })
        })
        .collect()
}

/// The socket with this local and remote address, if it exists (not in TIME_WAIT's
/// successor: gone). Asked of the kernel for that one socket (`sock_diag`), so its cost
/// does not grow with the machine's other sockets; `/proc/net/tcp` where that fails.
pub fn socket(local: SocketAddr, remote: SocketAddr) -> Option<Socket> {
    if let (SocketAddr::V4(l), SocketAddr::V4(r)) = (local, remote) {
        if let Ok(found) = crate::sock_diag::lookup(l, r) {
            return found;
        }
    }
    sockets()
        .into_iter()
        .find(|s| s.local == local && s.remote == remote && s.state != State::Listen)
}

/// Sockets of this machine in CLOSE_WAIT towards `remote`: connections `remote` closed and
/// their owner has not (yet).
pub fn close_wait_to(remote: SocketAddr) -> usize {
    sockets()
        .iter()
        .filter(|s| s.remote == remote && s.state == State::CloseWait)
        .count()
}

fn ends(stream: &TcpStream) -> (SocketAddr, SocketAddr) {
    (
        stream.local_addr().expect("local_addr"),
        stream.peer_addr().expect("peer_addr"),
    )
}

/// Waits until everything written on `stream` was acknowledged and read by the process at
/// the other end (both ends on this machine): the peer has seen the bytes, not just its
/// kernel. Returns at once when the peer's socket is gone.
pub fn wait_read_by_peer(stream: &TcpStream) {
    let (local, remote) = ends(stream);
    wait(format!("{remote} to read what {local} sent")).until(|| {
        let mine = socket(local, remote).is_none_or(|s| s.tx_queue == 0);
        let theirs = socket(remote, local).is_none_or(|s| s.rx_queue == 0);
        mine && theirs
    });
}

/// Sends a FIN on `stream` (shutdown of the writing half) and waits until the peer's
/// socket has received it (it left ESTABLISHED: CLOSE_WAIT, or closed too).
pub fn wait_fin_seen(stream: &TcpStream) {
    assert!(
        fin_seen(stream),
        "waited {:?} for {:?} to see a FIN",
        wait("").bound(),
        stream.peer_addr()
    );
}

/// [`wait_fin_seen`] without the panic: whether the peer saw the FIN within the bound.
pub fn fin_seen(stream: &TcpStream) -> bool {
    let (Ok(local), Ok(remote)) = (stream.local_addr(), stream.peer_addr()) else {
        return true; // not connected any more
    };
    let _ = stream.shutdown(std::net::Shutdown::Write);
    wait("the FIN to be seen")
        .holds(|| socket(remote, local).is_none_or(|s| s.state != State::Established))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_a_loopback_connection_from_both_ends() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = connect(l.local_addr().unwrap());
        let (mut server, _) = l.accept().unwrap();
        let (c, s) = (client.local_addr().unwrap(), server.local_addr().unwrap());
        assert_eq!(socket(c, s).unwrap().state, State::Established);
        assert_eq!(socket(s, c).unwrap().state, State::Established);

        client.write_all(b"12345").unwrap();
        crate::eventually("the bytes to reach the server's kernel", || {
            socket(s, c).is_some_and(|x| x.rx_queue == 5)
        });
        let mut b = [0u8; 5];
        server.read_exact(&mut b).unwrap();
        wait_read_by_peer(&client);

        wait_fin_seen(&server);
        assert_eq!(socket(c, s).unwrap().state, State::CloseWait);
        assert_eq!(close_wait_to(s), 1);
        assert!(read_to_close(&mut client).is_empty());
        drop(client);
        crate::eventually("the client socket to leave CLOSE_WAIT", || {
            close_wait_to(s) == 0
        });
    }

    #[test]
    fn reset_is_seen_as_a_reset() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = connect(l.local_addr().unwrap());
        let (server, _) = l.accept().unwrap();
        reset(server);
        let mut b = [0u8; 1];
        let err = client.read(&mut b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
        assert!(TcpStream::connect(closed_port()).is_err());
    }
}
