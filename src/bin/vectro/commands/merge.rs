use std::sync::atomic::AtomicBool;

use vectro::output::Durability;

use super::{human_bytes, print_json};
use crate::cli::MergeArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: MergeArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let durability = if a.no_fsync {
        Durability::None
    } else {
        Durability::Fsync
    };
    let bar = Bar::new(a.quiet || a.json, "merge");
    let s = vectro::merge(&a.parts, &a.output, a.force, durability, &bar, cancel)?;
    let line = format!(
        "merged {} shards: {} rows in {} chunks -> {} ({}) in {:.2} s, {:.0} MB/s",
        s.parts.len(),
        s.rows,
        s.chunks,
        s.output.display(),
        human_bytes(s.output_bytes),
        s.seconds,
        s.mb_per_s
    );
    // With --out -, stdout carries the container: the summary goes to stderr.
    if a.output.as_os_str() == "-" {
        noteln!("{line}");
    } else if a.json {
        print_json(&super::rename_keys(
            serde_json::to_value(&s)?,
            &[("parts", "inputs")],
        ))?;
    } else {
        outln!("{line}");
    }
    Ok(exit_codes::OK)
}
