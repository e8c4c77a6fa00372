//! The snapshot server: `GET /` returns the current window as JSON
//! ([`crate::Snapshot`]); `GET /healthz` returns `ok`. HTTP/1.1 on hyper, on the
//! tokio runtime that called [`crate::start`].
//!
//! ```text
//! curl -s 127.0.0.1:8181/ | jq '.metrics[] | {name, tags, value, p99}'
//! ```

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::Core;

/// Serves until `shutdown` changes (or its sender is dropped). Connections already
/// open finish on their own.
pub(crate) async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors and the like: back off, keep serving.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let core = core.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let core = core.clone();
                        async move { Ok::<_, Infallible>(respond(&req, &core)) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            _ = shutdown.changed() => return,
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn respond(req: &Request<Incoming>, core: &Core) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/" => match serde_json::to_vec(&core.snapshot()) {
            Ok(mut body) => {
                body.push(b'\n');
                let mut r = Response::new(Full::new(Bytes::from(body)));
                r.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                r
            }
            Err(_) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "snapshot not serialisable\n",
            ),
        },
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: GET / returns the JSON snapshot\n",
        ),
    }
}
