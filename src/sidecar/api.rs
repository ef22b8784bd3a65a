//! The sidecar's HTTP endpoints: `/livez`, `/readyz`, `/status`, `/metrics`
//! the authenticated clone stream `/clone`, and `POST /backup`, which sends
//! this pod's copy to the bucket (authenticated as the clone stream is).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use crate::net::wire::{self, Compression};
use crate::sidecar::shared::{Shared, stream_job};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/clone", get(clone))
        .route("/backup", post(backup))
        .with_state(shared)
}

fn json_response(code: StatusCode, body: serde_json::Value) -> Response {
    (code, axum::Json(body)).into_response()
}

/// Live while the control loop keeps ticking; a wedged loop gets the pod restarted.
async fn livez(State(s): State<Arc<Shared>>) -> Response {
    let since = s.last_tick.lock().expect("tick lock").elapsed();
    if since < Duration::from_secs(120) {
        json_response(StatusCode::OK, json!({"live": true}))
    } else {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"live": false, "reason": format!("the control loop has not run for {} s", since.as_secs())}),
        )
    }
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let ready = s.status().ready;
    let code = if ready.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(code, json!(ready))
}

async fn status(State(s): State<Arc<Shared>>) -> Response {
    let mut st = s.status();
    st.round_age_s = Some(
        s.last_tick
            .lock()
            .expect("tick lock")
            .elapsed()
            .as_secs_f64(),
    );
    json_response(StatusCode::OK, json!(st))
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Checks the clone token, and takes the clone slot: what a clone stream
/// and a backup both need; `Err` is the answer to give instead.
fn admit(
    s: &Shared,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
    what: &str,
) -> Result<(crate::engine::Flavor, tokio::sync::OwnedSemaphorePermit), Box<Response>> {
    let Some(accepted) = s.clone_token_matches(bearer(headers).unwrap_or_default()) else {
        return Err(Box::new(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "this sidecar has no clone token configured"}),
        )));
    };
    // A token is never empty: no header never matches.
    if !accepted {
        s.metrics.clone_unauthorized.inc();
        tracing::warn!(peer = %peer, "{what} request with a missing or wrong token refused");
        return Err(Box::new(json_response(
            StatusCode::UNAUTHORIZED,
            json!({"error": "missing or wrong clone token"}),
        )));
    }
    let Some(flavor) = s.flavor() else {
        return Err(Box::new(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "the local server has not been reached yet"}),
        )));
    };
    let Ok(permit) = s.clone_slot.clone().try_acquire_owned() else {
        return Err(Box::new(
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "30")],
                axum::Json(json!({"error": "busy: another clone stream or backup is in progress"})),
            )
                .into_response(),
        ));
    };
    Ok((flavor, permit))
}

async fn backup(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(store) = s.store.get().cloned() else {
        return json_response(
            StatusCode::CONFLICT,
            json!({"error": "this sidecar has no backup store configured (--backup-url, MYSQL_STS_BACKUP_URL)"}),
        );
    };
    let (flavor, permit) = match admit(&s, peer, &headers, "backup") {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    match crate::sidecar::backups::take(&s, &store, flavor, permit).await {
        Ok(m) => (StatusCode::OK, axum::Json(m)).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "backup failed");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": e.to_string()}),
            )
        }
    }
}

async fn clone(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let (flavor, permit) = match admit(&s, peer, &headers, "clone") {
        Ok(admitted) => admitted,
        Err(answer) => return *answer,
    };
    // What the recipient asks for; an old recipient asks nothing.
    let compression = headers
        .get(wire::COMPRESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(Compression::None);
    let job = stream_job(&s, permit, peer.to_string(), compression);
    let compression = job.compression;
    let Some(started) = flavor.start_clone_stream(job) else {
        return json_response(
            StatusCode::CONFLICT,
            json!({"error": format!("this donor runs {flavor}: recipients clone it with the engine's own clone (the CLONE plugin)")}),
        );
    };
    match started {
        Ok(rx) => {
            let datadir = s.datadir.clone();
            // The data the stream carries: copies set aside stay here.
            let estimate = tokio::task::spawn_blocking(move || {
                crate::datadir::Datadir::new(&datadir)
                    .live_bytes()
                    .unwrap_or(0)
            })
            .await
            .unwrap_or_default();
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
            });
            (
                [
                    (
                        header::CONTENT_TYPE,
                        "application/x-mysql-sts-clone".to_owned(),
                    ),
                    (
                        header::HeaderName::from_static(wire::ESTIMATE_HEADER),
                        estimate.to_string(),
                    ),
                    (
                        header::HeaderName::from_static(wire::COMPRESSION_HEADER),
                        compression.as_str().to_owned(),
                    ),
                ],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Err(e) => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": e.to_string()}),
        ),
    }
}
