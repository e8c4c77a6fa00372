//! Idle upstream connections: a LIFO pool per upstream, and the check before reuse.
//!
//! A pooled connection is handed out only after a real `recv(MSG_PEEK | MSG_DONTWAIT)` on it
//! says nothing is pending: no bytes (a broken upstream writing after its response: those
//! would be read as the next request's answer, for another client) and no end of stream
//! (the upstream closed it). tokio's cached readiness is not asked, since it may not have
//! seen the bytes yet. The check costs one system call per reuse (see the README's
//! performance notes for its measured cost). A connection whose response ended oddly (bytes
//! after it, no length, a Transfer-Encoding with a Content-Length) is never pooled at all.

use std::io;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use super::stream::Stream;
use crate::gateway::Target;

/// One upstream: where it is and its idle connections.
#[derive(Debug)]
pub(crate) struct Pool {
    pub target: Target,
    idle: parking_lot::Mutex<Vec<(Stream, Instant)>>,
}

/// Whether the connection (TCP or Unix) has nothing pending: no byte to read and no end
/// of stream.
pub(crate) fn quiet(s: &Stream) -> bool {
    let mut probe = [MaybeUninit::<u8>::uninit(); 1];
    matches!(
        socket2::SockRef::from(s).peek(&mut probe),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock
    )
}

impl Pool {
    pub fn new(target: Target) -> Self {
        Pool {
            target,
            idle: parking_lot::Mutex::new(Vec::new()),
        }
    }

    /// A usable idle connection, dropping unusable ones on the way.
    pub fn take(&self, max_idle: Duration) -> Option<Stream> {
        let now = Instant::now();
        loop {
            let (s, since) = self.idle.lock().pop()?;
            if now.duration_since(since) < max_idle && quiet(&s) {
                return Some(s);
            }
        }
    }

    /// Keeps a connection for reuse (at most `size`; beyond that it is closed).
    pub fn put(&self, s: Stream, size: usize) {
        let mut idle = self.idle.lock();
        if idle.len() < size {
            idle.push((s, Instant::now()));
        }
    }

    /// Drops the idle connections that are expired or not quiet, so they do not linger in
    /// CLOSE_WAIT until the next request.
    pub fn sweep(&self, max_idle: Duration) {
        let now = Instant::now();
        self.idle
            .lock()
            .retain(|(s, since)| now.duration_since(*since) < max_idle && quiet(s));
    }

    /// Idle connections now (for tests and metrics).
    pub fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}
