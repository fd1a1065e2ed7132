//! `vectro serve DIR`: the containers of a directory over HTTP (the library's `serve`).

use std::sync::atomic::AtomicBool;

use vectro::Error;
use vectro::serve::{Limits, ServeOptions, check_token, read_token_file, serve};

use crate::cli::ServeArgs;
use crate::exit_codes;

/// The environment variable holding the token when no --token-file is given.
const TOKEN_ENV: &str = "VECTRO_SERVE_TOKEN";

/// Serves until SIGTERM or Ctrl-C, then lets the requests in flight finish: exit 0.
pub fn run(a: ServeArgs, stop: &AtomicBool) -> anyhow::Result<i32> {
    let token = match (&a.token_file, std::env::var_os(TOKEN_ENV)) {
        (Some(_), Some(_)) => {
            return Err(Error::Config(format!(
                "both --token-file and {TOKEN_ENV} are set: give the token one way"
            ))
            .into());
        }
        (Some(f), None) => Some(read_token_file(f)?),
        (None, Some(v)) => Some(check_token(&v.to_string_lossy(), TOKEN_ENV)?),
        (None, None) => None,
    };
    let mut opts = ServeOptions::new(&a.dir, a.port);
    if let Some(b) = a.bind {
        opts.bind = b;
    }
    if !opts.bind.ip().is_loopback() && token.is_none() {
        errln!(
            "vectro serve: warning: listening on {} without a token: anyone who can reach this address can read every container (give --token-file)",
            opts.bind
        );
    }
    opts.token = token;
    opts.search_threads = a.threads;
    opts.limits = Limits {
        body_bytes: a.max_body,
        batch: a.max_batch,
        queries: a.max_queries,
        k: a.max_k,
        searches: a.searches,
        ..Limits::default()
    };
    let auth = if opts.token.is_some() {
        "bearer token required"
    } else {
        "no token"
    };
    let dir = a.dir.display().to_string();
    serve(opts, stop, |addr| {
        outln!("vectro serve: {dir} on http://{addr}/ ({auth}); Ctrl-C or SIGTERM stops");
    })?;
    if !a.quiet {
        errln!("vectro serve: stopped; the requests in flight were answered");
    }
    Ok(exit_codes::OK)
}
