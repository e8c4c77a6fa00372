//! What each route answers. One function per route; [`handle`] dispatches and records
//! metrics.
//!
//! | route | methods | answer |
//! |---|---|---|
//! | `/` | GET, HEAD | 200 `text/plain` greeting for today (UTC) |
//! | `/healthz` | GET, HEAD | 200 `ok` |
//! | `/work` | GET, HEAD | 200 after `delay_ms`, `cpu_us` of CPU, `bytes` filler bytes; 400 on a bad parameter |
//! | `/echo` | POST | 200 with the request body back; 413 beyond the bound |
//! | other | any | 404 |
//!
//! A known path with a method it does not take is 405 with `Allow`.

use http::header::{
    HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING,
};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::Body;
use crate::greeting;
use crate::metrics::{AppMetrics, Route};
use crate::work::{spin_cpu, WorkParams};

// Statics: cloning a static header value copies two words, no allocation or atomics.
static TEXT: HeaderValue = HeaderValue::from_static("text/plain");
static OCTETS: HeaderValue = HeaderValue::from_static("application/octet-stream");
static GET_HEAD: HeaderValue = HeaderValue::from_static("GET, HEAD");
static POST: HeaderValue = HeaderValue::from_static("POST");

/// What the routes need, shared by every connection.
#[derive(Debug)]
pub struct State {
    /// Metrics, pre-created.
    pub metrics: AppMetrics,
    /// Largest `/echo` body.
    pub echo_max_bytes: u64,
}

/// Answers one request and records its metrics.
pub async fn handle(state: &State, req: Request<Incoming>) -> Response<Body> {
    let guard = state.metrics.start();
    let route = Route::of(req.uri().path());
    let resp = match route {
        Route::Root => {
            get_or_head(&req, &GET_HEAD).unwrap_or_else(|| text(StatusCode::OK, greeting::today()))
        }
        Route::Healthz => {
            get_or_head(&req, &GET_HEAD).unwrap_or_else(|| text(StatusCode::OK, "ok"))
        }
        Route::Work => match get_or_head(&req, &GET_HEAD) {
            Some(resp) => resp,
            None => work(req.uri().query()).await,
        },
        Route::Echo => {
            if req.method() == Method::POST {
                echo(req, state.echo_max_bytes).await
            } else {
                not_allowed(&POST)
            }
        }
        Route::Other => text(
            StatusCode::NOT_FOUND,
            "not found: try /, /healthz, /work or /echo\n",
        ),
    };
    guard.finish(route, resp.status().as_u16());
    resp
}

/// `None` for GET and HEAD (the route answers), else a 405.
fn get_or_head(req: &Request<Incoming>, allow: &HeaderValue) -> Option<Response<Body>> {
    let m = req.method();
    if m == Method::GET || m == Method::HEAD {
        None
    } else {
        Some(not_allowed(allow))
    }
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(CONTENT_TYPE, TEXT.clone());
    resp
}

fn not_allowed(allow: &HeaderValue) -> Response<Body> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    resp.headers_mut().insert(ALLOW, allow.clone());
    resp
}

async fn work(query: Option<&str>) -> Response<Body> {
    let params = match WorkParams::parse(query) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    if params.delay_ms > 0 {
        tokio::time::sleep(params.delay()).await;
    }
    spin_cpu(params.cpu_us);
    let mut resp = Response::new(Body::fill(params.bytes));
    resp.headers_mut().insert(CONTENT_TYPE, OCTETS.clone());
    resp
}

async fn echo(req: Request<Incoming>, max: u64) -> Response<Body> {
    let too_large = || {
        let mut resp = text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body too large: /echo answers at most {max} bytes\n"),
        );
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        resp
    };
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| OCTETS.clone());
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = req.headers().contains_key(TRANSFER_ENCODING);
    let body = match declared {
        // A declared length (hyper has validated it): stream the body straight back.
        Some(n) if !chunked => {
            if n > max {
                return too_large();
            }
            Body::Stream(req.into_body())
        }
        // No length up front: read up to the bound, then answer (413 beyond it).
        _ => match Limited::new(req.into_body(), usize::try_from(max).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(collected) => Body::full(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
            Err(_) => return text(StatusCode::BAD_REQUEST, "could not read the request body\n"),
        },
    };
    let mut resp = Response::new(body);
    resp.headers_mut().insert(CONTENT_TYPE, content_type);
    resp
}
