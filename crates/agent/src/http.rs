//! The snapshot server: `GET /` returns the current window as JSON
//! ([`crate::Snapshot`]); `GET /dashboard` a live page (HTML, self-contained: no
//! script or style from elsewhere) with one chart per graph, a line per service, that
//! reads `GET /series[?since=T]` ([`crate::SeriesPage`]) every second; `GET /healthz`
//! returns `ok`. HTTP/1.1 on hyper, on the tokio runtime that called [`crate::start`].
//!
//! ```text
//! curl -s 127.0.0.1:8181/ | jq '.metrics[] | {name, tags, value, p99}'
//! curl -s 127.0.0.1:8181/series | jq '.points[-1]'
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

/// The live page: inline script, style and canvas charts (there may be no internet).
const DASHBOARD: &str = include_str!("dashboard.html");

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    typed(
        status,
        Bytes::from_static(body.as_bytes()),
        "text/plain; charset=utf-8",
    )
}

fn typed(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            typed(StatusCode::OK, Bytes::from(body), "application/json")
        }
        Err(_) => text(StatusCode::INTERNAL_SERVER_ERROR, "not serialisable\n"),
    }
}

/// `since=T` in a query string (Unix seconds), if there.
pub(crate) fn since(query: Option<&str>) -> Result<Option<f64>, ()> {
    let Some(q) = query else { return Ok(None) };
    for pair in q.split('&') {
        if let Some(v) = pair.strip_prefix("since=") {
            return v.parse::<f64>().map(Some).map_err(|_| ());
        }
    }
    Ok(None)
}

fn respond(req: &Request<Incoming>, core: &Core) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/" => json(&core.snapshot()),
        "/dashboard" => typed(
            StatusCode::OK,
            Bytes::from_static(DASHBOARD.as_bytes()),
            "text/html; charset=utf-8",
        ),
        "/series" => match since(req.uri().query()) {
            Err(()) => text(
                StatusCode::BAD_REQUEST,
                "since: expected Unix seconds, e.g. /series?since=1700000000.5\n",
            ),
            Ok(since) => match core.series_page(since) {
                Some(page) => json(&page),
                None => text(StatusCode::NOT_FOUND, "no series kept\n"),
            },
        },
        "/healthz" => text(StatusCode::OK, "ok\n"),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: GET / returns the JSON snapshot, /dashboard the live page, /series its data\n",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_read_from_the_query() {
        assert_eq!(since(None), Ok(None));
        assert_eq!(since(Some("since=12.5")), Ok(Some(12.5)));
        assert_eq!(since(Some("x=1&since=3")), Ok(Some(3.0)));
        assert_eq!(since(Some("x=1")), Ok(None));
        assert!(since(Some("since=soon")).is_err());
    }

    #[test]
    fn the_page_is_self_contained() {
        assert!(DASHBOARD.starts_with("<!doctype html>"));
        for external in ["src=\"http", "href=\"http", "//cdn", "@import"] {
            assert!(!DASHBOARD.contains(external), "{external}");
        }
        assert!(DASHBOARD.contains("/series"));
    }
}
