//! `vectro import-npz`: the Python prototype's .npz into an int8 container.

use std::sync::atomic::AtomicBool;

use vectro::npz::{self, ImportOptions};
use vectro::output::Durability;

use super::{human_bytes, print_json};
use crate::cli::ImportNpzArgs;
use crate::exit_codes;
use crate::progress::Bar;

pub fn run(a: ImportNpzArgs, cancel: &AtomicBool) -> anyhow::Result<i32> {
    let opts = ImportOptions {
        chunk_rows: a.chunk_rows,
        overwrite: a.force,
        durability: if a.no_fsync {
            Durability::None
        } else {
            Durability::Fsync
        },
    };
    let bar = Bar::new(a.common.quiet || a.common.json, "import");
    let s = npz::import_npz(
        &a.input,
        a.output.as_deref().expect("resolved"),
        &opts,
        &bar,
        cancel,
    )?;
    if a.common.json {
        print_json(&s)?;
    } else {
        outln!(
            "imported {} rows x {} dims from {} into {} ({})",
            s.rows,
            s.dims,
            s.input.display(),
            s.output.display(),
            human_bytes(s.output_bytes)
        );
    }
    Ok(exit_codes::OK)
}
