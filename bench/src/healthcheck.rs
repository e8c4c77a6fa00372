//! A small blocking HTTP/1.1 GET, for `bench healthcheck URL` (container healthchecks,
//! where images built `FROM scratch` have no shell or curl) and for reading the local
//! agent's JSON snapshot in compose mode.

use std::io::{Error, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

/// Largest response read.
const MAX_RESPONSE: u64 = 64 << 20;

/// GETs `path` from `addr` with `Connection: close` and returns the status and the
/// body (a chunked body decoded). Every step is bounded by `timeout`.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tinyfish-bench\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.take(MAX_RESPONSE).read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no complete response head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status_line = head.lines().next().unwrap_or("");
    let status = status_line
        .strip_prefix("http/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| Error::new(ErrorKind::InvalidData, format!("not HTTP: {status_line:?}")))?;
    let body = &raw[split + 4..];
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    let body = if chunked {
        dechunk(body).ok_or_else(|| Error::new(ErrorKind::InvalidData, "bad chunked body"))?
    } else {
        body.to_vec()
    };
    Ok((status, body))
}

fn dechunk(mut body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        body = &body[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(body.get(..size)?);
        body = body.get(size + 2..)?;
    }
}

/// GETs `url` (plain `http://`) and succeeds on a 2xx status within `timeout`.
pub fn check(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let target = loadgen::parse_url(url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", target.host))?
        .next()
        .with_context(|| format!("{} has no address", target.host))?;
    let (status, _) = get(addr, &target.host_header, &target.path_and_query, timeout)
        .with_context(|| format!("no answer from {url}"))?;
    if !(200..300).contains(&status) {
        bail!("{url} answered {status}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_decoded() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_none());
        assert!(dechunk(b"zz\r\n").is_none());
    }

    #[test]
    fn check_needs_a_2xx() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            for status in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 512];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).unwrap();
                    assert!(n > 0);
                    head.extend_from_slice(&buf[..n]);
                }
                write!(s, "HTTP/1.1 {status}\r\ncontent-length: 2\r\n\r\nok").unwrap();
            }
        });
        let url = format!("http://{addr}/healthz");
        check(&url, Duration::from_secs(5)).unwrap();
        let err = check(&url, Duration::from_secs(5)).unwrap_err().to_string();
        assert!(err.contains("503"), "{err}");
        server.join().unwrap();
        let err = check("http://127.0.0.1:9/", Duration::from_secs(2)).unwrap_err();
        assert!(format!("{err:#}").contains("no answer"), "{err:#}");
    }
}
