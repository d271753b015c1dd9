//! The HTTP endpoint: `GET /metrics`, `/health`, `/ready` (HTTP/1.1, no TLS; bind it to
//! an address only the monitoring network reaches).

use crate::runtime::Observing;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn route(node: &Observing, req: Request<hyper::body::Incoming>) -> Reply {
    let Some(rt) = node.now() else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "shutting down\n".into());
    };
    if req.method() != Method::GET {
        return reply(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            // Summing the tables is work in proportion to the data: off the async threads.
            match tokio::task::spawn_blocking(move || super::metrics::render(&rt)).await {
                Ok(body) => reply(StatusCode::OK, "text/plain; version=0.0.4; charset=utf-8", body),
                Err(_) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", "metrics failed\n".into()),
            }
        }
        "/health" => match rt.failure_reason() {
            None => reply(StatusCode::OK, "text/plain", "ok\n".into()),
            Some(why) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("failed: {why}\n")),
        },
        "/ready" => match rt.readiness() {
            Ok(()) => reply(StatusCode::OK, "text/plain", "ready\n".into()),
            Err(why) => reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", format!("not ready: {why}\n")),
        },
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "try /metrics, /health or /ready\n".into()),
    }
}

/// Serves until the node stops. Holds the runtime weakly: the endpoint never keeps a node
/// that is shutting down open.
pub(crate) async fn serve(rt: Observing, listener: tokio::net::TcpListener, stop: tokio_util::sync::CancellationToken) {
    loop {
        let sock = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let Ok((sock, _)) = sock else { continue };
        let rt = rt.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let rt = rt.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&rt, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(sock), svc);
            tokio::select! {
                r = conn => if let Err(e) = r { tracing::debug!(error = %e, "http connection"); },
                _ = stop.cancelled() => {}
            }
        });
    }
}
