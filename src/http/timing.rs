//! Request duration by route (the matched pattern, never the raw path) and status, as a tower
//! layer of its own: `middleware::from_fn` would box each request's future and clone the inner
//! service for every event, the one route where that shows.

use crate::metrics::Metrics;
use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

#[derive(Clone)]
pub struct TimeRequestsLayer {
    metrics: Arc<Metrics>,
}

impl TimeRequestsLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for TimeRequestsLayer {
    type Service = TimeRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TimeRequests {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

#[derive(Clone)]
pub struct TimeRequests<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> Service<Request> for TimeRequests<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Timed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // A shared string: no copy of the route per request.
        let route = request.extensions().get::<MatchedPath>().cloned();
        Timed {
            answer: self.inner.call(request),
            route,
            started: Instant::now(),
            metrics: Arc::clone(&self.metrics),
        }
    }
}

pin_project! {
    /// A request's answer on its way, timed from when the request reached the route.
    pub struct Timed<F> {
        #[pin]
        answer: F,
        route: Option<MatchedPath>,
        started: Instant,
        metrics: Arc<Metrics>,
    }
}

impl<F, E> Future for Timed<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answered = std::task::ready!(this.answer.poll(cx));
        if let Ok(response) = &answered {
            this.metrics.http_request(
                this.route.as_ref().map_or("unmatched", MatchedPath::as_str),
                response.status().as_u16(),
                this.started.elapsed(),
            );
        }
        Poll::Ready(answered)
    }
}
