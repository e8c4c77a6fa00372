//! Bytes put back in front of a client stream: how the dispatcher hands a request it has
//! already read to pingora's proxy, which reads it again from the stream.
//!
//! pingora's plain TCP stream does this itself (`rewind`); its TLS stream cannot, so the
//! dispatcher serves TLS connections through [`Rewound`], which reads the bytes put back
//! before the decrypted stream and passes everything else through. Both are a [`Rewind`],
//! the one type the dispatcher and the fast path are written for.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef, TlsStream};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType, ALPN, IO,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A client stream that can put bytes back to be read again.
pub trait Rewind: IO + Sized + 'static {
    /// The next reads return `data` first.
    fn rewind(&mut self, data: &[u8]);
}

impl Rewind for L4Stream {
    fn rewind(&mut self, data: &[u8]) {
        L4Stream::rewind(self, data);
    }
}

/// A TLS client connection as the dispatcher serves it.
pub type TlsClient = Rewound<TlsStream<L4Stream>>;

/// `inner` with bytes put back in front of it.
#[derive(Debug)]
pub struct Rewound<S> {
    inner: S,
    pending: Vec<u8>,
    at: usize,
}

impl<S> Rewound<S> {
    /// Nothing put back yet.
    pub fn new(inner: S) -> Self {
        Rewound {
            inner,
            pending: Vec::new(),
            at: 0,
        }
    }
}

impl<S: IO + 'static> Rewind for Rewound<S> {
    fn rewind(&mut self, data: &[u8]) {
        let mut pending = data.to_vec();
        pending.extend_from_slice(&self.pending[self.at..]);
        self.pending = pending;
        self.at = 0;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.pending.len() {
            let n = buf.remaining().min(this.pending.len() - this.at);
            buf.put_slice(&this.pending[this.at..this.at + n]);
            this.at += n;
            if this.at == this.pending.len() {
                this.pending = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl<S: Shutdown + Send> Shutdown for Rewound<S> {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await;
    }
}

impl<S: UniqueID> UniqueID for Rewound<S> {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl<S: Ssl> Ssl for Rewound<S> {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

impl<S: GetTimingDigest> GetTimingDigest for Rewound<S> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }

    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }

    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl<S: GetProxyDigest> GetProxyDigest for Rewound<S> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
}

impl<S: GetSocketDigest> GetSocketDigest for Rewound<S> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
}

/// No peeking: pingora peeks only to detect a cleartext HTTP/2 preface, which a TLS
/// connection never needs (ALPN decides).
#[async_trait]
impl<S: Send> Peek for Rewound<S> {}
