use vectro::format::VerifyReport;
use vectro::format::verify::verify_with;

use super::{human_bytes, print_json};
use crate::cli::VerifyArgs;
use crate::exit_codes;

/// Each file in turn: exit 0 when every check of every file passes, 3 (bad input) when
/// anything is damaged. A file that cannot be read is reported and the others are still
/// checked; the exit code is then the highest of the files' codes. With `--json`, one file
/// prints its report, several print an array of them (an unreadable one as
/// `{"input", "error": {"message", "kind", "exit_code"}}`).
pub fn run(a: VerifyArgs) -> anyhow::Result<i32> {
    if let [file] = &a.files[..] {
        let start = std::time::Instant::now();
        let r = verify_with(file, &bar(&a))?;
        return report(&a, &r, Some(start.elapsed().as_secs_f64()));
    }
    let mut worst = exit_codes::OK;
    let mut all = Vec::new();
    for file in &a.files {
        let start = std::time::Instant::now();
        let code = match verify_with(file, &bar(&a)) {
            Ok(r) => {
                let code = report(&a, &r, None)?;
                if a.json {
                    all.push(json(&r, start.elapsed().as_secs_f64())?);
                }
                code
            }
            Err(e) => {
                let e = anyhow::Error::new(e);
                let code = exit_codes::for_error(&e);
                let msg = crate::escape_controls(&e.to_string());
                if a.json {
                    all.push(serde_json::json!({
                        "input": file,
                        "error": {
                            "message": msg,
                            "kind": exit_codes::kind_name(code),
                            "exit_code": code,
                        },
                    }));
                } else {
                    errln!("vectro: error: {msg}");
                }
                code
            }
        };
        worst = worst.max(code);
    }
    if a.json {
        print_json(&all)?;
    }
    Ok(worst)
}

/// A progress bar by chunk, on a terminal (a terabyte file takes minutes).
fn bar(a: &VerifyArgs) -> crate::progress::Bar {
    crate::progress::Bar::new(a.quiet || a.json, "verify")
}

/// The report in the one vocabulary of `--json` (docs/cli.md).
fn json(r: &VerifyReport, seconds: f64) -> anyhow::Result<serde_json::Value> {
    let mut v = serde_json::to_value(r)?;
    v["seconds"] = seconds.into();
    Ok(v)
}

/// Prints one file's report (unless `--json` and part of several) and returns its code.
/// `single`: the seconds of the one file checked, whose JSON is printed here.
fn report(a: &VerifyArgs, r: &VerifyReport, single: Option<f64>) -> anyhow::Result<i32> {
    let code = if r.ok {
        exit_codes::OK
    } else {
        exit_codes::BAD_INPUT
    };
    if a.json {
        if let Some(seconds) = single {
            print_json(&json(r, seconds)?)?;
        }
        return Ok(code);
    }
    if r.ok {
        // With -q, outln! prints nothing: the exit code tells.
        outln!(
            "{}: ok: {} chunks, {} rows, {}; every checksum matches",
            r.path.display(),
            r.chunks_ok,
            r.rows_ok,
            human_bytes(r.file_bytes)
        );
        return Ok(code);
    }
    errln!(
        "vectro: {}: CORRUPT: {} problem(s); {} of {} chunks ({} rows) are intact",
        r.path.display(),
        r.problem_count,
        r.chunks_ok,
        r.chunks,
        r.rows_ok
    );
    if let Some(p) = &r.first_bad_chunk {
        let rows = p.rows.unwrap_or_default();
        errln!(
            "  first bad chunk: {} at bytes {}..{}, rows {}..{}: {}",
            p.chunk.unwrap_or_default(),
            p.bytes[0],
            p.bytes[1],
            rows[0],
            rows[1],
            p.message
        );
    }
    // --quiet: one detail is enough to act on; a badly damaged file lists thousands.
    let shown = match (a.quiet, &r.first_bad_chunk) {
        (false, _) => r.problems.len(),
        (true, Some(_)) => 0,
        (true, None) => 1,
    };
    for p in r.problems.iter().take(shown) {
        let what = match p.chunk {
            Some(c) => format!("chunk {c}"),
            None => p.part.to_string(),
        };
        errln!(
            "  {what} (bytes {}..{}): {}",
            p.bytes[0],
            p.bytes[1],
            p.message
        );
    }
    Ok(code)
}
