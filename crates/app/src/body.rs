//! The response body type of every route: a cached buffer, a generated run of bytes
//! (`/work?bytes=`), or the request body streamed back (`/echo`).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

/// Bytes served by `/work?bytes=`: a static block, sliced without copying.
static FILL: [u8; FILL_LEN] = [b'x'; FILL_LEN];
const FILL_LEN: usize = 64 * 1024;

/// A response body.
#[derive(Debug)]
pub enum Body {
    /// One buffer (or nothing left).
    Full(Option<Bytes>),
    /// `remaining` filler bytes, sent in blocks of at most 64 KiB.
    Fill {
        /// Bytes still to send.
        remaining: u64,
    },
    /// The request body, streamed back as it arrives.
    Stream(Incoming),
}

impl Body {
    /// A body of one buffer.
    pub fn full(b: impl Into<Bytes>) -> Self {
        Body::Full(Some(b.into()))
    }

    /// An empty body.
    pub fn empty() -> Self {
        Body::Full(None)
    }

    /// `n` filler bytes.
    pub fn fill(n: u64) -> Self {
        Body::Fill { remaining: n }
    }
}

impl HttpBody for Body {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(
                b.take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Body::Fill { remaining } => {
                if *remaining == 0 {
                    return Poll::Ready(None);
                }
                let n = usize::try_from(*remaining).map_or(FILL_LEN, |r| r.min(FILL_LEN));
                *remaining -= n as u64;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&FILL[..n])))))
            }
            Body::Stream(incoming) => Pin::new(incoming).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            Body::Fill { remaining } => *remaining == 0,
            Body::Stream(incoming) => incoming.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Body::Fill { remaining } => SizeHint::with_exact(*remaining),
            Body::Stream(incoming) => incoming.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn fill_sends_exactly_n_bytes() {
        for n in [0u64, 1, 65_535, 65_536, 65_537, 200_000] {
            let body = Body::fill(n);
            assert_eq!(body.size_hint().exact(), Some(n));
            let got = body.collect().await.unwrap().to_bytes();
            assert_eq!(got.len() as u64, n);
            assert!(got.iter().all(|b| *b == b'x'));
        }
    }

    #[tokio::test]
    async fn full_and_empty() {
        let b = Body::full("hello");
        assert_eq!(b.size_hint().exact(), Some(5));
        assert_eq!(b.collect().await.unwrap().to_bytes(), "hello");
        let e = Body::empty();
        assert!(e.is_end_stream());
        assert!(e.collect().await.unwrap().to_bytes().is_empty());
    }
}
