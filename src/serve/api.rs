//! The JSON API: list, info, rows by number or id, search; errors as
//! `{"error": MESSAGE, "field": FIELD or null, "status": CODE}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::catalog::{Entry, IdKey, VerifyState};
use super::{OPENAPI, Shared};
use crate::error::Error;
use crate::format::{Container, Id, IdKind};
use crate::search::{Hits, Metric, SearchOptions};

/// A 4xx or 5xx answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<String>,
    retry_after: bool,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            field: None,
            retry_after: false,
        }
    }

    pub(crate) fn field(mut self, f: impl Into<String>) -> Self {
        self.field = Some(f.into());
        self
    }

    fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message).field(field)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.message,
            "field": self.field,
            "status": self.status.as_u16(),
        });
        let mut r = (self.status, json_body(body.to_string())).into_response();
        if self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        r
    }
}

type ApiResult = std::result::Result<Response, ApiError>;

/// A JSON response from text already serialised.
pub(crate) fn json_body(text: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// Runs `f` on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::result::Result<T, ApiError> + Send + 'static,
) -> std::result::Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {e}; please report this"),
        )
    })?
}

/// A library error as an answer; a damaged container is marked failed, never served again.
fn lib_error(e: Error, entry: &Entry) -> ApiError {
    match e {
        Error::Corrupt { .. } | Error::Truncated { .. } => {
            let msg = e.to_string();
            entry.mark_failed(&msg);
            ApiError::new(
                StatusCode::CONFLICT,
                format!("the container is damaged: {msg}"),
            )
            .field("name")
        }
        Error::Config(m) | Error::Mismatch(m) => ApiError::bad("body", m),
        Error::BadNpy { msg, .. } => ApiError::bad("queries", msg),
        Error::Cancelled => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cancelled"),
        e => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The container `name`, ready to serve data: found (scanning again if it is new), opened
/// and verified.
async fn ready(
    app: &Shared,
    name: &str,
) -> std::result::Result<(Arc<Entry>, Arc<Container>), ApiError> {
    let entry = match app.catalog.get(name) {
        Some(e) => e,
        None => {
            app.catalog.rescan().await;
            app.catalog.get(name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!(
                        "no container named '{name}' in {} (GET /api/containers lists them)",
                        app.catalog.dir().display()
                    ),
                )
                .field("name")
            })?
        }
    };
    let c = match &entry.container {
        Ok(c) => c.clone(),
        Err(msg) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("the container '{name}' cannot be read: {msg}"),
            )
            .field("name"));
        }
    };
    match entry.verify_state() {
        VerifyState::Ok { .. } => Ok((entry, c)),
        VerifyState::Pending => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the container '{name}' is being verified; retry in a moment"),
            )
            .field("name");
            e.retry_after = true;
            Err(e)
        }
        VerifyState::Failed { reason, .. } => Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("the container '{name}' failed verification and is not served: {reason}"),
        )
        .field("name")),
    }
}

/// Sets the flag when dropped: a search whose client went away stops at the next chunk.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub(crate) async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such route (GET /openapi.json describes the API)",
    )
    .field("path")
}

pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not take this method (GET /openapi.json describes the API)",
    )
    .field("method")
}

pub(crate) async fn healthz(State(app): State<Shared>) -> Response {
    json_body(json!({"status": "ok", "containers": app.catalog.all().len()}).to_string())
}

pub(crate) async fn openapi() -> Response {
    json_body(OPENAPI.to_string())
}

/// A container's description, as the list and `GET /api/containers/{name}` give it.
pub(crate) fn describe(e: &Entry) -> Value {
    let verify = serde_json::to_value(e.verify_state()).unwrap_or(Value::Null);
    let report = e
        .report()
        .map(|_| format!("/containers/{}/report", urlenc(&e.name)));
    let Ok(c) = &e.container else {
        return json!({
            "name": e.name,
            "file": file_name(e),
            "verify": verify,
            "report": report,
        });
    };
    let file_bytes = c.file_len();
    let rows = c.rows();
    json!({
        "name": e.name,
        "file": file_name(e),
        "rows": rows,
        "dims": c.dims(),
        "codec": c.codec().name(),
        "ids": c.id_kind().name(),
        "first_row": c.first_row(),
        "chunks": c.chunks().len(),
        "chunk_rows": c.header().chunk_rows,
        "file_bytes": file_bytes,
        "bytes_per_vector": if rows > 0 { file_bytes as f64 / rows as f64 } else { 0.0 },
        "ratio_vs_float32": if file_bytes > 0 { (rows * c.dims() as u64 * 4) as f64 / file_bytes as f64 } else { 0.0 },
        "metadata": c.metadata(),
        "verify": verify,
        "report": report,
    })
}

pub(crate) fn file_name(e: &Entry) -> String {
    e.path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Percent-encodes a path segment.
pub(crate) fn urlenc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub(crate) async fn list(State(app): State<Shared>) -> ApiResult {
    app.catalog.rescan().await;
    let cat = app.catalog.clone();
    let list =
        blocking(move || Ok(cat.all().iter().map(|e| describe(e)).collect::<Vec<_>>())).await?;
    Ok(json_body(json!({ "containers": list }).to_string()))
}

pub(crate) async fn rescan(State(app): State<Shared>) -> ApiResult {
    list(State(app)).await
}

pub(crate) async fn info(State(app): State<Shared>, Path(name): Path<String>) -> ApiResult {
    let entry = match app.catalog.get(&name) {
        Some(e) => e,
        None => {
            app.catalog.rescan().await;
            app.catalog.get(&name).ok_or_else(|| unknown(&app, &name))?
        }
    };
    let v = blocking(move || Ok(describe(&entry))).await?;
    Ok(json_body(v.to_string()))
}

fn unknown(app: &Shared, name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no container named '{name}' in {} (GET /api/containers lists them)",
            app.catalog.dir().display()
        ),
    )
    .field("name")
}

/// Rows of `c` as `{"container", "dims", "rows": [{"row", "id", "vector"}]}`.
fn rows_json(name: &str, c: &Container, rows: &[u64]) -> crate::Result<String> {
    let d = c.dims();
    let mut data = vec![0f32; rows.len() * d];
    c.get_many(rows, &mut data)?;
    let mut buf = Vec::with_capacity(rows.len() * (d * 12 + 40) + 64);
    buf.extend_from_slice(b"{\"container\":");
    serde_json::to_writer(&mut buf, name).map_err(|e| Error::Config(e.to_string()))?;
    buf.extend_from_slice(format!(",\"dims\":{d},\"rows\":[").as_bytes());
    let mut f = ryu::Buffer::new();
    for (k, (&r, v)) in rows.iter().zip(data.chunks_exact(d.max(1))).enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(format!("{{\"row\":{r},\"id\":").as_bytes());
        push_id(&mut buf, c, r)?;
        buf.extend_from_slice(b",\"vector\":[");
        for (j, x) in v.iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            if x.is_finite() {
                buf.extend_from_slice(f.format(*x).as_bytes());
            } else {
                buf.extend_from_slice(b"null");
            }
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}");
    Ok(String::from_utf8(buf).expect("JSON is UTF-8"))
}

/// Appends row `r`'s id as JSON.
fn push_id(buf: &mut Vec<u8>, c: &Container, r: u64) -> crate::Result<()> {
    if c.id_kind() == IdKind::None {
        Id::U64(r + c.first_row()).push_json(buf);
        return Ok(());
    }
    let ids = c.ids(r..r + 1)?;
    ids.get(0).push_json(buf);
    Ok(())
}

fn row_out_of_range(field: String, row: u64, c: &Container) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "row {row} is out of range: the container has {} rows (numbered 0..{})",
            c.rows(),
            c.rows()
        ),
    )
    .field(field)
}

pub(crate) async fn row(
    State(app): State<Shared>,
    Path((name, row)): Path<(String, String)>,
) -> ApiResult {
    let row: u64 = row.parse().map_err(|_| {
        ApiError::bad(
            "row",
            format!("'{row}' is not a row number (a non-negative integer)"),
        )
    })?;
    let (entry, c) = ready(&app, &name).await?;
    if row >= c.rows() {
        return Err(row_out_of_range("row".into(), row, &c));
    }
    let text =
        blocking(move || rows_json(&entry.name, &c, &[row]).map_err(|e| lib_error(e, &entry)))
            .await?;
    Ok(json_body(text))
}

/// Parses an id of the container's kind from text (a path segment).
fn key_from_text(c: &Container, s: &str, field: &str) -> std::result::Result<IdKey, ApiError> {
    match c.id_kind() {
        IdKind::Str => Ok(IdKey::Str(s.to_string())),
        kind => s.parse::<u64>().map(IdKey::U64).map_err(|_| {
            ApiError::bad(
                field,
                format!(
                    "'{s}' is not an unsigned integer, and the container holds {}",
                    if kind == IdKind::None {
                        "no ids (its rows are known by their numbers)"
                    } else {
                        "u64 ids"
                    }
                ),
            )
        }),
    }
}

pub(crate) async fn by_id(
    State(app): State<Shared>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult {
    let (entry, c) = ready(&app, &name).await?;
    let key = key_from_text(&c, &id, "id")?;
    let text = blocking(move || {
        let rows = entry
            .rows_of(&c, std::slice::from_ref(&key))
            .map_err(|e| lib_error(e, &entry))?;
        let Some(row) = rows[0] else {
            return Err(
                ApiError::new(StatusCode::NOT_FOUND, format!("no row has the id '{id}'"))
                    .field("id"),
            );
        };
        rows_json(&entry.name, &c, &[row]).map_err(|e| lib_error(e, &entry))
    })
    .await?;
    Ok(json_body(text))
}

/// The body as a JSON object, within the size limit; unknown fields are refused.
fn object(
    body: std::result::Result<Bytes, BytesRejection>,
    limit: usize,
    known: &[&str],
) -> std::result::Result<Map<String, Value>, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than the limit of {limit} bytes"),
            )
            .field("body")
        } else {
            ApiError::bad("body", format!("the request body could not be read: {r}"))
        }
    })?;
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad("body", format!("the body is not valid JSON: {e}")))?;
    let Value::Object(m) = v else {
        return Err(ApiError::bad("body", "the body must be a JSON object"));
    };
    if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::bad(
            k.clone(),
            format!("unknown field '{k}'; the fields are {}", known.join(", ")),
        ));
    }
    Ok(m)
}

fn array<'a>(
    m: &'a Map<String, Value>,
    field: &str,
    limit: usize,
    what: &str,
) -> std::result::Result<Option<&'a Vec<Value>>, ApiError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) => {
            if a.len() > limit {
                return Err(ApiError::bad(
                    field,
                    format!(
                        "{} {what} asked for; the limit is {limit} a request",
                        a.len()
                    ),
                ));
            }
            if a.is_empty() {
                return Err(ApiError::bad(field, format!("'{field}' is empty")));
            }
            Ok(Some(a))
        }
        Some(_) => Err(ApiError::bad(field, format!("'{field}' must be an array"))),
    }
}

fn uint(v: &Value, field: String) -> std::result::Result<u64, ApiError> {
    v.as_u64().ok_or_else(|| {
        ApiError::bad(
            field.clone(),
            format!("{field} is {v}, not a non-negative integer"),
        )
    })
}

pub(crate) async fn rows(
    State(app): State<Shared>,
    Path(name): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult {
    let lim = &app.opts.limits;
    let m = object(body, lim.body_bytes, &["rows", "ids"])?;
    let rows = array(&m, "rows", lim.batch, "rows")?;
    let ids = array(&m, "ids", lim.batch, "ids")?;
    let (entry, c) = ready(&app, &name).await?;
    let wanted: Vec<u64> = match (rows, ids) {
        (Some(rows), None) => {
            let mut out = Vec::with_capacity(rows.len());
            for (i, v) in rows.iter().enumerate() {
                let r = uint(v, format!("rows[{i}]"))?;
                if r >= c.rows() {
                    return Err(row_out_of_range(format!("rows[{i}]"), r, &c));
                }
                out.push(r);
            }
            out
        }
        (None, Some(ids)) => {
            let mut keys = Vec::with_capacity(ids.len());
            for (i, v) in ids.iter().enumerate() {
                let field = format!("ids[{i}]");
                keys.push(match (v, c.id_kind()) {
                    (Value::String(s), IdKind::Str) => IdKey::Str(s.clone()),
                    (Value::String(s), _) => key_from_text(&c, s, &field)?,
                    (v, IdKind::Str) => {
                        return Err(ApiError::bad(
                            field.clone(),
                            format!("{field} is {v}; the container holds string ids"),
                        ));
                    }
                    (v, _) => IdKey::U64(uint(v, field)?),
                });
            }
            let (e2, c2) = (entry.clone(), c.clone());
            let found =
                blocking(move || e2.rows_of(&c2, &keys).map_err(|e| lib_error(e, &e2))).await?;
            let mut out = Vec::with_capacity(found.len());
            for (i, r) in found.into_iter().enumerate() {
                match r {
                    Some(r) => out.push(r),
                    None => {
                        return Err(ApiError::new(
                            StatusCode::NOT_FOUND,
                            format!("ids[{i}] ({}) is not in the container", ids[i]),
                        )
                        .field(format!("ids[{i}]")));
                    }
                }
            }
            out
        }
        _ => {
            return Err(ApiError::bad(
                "rows",
                "give exactly one of 'rows' (row numbers) or 'ids'",
            ));
        }
    };
    let text =
        blocking(move || rows_json(&entry.name, &c, &wanted).map_err(|e| lib_error(e, &entry)))
            .await?;
    Ok(json_body(text))
}

const SEARCH_FIELDS: &[&str] = &[
    "queries",
    "k",
    "metric",
    "rescore",
    "rescore_with",
    "hamming",
    "filter_rows",
];

pub(crate) async fn search(
    State(app): State<Shared>,
    Path(name): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult {
    let lim = app.opts.limits.clone();
    let m = object(body, lim.body_bytes, SEARCH_FIELDS)?;
    let k = match m.get("k") {
        None => 10,
        Some(v) => uint(v, "k".into())? as usize,
    };
    if k == 0 || k > lim.k {
        return Err(ApiError::bad(
            "k",
            format!("k is {k}; it must be between 1 and {}", lim.k),
        ));
    }
    let metric = match m.get("metric") {
        None => Metric::Cos,
        Some(Value::String(s)) => s
            .parse::<Metric>()
            .map_err(|e| ApiError::bad("metric", e.to_string()))?,
        Some(v) => {
            return Err(ApiError::bad(
                "metric",
                format!("metric is {v}; use \"ip\", \"cos\" or \"l2\""),
            ));
        }
    };
    let rescore = match m.get("rescore") {
        None => 0,
        Some(v) => uint(v, "rescore".into())? as usize,
    };
    if rescore > lim.rescore {
        return Err(ApiError::bad(
            "rescore",
            format!("rescore is {rescore}; the limit is {}", lim.rescore),
        ));
    }
    let hamming = match m.get("hamming") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::bad(
                "hamming",
                format!("hamming is {v}, not true or false"),
            ));
        }
    };
    let Some(qs) = array(&m, "queries", lim.queries, "queries")? else {
        return Err(ApiError::bad(
            "queries",
            "'queries' is missing: an array of query vectors, e.g. [[0.1, 0.2, ...]]",
        ));
    };
    let filter = match array(&m, "filter_rows", usize::MAX, "rows")? {
        None => None,
        Some(a) => Some(
            a.iter()
                .enumerate()
                .map(|(i, v)| uint(v, format!("filter_rows[{i}]")))
                .collect::<std::result::Result<Vec<u64>, _>>()?,
        ),
    };
    let (entry, c) = ready(&app, &name).await?;
    let fine = match m.get("rescore_with") {
        None | Some(Value::Null) => None,
        Some(Value::String(other)) => Some(
            ready(&app, other)
                .await
                .map_err(|e| e.field("rescore_with"))?,
        ),
        Some(v) => {
            return Err(ApiError::bad(
                "rescore_with",
                format!("rescore_with is {v}, not a container name"),
            ));
        }
    };
    let d = c.dims();
    let mut queries = Vec::with_capacity(qs.len() * d);
    for (i, q) in qs.iter().enumerate() {
        let Value::Array(vals) = q else {
            return Err(ApiError::bad(
                format!("queries[{i}]"),
                format!("queries[{i}] must be an array of {d} numbers"),
            ));
        };
        if vals.len() != d {
            return Err(ApiError::bad(
                format!("queries[{i}]"),
                format!(
                    "queries[{i}] has {} values but the container holds {d}-dimensional rows",
                    vals.len()
                ),
            ));
        }
        for (j, v) in vals.iter().enumerate() {
            let x = v.as_f64().map(|x| x as f32).filter(|x| x.is_finite());
            let Some(x) = x else {
                return Err(ApiError::bad(
                    format!("queries[{i}][{j}]"),
                    format!("queries[{i}][{j}] is {v}, not a finite 32-bit number"),
                ));
            };
            queries.push(x);
        }
    }
    if let Some(f) = &filter
        && let Some(i) = f.iter().position(|&r| r >= c.rows())
    {
        return Err(row_out_of_range(format!("filter_rows[{i}]"), f[i], &c));
    }
    let opts = SearchOptions {
        k,
        metric,
        threads: app.opts.search_threads,
        filter,
        hamming,
        rescore: if fine.is_some() && rescore == 0 {
            100.min(lim.rescore)
        } else {
            rescore
        },
    };
    let _slot = app
        .searches
        .acquire()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let nq = qs.len();
    let text = blocking(move || {
        let hits = match &fine {
            Some((fe, f)) => crate::search::search_rescored(&c, f, &queries, &opts, &cancel)
                .map_err(|e| match e {
                    Error::Mismatch(m) => ApiError::bad("rescore_with", m),
                    e => lib_error(e, fe),
                }),
            None => crate::search::search(&c, &queries, &opts, &cancel)
                .map_err(|e| lib_error(e, &entry)),
        }?;
        hits_json(&entry.name, &c, &hits, nq).map_err(|e| lib_error(e, &entry))
    })
    .await?;
    Ok(json_body(text))
}

/// `{"container", "metric", "score", "scorer", "k", "results": [{"rows", "ids", "scores"}]}`.
fn hits_json(name: &str, c: &Container, hits: &Hits, nq: usize) -> crate::Result<String> {
    let mut buf = Vec::new();
    buf.extend_from_slice(b"{\"container\":");
    serde_json::to_writer(&mut buf, name).map_err(|e| Error::Config(e.to_string()))?;
    buf.extend_from_slice(
        format!(
            ",\"k\":{},\"score\":\"{}\",\"scorer\":\"{}\",\"results\":[",
            hits.k, hits.score, hits.scorer
        )
        .as_bytes(),
    );
    let mut f = ryu::Buffer::new();
    for i in 0..nq {
        let (rows, scores) = hits.query(i);
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(b"{\"rows\":[");
        for (j, r) in rows.iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(r.to_string().as_bytes());
        }
        buf.extend_from_slice(b"],\"ids\":[");
        for (j, &r) in rows.iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            push_id(&mut buf, c, r)?;
        }
        buf.extend_from_slice(b"],\"scores\":[");
        for (j, s) in scores.iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            if s.is_finite() {
                buf.extend_from_slice(f.format(*s).as_bytes());
            } else {
                buf.extend_from_slice(b"null");
            }
        }
        buf.extend_from_slice(b"]}");
    }
    buf.extend_from_slice(b"]}");
    Ok(String::from_utf8(buf).expect("JSON is UTF-8"))
}
