//! The container format, version 1. FORMAT.md is the byte-by-byte specification.
//!
//! ```text
//! +--------+---------+---------+-----+---------+-------+---------+
//! | header | chunk 0 | chunk 1 | ... | chunk n | index | trailer |
//! +--------+---------+---------+-----+---------+-------+---------+
//!  magic+version, crc     each self-describing,   offsets   index offset, crc,
//!                         crc32c                            version+magic
//! ```
//!
//! Reading one row costs O(1) seeks: trailer → index → chunk.

pub mod decoded;
mod header;
pub mod ids;
pub(crate) mod layout;
pub mod payload;
pub mod read;
pub mod rows;
pub mod shard;
pub mod verify;
pub mod write;

pub use header::{FLAG_TIERS, Header, MAX_TIERS, Metadata};
pub use ids::{Id, IdColumn, IdKind, IdSource};
pub use layout::{ChunkEntry, scan_chunks};
pub use read::Container;
pub use verify::{VerifyReport, verify};
pub use write::{ChunkCrc, ChunkCrcBuilder, ContainerWriter};

/// Magic at the start of the header and at the end of the trailer.
pub const MAGIC: [u8; 4] = *b"VCTR";
/// Magic at the start of each chunk.
pub const CHUNK_MAGIC: [u8; 4] = *b"VCHK";
/// Magic at the start of the index.
pub const INDEX_MAGIC: [u8; 4] = *b"VIDX";
/// The format's major version: a reader refuses a file with a larger one.
pub const MAJOR: u16 = 1;
/// The format's newest minor version, which this build reads and writes for files that
/// need it (tiers): additions that older readers refuse by name, never misread.
pub const MINOR: u16 = 6;
/// The minor version of a container with search tiers (format 1.6).
pub const MINOR_WITH_TIERS: u16 = 6;
/// The minor version of a container with payload columns and no tiers: laid out exactly as
/// format 1.5 wrote it.
pub const MINOR_WITH_PAYLOAD: u16 = 5;
/// The minor version of a container with ids and no payload columns: laid out exactly as
/// format 1.4 wrote it.
pub const MINOR_WITH_IDS: u16 = 4;
/// The minor version of a container without ids: laid out exactly as format 1.3 wrote it.
pub const MINOR_WITHOUT_IDS: u16 = 3;

/// Bytes of a chunk header, including its own crc.
pub const CHUNK_HEADER_LEN: usize = 36;
/// Bytes of a chunk's framing: header plus the trailing crc.
pub const CHUNK_OVERHEAD: usize = CHUNK_HEADER_LEN + 4;
/// Bytes of the index header.
pub const INDEX_HEADER_LEN: usize = 16;
/// Bytes of one index entry.
pub const INDEX_ENTRY_LEN: usize = 32;
/// Bytes of the trailer.
pub const TRAILER_LEN: usize = 40;

/// What this build records as the `tool` metadata of the containers it writes.
pub const TOOL: &str = concat!("vectro ", env!("CARGO_PKG_VERSION"));

/// The largest header accepted, to refuse allocation bombs from a corrupt length.
pub const MAX_HEADER_LEN: usize = 1 << 24;

pub use crate::checksum::{crc, crc_append};

/// The most values (rows × dims) a chunk may hold: 2²⁸, 1 GiB of float32. Readers refuse
/// larger chunks before allocating, so that a corrupt header cannot demand a huge buffer.
pub const MAX_CHUNK_VALUES: u64 = 1 << 28;
