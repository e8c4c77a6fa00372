//! `bench hyper-baseline`: the floor the app's CPU per request is compared with — the
//! smallest hyper 1 server that answers the app's greeting bytes (today's, computed
//! once) on one current-thread runtime, with HTTP/1.1 keep-alive and TCP_NODELAY, and
//! nothing else: no routing, no metrics, no graceful shutdown. The scenario
//! `bench/scenarios/app-vs-hyper.toml` runs it as the baseline against the app.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use anyhow::Context;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// Serves until killed; prints `listening on http://ADDR` on stdout like the app.
pub fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let body = app::greeting::today();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot build the runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{}", listener.local_addr()?)?;
        out.flush()?;
        drop(out);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let body = body.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                    let body = body.clone();
                    async move {
                        let mut resp = Response::new(Full::new(body));
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("text/plain"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
