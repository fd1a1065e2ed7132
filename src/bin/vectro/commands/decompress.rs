use std::sync::atomic::AtomicBool;

use vectro::output::Durability;

use super::{human_bytes, print_json};
use crate::cli::DecompressArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: DecompressArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let bar = Bar::new(a.common.quiet || a.common.json, "decompress");
    let durability = if a.no_fsync {
        Durability::None
    } else {
        Durability::Fsync
    };
    let (input, output) = (
        a.input.clone().expect("resolved"),
        a.output.clone().expect("resolved"),
    );
    let s = vectro::decompress_as(
        &input,
        &output,
        a.dtype,
        (a.common.threads, a.force, durability),
        &bar,
        cancel,
    )?;
    // With --out -, stdout carries the .npy: the summary goes to stderr.
    if output.as_os_str() == "-" {
        noteln!(
            "decompressed {} rows x {} dims to stdout ({}, {}) in {:.2} s",
            s.rows,
            s.dims,
            s.dtype.name(),
            human_bytes(s.output_bytes),
            s.seconds
        );
    } else if a.common.json {
        print_json(&s)?;
    } else {
        outln!(
            "decompressed {} rows x {} dims to {} ({}, {}) in {:.2} s",
            s.rows,
            s.dims,
            s.output.display(),
            s.dtype.name(),
            human_bytes(s.output_bytes),
            s.seconds
        );
    }
    Ok(exit_codes::OK)
}
