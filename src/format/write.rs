//! Writing a container: header, chunks in order, then index and trailer.
//!
//! The writer only appends, so it works on any [`Write`] (a file, a pipe, a socket). The
//! index is kept in memory (32 bytes a chunk) and written last.

use std::io::Write;

use byteorder::{ByteOrder, LittleEndian as LE};

use super::layout::ChunkEntry;
use super::{
    CHUNK_HEADER_LEN, CHUNK_MAGIC, Header, INDEX_ENTRY_LEN, INDEX_HEADER_LEN, INDEX_MAGIC, MAGIC,
    MAJOR, TRAILER_LEN, crc, crc_append,
};

/// A chunk's crc32c computed where its payload was made (the pipeline's workers, in
/// parallel), so that the single writer thread only copies.
///
/// The chunk crc covers the 36-byte header, then the payload. A header ends with the
/// little-endian crc32c of its other bytes, and the crc32c of any message followed by its
/// own crc is one constant (the CRC's residue), so the crc after any valid header is the
/// same: the chunk crc depends on the payload alone. The writer still checks that its
/// header gives that constant, and computes the crc in full if not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCrc(u32);

impl ChunkCrc {
    /// The crc of any chunk holding `payload`.
    pub fn new(payload: &[u8]) -> ChunkCrc {
        ChunkCrc(crc_append(header_residue(), payload))
    }

    /// The crc of the chunk once `more` bytes follow its payload (its ids).
    pub fn extend(self, more: &[u8]) -> ChunkCrc {
        ChunkCrc(crc_append(self.0, more))
    }
}

/// The [`ChunkCrc`] of a payload given in pieces, in order: a worker can checksum each
/// piece while the encoder's output is still in its cache.
#[derive(Debug)]
pub struct ChunkCrcBuilder(crc_fast::Digest);

impl ChunkCrcBuilder {
    /// A builder for a payload of no bytes yet.
    pub fn new() -> ChunkCrcBuilder {
        // The running state is the finished crc with its final inversion undone.
        ChunkCrcBuilder(crc_fast::Digest::new_with_init_state(
            crc_fast::CrcAlgorithm::Crc32Iscsi,
            u64::from(!header_residue()),
        ))
    }

    /// Appends the payload's next bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The crc of any chunk holding the bytes given.
    pub fn finish(self) -> ChunkCrc {
        ChunkCrc(self.0.finalize() as u32)
    }
}

impl Default for ChunkCrcBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// The crc32c of every valid chunk header (see [`ChunkCrc`]).
fn header_residue() -> u32 {
    crc(&chunk_header(0, 0, 0, 0))
}

/// Appends chunks to a container and finishes it with an index and a trailer.
#[derive(Debug)]
pub struct ContainerWriter<W: Write> {
    out: W,
    header: Header,
    offset: u64,
    index: Vec<ChunkEntry>,
}

impl<W: Write> ContainerWriter<W> {
    /// Writes the header and returns a writer positioned for chunk 0.
    ///
    /// # Errors
    /// Any error of the underlying writer.
    pub fn new(mut out: W, header: Header) -> std::io::Result<Self> {
        let bytes = header.encode();
        out.write_all(&bytes)?;
        Ok(ContainerWriter {
            out,
            header,
            offset: bytes.len() as u64,
            index: Vec::new(),
        })
    }

    /// Resumes appending after `chunks` that are already in `out`, which must be positioned
    /// right after the last of them.
    pub fn resume(out: W, header: Header, chunks: Vec<ChunkEntry>, offset: u64) -> Self {
        ContainerWriter {
            out,
            header,
            offset,
            index: chunks,
        }
    }

    /// The header being written.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Chunks written so far.
    pub fn chunks(&self) -> &[ChunkEntry] {
        &self.index
    }

    /// Appends the next chunk, holding `rows` rows encoded as `payload`.
    ///
    /// # Panics
    /// If `rows` is not what the header implies for the next chunk: the pipeline guarantees
    /// it, so a mismatch is a bug, not bad input.
    ///
    /// # Errors
    /// Any error of the underlying writer.
    pub fn write_chunk(&mut self, rows: u64, payload: &[u8]) -> std::io::Result<()> {
        self.write_chunk_with_crc(rows, payload, None)
    }

    /// [`ContainerWriter::write_chunk`], given the chunk's crc if it was computed elsewhere
    /// (see [`ChunkCrc`]).
    ///
    /// # Panics
    /// As [`ContainerWriter::write_chunk`].
    ///
    /// # Errors
    /// Any error of the underlying writer.
    pub fn write_chunk_with_crc(
        &mut self,
        rows: u64,
        payload: &[u8],
        pre: Option<&ChunkCrc>,
    ) -> std::io::Result<()> {
        let i = self.index.len() as u64;
        assert_eq!(rows, self.header.rows_in_chunk(i), "chunk {i} row count");
        let first_row = i * self.header.chunk_rows as u64;
        let head = chunk_header(i, first_row, rows, payload.len() as u64);
        let head_crc = crc(&head);
        let c = match pre {
            Some(p) if head_crc == header_residue() => p.0,
            _ => crc_append(head_crc, payload),
        };
        self.out.write_all(&head)?;
        self.out.write_all(payload)?;
        self.out.write_all(&c.to_le_bytes())?;
        let len = (head.len() + payload.len() + 4) as u64;
        self.index.push(ChunkEntry {
            offset: self.offset,
            len,
            first_row,
            rows,
        });
        self.offset += len;
        Ok(())
    }

    /// Flushes the inner writer, so that every chunk written so far reaches the file: a
    /// killed run then leaves them for a resume.
    ///
    /// # Errors
    /// Any error of the underlying writer.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Writes the index and trailer, flushes, and returns the inner writer.
    ///
    /// # Panics
    /// If fewer chunks were written than the header implies (a pipeline bug).
    ///
    /// # Errors
    /// Any error of the underlying writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        assert_eq!(self.index.len() as u64, self.header.chunk_count());
        let index = encode_index(&self.index);
        let index_offset = self.offset;
        self.out.write_all(&index)?;
        let trailer = encode_trailer(
            index_offset,
            index.len() as u64,
            self.header.rows,
            crc(&index),
            self.header.minor(),
        );
        self.out.write_all(&trailer)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The 36-byte self-describing chunk header, its own crc included.
pub(crate) fn chunk_header(
    index: u64,
    first_row: u64,
    rows: u64,
    payload_len: u64,
) -> [u8; CHUNK_HEADER_LEN] {
    let mut h = [0u8; CHUNK_HEADER_LEN];
    h[0..4].copy_from_slice(&CHUNK_MAGIC);
    LE::write_u32(&mut h[4..8], rows as u32);
    LE::write_u64(&mut h[8..16], index);
    LE::write_u64(&mut h[16..24], first_row);
    LE::write_u64(&mut h[24..32], payload_len);
    let c = crc(&h[..32]);
    LE::write_u32(&mut h[32..36], c);
    h
}

pub(crate) fn encode_index(entries: &[ChunkEntry]) -> Vec<u8> {
    let mut out = vec![0u8; INDEX_HEADER_LEN + entries.len() * INDEX_ENTRY_LEN];
    out[0..4].copy_from_slice(&INDEX_MAGIC);
    LE::write_u64(&mut out[8..16], entries.len() as u64);
    for (e, b) in entries
        .iter()
        .zip(out[INDEX_HEADER_LEN..].chunks_exact_mut(INDEX_ENTRY_LEN))
    {
        LE::write_u64(&mut b[0..8], e.offset);
        LE::write_u64(&mut b[8..16], e.len);
        LE::write_u64(&mut b[16..24], e.first_row);
        LE::write_u64(&mut b[24..32], e.rows);
    }
    out
}

pub(crate) fn encode_trailer(
    index_offset: u64,
    index_len: u64,
    rows: u64,
    index_crc: u32,
    minor: u16,
) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    LE::write_u64(&mut t[0..8], index_offset);
    LE::write_u64(&mut t[8..16], index_len);
    LE::write_u64(&mut t[16..24], rows);
    LE::write_u32(&mut t[24..28], index_crc);
    LE::write_u16(&mut t[32..34], MAJOR);
    LE::write_u16(&mut t[34..36], minor);
    t[36..40].copy_from_slice(&MAGIC);
    let c = trailer_crc(&t);
    LE::write_u32(&mut t[28..32], c);
    t
}

/// The trailer's crc covers every trailer byte except the crc field itself.
pub(crate) fn trailer_crc(t: &[u8; TRAILER_LEN]) -> u32 {
    crc_append(crc(&t[0..28]), &t[32..40])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Container;
    use crate::test_rng::Rng;

    #[test]
    fn a_crc_built_in_pieces_is_the_whole_payloads() {
        let mut rng = Rng(0x9b05_688c_2b3e_6c1f);
        let payload: Vec<u8> = (0..5000).map(|_| rng.next() as u8).collect();
        for cuts in [
            vec![],
            vec![0, 1],
            vec![7, 4096, 4999],
            vec![2500, 2500, 5000],
        ] {
            let mut b = ChunkCrcBuilder::new();
            let mut at = 0;
            for c in cuts.into_iter().chain([payload.len()]) {
                b.update(&payload[at..c]);
                at = c;
            }
            assert_eq!(b.finish(), ChunkCrc::new(&payload));
        }
        assert_ne!(ChunkCrc::new(&payload), ChunkCrc::new(&payload[1..]));
    }

    #[test]
    fn crc_and_append_match_an_independent_crc32c() {
        let mut rng = Rng(0x0dd_c0ffee);
        let bytes: Vec<u8> = (0..70_000).map(|_| rng.next() as u8).collect();
        for len in [0usize, 1, 3, 31, 32, 64, 255, 256, 4097, 70_000] {
            let b = &bytes[..len];
            assert_eq!(crc(b), crc32c::crc32c(b), "len {len}");
            for cut in [0, len / 3, len] {
                let head = crc32c::crc32c(&b[..cut]);
                assert_eq!(
                    crc_append(head, &b[cut..]),
                    crc32c::crc32c(b),
                    "len {len} cut {cut}"
                );
            }
        }
    }

    /// A 6-row int8 container of three 2-row chunks, each written with `pre`'s crc for
    /// it, then opened and every chunk's crc checked.
    fn write_and_check(pre: impl Fn(&[u8]) -> Option<ChunkCrc>) {
        let header = Header {
            codec: crate::codec::CodecSpec {
                id: crate::codec::CodecId::Int8,
                params: vec![],
            },
            rows: 6,
            dims: 3,
            chunk_rows: 2,
            source_dtype: crate::npy::Dtype::F32Le,
            metadata: Default::default(),
            stage: crate::codec::PayloadStage::Plain,
            ids: Default::default(),
            payload: false,
            tiers: Vec::new(),
        };
        let mut w = ContainerWriter::new(Vec::new(), header).unwrap();
        for i in 0..3u64 {
            // 2 rows of 3 codes and a scale.
            let payload: Vec<u8> = (0..14).map(|b| b * 3 + i as u8).collect();
            w.write_chunk_with_crc(2, &payload, pre(&payload).as_ref())
                .unwrap();
        }
        let bytes = w.finish().unwrap();
        let c = Container::from_bytes("t.vectro", &bytes).expect("a valid container");
        for i in 0..3 {
            c.chunk_payload(i).expect("chunk crc checks");
        }
    }

    #[test]
    fn every_chunk_header_has_the_same_crc() {
        // What lets workers checksum a chunk before the writer numbers it.
        let mut rng = Rng(0x5eed_cafe);
        for _ in 0..1000 {
            let h = chunk_header(rng.next(), rng.next(), rng.next(), rng.next());
            assert_eq!(crc(&h), header_residue());
        }
    }

    #[test]
    fn a_crc_from_the_workers_makes_a_valid_container() {
        write_and_check(|p| Some(ChunkCrc::new(p)));
        write_and_check(|_| None);
    }
}
