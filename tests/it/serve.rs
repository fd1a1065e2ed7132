//! `vectro serve DIR`: the real binary on an ephemeral loopback port, driven over HTTP by a
//! real client (ureq): every endpoint, every bad request with its status and field, auth on
//! and off, a corrupt container, SIGTERM with a request in flight, and a bounded load test
//! that records latency and throughput (and asserts only that nothing failed).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

const DIMS: u64 = 32;
const ROWS: u64 = 3000;

/// A running `vectro serve`, killed when dropped.
struct Server {
    child: Option<Child>,
    base: String,
    token: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The answer: status, and the body (JSON when it parses, else a string).
struct Answer {
    status: u16,
    body: Value,
    text: String,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
    let mut r = r.expect("the request reaches the server");
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let text = r
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
    Answer {
        status,
        body,
        text,
        headers,
    }
}

impl Server {
    /// Starts `vectro serve dir --port 0 extra…` with `env`, and waits for its address.
    fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = vectro_std();
        cmd.arg("serve")
            .arg(dir)
            .args(["--port", "0"])
            .args(extra)
            .env_remove("VECTRO_SERVE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("vectro serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split('/').next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let token = env
            .iter()
            .find(|(k, _)| *k == "VECTRO_SERVE_TOKEN")
            .map(|(_, v)| v.to_string());
        Server {
            child: Some(child),
            base: format!("http://{addr}"),
            token,
        }
    }

    fn get(&self, path: &str) -> Answer {
        let mut req = agent().get(format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        answer(req.call())
    }

    fn post(&self, path: &str, body: &str) -> Answer {
        let mut req = agent()
            .post(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        answer(req.send(body))
    }

    /// Waits until no container is being verified.
    fn wait_verified(&self) -> Value {
        let t = Instant::now();
        loop {
            let a = self.get("/api/containers");
            assert_eq!(a.status, 200, "{}", a.text);
            let pending = a.body["containers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["verify"]["state"] == "pending");
            if !pending {
                return a.body;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "verification never ended"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and returns the exit code.
    fn terminate(mut self) -> (i32, String) {
        let child = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

/// A directory with `emb` (int8, 3000 × 32, chunks of 500), `bin` (binary, same rows),
/// `named` (int8 with string ids), `bad` (int8 with a flipped payload byte), an
/// unreadable `junk.vectro`, a report beside `emb`, and a non-container file.
fn served_dir(dir: &Path) -> PathBuf {
    let npy = make_npy(dir, "x.npy", ROWS, DIMS, 5);
    let d = dir.join("served");
    std::fs::create_dir(&d).unwrap();
    let c = |name: &str, extra: &[&str]| {
        ok(vectro_std()
            .args([
                "compress",
                "-q",
                "--no-fsync",
                "--chunk-rows",
                "500",
                "--in",
            ])
            .arg(&npy)
            .arg("--out")
            .arg(d.join(name))
            .args(extra));
    };
    c("emb.vectro", &[]);
    c("bin.vectro", &["--codec", "binary"]);
    let ids = dir.join("ids.txt");
    let text: String = (0..ROWS).map(|i| format!("doc/{i} é\n")).collect();
    std::fs::write(&ids, text).unwrap();
    c("named.vectro", &["--ids", ids.to_str().unwrap()]);
    let bad = d.join("bad.vectro");
    std::fs::copy(d.join("emb.vectro"), &bad).unwrap();
    let mut bytes = std::fs::read(&bad).unwrap();
    // A byte inside chunk 3's payload (chunks of 500 rows × ~36 bytes).
    let at = bytes.len() / 2;
    bytes[at] ^= 0x5a;
    std::fs::write(&bad, bytes).unwrap();
    std::fs::write(d.join("junk.vectro"), b"not a container at all").unwrap();
    std::fs::write(
        d.join("emb.report.html"),
        "<!doctype html><html><body><h1>Report of emb</h1></body></html>",
    )
    .unwrap();
    std::fs::write(d.join("notes.txt"), "ignored").unwrap();
    d
}

/// Row `r` of `emb` as the library decodes it.
fn expected_row(dir: &Path, r: u64) -> Vec<f32> {
    let c = vectro::Container::open(dir.join("emb.vectro")).unwrap();
    let mut v = vec![0f32; c.dims()];
    c.get(r, &mut v).unwrap();
    v
}

fn vector(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn assert_error(a: &Answer, status: u16, field: &str, needle: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.body["status"], status, "{}", a.text);
    assert_eq!(a.body["field"], field, "{}", a.text);
    let msg = a.body["error"].as_str().unwrap_or("");
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
}

#[test]
fn every_endpoint_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = served_dir(tmp.path());
    let s = Server::start(&dir, &[], &[]);
    let list = s.wait_verified();
    let by_name = |n: &str| {
        list["containers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap_or_else(|| panic!("{n} is not listed"))
            .clone()
    };
    assert_eq!(list["containers"].as_array().unwrap().len(), 5);
    let emb = by_name("emb");
    assert_eq!(emb["rows"], ROWS);
    assert_eq!(emb["dims"], DIMS);
    assert_eq!(emb["codec"], "int8");
    assert_eq!(emb["verify"]["state"], "ok");
    assert_eq!(emb["report"], "/containers/emb/report");
    assert_eq!(by_name("bin")["report"], Value::Null);
    assert_eq!(by_name("named")["ids"], "string");
    assert_eq!(by_name("bad")["verify"]["state"], "failed");
    let reason = by_name("bad")["verify"]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("checksum"), "{reason}");
    assert_eq!(by_name("junk")["verify"]["state"], "failed");

    // health, info, openapi, metrics
    let h = s.get("/healthz");
    assert_eq!((h.status, h.body["status"].clone()), (200, json!("ok")));
    let info = s.get("/api/containers/emb");
    assert_eq!(info.status, 200);
    assert_eq!(info.body["chunks"], 6);
    let api = s.get("/openapi.json");
    assert_eq!(api.status, 200);
    assert_eq!(api.body["openapi"], "3.1.0");

    // Every route of the description answers (none falls through to "no such route").
    for (path, ops) in api.body["paths"].as_object().unwrap() {
        let p = path
            .replace("{name}", "emb")
            .replace("{row}", "1")
            .replace("{id}", "1");
        for method in ops.as_object().unwrap().keys() {
            let a = match method.as_str() {
                "get" => s.get(&p),
                _ => s.post(&p, "{}"),
            };
            assert_ne!(a.body["field"], "path", "{method} {p}: {}", a.text);
            assert_ne!(a.status, 405, "{method} {p}");
        }
    }

    // One row by number, by id; a batch by number and by id, in the order given.
    let want = expected_row(&dir, 1234);
    let a = s.get("/api/containers/emb/rows/1234");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert_eq!(a.body["rows"][0]["row"], 1234);
    assert_eq!(a.body["rows"][0]["id"], 1234);
    assert_bits_eq(&vector(&a.body["rows"][0]["vector"]), &want, "GET row");
    let a = s.get("/api/containers/emb/ids/1234");
    assert_eq!(a.status, 200);
    assert_bits_eq(&vector(&a.body["rows"][0]["vector"]), &want, "GET id");
    let a = s.post(
        "/api/containers/emb/rows",
        r#"{"rows": [2999, 0, 1234, 0]}"#,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    let rows: Vec<u64> = a.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [2999, 0, 1234, 0]);
    assert_bits_eq(&vector(&a.body["rows"][2]["vector"]), &want, "batch");
    let a = s.post("/api/containers/emb/rows", r#"{"ids": [7, 1234]}"#);
    assert_eq!(a.status, 200);
    assert_bits_eq(&vector(&a.body["rows"][1]["vector"]), &want, "batch ids");
    // String ids, with a slash, a space and a non-ASCII letter (percent-encoded in a path).
    let a = s.get("/api/containers/named/ids/doc%2F1234%20%C3%A9");
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["rows"][0]["row"], 1234);
    assert_eq!(a.body["rows"][0]["id"], "doc/1234 é");
    let a = s.post(
        "/api/containers/named/rows",
        r#"{"ids": ["doc/5 é", "doc/6 é"]}"#,
    );
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["rows"][1]["row"], 6);

    // The same rows as .npy: asked by ?format=npy or the Accept header, the bytes numpy
    // would write for the decoded rows, in the order asked.
    let npy_of = |rows: &[u64]| {
        let mut want = vectro::npy::write_header(rows.len() as u64, DIMS);
        for &r in rows {
            for x in expected_row(&dir, r) {
                want.extend_from_slice(&x.to_le_bytes());
            }
        }
        want
    };
    let bytes = |r: Result<ureq::http::Response<ureq::Body>, ureq::Error>| {
        let mut r = r.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            r.headers().get("content-type").unwrap().to_str().unwrap(),
            "application/x-npy"
        );
        r.body_mut().read_to_vec().unwrap()
    };
    let got = bytes(
        agent()
            .get(format!(
                "{}/api/containers/emb/rows/1234?format=npy",
                s.base
            ))
            .call(),
    );
    assert_eq!(got, npy_of(&[1234]));
    let got = bytes(
        agent()
            .get(format!(
                "{}/api/containers/named/ids/doc%2F1234%20%C3%A9",
                s.base
            ))
            .header("Accept", "application/x-npy")
            .call(),
    );
    assert_eq!(got, npy_of(&[1234]));
    let got = bytes(
        agent()
            .post(format!("{}/api/containers/emb/rows", s.base))
            .header("Accept", "application/octet-stream")
            .send(r#"{"rows": [2999, 0, 1234, 0]}"#),
    );
    assert_eq!(got, npy_of(&[2999, 0, 1234, 0]));
    let got = bytes(
        agent()
            .post(format!("{}/api/containers/named/rows?format=npy", s.base))
            .send(r#"{"ids": ["doc/7 é", "doc/1234 é"]}"#),
    );
    assert_eq!(got, npy_of(&[7, 1234]));
    // JSON unless npy is asked for alone.
    let a = answer(
        agent()
            .get(format!("{}/api/containers/emb/rows/3", s.base))
            .header("Accept", "application/json, application/x-npy")
            .call(),
    );
    assert_eq!(a.header("content-type"), Some("application/json"));
    let a = s.get("/api/containers/emb/rows/3?format=json");
    assert_bits_eq(
        &vector(&a.body["rows"][0]["vector"]),
        &expected_row(&dir, 3),
        "format=json",
    );

    // Search: a row finds itself first; ids are the container's own.
    let q = json!({"queries": [want.clone(), expected_row(&dir, 7)], "k": 5}).to_string();
    let a = s.post("/api/containers/emb/search", &q);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["results"].as_array().unwrap().len(), 2);
    assert_eq!(a.body["results"][0]["rows"][0], 1234);
    assert_eq!(a.body["results"][1]["rows"][0], 7);
    assert_eq!(a.body["results"][0]["scores"].as_array().unwrap().len(), 5);
    assert_eq!(a.body["score"], "cos");
    // The same as the library's search on the same container.
    let c = vectro::Container::open(dir.join("emb.vectro")).unwrap();
    let lib = vectro::search::search(
        &c,
        &want,
        &vectro::search::SearchOptions {
            k: 5,
            ..Default::default()
        },
        &Default::default(),
    )
    .unwrap();
    let got: Vec<u64> = a.body["results"][0]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(got, lib.query(0).0);
    let q = json!({"queries": [want.clone()], "k": 3, "hamming": true, "rescore": 50,
                   "rescore_with": "emb", "metric": "l2", "filter_rows": [1234, 5, 6, 7]})
    .to_string();
    let a = s.post("/api/containers/bin/search", &q);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["results"][0]["rows"][0], 1234);
    assert_eq!(a.body["score"], "l2");
    let q = json!({"queries": [want.clone()], "k": 2}).to_string();
    let a = s.post("/api/containers/named/search", &q);
    assert_eq!(a.body["results"][0]["ids"][0], "doc/1234 é", "{}", a.text);
    // A filter by ids: only those rows are candidates, reported with their ids, as a
    // filter of the same rows by number gives.
    let q = json!({"queries": [want.clone()], "k": 3,
                   "filter_ids": ["doc/17 é", "doc/5 é", "doc/2000 é", "doc/5 é"]})
    .to_string();
    let a = s.post("/api/containers/named/search", &q);
    assert_eq!(a.status, 200, "{}", a.text);
    let by_ids = a.body["results"][0].clone();
    let mut got: Vec<String> = by_ids["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, ["doc/17 é", "doc/2000 é", "doc/5 é"]);
    let q = json!({"queries": [want.clone()], "k": 3, "filter_rows": [17, 5, 2000]}).to_string();
    let a = s.post("/api/containers/named/search", &q);
    assert_eq!(a.body["results"][0], by_ids);
    // Without stored ids, ids are the rows' global numbers.
    let q = json!({"queries": [want.clone()], "k": 2, "filter_ids": [9, 1234, 8]}).to_string();
    let a = s.post("/api/containers/emb/search", &q);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["results"][0]["rows"][0], 1234);
    assert_eq!(a.body["results"][0]["ids"][0], 1234);

    // Dashboard pages: the list, a container, its report; no external reference.
    for (path, needle) in [
        ("/", "bpv-chart"),
        ("/containers/emb", "row0-chart"),
        ("/containers/bad", "CORRUPT"),
        ("/containers/emb/report", "Report of emb"),
    ] {
        let a = s.get(path);
        assert_eq!(a.status, 200, "{path}");
        assert!(a.text.contains(needle), "{path} lacks {needle}");
        assert!(
            a.header("content-security-policy")
                .unwrap()
                .contains("default-src 'none'")
        );
        for bad in ["http://", "https://", "//cdn"] {
            let refs = a.text.matches(bad).count();
            let allowed = a.text.matches("http://www.w3.org/2000/svg").count()
                + a.text.matches("http://HOST").count();
            assert_eq!(
                refs,
                if bad == "http://" { allowed } else { 0 },
                "{path}: {bad}"
            );
        }
    }
    let a = s.get("/containers/bin/report");
    assert_eq!(a.status, 404);
    assert_eq!(s.get("/login").status, 303);

    // A new file is found without a restart; a removed one is forgotten.
    std::fs::copy(dir.join("emb.vectro"), dir.join("late.vectro")).unwrap();
    let a = s.post("/api/rescan", "");
    assert_eq!(a.status, 200);
    assert!(a.text.contains("\"late\""));
    std::fs::remove_file(dir.join("late.vectro")).unwrap();
    assert!(!s.get("/api/containers").text.contains("\"late\""));

    // The metrics count what was asked, by route template and status.
    let m = s.get("/metrics");
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain"));
    assert!(m.text.contains(
        "vectro_http_requests_total{route=\"/api/containers/{name}/rows/{row}\",method=\"GET\",status=\"200\"}"
    ), "{}", m.text);
    assert!(m.text.contains("vectro_http_request_duration_seconds_bucket{route=\"/api/containers/{name}/search\",le=\"+Inf\"}"));
    assert!(m.text.contains("vectro_containers{state=\"failed\"} 2"));
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
}

#[test]
fn every_bad_request_names_its_field() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = served_dir(tmp.path());
    let s = Server::start(
        &dir,
        &[
            "--max-batch",
            "50",
            "--max-k",
            "100",
            "--max-body",
            "400000",
        ],
        &[],
    );
    s.wait_verified();
    let q = |v: Value| v.to_string();
    let row: Vec<f32> = vec![0.5; DIMS as usize];
    let cases: Vec<(&str, &str, String, u16, &str, &str)> = vec![
        (
            "GET",
            "/api/containers/nope/rows/1",
            String::new(),
            404,
            "name",
            "no container named 'nope'",
        ),
        (
            "GET",
            "/api/containers/nope",
            String::new(),
            404,
            "name",
            "no container",
        ),
        (
            "GET",
            "/api/containers/emb/rows/x1",
            String::new(),
            400,
            "row",
            "not a row number",
        ),
        (
            "GET",
            "/api/containers/emb/rows/3000",
            String::new(),
            404,
            "row",
            "out of range",
        ),
        (
            "GET",
            "/api/containers/emb/ids/abc",
            String::new(),
            400,
            "id",
            "not an unsigned integer",
        ),
        (
            "GET",
            "/api/containers/emb/ids/99999",
            String::new(),
            404,
            "id",
            "no row has the id",
        ),
        (
            "GET",
            "/api/containers/named/ids/doc-1",
            String::new(),
            404,
            "id",
            "no row has the id",
        ),
        (
            "GET",
            "/api/containers/bad/rows/1",
            String::new(),
            409,
            "name",
            "failed verification",
        ),
        (
            "GET",
            "/api/containers/junk/rows/1",
            String::new(),
            409,
            "name",
            "cannot be read",
        ),
        (
            "POST",
            "/api/containers/bad/search",
            q(json!({"queries": [row]})),
            409,
            "name",
            "not served",
        ),
        (
            "GET",
            "/no/such/route",
            String::new(),
            404,
            "path",
            "no such route",
        ),
        (
            "DELETE",
            "/api/containers/emb",
            String::new(),
            405,
            "method",
            "does not take",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            "{\"rows\": [1,".into(),
            400,
            "body",
            "not valid JSON",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            "[1, 2]".into(),
            400,
            "body",
            "JSON object",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({})),
            400,
            "rows",
            "exactly one of",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"rows": [1], "ids": [1]})),
            400,
            "rows",
            "exactly one of",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"rows": [1], "extra": 1})),
            400,
            "extra",
            "unknown field",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"rows": "1"})),
            400,
            "rows",
            "must be an array",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"rows": []})),
            400,
            "rows",
            "empty",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"rows": [1, -2]})),
            400,
            "rows[1]",
            "not a non-negative integer",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"rows": [1, 3000]})),
            404,
            "rows[1]",
            "out of range",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"rows": (0..51).collect::<Vec<_>>()})),
            400,
            "rows",
            "limit is 50",
        ),
        (
            "POST",
            "/api/containers/emb/rows",
            q(json!({"ids": [1, 99999]})),
            404,
            "ids[1]",
            "not in the container",
        ),
        (
            "POST",
            "/api/containers/named/rows",
            q(json!({"ids": [1]})),
            400,
            "ids[0]",
            "string ids",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"k": 3})),
            400,
            "queries",
            "missing",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [[1.0, 2.0]]})),
            400,
            "queries[0]",
            "32-dimensional",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row, [0.5]]})),
            400,
            "queries[1]",
            "1 values",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [1.0]})),
            400,
            "queries[0]",
            "must be an array",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            format!("{{\"queries\": [[{}\"x\"]]}}", "0.1,".repeat(31)),
            400,
            "queries[0][31]",
            "not a finite",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            format!("{{\"queries\": [[{}1e39]]}}", "0.1,".repeat(31)),
            400,
            "queries[0][31]",
            "not a finite",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "k": 101})),
            400,
            "k",
            "between 1 and 100",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "k": 0})),
            400,
            "k",
            "between 1 and 100",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "k": "5"})),
            400,
            "k",
            "not a non-negative",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "metric": "dot"})),
            400,
            "metric",
            "unknown metric",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "hamming": 1})),
            400,
            "hamming",
            "true or false",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "rescore": 20000})),
            400,
            "rescore",
            "limit",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "rescore_with": "nope"})),
            404,
            "rescore_with",
            "no container",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "rescore_with": "bad"})),
            409,
            "rescore_with",
            "not served",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "filter_rows": [3000]})),
            404,
            "filter_rows[0]",
            "out of range",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "filter_ids": [5, 99999]})),
            404,
            "filter_ids[1]",
            "not in the container",
        ),
        (
            "POST",
            "/api/containers/named/search",
            q(json!({"queries": [row], "filter_ids": ["doc/5 é", 7]})),
            400,
            "filter_ids[1]",
            "string ids",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "filter_ids": [5], "filter_rows": [5]})),
            400,
            "filter_ids",
            "at most one",
        ),
        (
            "GET",
            "/api/containers/emb/rows/1?format=csv",
            String::new(),
            400,
            "format",
            "use json or npy",
        ),
        (
            "GET",
            "/api/containers/emb/ids/1?fmt=npy",
            String::new(),
            400,
            "fmt",
            "unknown query parameter",
        ),
        (
            "POST",
            "/api/containers/emb/rows?format=xml",
            q(json!({"rows": [1]})),
            400,
            "format",
            "use json or npy",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": [row], "top_k": 3})),
            400,
            "top_k",
            "unknown field",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            q(json!({"queries": vec![row.clone(); 1001]})),
            400,
            "queries",
            "limit is 1000",
        ),
        (
            "POST",
            "/api/containers/emb/search",
            "x".repeat(400_001),
            413,
            "body",
            "limit of 400000 bytes",
        ),
    ];
    for (method, path, body, status, field, needle) in &cases {
        let a = match *method {
            "GET" => s.get(path),
            "POST" => s.post(path, body),
            _ => answer(agent().delete(format!("{}{path}", s.base)).call()),
        };
        assert_eq!(
            a.status,
            *status,
            "{method} {path} {}: {}",
            &body[..body.len().min(80)],
            a.text
        );
        assert_error(&a, *status, field, needle);
        assert_eq!(a.header("content-type"), Some("application/json"), "{path}");
    }
    // Rescoring with a container of other rows.
    let other = tmp.path().join("o.npy");
    make_npy(tmp.path(), "o.npy", 10, DIMS, 1);
    ok(vectro_std()
        .args(["compress", "-q", "--no-fsync", "--in"])
        .arg(&other)
        .arg("--out")
        .arg(dir.join("small.vectro")));
    s.post("/api/rescan", "");
    s.wait_verified();
    let a = s.post(
        "/api/containers/emb/search",
        &q(json!({"queries": [row], "rescore_with": "small"})),
    );
    assert_error(&a, 400, "rescore_with", "rescoring needs the same rows");
    // After all of that the service still answers.
    assert_eq!(s.get("/api/containers/emb/rows/1").status, 200);
}

#[test]
fn a_token_guards_every_route() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = served_dir(tmp.path());
    let token = "s3cr3t-t0ken";
    let tf = tmp.path().join("token");
    std::fs::write(&tf, format!("{token}\n")).unwrap();
    for how in ["file", "env"] {
        let s = match how {
            "file" => {
                let mut s = Server::start(&dir, &["--token-file", tf.to_str().unwrap()], &[]);
                s.token = Some(token.into());
                s
            }
            _ => Server::start(&dir, &[], &[("VECTRO_SERVE_TOKEN", token)]),
        };
        s.wait_verified();
        let base = s.base.clone();
        let api: Value = serde_json::from_str(OPENAPI).unwrap();
        for (path, ops) in api["paths"].as_object().unwrap() {
            if path == "/login" {
                continue;
            }
            let p = path
                .replace("{name}", "emb")
                .replace("{row}", "1")
                .replace("{id}", "1");
            for method in ops.as_object().unwrap().keys() {
                for auth in [
                    None,
                    Some("Bearer wrong"),
                    Some("Bearer s3cr3t-t0ke"),
                    Some("Basic s3cr3t-t0ken"),
                ] {
                    let url = format!("{base}{p}");
                    let a = match (method.as_str(), auth) {
                        ("get", None) => answer(agent().get(&url).call()),
                        ("get", Some(h)) => {
                            answer(agent().get(&url).header("Authorization", h).call())
                        }
                        (_, None) => answer(agent().post(&url).send("{}")),
                        (_, Some(h)) => {
                            answer(agent().post(&url).header("Authorization", h).send("{}"))
                        }
                    };
                    assert_eq!(
                        a.status, 401,
                        "{how}: {method} {p} with {auth:?}: {}",
                        a.text
                    );
                    assert_eq!(
                        a.header("www-authenticate"),
                        Some("Bearer realm=\"vectro\"")
                    );
                    assert_eq!(a.body["field"], "Authorization");
                    assert!(!a.text.contains("int8"), "nothing leaks: {}", a.text);
                }
            }
        }
        // The unknown routes too.
        assert_eq!(
            answer(agent().get(format!("{base}/nope")).call()).status,
            401
        );
        // With the token, everything works.
        assert_eq!(s.get("/api/containers/emb/rows/1").status, 200);
        assert_eq!(s.get("/metrics").status, 200);
        // A browser gets the sign-in form, then a cookie that opens the pages.
        let page = answer(
            agent()
                .get(format!("{base}/"))
                .header("Accept", "text/html")
                .call(),
        );
        assert_eq!(page.status, 401);
        assert!(
            page.text
                .contains("<form method=\"post\" action=\"/login\"")
        );
        let wrong = answer(
            agent()
                .post(format!("{base}/login"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send("token=nope"),
        );
        assert_eq!(wrong.status, 401);
        assert!(wrong.header("set-cookie").is_none());
        let login = answer(
            agent()
                .post(format!("{base}/login"))
                .header("Content-Type", "application/x-www-form-urlencoded")
                .send(format!("token={token}")),
        );
        assert_eq!(login.status, 303);
        let cookie = login.header("set-cookie").unwrap().to_string();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
        let kv = cookie.split(';').next().unwrap();
        let page = answer(agent().get(format!("{base}/")).header("Cookie", kv).call());
        assert_eq!(page.status, 200);
        assert!(page.text.contains("emb"));
        let (code, _) = s.terminate();
        assert_eq!(code, 0);
    }
}

const OPENAPI: &str = include_str!("../../src/serve/openapi.json");

#[test]
fn bad_setups_exit_with_the_documented_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    // A missing directory, a file instead of one: I/O (4), naming it.
    let o = run(&[
        "serve",
        tmp.path().join("missing").to_str().unwrap(),
        "--port",
        "0",
    ]);
    assert_fails(&o, 4, &["missing", "opening the directory"]);
    let f = tmp.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let o = run(&["serve", f.to_str().unwrap(), "--port", "0"]);
    assert_fails(&o, 4, &["not a directory"]);
    // The port in use: I/O (4).
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let o = run(&["serve", empty.to_str().unwrap(), "--port", &port]);
    assert_fails(&o, 4, &["listening on", &port]);
    // A token on the command line does not exist; an empty token file, or both sources, is usage.
    let o = run(&["serve", empty.to_str().unwrap(), "--token", "x"]);
    assert_eq!(o.status.code(), Some(2));
    let tf = tmp.path().join("t");
    std::fs::write(&tf, "\n").unwrap();
    let o = run(&[
        "serve",
        empty.to_str().unwrap(),
        "--port",
        "0",
        "--token-file",
        tf.to_str().unwrap(),
    ]);
    assert_fails(&o, 2, &["token is empty"]);
    std::fs::write(&tf, "abc\n").unwrap();
    let o = vectro_std()
        .args([
            "serve",
            empty.to_str().unwrap(),
            "--port",
            "0",
            "--token-file",
            tf.to_str().unwrap(),
        ])
        .env("VECTRO_SERVE_TOKEN", "abc")
        .output()
        .unwrap();
    assert_fails(&o, 2, &["both --token-file and VECTRO_SERVE_TOKEN"]);
    // --port and --bind together: usage.
    let o = run(&[
        "serve",
        empty.to_str().unwrap(),
        "--port",
        "1",
        "--bind",
        "127.0.0.1:0",
    ]);
    assert_eq!(o.status.code(), Some(2));
    // Loopback is the default: the address printed is 127.0.0.1.
    let s = Server::start(&empty, &[], &[]);
    assert!(s.base.starts_with("http://127.0.0.1:"), "{}", s.base);
    let a = s.get("/api/containers");
    assert_eq!(a.body, json!({"containers": []}));
}

#[test]
fn sigterm_lets_the_request_in_flight_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    // Big enough that a search of many queries takes a moment on one thread.
    let npy = make_npy(tmp.path(), "x.npy", 60_000, 64, 2);
    ok(vectro_std()
        .args(["compress", "-q", "--no-fsync", "--codec", "f16", "--in"])
        .arg(&npy)
        .arg("--out")
        .arg(dir.join("big.vectro")));
    let s = Server::start(&dir, &["--threads", "1"], &[]);
    s.wait_verified();
    let queries: Vec<Vec<f32>> = (0..1000)
        .map(|i| vec![((i % 7) as f32) - 3.0; 64])
        .collect();
    let body = json!({"queries": queries, "k": 10}).to_string();
    let url = format!("{}/api/containers/big/search", s.base);
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        tx.send(()).unwrap();
        answer(agent().post(&url).send(&body))
    });
    rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let base = s.base.clone();
    let (code, err) = s.terminate();
    let a = t.join().unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopped"), "{err}");
    // The search in flight was answered in full, not cut off.
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["results"].as_array().unwrap().len(), 1000);
    // And nothing listens any more.
    assert!(agent().get(format!("{base}/healthz")).call().is_err());
}

/// p50 and p99 of `lat`, in milliseconds.
fn percentiles(lat: &mut [f64]) -> (f64, f64) {
    lat.sort_by(f64::total_cmp);
    let at = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    (at(0.50) * 1e3, at(0.99) * 1e3)
}

/// A bounded load test on loopback: a fixed number of row reads and searches from 4
/// client threads. Prints p50/p99 and throughput; asserts only that every answer was a
/// 200 with the rows asked for (no wall-clock assertion).
#[test]
fn bounded_load_nothing_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = served_dir(tmp.path());
    let s = Server::start(&dir, &[], &[]);
    s.wait_verified();
    let base = s.base.clone();
    const THREADS: u64 = 4;
    const ROW_READS: u64 = 400;
    const SEARCHES: u64 = 40;
    for (what, n) in [("row reads", ROW_READS), ("searches", SEARCHES)] {
        let t0 = Instant::now();
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let base = base.clone();
                std::thread::spawn(move || {
                    let agent = agent();
                    let mut lat = Vec::new();
                    for i in 0..n / THREADS {
                        let r = (i * 7919 + t * 104_729) % ROWS;
                        let t = Instant::now();
                        let a = if what == "row reads" {
                            answer(
                                agent
                                    .get(format!("{base}/api/containers/emb/rows/{r}"))
                                    .call(),
                            )
                        } else {
                            let q = vec![(r as f32).sin(); DIMS as usize];
                            let body = json!({"queries": [q], "k": 10}).to_string();
                            answer(
                                agent
                                    .post(format!("{base}/api/containers/emb/search"))
                                    .send(&body),
                            )
                        };
                        lat.push(t.elapsed().as_secs_f64());
                        assert_eq!(a.status, 200, "{}", a.text);
                        if what == "row reads" {
                            assert_eq!(a.body["rows"][0]["row"], r);
                        } else {
                            assert_eq!(a.body["results"][0]["rows"].as_array().unwrap().len(), 10);
                        }
                    }
                    lat
                })
            })
            .collect();
        let mut lat: Vec<f64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(lat.len() as u64, n);
        let (p50, p99) = percentiles(&mut lat);
        eprintln!(
            "serve load: {n} {what} from {THREADS} threads: p50 {p50:.2} ms, p99 {p99:.2} ms, {:.0}/s",
            n as f64 / secs
        );
    }
    let m = s.get("/metrics").text;
    assert!(!m.contains("status=\"5"), "no 5xx answer: {m}");
}
