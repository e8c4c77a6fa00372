//! One TCP socket's state, asked of the kernel by its addresses (netlink `sock_diag`, what
//! `ss` uses), instead of reading all of `/proc/net/tcp`.
//!
//! Why: `/proc/net/tcp` lists every socket of the machine, TIME_WAIT ones too. After a
//! suite has made tens of thousands of connections, one read took 37 ms here, and a test
//! whose 50 upstream threads each waited on it measured the file, not the proxy (13 of 50
//! closes "within a second"). An exact lookup (`SOCK_DIAG_BY_FAMILY` without `NLM_F_DUMP`)
//! finds the socket in the kernel's hash table, whatever else is open.
//!
//! The request and reply are plain bytes (`linux/inet_diag.h`), sent on a socket2 netlink
//! socket: no unsafe code.

use std::io::{self, Read};
use std::net::SocketAddrV4;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket as Raw, Type};

use crate::tcp::{Socket, State};

/// `AF_NETLINK`.
const AF_NETLINK: i32 = 16;
/// `NETLINK_SOCK_DIAG`.
const NETLINK_SOCK_DIAG: i32 = 4;
/// `SOCK_DIAG_BY_FAMILY`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST`.
const NLM_F_REQUEST: u16 = 1;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `AF_INET`, `IPPROTO_TCP`.
const AF_INET: u8 = 2;
const IPPROTO_TCP: u8 = 6;
/// `ENOENT`: no such socket.
const ENOENT: i32 = 2;

/// Length of `struct nlmsghdr`.
const NLMSG_HDR: usize = 16;
/// Offset of `idiag_rqueue` / `idiag_wqueue` in a reply (after the header): family, state,
/// timer, retrans (4), `inet_diag_sockid` (48), expires (4).
const RQUEUE: usize = NLMSG_HDR + 4 + 48 + 4;
const WQUEUE: usize = RQUEUE + 4;

/// The socket whose own address is `local` and whose peer is `remote`: `Ok(None)` when the
/// kernel has none (gone, or only a listener on that port); `Err` when netlink cannot be
/// asked here (the caller falls back to `/proc/net/tcp`).
pub(crate) fn lookup(local: SocketAddrV4, remote: SocketAddrV4) -> io::Result<Option<Socket>> {
    let nl = Raw::new(
        Domain::from(AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(NETLINK_SOCK_DIAG)),
    )?;
    nl.set_read_timeout(Some(Duration::from_secs(1)))?;
    nl.send(&request(local, remote))?;
    let mut reply = [0u8; 512];
    let n = (&nl).read(&mut reply)?;
    parse(&reply[..n], local, remote)
}

/// `nlmsghdr` + `inet_diag_req_v2` asking for exactly one IPv4 TCP socket, in any state.
fn request(local: SocketAddrV4, remote: SocketAddrV4) -> Vec<u8> {
    let mut b = Vec::with_capacity(72);
    b.extend_from_slice(&72u32.to_ne_bytes()); // nlmsg_len
    b.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    b.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    b.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
    b.extend_from_slice(&[AF_INET, IPPROTO_TCP, 0, 0]); // family, protocol, ext, pad
    b.extend_from_slice(&u32::MAX.to_ne_bytes()); // idiag_states: every state
    sockid(&mut b, local, remote);
    debug_assert_eq!(b.len(), 72);
    b
}

/// `inet_diag_sockid`: ports and addresses in network order, no interface, no cookie.
fn sockid(b: &mut Vec<u8>, local: SocketAddrV4, remote: SocketAddrV4) {
    b.extend_from_slice(&local.port().to_be_bytes());
    b.extend_from_slice(&remote.port().to_be_bytes());
    for ip in [local.ip(), remote.ip()] {
        b.extend_from_slice(&ip.octets());
        b.extend_from_slice(&[0; 12]);
    }
    b.extend_from_slice(&0u32.to_ne_bytes()); // idiag_if
    b.extend_from_slice(&[0xff; 8]); // INET_DIAG_NOCOOKIE
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn parse(reply: &[u8], local: SocketAddrV4, remote: SocketAddrV4) -> io::Result<Option<Socket>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "short sock_diag reply");
    let kind = u16::from_ne_bytes(reply.get(4..6).ok_or_else(bad)?.try_into().unwrap());
    if kind == NLMSG_ERROR {
        let errno = -(u32_at(reply, NLMSG_HDR).ok_or_else(bad)? as i32);
        return match errno {
            ENOENT => Ok(None),
            e => Err(io::Error::from_raw_os_error(e)),
        };
    }
    if kind != SOCK_DIAG_BY_FAMILY {
        return Err(bad());
    }
    let state = State::from_code(*reply.get(NLMSG_HDR + 1).ok_or_else(bad)?);
    if state == State::Listen {
        // The lookup falls back to a listener on the local port: not this connection.
        return Ok(None);
    }
    Ok(Some(Socket {
        local: local.into(),
        remote: remote.into(),
        state,
        rx_queue: u32_at(reply, RQUEUE).ok_or_else(bad)?.into(),
        tx_queue: u32_at(reply, WQUEUE).ok_or_else(bad)?.into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};

    fn v4(a: SocketAddr) -> SocketAddrV4 {
        match a {
            SocketAddr::V4(a) => a,
            SocketAddr::V6(_) => panic!("not IPv4: {a}"),
        }
    }

    /// The kernel's answer for one socket is `/proc/net/tcp`'s line for it, and a socket
    /// that is gone (or only a listener's port) is `None`, not an error.
    #[test]
    fn finds_one_socket_as_proc_net_tcp_shows_it() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (server, _) = l.accept().unwrap();
        client.write_all(b"12345").unwrap();
        let (c, s) = (client.local_addr().unwrap(), server.local_addr().unwrap());
        crate::eventually("the bytes to wait in the server's receive queue", || {
            lookup(v4(s), v4(c))
                .unwrap()
                .is_some_and(|x| x.rx_queue == 5)
        });
        for (a, b) in [(s, c), (c, s)] {
            let proc = crate::tcp::sockets()
                .into_iter()
                .find(|x| x.local == a && x.remote == b)
                .expect("in /proc/net/tcp");
            assert_eq!(lookup(v4(a), v4(b)).unwrap(), Some(proc));
        }
        let nobody: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert_eq!(
            lookup(v4(s), v4(nobody)).unwrap(),
            None,
            "only the listener's port"
        );
        // Read first: closing with unread bytes would send a RST, not a FIN.
        let mut got = [0u8; 5];
        (&server).read_exact(&mut got).unwrap();
        drop(server);
        crate::eventually("the client to see the FIN", || {
            lookup(v4(c), v4(s)).unwrap().map(|x| x.state) == Some(State::CloseWait)
        });
    }
}
