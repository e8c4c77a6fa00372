//! The app's metrics, created once at start-up so that recording a request is a few
//! atomic adds and one buffered duration (sent packed, see [`telemetry::Distribution`]).

use std::time::Instant;

use telemetry::{names, tags, Counter, Distribution, Gauge, Telemetry};

/// The routes the app knows; `Other` is every unknown path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/`: the greeting.
    Root,
    /// `/healthz`: liveness.
    Healthz,
    /// `/work`: configurable CPU, size and delay.
    Work,
    /// `/echo`: the request body back.
    Echo,
    /// Any other path (answered 404).
    Other,
}

impl Route {
    /// Every route, in tag order.
    pub const ALL: [Route; 5] = [
        Route::Root,
        Route::Healthz,
        Route::Work,
        Route::Echo,
        Route::Other,
    ];

    /// The route of a request path.
    pub fn of(path: &str) -> Route {
        match path {
            "/" => Route::Root,
            "/healthz" => Route::Healthz,
            "/work" => Route::Work,
            "/echo" => Route::Echo,
            _ => Route::Other,
        }
    }

    /// The `route` tag value.
    pub fn tag(self) -> &'static str {
        match self {
            Route::Root => "/",
            Route::Healthz => "/healthz",
            Route::Work => "/work",
            Route::Echo => "/echo",
            Route::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

use telemetry::{status_class_index as class_index, STATUS_CLASSES as CLASSES};

/// Counters per route × status class, the in-flight gauge and the duration distribution.
#[derive(Debug)]
pub struct AppMetrics {
    enabled: bool,
    durations: [[Distribution; 5]; 5],
    requests: [[Counter; 5]; 5],
    inflight: Gauge,
}

impl AppMetrics {
    /// Registers every counter and the gauge with `telemetry`.
    pub fn new(telemetry: Telemetry) -> Self {
        let requests = Route::ALL.map(|r| {
            CLASSES.map(|c| {
                telemetry.counter(
                    names::APP_REQUESTS,
                    &[(tags::ROUTE, r.tag()), (tags::STATUS_CLASS, c)],
                )
            })
        });
        let inflight = telemetry.gauge(names::APP_INFLIGHT, &[]);
        let durations = Route::ALL.map(|r| {
            CLASSES.map(|c| {
                telemetry.distribution_handle(
                    names::APP_REQUEST_DURATION,
                    &[(tags::ROUTE, r.tag()), (tags::STATUS_CLASS, c)],
                )
            })
        });
        AppMetrics {
            durations,
            enabled: telemetry.is_enabled(),
            requests,
            inflight,
        }
    }

    /// Marks a request as started: counts it in flight until the guard drops, and
    /// starts its clock when metrics are on.
    #[inline]
    pub fn start(&self) -> RequestGuard<'_> {
        self.inflight.add(1);
        RequestGuard {
            metrics: self,
            start: if self.enabled {
                Some(Instant::now())
            } else {
                None
            },
        }
    }
}

/// One request being handled; see [`AppMetrics::start`].
#[derive(Debug)]
pub struct RequestGuard<'a> {
    metrics: &'a AppMetrics,
    start: Option<Instant>,
}

impl RequestGuard<'_> {
    /// Counts the answered request and records its duration (request head to response
    /// head), buffered and sent packed by telemetry.
    #[inline]
    pub fn finish(self, route: Route, status: u16) {
        let m = self.metrics;
        let class = class_index(status);
        m.requests[route.index()][class].incr();
        if let Some(start) = self.start {
            let ms = start.elapsed().as_secs_f64() * 1e3;
            m.durations[route.index()][class].record(ms);
        }
    }
}

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.metrics.inflight.add(-1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_classes() {
        assert_eq!(Route::of("/"), Route::Root);
        assert_eq!(Route::of("/work"), Route::Work);
        assert_eq!(Route::of("/work/"), Route::Other);
        assert_eq!(Route::of("/nope"), Route::Other);
        for (i, r) in Route::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
        assert_eq!(CLASSES[class_index(200)], "2xx");
        assert_eq!(CLASSES[class_index(413)], "4xx");
        assert_eq!(CLASSES[class_index(101)], "1xx");
        assert_eq!(CLASSES[class_index(599)], "5xx");
    }

    #[test]
    fn inflight_follows_guards() {
        let m = AppMetrics::new(Telemetry::off());
        let a = m.start();
        let b = m.start();
        assert_eq!(m.inflight.get(), 2);
        a.finish(Route::Root, 200);
        assert_eq!(m.inflight.get(), 1);
        drop(b);
        assert_eq!(m.inflight.get(), 0);
    }
}
