//! One file per subcommand. Each returns the exit code on success.

pub mod bench;
pub mod compress;
pub mod decompress;
pub mod demo;
pub mod eval;
pub mod export;
pub mod generate;
pub mod get;
pub mod import_npz;
pub mod info;
pub mod merge;
pub mod report;
pub mod search;
pub mod serve;
pub mod shell;
pub mod train;
pub mod verify;

/// Formats a byte count for people.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Prints a serialisable value as pretty JSON on stdout, with a `"schema"` key in it (in
/// each object of an array); nothing with `-q`.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    // writeln, not println: a closed pipe (`| head`) must be an error main can recognise,
    // not a panic.
    use anyhow::Context;
    use std::io::Write;
    if crate::out::quiet() {
        return Ok(());
    }
    let v = match vocabulary(serde_json::to_value(v)?) {
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(with_schema).collect())
        }
        v => with_schema(v),
    };
    let text = serde_json::to_string_pretty(&v)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|_| out.flush())
        .context("writing to stdout")?;
    Ok(())
}

/// An error from writing the file at `path`: a bare I/O error is named as writing `path`,
/// in the one style of every I/O error; any other error is passed on as it is.
pub fn on_file(path: &std::path::Path) -> impl Fn(anyhow::Error) -> anyhow::Error + '_ {
    move |e| match e.downcast::<std::io::Error>() {
        Ok(io) => vectro::Error::io(path, "writing", io).into(),
        Err(e) => e,
    }
}

/// An error from streaming rows to stdout: an I/O error says where it happened (the library
/// only knows it as `<output>`); any other error is passed on as it is.
pub fn on_stdout(e: vectro::Error) -> anyhow::Error {
    if e.kind() == vectro::ErrorKind::Io {
        anyhow::Error::new(e).context("writing to stdout")
    } else {
        e.into()
    }
}

/// Keys that name one thing differently in the library's reports, and the one key
/// `--json` prints for it (docs/cli.md), at any depth.
const VOCABULARY: &[(&str, &str)] = &[
    ("path", "input"),
    ("file_bytes", "input_bytes"),
    ("original_bytes", "input_bytes"),
    ("compressed_bytes", "container_bytes"),
    ("parts", "inputs"),
];

/// Objects whose keys are data, not vocabulary (a container's metadata, a codec's facts,
/// auto's measurements, a report's figures): left as they are. docs/cli.md lists them.
pub const OPAQUE: &[&str] = &[
    "metadata",
    "codec_facts",
    "auto",
    "cosine_hist",
    "error_norm_hist",
    "movement",
    "pca",
    "per_dim",
    "peers",
];

/// `v` with every key of [`VOCABULARY`] renamed, at any depth but inside [`OPAQUE`].
fn vocabulary(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(vocabulary).collect())
        }
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    if OPAQUE.contains(&k.as_str()) {
                        return (k, v);
                    }
                    let k = VOCABULARY
                        .iter()
                        .find(|(o, _)| *o == k)
                        .map_or(k, |(_, n)| n.to_string());
                    (k, vocabulary(v))
                })
                .collect(),
        ),
        v => v,
    }
}

/// `v` with `"schema": SCHEMA` in it, if it is an object.
pub fn with_schema(mut v: serde_json::Value) -> serde_json::Value {
    if let serde_json::Value::Object(m) = &mut v {
        m.insert("schema".into(), crate::out::SCHEMA.into());
    }
    v
}

/// Renames the keys of a JSON object (the top level only): `(old, new)` pairs, so that one
/// thing has one key in every command's `--json` (docs/cli.md).
pub fn rename_keys(mut v: serde_json::Value, pairs: &[(&str, &str)]) -> serde_json::Value {
    if let serde_json::Value::Object(m) = &mut v {
        let old = std::mem::take(m);
        for (k, val) in old {
            let k = pairs
                .iter()
                .find(|(o, _)| *o == k)
                .map_or(k, |(_, n)| n.to_string());
            m.insert(k, val);
        }
    }
    v
}
