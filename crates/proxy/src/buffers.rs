//! Buffers sized to need: a connection that waits (idle in keep-alive, or not yet sent
//! anything) holds no buffer at all, and one holding a partial head holds only its bytes.
//!
//! - A read on a connection without a buffer goes into this thread's scratch buffer (borrowed
//!   only inside one poll, so never across an `.await`), and what arrived is copied into a
//!   head buffer taken from this thread's spares, or one of exactly the size needed.
//! - Head buffers (4 KiB) and relay buffers (16 KiB) go back to this thread's spares when a
//!   request is done; a larger one (a head over 4 KiB) is freed then.
//!
//! Spares are per thread (no lock) and capped, so a burst does not keep its memory.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::Poll;

use tokio::io::{AsyncRead, ReadBuf};

/// The buffer a request head starts in (most heads are a few hundred bytes).
pub const HEAD_BUF: usize = 4 * 1024;
/// The buffer a body or a response is relayed through.
pub const RELAY_BUF: usize = 16 * 1024;
/// Most spares of each kind kept per thread.
const MAX_SPARES: usize = 64;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; RELAY_BUF].into_boxed_slice());
    static HEADS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static RELAYS: RefCell<Vec<Box<[u8]>>> = const { RefCell::new(Vec::new()) };
}

/// An empty head buffer of [`HEAD_BUF`] bytes, from this thread's spares if there is one.
pub fn head() -> Vec<u8> {
    HEADS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(HEAD_BUF))
}

/// Gives a head buffer back: kept as a spare if it has its usual size, freed otherwise.
/// `buf` is left empty without capacity.
pub fn give_back(buf: &mut Vec<u8>) {
    let mut b = std::mem::take(buf);
    if b.capacity() == HEAD_BUF {
        b.clear();
        HEADS.with_borrow_mut(|s| {
            if s.len() < MAX_SPARES {
                s.push(b);
            }
        });
    }
}

/// A relay buffer of [`RELAY_BUF`] bytes, from this thread's spares if there is one.
pub fn relay() -> Box<[u8]> {
    RELAYS
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| vec![0u8; RELAY_BUF].into_boxed_slice())
}

/// Gives a relay buffer back.
pub fn recycle(b: Box<[u8]>) {
    if b.len() == RELAY_BUF {
        RELAYS.with_borrow_mut(|s| {
            if s.len() < MAX_SPARES {
                s.push(b);
            }
        });
    }
}

/// Reads what is there into `buf` (appended): into its spare capacity when it has some,
/// else through the thread's scratch buffer, so that waiting for bytes holds no buffer.
/// `Ok(0)`: end of stream.
pub async fn read_into<R: AsyncRead + Unpin + ?Sized>(
    io: &mut R,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    if buf.capacity() > buf.len() {
        return tokio::io::AsyncReadExt::read_buf(io, buf).await;
    }
    poll_fn(|cx| {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut rb = ReadBuf::new(scratch);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    let got = rb.filled();
                    if buf.capacity() == 0 && got.len() <= HEAD_BUF {
                        *buf = head();
                    }
                    buf.extend_from_slice(got);
                    Poll::Ready(Ok(got.len()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_without_a_buffer_take_one_sized_to_need() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"GET / HTTP/1.1\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_into(&mut b, &mut buf).await.unwrap(), 16);
        assert_eq!(buf, b"GET / HTTP/1.1\r\n");
        assert_eq!(buf.capacity(), HEAD_BUF, "a small read takes a head buffer");
        give_back(&mut buf);
        assert_eq!(buf.capacity(), 0, "given back: nothing held");

        let big = vec![b'a'; 10_000];
        tokio::io::AsyncWriteExt::write_all(&mut a, &big)
            .await
            .unwrap();
        let n = read_into(&mut b, &mut buf).await.unwrap();
        assert_eq!(n, 10_000);
        assert_eq!(buf.capacity(), 10_000, "a large read: exactly its size");
        drop(a);
        buf.clear();
        buf.shrink_to_fit();
        assert_eq!(
            read_into(&mut b, &mut buf).await.unwrap(),
            0,
            "end of stream"
        );
    }
}
