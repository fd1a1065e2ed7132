//! Entry points shared by the `cargo fuzz` targets (`fuzz/`) and the tests that replay
//! their regression inputs on stable Rust. Not part of the supported API.
//!
//! Each function feeds arbitrary bytes to a parser and exercises everything a user could
//! then do with the result. Any panic, hang or unbounded allocation is a bug; errors are
//! the expected outcome.

use std::io::Cursor;
use std::path::Path;

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::format::write::trailer_crc;
use crate::format::{self, CHUNK_HEADER_LEN, CHUNK_OVERHEAD, Container, Header, TRAILER_LEN};

/// The `.npy` header parser, on a file of exactly these bytes and on a stream of them.
pub fn npy_header(data: &[u8]) {
    let path = Path::new("fuzz.npy");
    // As a file (the data section must be exactly as long as the shape says), and as a
    // stream, where the data length is unknown: most inputs get past the header parse only
    // there.
    if let Ok(h) = crate::npy::parse_header(path, data, data.len() as u64) {
        assert_eq!(h.data_offset + h.data_len().unwrap(), data.len() as u64);
        let _ = h.row_bytes();
    }
    let mut stream = Cursor::new(data);
    if let Ok(h) = crate::npy::read_header(path, &mut stream) {
        assert_eq!(stream.position(), h.data_offset);
        let _ = h.row_bytes();
    }
}

/// The container reader and verifier. If the first byte is odd, the checksums of the rest
/// are recomputed first, so that mutations reach the code behind them.
pub fn container(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode & 1 == 1 {
        fix_checksums(&mut bytes);
    }
    let path = Path::new("fuzz.vectro");
    let report = format::verify::verify_reader(path, Cursor::new(&bytes), bytes.len() as u64)
        .expect("reading memory cannot fail");
    let opened = Container::from_bytes(path, &bytes);
    let all_read = opened.as_ref().is_ok_and(read_everything);
    // Two implementations of the same checks must agree: verify (streaming) passes exactly
    // when the reader opens the file and reads every chunk without an error.
    assert_eq!(
        report.ok,
        all_read,
        "verify says {:?}, the reader says {:?}",
        report.problems,
        opened.err()
    );
    if let Ok((header, len)) = Header::decode(path, &bytes)
        && let Ok(codec) = format::layout::codec_for(path, &header)
    {
        let _ = format::scan_chunks(&bytes, &header, len, codec.as_ref());
    }
}

/// Reads every row through every access path; true if nothing was refused.
fn read_everything(c: &Container) -> bool {
    let d = c.dims();
    let mut ok = true;
    for (i, e) in c.chunks().iter().enumerate() {
        let mut out = vec![0f32; e.rows as usize * d];
        ok &= c.decode_chunk(i, &mut out).is_ok();
    }
    let mut row = vec![0f32; d];
    let last = c.rows() - 1;
    let _ = c.get(0, &mut row);
    let _ = c.get_range(last..last + 1, &mut row);
    assert!(c.get(c.rows(), &mut row).is_err());
    let mut two = vec![0f32; 2 * d];
    let _ = c.get_many(&[last, 0], &mut two);
    assert!(c.chunk_payload(c.chunks().len()).is_err());
    ok
}

/// Recomputes every checksum whose position the bytes themselves reveal (the header's,
/// each chunk's reachable by walking, the index's and the trailer's), so that a test can
/// craft a damaged file that checksums do not catch.
pub fn fix_checksums(b: &mut [u8]) {
    let n = b.len();
    if n < 12 {
        return;
    }
    let h = LE::read_u32(&b[8..12]) as usize;
    if !(12..=n).contains(&h) {
        return;
    }
    let c = crate::format::crc(&b[..h - 4]);
    LE::write_u32(&mut b[h - 4..h], c);
    let mut at = h;
    while at + CHUNK_HEADER_LEN <= n && &b[at..at + 4] == b"VCHK" {
        let c = crate::format::crc(&b[at..at + 32]);
        LE::write_u32(&mut b[at + 32..at + 36], c);
        let payload = LE::read_u64(&b[at + 24..at + 32]);
        let Some(end) = usize::try_from(payload)
            .ok()
            .and_then(|p| p.checked_add(at + CHUNK_OVERHEAD))
            .filter(|&e| e <= n)
        else {
            break;
        };
        let c = crate::format::crc(&b[at..end - 4]);
        LE::write_u32(&mut b[end - 4..end], c);
        at = end;
    }
    if n < h + TRAILER_LEN {
        return;
    }
    let t = n - TRAILER_LEN;
    let off = LE::read_u64(&b[t..t + 8]);
    let len = LE::read_u64(&b[t + 8..t + 16]);
    if let Some(end) = off.checked_add(len).filter(|&e| e <= t as u64) {
        let c = crate::format::crc(&b[off as usize..end as usize]);
        LE::write_u32(&mut b[t + 24..t + 28], c);
    }
    let trailer: &[u8; TRAILER_LEN] = b[t..].try_into().expect("length");
    let c = trailer_crc(trailer);
    LE::write_u32(&mut b[t + 28..t + 32], c);
}

/// A `--codec NAME:k=v,...` spec: the first byte picks the data's dims (1 to 256), the rest
/// is the spec. A spec that parses must encode and decode a few rows of that many dims.
pub fn codec_spec(data: &[u8]) {
    let Some((&d, rest)) = data.split_first() else {
        return;
    };
    let dims = usize::from(d) + 1;
    let text = String::from_utf8_lossy(rest);
    let Ok(codec) = crate::codec::parse(&text, dims) else {
        return;
    };
    round_trip(codec.as_ref(), dims);
}

/// Encodes and decodes 3 rows through `codec`; an encode fault is fine, a panic is not.
fn round_trip(codec: &dyn crate::codec::Codec, dims: usize) {
    assert_eq!(codec.dims(), dims);
    let rows = 3;
    let input: Vec<f32> = (0..rows * dims)
        .map(|i| ((i * 7919 % 201) as f32 - 100.0) / 100.0)
        .collect();
    let mut payload = vec![0u8; codec.encoded_len(rows)];
    if codec.encode(&input, &mut payload).is_ok() {
        let mut out = vec![0f32; rows * dims];
        codec.decode(&payload, rows, &mut out);
        let mut row = vec![0f32; dims];
        codec.decode_row(&payload, rows, rows - 1, &mut row);
    }
}

/// A `--rows` list of `get` and `search`: one that parses selects at least one row, every
/// range runs forward, and written back as `A..B` items it parses to the same ranges.
pub fn rows(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(ranges) = crate::format::rows::parse(&text) else {
        return;
    };
    assert!(
        ranges.iter().all(|r| r.start <= r.end),
        "{text:?}: {ranges:?}"
    );
    assert!(ranges.iter().any(|r| !r.is_empty()), "{text:?}: {ranges:?}");
    let again: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    assert_eq!(
        crate::format::rows::parse(&again.join(",")).ok().as_ref(),
        Some(&ranges),
        "{text:?}"
    );
}

/// A `.vcb` codebook file: parsed for its own dims; one that parses must round-trip rows
/// and serialise back to bytes that parse to the same codebook.
pub fn vcb(data: &[u8]) {
    let path = Path::new("fuzz.vcb");
    let Ok(book) = crate::codec::Codebook::from_vcb_own_dims(path, data) else {
        return;
    };
    let dims = book.dims;
    let again = crate::codec::Codebook::from_vcb(path, &book.to_vcb(None), dims)
        .expect("a codebook's own bytes parse");
    assert_eq!(again.fingerprint(), book.fingerprint());
    round_trip(&crate::codec::Pq::new(book), dims);
}

/// A `.npz` file of the prototype (members `q`, `scales`, `dims`) imported into a
/// container in a scratch directory; one that imports must read back.
pub fn npz(data: &[u8]) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!("vectro-fuzz-npz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let n = N.fetch_add(1, Ordering::Relaxed);
    let (input, output) = (
        dir.join(format!("{n}.npz")),
        dir.join(format!("{n}.vectro")),
    );
    std::fs::write(&input, data).expect("writing the scratch input");
    let opts = crate::npz::ImportOptions {
        chunk_rows: Some(7),
        overwrite: true,
        durability: crate::output::Durability::None,
    };
    let r = crate::npz::import_npz(
        &input,
        &output,
        &opts,
        &crate::progress::NoProgress,
        &AtomicBool::new(false),
    );
    if r.is_ok() {
        let c = Container::open(&output).expect("an imported container opens");
        assert!(read_everything(&c), "an imported container reads back");
    }
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&output);
    let _ = std::fs::remove_dir(&dir); // once empty
}
