//! `serve`: an HTTP service over the containers of one directory (`vectro serve DIR`).
//!
//! A JSON API (list, rows by number or id, search on the codes), a dashboard (HTML with
//! inline CSS and SVG, no external request), `/healthz`, `/metrics` (Prometheus text) and
//! `/openapi.json`, on axum and a tokio runtime of its own. Every read of a container runs
//! on tokio's blocking pool (a page fault on a file bigger than RAM, or a search scanning
//! it, never holds up the async workers); searches also wait for one of
//! [`Limits::searches`] slots, since each one uses every core.
//!
//! ```text
//!  client ──► metrics ──► auth ──► body limit ──► route ──► spawn_blocking ─► Container
//!             (counts,     (bearer            (413)          (get_many,        (mmap,
//!              latency)     or cookie)                         search)           crc)
//! ```
//!
//! Containers are found by scanning the directory for `*.vectro` files (on every list and
//! on `POST /api/rescan`), opened once and kept open; a file whose size or modification
//! time changed is opened again. Each is verified in the background (every checksum, as
//! `vectro verify`); until that pass is done its data requests get 503, and a container
//! that failed it is listed with the reason and its data requests get 409: a corrupt file
//! is never served. docs/serve.md documents the API and the limits.

mod api;
mod catalog;
mod dashboard;
mod metrics;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::error::{Error, Result};
use catalog::Catalog;
pub use catalog::VerifyState;

/// Every route the service answers, `(method, path)`, in axum's path syntax. The OpenAPI
/// description (`/openapi.json`) documents exactly these (a test checks both ways).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/containers/{name}"),
    ("GET", "/containers/{name}/report"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/api/containers"),
    ("POST", "/api/rescan"),
    ("GET", "/api/containers/{name}"),
    ("GET", "/api/containers/{name}/rows/{row}"),
    ("GET", "/api/containers/{name}/ids/{id}"),
    ("POST", "/api/containers/{name}/rows"),
    ("POST", "/api/containers/{name}/search"),
];

/// The OpenAPI 3.1 description of the API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Bounds on what one request may ask for; a request beyond them gets a 413 (body) or 400
/// (the others) naming the field.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of a request body.
    pub body_bytes: usize,
    /// Rows (or ids) of one batch read.
    pub batch: usize,
    /// Queries of one search.
    pub queries: usize,
    /// `k` of a search.
    pub k: usize,
    /// Candidates a search may re-rank (`rescore`).
    pub rescore: usize,
    /// Searches run at once; the others wait for a slot.
    pub searches: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            body_bytes: 16 << 20,
            batch: 10_000,
            queries: 1_000,
            k: 1_000,
            rescore: 10_000,
            searches: 2,
        }
    }
}

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The directory of containers.
    pub dir: PathBuf,
    /// The address to listen on.
    pub bind: SocketAddr,
    /// The bearer token every request must carry (`Authorization: Bearer …`, or the
    /// dashboard's cookie); `None` leaves the service open.
    pub token: Option<String>,
    /// Request bounds.
    pub limits: Limits,
    /// Worker threads of a search (0: every core).
    pub search_threads: usize,
}

impl ServeOptions {
    /// Options for `dir` on 127.0.0.1:`port` (0: any free port), no token, default limits.
    pub fn new(dir: impl Into<PathBuf>, port: u16) -> Self {
        ServeOptions {
            dir: dir.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            token: None,
            limits: Limits::default(),
            search_threads: 0,
        }
    }
}

/// What the handlers share.
pub(crate) struct App {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) opts: ServeOptions,
    pub(crate) metrics: metrics::Metrics,
    pub(crate) searches: tokio::sync::Semaphore,
}

type Shared = Arc<App>;

/// Serves `opts.dir` until `stop` is set (the binary sets it on SIGTERM or Ctrl-C), then
/// stops accepting connections and returns once the requests in flight have finished.
/// `ready` is called with the bound address (the port, when 0 was asked for) once the
/// service accepts connections.
///
/// # Errors
/// [`Error::Io`] when `opts.dir` is not a readable directory or the address cannot be
/// bound (in use, not permitted); [`Error::Threads`] when the runtime cannot start.
pub fn serve(opts: ServeOptions, stop: &AtomicBool, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    check_dir(&opts.dir)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .thread_name("vectro-serve")
        .enable_all()
        .build()
        .map_err(|e| Error::Threads {
            threads: 2,
            reason: e.to_string(),
        })?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let done = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        // Watches `stop` (set by a signal handler, which can do nothing more) and tells
        // the server to shut down gracefully.
        scope.spawn(|| {
            while !stop.load(Ordering::SeqCst) && !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = tx.send(());
        });
        let r = rt.block_on(run(opts, rx, ready));
        done.store(true, Ordering::SeqCst);
        r
    });
    // The requests in flight are answered; a background verification still reading a
    // file is not waited for (it only reads).
    rt.shutdown_background();
    result
}

async fn run(
    opts: ServeOptions,
    stop: tokio::sync::oneshot::Receiver<()>,
    ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(opts.bind)
        .await
        .map_err(|e| Error::io(bind_name(&opts.bind), "listening on", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(bind_name(&opts.bind), "listening on", e))?;
    let app = Arc::new(App {
        catalog: Arc::new(Catalog::new(opts.dir.clone())),
        searches: tokio::sync::Semaphore::new(opts.limits.searches.max(1)),
        opts,
        metrics: metrics::Metrics::default(),
    });
    app.catalog.rescan().await;
    let router = router(app);
    ready(addr);
    // Answers go out as soon as they are written: Nagle's algorithm would hold the last
    // segment of a large answer until the client's (delayed) ack.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            let _ = stop.await;
        })
        .await
        .map_err(|e| Error::io(bind_name(&addr), "serving on", e))
}

fn bind_name(a: &SocketAddr) -> PathBuf {
    PathBuf::from(a.to_string())
}

fn check_dir(dir: &Path) -> Result<()> {
    let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, "opening the directory", e))?;
    if !meta.is_dir() {
        return Err(Error::io(
            dir,
            "opening the directory",
            std::io::Error::new(
                std::io::ErrorKind::NotADirectory,
                "not a directory: give the directory holding the .vectro files",
            ),
        ));
    }
    std::fs::read_dir(dir).map_err(|e| Error::io(dir, "listing", e))?;
    Ok(())
}

/// Every route, its middleware and the fallbacks.
fn router(app: Shared) -> Router {
    let mut seen = Vec::new();
    let mut r = Router::new();
    let mut add =
        |path: &'static str, m: axum::routing::MethodRouter<Shared>, methods: &[&'static str]| {
            for method in methods {
                assert!(
                    ROUTES.contains(&(method, path)),
                    "route {method} {path} is missing from ROUTES (and the OpenAPI description)"
                );
                seen.push((*method, path));
            }
            r = std::mem::take(&mut r).route(path, m);
        };
    add("/", get(dashboard::index), &["GET"]);
    add("/containers/{name}", get(dashboard::container), &["GET"]);
    add(
        "/containers/{name}/report",
        get(dashboard::report),
        &["GET"],
    );
    add(
        "/login",
        get(dashboard::login_form).post(dashboard::login),
        &["GET", "POST"],
    );
    add("/healthz", get(api::healthz), &["GET"]);
    add("/metrics", get(metrics::render), &["GET"]);
    add("/openapi.json", get(api::openapi), &["GET"]);
    add("/api/containers", get(api::list), &["GET"]);
    add("/api/rescan", post(api::rescan), &["POST"]);
    add("/api/containers/{name}", get(api::info), &["GET"]);
    add("/api/containers/{name}/rows/{row}", get(api::row), &["GET"]);
    add("/api/containers/{name}/ids/{id}", get(api::by_id), &["GET"]);
    add("/api/containers/{name}/rows", post(api::rows), &["POST"]);
    add(
        "/api/containers/{name}/search",
        post(api::search),
        &["POST"],
    );
    assert_eq!(seen.len(), ROUTES.len(), "a route of ROUTES is not served");
    let limit = app.opts.limits.body_bytes;
    r.fallback(api::no_route)
        .method_not_allowed_fallback(api::wrong_method)
        .layer(DefaultBodyLimit::max(limit))
        .layer(from_fn_with_state(app.clone(), auth))
        .layer(from_fn_with_state(app.clone(), metrics::track))
        .with_state(app)
}

/// The name of the dashboard's cookie holding the token.
pub(crate) const COOKIE: &str = "vectro_token";

/// Lets a request through when no token is configured, or it carries the token as
/// `Authorization: Bearer …` or the dashboard's cookie (compared in constant time); else
/// 401 (the login form, for a browser asking for a page).
async fn auth(State(app): State<Shared>, req: Request, next: Next) -> Response {
    let Some(token) = &app.opts.token else {
        return next.run(req).await;
    };
    let path = req.uri().path();
    if path == "/login" {
        return next.run(req).await;
    }
    if presented(req.headers()).is_some_and(|t| token_eq(t, token)) {
        return next.run(req).await;
    }
    let why = if presented(req.headers()).is_some() {
        "the bearer token is wrong"
    } else {
        "this service needs a bearer token: send `Authorization: Bearer TOKEN`"
    };
    let wants_page = !path.starts_with("/api/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
    if wants_page {
        return dashboard::login_page(StatusCode::UNAUTHORIZED, why);
    }
    let mut resp = api::ApiError::new(StatusCode::UNAUTHORIZED, why)
        .field("Authorization")
        .into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer realm=\"vectro\""),
    );
    resp
}

/// The token a request carries: the bearer token, else the dashboard cookie.
fn presented(h: &HeaderMap) -> Option<&str> {
    if let Some(v) = h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        return Some(
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
                .unwrap_or("")
                .trim(),
        );
    }
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

/// Constant-time comparison of the presented token with the configured one (the time
/// depends on the lengths only).
pub(crate) fn token_eq(presented: &str, token: &str) -> bool {
    use subtle::ConstantTimeEq;
    presented.as_bytes().ct_eq(token.as_bytes()).into()
}

/// Reads a token from a file: its first line, surrounding whitespace removed.
///
/// # Errors
/// [`Error::Io`] reading it; [`Error::Config`] when it is empty or has control characters.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "reading", e))?;
    check_token(
        text.lines().next().unwrap_or(""),
        &path.display().to_string(),
    )
}

/// Checks a token: not empty, printable ASCII without spaces (what a header can carry).
///
/// # Errors
/// [`Error::Config`] naming `source` when it is not.
pub fn check_token(token: &str, source: &str) -> Result<String> {
    let t = token.trim();
    if t.is_empty() {
        return Err(Error::Config(format!("{source}: the token is empty")));
    }
    if !t.bytes().all(|b| b.is_ascii_graphic() && b != b';') {
        return Err(Error::Config(format!(
            "{source}: the token must be printable ASCII without spaces or ';'"
        )));
    }
    Ok(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_describes_every_route_and_nothing_else() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json parses");
        let paths = doc["paths"].as_object().expect("paths");
        let mut described = Vec::new();
        for (path, ops) in paths {
            for method in ops.as_object().expect("operations").keys() {
                described.push((method.to_uppercase(), path.clone()));
            }
        }
        described.sort();
        let mut routes: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        routes.sort();
        assert_eq!(described, routes);
    }

    #[test]
    fn token_comparison() {
        assert!(token_eq("abc", "abc"));
        assert!(!token_eq("abd", "abc"));
        assert!(!token_eq("ab", "abc"));
        assert!(!token_eq("", "abc"));
    }

    #[test]
    fn tokens_are_checked() {
        assert_eq!(check_token(" s3cret\n", "x").unwrap(), "s3cret");
        assert!(check_token("  ", "x").is_err());
        assert!(check_token("a b", "x").is_err());
        assert!(check_token("a;b", "x").is_err());
    }

    #[test]
    fn presented_token_from_header_or_cookie() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert(header::COOKIE, "a=1; vectro_token=xyz".parse().unwrap());
        assert_eq!(presented(&h), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(presented(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented(&h), Some(""));
    }
}
