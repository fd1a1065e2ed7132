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

/// Prints a serialisable value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    // writeln, not println: a closed pipe (`| head`) must be an error main can recognise,
    // not a panic.
    use anyhow::Context;
    use std::io::Write;
    let text = serde_json::to_string_pretty(v)?;
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
