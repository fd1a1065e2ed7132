use vectro::format::verify;

use super::{human_bytes, print_json};
use crate::cli::VerifyArgs;
use crate::exit_codes;

/// Exit 0 when every check passes, 3 (bad input) when anything is damaged.
pub fn run(a: VerifyArgs) -> anyhow::Result<i32> {
    let r = verify(&a.file)?;
    let code = if r.ok {
        exit_codes::OK
    } else {
        exit_codes::BAD_INPUT
    };
    if a.json {
        print_json(&r)?;
        return Ok(code);
    }
    if r.ok {
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
