//! The JSON API: list, info, rows by number or id, search; errors as
//! `{"error": MESSAGE, "field": FIELD or null, "status": CODE}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
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

/// Runs `f` on this thread, telling the runtime it may block (a page fault on a file bigger
/// than RAM): the runtime moves its other tasks to another thread. For row reads, which are
/// short: the answer does not wait for a blocking-pool thread to be woken and scheduled,
/// which on a busy machine costs more than the read.
fn inline<T>(
    f: impl FnOnce() -> std::result::Result<T, ApiError>,
) -> std::result::Result<T, ApiError> {
    tokio::task::block_in_place(f)
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

/// How rows are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsFormat {
    /// `{"container", "dims", "rows": [{"row", "id", "vector"}]}`.
    Json,
    /// A `.npy` file of the vectors (`<f4`, `rows × dims`), in the order asked.
    Npy,
}

/// The content type of a `.npy` answer.
const NPY_TYPE: &str = "application/x-npy";

/// The format asked for: `?format=json|npy`, else the `Accept` header (`application/x-npy`
/// or `application/octet-stream` give npy), else JSON. Any other query parameter is refused.
fn rows_format(
    query: Option<&str>,
    headers: &HeaderMap,
) -> std::result::Result<RowsFormat, ApiError> {
    let mut asked = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != "format" {
            return Err(ApiError::bad(
                k,
                format!("unknown query parameter '{k}'; the only one is format=json|npy"),
            ));
        }
        asked = Some(match v {
            "json" => RowsFormat::Json,
            "npy" => RowsFormat::Npy,
            _ => {
                return Err(ApiError::bad(
                    "format",
                    format!("format is '{v}'; use json or npy"),
                ));
            }
        });
    }
    if let Some(f) = asked {
        return Ok(f);
    }
    let accept = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .collect::<Vec<_>>();
    let binary = accept
        .iter()
        .any(|m| m == NPY_TYPE || m == "application/octet-stream");
    let json = accept.iter().any(|m| m == "application/json");
    Ok(if binary && !json {
        RowsFormat::Npy
    } else {
        RowsFormat::Json
    })
}

/// Rows `rows` of `c`, decoded, in `format`.
fn rows_answer(
    name: &str,
    c: &Container,
    rows: &[u64],
    format: RowsFormat,
) -> crate::Result<Response> {
    let d = c.dims();
    let mut data = vec![0f32; rows.len() * d];
    c.get_many(rows, &mut data)?;
    if format == RowsFormat::Npy {
        let mut buf = crate::npy::write_header(rows.len() as u64, d as u64);
        buf.reserve(data.len() * 4);
        for x in &data {
            buf.extend_from_slice(&x.to_le_bytes());
        }
        return Ok((
            [(header::CONTENT_TYPE, HeaderValue::from_static(NPY_TYPE))],
            buf,
        )
            .into_response());
    }
    Ok(json_body(rows_json(name, c, rows, &data)?))
}

/// Rows of `c` (decoded in `data`) as `{"container", "dims", "rows": [{"row", "id", "vector"}]}`.
fn rows_json(name: &str, c: &Container, rows: &[u64], data: &[f32]) -> crate::Result<String> {
    use std::io::Write as _;
    let d = c.dims();
    // Most floats print in at most 12 bytes with the comma.
    let mut buf = Vec::with_capacity(rows.len() * (d * 12 + 40) + 64);
    buf.extend_from_slice(b"{\"container\":");
    serde_json::to_writer(&mut buf, name).map_err(|e| Error::Config(e.to_string()))?;
    let _ = write!(buf, ",\"dims\":{d},\"rows\":[");
    let mut f = ryu::Buffer::new();
    for (k, (&r, v)) in rows.iter().zip(data.chunks_exact(d.max(1))).enumerate() {
        if k > 0 {
            buf.push(b',');
        }
        let _ = write!(buf, "{{\"row\":{r},\"id\":");
        push_id(&mut buf, c, r)?;
        buf.extend_from_slice(b",\"vector\":[");
        for (j, x) in v.iter().enumerate() {
            if j > 0 {
                buf.push(b',');
            }
            // The reader refuses rows that are not finite; null keeps the JSON valid
            // should one ever get here.
            if x.is_finite() {
                buf.extend_from_slice(f.format_finite(*x).as_bytes());
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
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let format = rows_format(query.as_deref(), &headers)?;
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
    inline(|| rows_answer(&entry.name, &c, &[row], format).map_err(|e| lib_error(e, &entry)))
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
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult {
    let format = rows_format(query.as_deref(), &headers)?;
    let (entry, c) = ready(&app, &name).await?;
    let key = key_from_text(&c, &id, "id")?;
    inline(|| {
        let rows = entry
            .rows_of(&c, std::slice::from_ref(&key))
            .map_err(|e| lib_error(e, &entry))?;
        let Some(row) = rows[0] else {
            return Err(
                ApiError::new(StatusCode::NOT_FOUND, format!("no row has the id '{id}'"))
                    .field("id"),
            );
        };
        rows_answer(&entry.name, &c, &[row], format).map_err(|e| lib_error(e, &entry))
    })
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
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> ApiResult {
    let format = rows_format(query.as_deref(), &headers)?;
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
            let keys = keys_of(&c, ids, "ids")?;
            inline(|| rows_of_ids(&entry, &c, &keys, ids, "ids"))?
        }
        _ => {
            return Err(ApiError::bad(
                "rows",
                "give exactly one of 'rows' (row numbers) or 'ids'",
            ));
        }
    };
    inline(|| rows_answer(&entry.name, &c, &wanted, format).map_err(|e| lib_error(e, &entry)))
}

/// The ids of array `field` (`ids[i]` in errors) as keys of `c`'s id kind: strings for
/// string ids, integers (or their decimal text) otherwise.
fn keys_of(c: &Container, ids: &[Value], field: &str) -> std::result::Result<Vec<IdKey>, ApiError> {
    let mut keys = Vec::with_capacity(ids.len());
    for (i, v) in ids.iter().enumerate() {
        let field = format!("{field}[{i}]");
        keys.push(match (v, c.id_kind()) {
            (Value::String(s), IdKind::Str) => IdKey::Str(s.clone()),
            (Value::String(s), _) => key_from_text(c, s, &field)?,
            (v, IdKind::Str) => {
                return Err(ApiError::bad(
                    field.clone(),
                    format!("{field} is {v}; the container holds string ids"),
                ));
            }
            (v, _) => IdKey::U64(uint(v, field)?),
        });
    }
    Ok(keys)
}

/// The rows carrying `keys` (parsed from `ids`, the array `field` of the request); an id
/// the container does not have is a 404 naming it. Blocking.
fn rows_of_ids(
    entry: &Entry,
    c: &Container,
    keys: &[IdKey],
    ids: &[Value],
    field: &str,
) -> std::result::Result<Vec<u64>, ApiError> {
    let found = entry.rows_of(c, keys).map_err(|e| lib_error(e, entry))?;
    let mut out = Vec::with_capacity(found.len());
    for (i, r) in found.into_iter().enumerate() {
        match r {
            Some(r) => out.push(r),
            None => {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    format!("{field}[{i}] ({}) is not in the container", ids[i]),
                )
                .field(format!("{field}[{i}]")));
            }
        }
    }
    Ok(out)
}

const SEARCH_FIELDS: &[&str] = &[
    "queries",
    "k",
    "metric",
    "rescore",
    "rescore_with",
    "hamming",
    "filter_rows",
    "filter_ids",
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
    let filter_ids = array(&m, "filter_ids", usize::MAX, "ids")?;
    if filter.is_some() && filter_ids.is_some() {
        return Err(ApiError::bad(
            "filter_ids",
            "give at most one of 'filter_rows' (row numbers) or 'filter_ids'",
        ));
    }
    let (entry, c) = ready(&app, &name).await?;
    let filter = match filter_ids {
        None => filter,
        Some(ids) => {
            let keys = keys_of(&c, ids, "filter_ids")?;
            let ids = ids.clone();
            let (e2, c2) = (entry.clone(), c.clone());
            Some(blocking(move || rows_of_ids(&e2, &c2, &keys, &ids, "filter_ids")).await?)
        }
    };
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
        fast_scan_candidates: 0,
        ..SearchOptions::default()
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
