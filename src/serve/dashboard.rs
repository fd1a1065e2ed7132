//! The dashboard: HTML pages with inline CSS and SVG, served with a Content-Security-Policy
//! that forbids every request the page could make to another origin (no CDN, no font, no
//! script from elsewhere).

use std::fmt::Write;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api::{describe, file_name, urlenc};
use super::catalog::{Catalog, Entry, VerifyState};
use super::{COOKIE, Shared, token_eq};

/// What a dashboard page may load: its own inline styles and data: images, nothing else.
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";
/// A report may also run its inline scripts (a canvas), still without any request.
const REPORT_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data: blob:; font-src data:; base-uri 'none'; frame-ancestors 'none'";

const STYLE: &str = r#"
:root{--fg:#1d2330;--mut:#5b6475;--bg:#f6f7f9;--card:#fff;--line:#e1e4ea;--ok:#1a7f37;--bad:#c62828;--wait:#9a6700;--acc:#2f5fd0}
*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
header{background:#1d2330;color:#fff;padding:14px 24px;display:flex;gap:16px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600;font-size:18px}header span{color:#b8c0d0;font-size:13px}
main{max-width:1150px;margin:20px auto;padding:0 20px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px 18px;margin-bottom:18px}
h1{font-size:20px;margin:0 0 12px}h2{font-size:16px;margin:0 0 10px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--mut)}td.n{text-align:right;font-variant-numeric:tabular-nums}
a{color:var(--acc)}code,pre{font:13px ui-monospace,SFMono-Regular,Menlo,monospace}pre{background:#f0f2f6;padding:10px;border-radius:6px;overflow:auto}
.b{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;color:#fff}
.ok{background:var(--ok)}.failed{background:var(--bad)}.pending{background:var(--wait)}
.mut{color:var(--mut)}.err{color:var(--bad)}.sum{display:flex;gap:28px;flex-wrap:wrap}.sum div b{display:block;font-size:22px}
form input{font:inherit;padding:6px 8px;border:1px solid var(--line);border-radius:6px;width:320px}form button{font:inherit;padding:6px 14px;margin-left:8px}
"#;

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn page(status: StatusCode, title: &str, body: &str, refresh: bool) -> Response {
    let meta = if refresh {
        r#"<meta http-equiv="refresh" content="2">"#
    } else {
        ""
    };
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">{meta}<title>{} · vectro serve</title><link rel=\"icon\" href=\"data:,\"><style>{STYLE}</style></head><body><header><a href=\"/\">vectro serve</a><span>{}</span></header><main>{body}</main></body></html>",
        esc(title),
        concat!("vectro ", env!("CARGO_PKG_VERSION")),
    );
    html_response(status, html, PAGE_CSP)
}

fn html_response(status: StatusCode, html: String, csp: &'static str) -> Response {
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn badge(s: &VerifyState) -> String {
    match s {
        VerifyState::Ok { .. } => r#"<span class="b ok">verified</span>"#.into(),
        VerifyState::Pending => r#"<span class="b pending">verifying…</span>"#.into(),
        VerifyState::Failed { .. } => r#"<span class="b failed">CORRUPT</span>"#.into(),
    }
}

fn human(n: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut u) = (n as f64, 0);
    while v >= 1024.0 && u + 1 < U.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", U[u])
    }
}

/// `/`: every container, its shape, size and verification, and a chart of bytes per vector.
pub(crate) async fn index(State(app): State<Shared>) -> Response {
    app.catalog.rescan().await;
    // Looking for reports beside the files is file-system work: off the async workers.
    let cat = app.catalog.clone();
    match tokio::task::spawn_blocking(move || index_page(&cat)).await {
        Ok(r) => r,
        Err(e) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "error",
            &format!(
                "<div class=\"card err\">internal error: {}</div>",
                esc(&e.to_string())
            ),
            false,
        ),
    }
}

fn index_page(catalog: &Catalog) -> Response {
    let entries = catalog.all();
    let mut rows = String::new();
    let (mut ok, mut bad, mut pending, mut total_rows, mut total_bytes) = (0, 0, 0, 0u64, 0u64);
    let mut bars: Vec<(String, f64, f64)> = Vec::new();
    for e in &entries {
        let v = e.verify_state();
        match v {
            VerifyState::Ok { .. } => ok += 1,
            VerifyState::Pending => pending += 1,
            VerifyState::Failed { .. } => bad += 1,
        }
        let name = esc(&e.name);
        let link = format!("/containers/{}", urlenc(&e.name));
        let report = match e.report() {
            Some(_) => format!(
                "<a href=\"/containers/{}/report\">report</a>",
                urlenc(&e.name)
            ),
            None => "<span class=\"mut\">—</span>".into(),
        };
        let why = match &v {
            VerifyState::Failed { reason, .. } => {
                format!("<div class=\"err\">{}</div>", esc(reason))
            }
            _ => String::new(),
        };
        match &e.container {
            Ok(c) => {
                let bpv = c.file_len() as f64 / c.rows().max(1) as f64;
                total_rows += c.rows();
                total_bytes += c.file_len();
                bars.push((e.name.clone(), bpv, c.dims() as f64 * 4.0));
                let _ = write!(
                    rows,
                    "<tr><td><a href=\"{link}\">{name}</a>{why}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{bpv:.1}</td><td>{report}</td></tr>",
                    badge(&v),
                    c.rows(),
                    c.dims(),
                    esc(&c.codec().name()),
                    c.id_kind().name(),
                    human(c.file_len()),
                );
            }
            Err(_) => {
                let _ = write!(
                    rows,
                    "<tr><td><a href=\"{link}\">{name}</a>{why}</td><td>{}</td><td colspan=\"6\" class=\"mut\">unreadable</td><td>{report}</td></tr>",
                    badge(&v)
                );
            }
        }
    }
    let mut body = String::new();
    let _ = write!(
        body,
        "<div class=\"card\"><h1>Containers in <code>{}</code></h1><div class=\"sum\"><div><b id=\"n-containers\">{}</b>containers</div><div><b>{ok}</b>verified</div><div><b>{pending}</b>verifying</div><div><b class=\"{}\">{bad}</b>corrupt</div><div><b>{total_rows}</b>rows</div><div><b>{}</b>on disk</div></div></div>",
        esc(&catalog.dir().display().to_string()),
        entries.len(),
        if bad > 0 { "err" } else { "" },
        human(total_bytes),
    );
    if entries.is_empty() {
        body.push_str("<div class=\"card mut\">No <code>.vectro</code> file in this directory yet; this page looks again on every load.</div>");
    } else {
        let _ = write!(
            body,
            "<div class=\"card\"><table id=\"containers\"><thead><tr><th>name</th><th>status</th><th>rows</th><th>dims</th><th>codec</th><th>ids</th><th>size</th><th>bytes/vector</th><th>report</th></tr></thead><tbody>{rows}</tbody></table></div>"
        );
        if !bars.is_empty() {
            let _ = write!(
                body,
                "<div class=\"card\"><h2>Bytes per vector (bar) against float32 (grey)</h2>{}</div>",
                bars_svg(&bars)
            );
        }
    }
    body.push_str("<p class=\"mut\">JSON: <a href=\"/api/containers\">/api/containers</a> · <a href=\"/openapi.json\">/openapi.json</a> · <a href=\"/metrics\">/metrics</a> · <a href=\"/healthz\">/healthz</a></p>");
    page(StatusCode::OK, "containers", &body, pending > 0)
}

/// Horizontal bars: each container's bytes per vector over its float32 size.
fn bars_svg(bars: &[(String, f64, f64)]) -> String {
    let max = bars.iter().map(|b| b.2.max(b.1)).fold(1.0, f64::max);
    let (w, lw, h) = (760.0, 180.0, 26.0);
    let height = h * bars.len() as f64 + 10.0;
    let mut s = format!(
        "<svg id=\"bpv-chart\" role=\"img\" aria-label=\"bytes per vector\" viewBox=\"0 0 {w} {height}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"12\" font-family=\"system-ui,sans-serif\">"
    );
    for (i, (name, bpv, f32b)) in bars.iter().enumerate() {
        let y = 5.0 + h * i as f64;
        let scale = (w - lw - 130.0) / max;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{:.1}\">{}</text><rect x=\"{lw}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"#dfe3ea\"/><rect class=\"bar\" x=\"{lw}\" y=\"{:.1}\" width=\"{:.1}\" height=\"16\" fill=\"#2f5fd0\"/><text x=\"{:.1}\" y=\"{:.1}\">{bpv:.1} B ({:.1}×)</text>",
            y + 13.0,
            esc(name),
            y,
            f32b * scale,
            y,
            (bpv * scale).max(1.0),
            lw + f32b.max(*bpv) * scale + 6.0,
            y + 13.0,
            f32b / bpv.max(1e-9),
        );
    }
    s.push_str("</svg>");
    s
}

/// A polyline of one row's values.
fn row_svg(v: &[f32]) -> String {
    let (w, h) = (760.0, 140.0);
    let n = v.len().max(2);
    let lo = v.iter().copied().fold(f32::INFINITY, f32::min).min(0.0);
    let hi = v.iter().copied().fold(f32::NEG_INFINITY, f32::max).max(0.0);
    let span = (hi - lo).max(1e-12);
    let y = |x: f32| h - 5.0 - (x - lo) as f64 / span as f64 * (h - 10.0);
    let mut pts = String::new();
    for (i, x) in v.iter().enumerate() {
        let _ = write!(pts, "{:.1},{:.1} ", i as f64 * w / (n - 1) as f64, y(*x));
    }
    format!(
        "<svg id=\"row0-chart\" viewBox=\"0 0 {w} {h}\" width=\"100%\" xmlns=\"http://www.w3.org/2000/svg\"><line x1=\"0\" x2=\"{w}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#c3c8d2\"/><polyline fill=\"none\" stroke=\"#2f5fd0\" stroke-width=\"1.2\" points=\"{pts}\"/></svg>",
        y(0.0),
        y(0.0)
    )
}

/// `/containers/{name}`: one container's details.
pub(crate) async fn container(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let entry = match app.catalog.get(&name) {
        Some(e) => e,
        None => {
            app.catalog.rescan().await;
            match app.catalog.get(&name) {
                Some(e) => e,
                None => {
                    return page(
                        StatusCode::NOT_FOUND,
                        "not found",
                        &format!(
                            "<div class=\"card\"><h1>No container named <code>{}</code></h1><a href=\"/\">all containers</a></div>",
                            esc(&name)
                        ),
                        false,
                    );
                }
            }
        }
    };
    let e2 = entry.clone();
    let (info, row0) = tokio::task::spawn_blocking(move || {
        let row0 = match (&e2.container, e2.verify_state()) {
            (Ok(c), VerifyState::Ok { .. }) if c.rows() > 0 => {
                let mut v = vec![0f32; c.dims()];
                c.get(0, &mut v).ok().map(|_| v)
            }
            _ => None,
        };
        (describe(&e2), row0)
    })
    .await
    .unwrap_or((serde_json::Value::Null, None));
    let body = container_body(&entry, &info, row0.as_deref());
    let pending = matches!(entry.verify_state(), VerifyState::Pending);
    page(StatusCode::OK, &entry.name, &body, pending)
}

fn container_body(e: &Entry, info: &serde_json::Value, row0: Option<&[f32]>) -> String {
    let v = e.verify_state();
    let u = urlenc(&e.name);
    let mut b = String::new();
    let _ = write!(
        b,
        "<div class=\"card\"><h1>{} {}</h1><p class=\"mut\"><code>{}</code> · <a href=\"/\">all containers</a>",
        esc(&e.name),
        badge(&v),
        esc(&file_name(e))
    );
    if e.report().is_some() {
        let _ = write!(b, " · <a href=\"/containers/{u}/report\">report</a>");
    }
    b.push_str("</p>");
    match &v {
        VerifyState::Ok { chunks, seconds } => {
            let _ = write!(
                b,
                "<p>Every checksum matches ({chunks} chunks, checked in {seconds:.2} s).</p>"
            );
        }
        VerifyState::Pending => b.push_str("<p>Checking every checksum; this page refreshes.</p>"),
        VerifyState::Failed { reason, problems } => {
            let _ = write!(
                b,
                "<p class=\"err\"><b>This container failed verification ({problems} problem(s)) and is not served.</b><br>{}</p>",
                esc(reason)
            );
        }
    }
    b.push_str("</div>");
    if let serde_json::Value::Object(m) = info {
        b.push_str("<div class=\"card\"><h2>Info</h2><table id=\"info\">");
        for key in [
            "rows",
            "dims",
            "codec",
            "ids",
            "first_row",
            "chunks",
            "chunk_rows",
            "file_bytes",
            "bytes_per_vector",
            "ratio_vs_float32",
        ] {
            if let Some(val) = m.get(key) {
                let text = match val {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) if n.is_f64() => {
                        format!("{:.2}", n.as_f64().unwrap_or(0.0))
                    }
                    other => other.to_string(),
                };
                let _ = write!(b, "<tr><th>{key}</th><td>{}</td></tr>", esc(&text));
            }
        }
        b.push_str("</table></div>");
        if let Some(serde_json::Value::Object(meta)) = m.get("metadata")
            && !meta.is_empty()
        {
            b.push_str("<div class=\"card\"><h2>Metadata</h2><table>");
            for (k, val) in meta {
                let text = val.as_str().map_or_else(|| val.to_string(), str::to_string);
                let _ = write!(
                    b,
                    "<tr><th>{}</th><td><code>{}</code></td></tr>",
                    esc(k),
                    esc(&text)
                );
            }
            b.push_str("</table></div>");
        }
    }
    if let Some(r) = row0 {
        let _ = write!(
            b,
            "<div class=\"card\"><h2>Row 0, as decoded ({} values)</h2>{}</div>",
            r.len(),
            row_svg(r)
        );
    }
    let _ = write!(
        b,
        "<div class=\"card\"><h2>API</h2><pre>curl -s http://HOST/api/containers/{u}\ncurl -s http://HOST/api/containers/{u}/rows/0\ncurl -s -X POST http://HOST/api/containers/{u}/rows -d '{{\"rows\": [0, 1, 2]}}'\ncurl -s -X POST http://HOST/api/containers/{u}/search -d '{{\"queries\": [[...]], \"k\": 10}}'</pre><p><a href=\"/api/containers/{u}\">this container as JSON</a></p></div>"
    );
    b
}

/// `/containers/{name}/report`: the report file beside the container, as it is.
pub(crate) async fn report(State(app): State<Shared>, Path(name): Path<String>) -> Response {
    let Some(entry) = app.catalog.get(&name) else {
        return page(
            StatusCode::NOT_FOUND,
            "not found",
            "<div class=\"card\">No such container.</div>",
            false,
        );
    };
    let read = tokio::task::spawn_blocking(move || {
        entry
            .report()
            .map(|p| std::fs::read(&p).map_err(|e| e.to_string()))
    })
    .await
    .ok()
    .flatten();
    match read {
        Some(Ok(bytes)) => html_response(
            StatusCode::OK,
            String::from_utf8_lossy(&bytes).into_owned(),
            REPORT_CSP,
        ),
        Some(Err(e)) => page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "report",
            &format!(
                "<div class=\"card err\">The report could not be read: {}</div>",
                esc(&e)
            ),
            false,
        ),
        None => page(
            StatusCode::NOT_FOUND,
            "report",
            &format!(
                "<div class=\"card\">No report beside this container: <code>vectro report</code> writes one; name it <code>{}.report.html</code>.</div>",
                esc(&name)
            ),
            false,
        ),
    }
}

/// The login form, with `why` above it.
pub(crate) fn login_page(status: StatusCode, why: &str) -> Response {
    let body = format!(
        "<div class=\"card\"><h1>Sign in</h1><p class=\"mut\">{}</p><form method=\"post\" action=\"/login\"><input type=\"password\" name=\"token\" autocomplete=\"current-password\" placeholder=\"token\" autofocus><button type=\"submit\">Sign in</button></form></div>",
        esc(why)
    );
    page(status, "sign in", &body, false)
}

pub(crate) async fn login_form(State(app): State<Shared>) -> Response {
    if app.opts.token.is_none() {
        return see_other("/", None);
    }
    login_page(StatusCode::OK, "This service needs its token.")
}

/// `POST /login` (form field `token`): sets the cookie the dashboard's pages carry.
pub(crate) async fn login(State(app): State<Shared>, body: Bytes) -> Response {
    let Some(token) = &app.opts.token else {
        return see_other("/", None);
    };
    let given = form_field(&body, "token").unwrap_or_default();
    if !token_eq(&given, token) {
        return login_page(StatusCode::UNAUTHORIZED, "That token is wrong.");
    }
    let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    see_other("/", Some(cookie))
}

fn see_other(to: &'static str, cookie: Option<String>) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// A field of an `application/x-www-form-urlencoded` body.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_html() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn decodes_form_fields() {
        assert_eq!(
            form_field(b"a=1&token=ab%2Bc+d", "token").as_deref(),
            Some("ab+c d")
        );
        assert_eq!(form_field(b"token=x%", "token").as_deref(), Some("x%"));
        assert_eq!(form_field(b"token=x%4", "token").as_deref(), Some("x%4"));
        assert_eq!(form_field(b"other=1", "token"), None);
    }
}
