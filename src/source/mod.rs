//! The source layer: the rows a run reads. A memory-mapped `.npy` ([`NpySource`]), many
//! of them read as one matrix ([`Dataset`]), or a `.npy` arriving on a stream
//! ([`StreamSource`], `--in -`), or rows already in memory ([`MemorySource`]), or rows
//! decoded from Parquet, Arrow, `.fvecs` and the like ([`Table`]), each cut into
//! [`ChunkJob`]s of rows; [`Input`] is whichever of them `--in` names
//! ([`Input::open_with`], which tells the formats apart: `docs/inputs.md`).

pub mod columnar;
pub mod dataset;
pub mod formats;
pub mod memory;
pub mod open;
pub mod reader;
pub mod stream;
pub mod table;

use std::path::Path;

pub use columnar::{IdColumn, Ids};
pub use dataset::Dataset;
pub use memory::MemorySource;
pub use open::{Format, InputOptions, open_id_column, open_payload_columns};
pub use reader::{ChunkJob, Input, NpySource};
pub use stream::StreamSource;
pub use table::Table;

use crate::error::{Error, Result};

/// Refuses NaN and ±Inf, naming the first offender.
pub(crate) fn check_finite(data: &[f32], dims: usize, first_row: u64, path: &Path) -> Result<()> {
    // A SIMD pass (12% of compress CPU when it was SSE2); the position only on failure.
    if !crate::simd::any_non_finite(data) {
        return Ok(());
    }
    let i = data
        .iter()
        .position(|x| !x.is_finite())
        .expect("found above");
    Err(Error::NonFinite {
        path: path.to_path_buf(),
        row: first_row + (i / dims) as u64,
        col: (i % dims) as u64,
        value: format!("{}", data[i]),
    })
}
