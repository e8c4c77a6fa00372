//! `bench healthcheck URL`: a probe for container healthchecks, where images built
//! `FROM scratch` have no shell or curl. Exit 0 when the URL answers 2xx in time.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// GETs `url` (plain `http://`) and succeeds on a 2xx status within `timeout`.
pub fn check(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let target = loadgen::parse_url(url).map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Instant::now() + timeout;
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {}", target.host))?
        .next()
        .with_context(|| format!("{} has no address", target.host))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {addr}"))?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    s.set_read_timeout(Some(left))?;
    s.set_write_timeout(Some(left))?;
    write!(
        s,
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tinyfish-healthcheck\r\nConnection: close\r\n\r\n",
        target.path_and_query, target.host_header
    )?;
    let mut head = [0u8; 64];
    let n = s
        .read(&mut head)
        .with_context(|| format!("no answer from {url}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    let status: u16 = line
        .strip_prefix("HTTP/1.")
        .and_then(|r| r.get(2..5))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("{url} did not answer HTTP"))?;
    if !(200..300).contains(&status) {
        bail!("{url} answered {status}");
    }
    Ok(())
}
