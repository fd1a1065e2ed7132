//! `vectro completions SHELL` and `vectro man`: generated from the clap definition of the
//! command line, so they can never disagree with it.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit_codes;

/// The completion script for `a.shell`, on stdout.
pub fn completions(a: CompletionsArgs) -> anyhow::Result<i32> {
    let mut buf = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "vectro", &mut buf);
    to_stdout(&buf)
}

/// The man page, in roff, on stdout.
pub fn man() -> anyhow::Result<i32> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut buf)
        .context("rendering the man page")?;
    to_stdout(&buf)
}

fn to_stdout(bytes: &[u8]) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .context("writing to stdout")?;
    Ok(exit_codes::OK)
}
