//! A connection to an upstream on the fast path: TCP, or a Unix socket on this host (an
//! upstream spelled `unix:/path`, see [`crate::config::unix_socket_path`]).
//!
//! An enum rather than a boxed trait object: every read and write is one `match` on the
//! variant, then the tokio stream's own poll, with nothing allocated. Vectored writes are
//! passed through (the request head and its first body bytes go in one `writev`), and
//! [`AsFd`] gives the pool's peek ([`super::pool::quiet`]) the socket either way.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// An upstream connection, TCP or Unix.
#[derive(Debug)]
pub(crate) enum Stream {
    /// `host:port` (TCP_NODELAY set when connected).
    Tcp(TcpStream),
    /// `unix:/path`.
    Unix(UnixStream),
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        Stream::Tcp(s)
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Self {
        Stream::Unix(s)
    }
}

impl AsFd for Stream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Stream::Tcp(s) => s.as_fd(),
            Stream::Unix(s) => s.as_fd(),
        }
    }
}

// Both tokio streams are `Unpin`, so `Stream` is, and each poll pins the variant in place.
impl AsyncRead for Stream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Tcp(s) => s.is_write_vectored(),
            Stream::Unix(s) => s.is_write_vectored(),
        }
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::pool::quiet;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Both variants: a vectored write arrives whole and in order, and the pool's peek sees
    /// a quiet connection, then pending bytes, then the end of stream.
    #[tokio::test]
    async fn both_kinds_relay_vectored_writes_and_answer_the_peek() {
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(tcp.local_addr().unwrap()).await.unwrap();
        let (server, _) = tcp.accept().await.unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        for (mut up, mut peer) in [
            (Stream::from(client), Stream::from(server)),
            (Stream::from(a), Stream::from(b)),
        ] {
            assert!(quiet(&up), "{up:?}: nothing pending yet");
            let parts = [io::IoSlice::new(b"head\r\n"), io::IoSlice::new(b"body")];
            // Ten bytes into an empty socket buffer: taken whole, in one call.
            assert_eq!(up.write_vectored(&parts).await.unwrap(), 10);
            let mut got = [0u8; 10];
            peer.read_exact(&mut got).await.unwrap();
            assert_eq!(&got, b"head\r\nbody");
            peer.write_all(b"x").await.unwrap();
            // The peek asks the kernel; wait until the byte is there to be seen.
            let mut waited = 0;
            while quiet(&up) && waited < 1000 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                waited += 1;
            }
            assert!(!quiet(&up), "{up:?}: a pending byte is not quiet");
            let mut one = [0u8; 1];
            up.read_exact(&mut one).await.unwrap();
            assert!(quiet(&up), "{up:?}: quiet again once read");
            peer.shutdown().await.unwrap();
            drop(peer);
            let mut waited = 0;
            while quiet(&up) && waited < 1000 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                waited += 1;
            }
            assert!(!quiet(&up), "{up:?}: the end of stream is not quiet");
        }
    }
}
