//! `/v1` handlers. Errors answer with a status and `{"error": "…"}` that says what the caller did
//! wrong, never database internals (those are logged).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State as AxState};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::Web;
use crate::store::{Filter, Group, StoreError, StoreHandle, StoredFinding};

/// An API error: the status and a message for the caller.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound(id) => ApiError(StatusCode::NOT_FOUND, format!("no finding {id}")),
            StoreError::Invalid(why) => ApiError(StatusCode::BAD_REQUEST, why),
            StoreError::Rejected(why) => {
                tracing::warn!(error = %why, "store refused a request's data");
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "the findings store refused the data".into(),
                )
            }
            StoreError::Db(why) => {
                tracing::warn!(error = %why, "store read failed");
                ApiError(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the findings store is unavailable".into(),
                )
            }
        }
    }
}

fn store(web: &Web) -> Result<StoreHandle, ApiError> {
    web.state.store().cloned().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "no findings store is configured".into(),
        )
    })
}

#[derive(Deserialize)]
pub struct CheckRequest {
    text: String,
    #[serde(default)]
    conversation: Option<String>,
}

/// `POST /v1/check`: findings for a text; nothing is stored, no conversation state changes.
pub async fn check(AxState(web): AxState<Web>, Json(req): Json<CheckRequest>) -> Response {
    let findings = crate::proxy::ws::check(&web.state, req.text).await;
    Json(json!({"conversation": req.conversation, "findings": findings})).into_response()
}

/// `GET /v1/findings`.
pub async fn findings(
    AxState(web): AxState<Web>,
    Query(filter): Query<Filter>,
) -> Result<Response, ApiError> {
    let page = store(&web)?.read(move |b| b.findings(&filter)).await?;
    Ok(Json(page).into_response())
}

/// `GET /v1/findings/{id}`.
pub async fn finding(
    AxState(web): AxState<Web>,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    let f = store(&web)?.read(move |b| b.finding(id)).await?;
    Ok(Json(f).into_response())
}

#[derive(Deserialize)]
pub struct ReviewRequest {
    verdict: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /v1/findings/{id}/review`.
pub async fn review(
    AxState(web): AxState<Web>,
    Path(id): Path<i64>,
    Json(req): Json<ReviewRequest>,
) -> Result<Response, ApiError> {
    if req.verdict != "confirmed" && req.verdict != "false_positive" {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            format!(
                "verdict {:?} must be \"confirmed\" or \"false_positive\"",
                req.verdict
            ),
        ));
    }
    let at = crate::proxy::now_ms();
    let f = store(&web)?
        .read(move |b| b.review(id, &req.verdict, req.note.as_deref(), at))
        .await?;
    Ok(Json(f).into_response())
}

#[derive(Deserialize)]
pub struct StatsQuery {
    group: Group,
    since: Option<u64>,
    until: Option<u64>,
}

/// `GET /v1/stats`.
pub async fn stats(
    AxState(web): AxState<Web>,
    Query(q): Query<StatsQuery>,
) -> Result<Response, ApiError> {
    let group = q.group;
    let rows = store(&web)?
        .read(move |b| b.stats(group, q.since, q.until))
        .await?;
    Ok(Json(json!({"group": group, "rows": rows})).into_response())
}

/// A live finding as the event stream sends it: a stored finding without id and context.
fn live_findings(record: &crate::proxy::Record) -> Vec<Value> {
    record
        .findings
        .iter()
        .map(|f| {
            json!({
                "id": null,
                "at_ms": record.at_ms,
                "conversation": record.conversation,
                "agent": record.agent,
                "message_id": record.message_id,
                "action": record.action,
                "rule": f.rule,
                "category": f.category,
                "severity": f.severity,
                "start": f.start,
                "end": f.end,
                "matched": f.matched,
                "text": record.text,
                "message": f.message,
                "suggestions": f.suggestions,
                "fix": f.fix,
                "verdict": null,
                "note": null,
                "reviewed_at_ms": null,
            })
        })
        .collect()
}

/// Resolves when the listener shuts down; never for a router without a shutdown (its sender is gone).
async fn shutting_down(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let closed = stop.wait_for(|s| *s).await.is_err();
    if closed {
        std::future::pending::<()>().await;
    }
}

/// `GET /v1/events`: server-sent events, one `finding` event per new finding.
pub async fn events(
    AxState(web): AxState<Web>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = web.state.records.subscribe();
    let stream = futures_util::stream::unfold(
        (rx, Vec::<Value>::new(), web.stop.clone()),
        |(mut rx, mut pending, mut stop)| async move {
            loop {
                if let Some(v) = pending.pop() {
                    let event = Event::default().event("finding").data(v.to_string());
                    return Some((Ok(event), (rx, pending, stop)));
                }
                let next = tokio::select! {
                    r = rx.recv() => r,
                    _ = shutting_down(&mut stop) => return None,
                };
                match next {
                    Ok(record) => {
                        pending = live_findings(&record);
                        pending.reverse();
                    }
                    // A slow reader missed some: say so, and carry on with the newest.
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        let event = Event::default().event("lagged").data(n.to_string());
                        return Some((Ok(event), (rx, pending, stop)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(stream).keep_alive(
        KeepAlive::new()
            .interval(Duration::from_secs(15))
            .text("keep-alive"),
    )
}

/// `GET /v1/lexicon`.
pub async fn lexicon(AxState(web): AxState<Web>) -> Response {
    Json(web.state.lexicon_status()).into_response()
}

/// `POST /v1/lexicon/reload`.
pub async fn reload(AxState(web): AxState<Web>) -> Response {
    let state = web.state.clone();
    let result = tokio::task::spawn_blocking(move || state.reload()).await;
    let status = web.state.lexicon_status();
    match result {
        Ok(Ok(())) => Json(status).into_response(),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, Json(status)).into_response(),
    }
}

/// Rows at most in one CSV export.
const EXPORT_ROWS: usize = 100_000;

/// `GET /v1/export.csv`: the filtered findings as CSV (UTF-8 with BOM so spreadsheet programs read
/// the Chinese text correctly).
pub async fn export_csv(
    AxState(web): AxState<Web>,
    Query(mut filter): Query<Filter>,
) -> Result<Response, ApiError> {
    let store = store(&web)?;
    let mut out = String::from("\u{feff}id,time_ms,agent,conversation,rule,category,severity,action,matched,text,verdict,note\n");
    let mut rows = 0;
    loop {
        filter.limit = Some(500);
        let f = filter.clone();
        let page = store.read(move |b| b.findings(&f)).await?;
        for r in &page.items {
            push_csv_row(&mut out, r);
        }
        rows += page.items.len();
        match page.next_cursor {
            Some(c) if rows < EXPORT_ROWS => filter.cursor = Some(c),
            _ => break,
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"liyu-findings.csv\"",
            ),
        ],
        out,
    )
        .into_response())
}

fn push_csv_row(out: &mut String, r: &StoredFinding) {
    let fields = [
        r.id.to_string(),
        r.at_ms.to_string(),
        r.agent.clone().unwrap_or_default(),
        r.conversation.clone().unwrap_or_default(),
        r.rule.clone(),
        r.category.clone(),
        r.severity.clone(),
        r.action.clone(),
        r.matched.clone(),
        r.text.clone(),
        r.verdict.clone().unwrap_or_default(),
        r.note.clone().unwrap_or_default(),
    ];
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // Quoted always; a leading = + - @ would make a spreadsheet run the cell as a formula.
        out.push('"');
        if f.starts_with(['=', '+', '-', '@']) {
            out.push('\'');
        }
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    }
    out.push('\n');
}
