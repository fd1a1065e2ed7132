//! The codebook section of PQ and OPQ: centroids, the optional rotation, and the facts of
//! its training. It is the codec parameter block of a container, and, wrapped in a small
//! checksummed frame, the standalone `.vcb` file that `vectro train` writes and
//! `compress --codebook` reads. FORMAT.md gives both layouts byte by byte.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use byteorder::{ByteOrder, LittleEndian as LE};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;

use super::CodecId;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Bytes of the fixed part of the parameter block, before the centroids.
const FIXED_LEN: usize = 40;
/// Magic of a standalone `.vcb` file.
pub const VCB_MAGIC: [u8; 4] = *b"VCBK";
/// Bytes of the `.vcb` frame before the parameter block.
const VCB_HEAD: usize = 16;
/// Rows per centroid below which k-means is known to be starved (faiss warns likewise).
pub const MIN_ROWS_PER_CENTROID: u64 = 39;

/// How a codebook was trained, as `info` shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingFacts {
    /// Rows in the training sample.
    pub sample_rows: u64,
    /// Lloyd iterations of the final PQ training (the most any subspace ran).
    pub kmeans_iterations: u32,
    /// Rotation updates of OPQ (0 for PQ).
    pub opq_iterations: u32,
    /// Mean squared reconstruction error per row on the sample, `‖x − x̂‖²`.
    pub distortion: f64,
    /// Seed of the sample and the initialisation.
    pub seed: u64,
}

/// A trained product quantizer, optionally preceded by an orthogonal rotation (OPQ).
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    /// Vector dimension.
    pub dims: usize,
    /// Subspaces; `dims` is a multiple of `m`.
    pub m: usize,
    /// Bits per code: 8 (256 centroids per subspace) or 4 (16).
    pub nbits: u8,
    /// `m × 2^nbits × (dims / m)` floats: subspace, then centroid, then coordinate.
    pub centroids: Vec<f32>,
    /// `dims × dims`, row-major: a row `x` is encoded as `x · R`. OPQ only.
    pub rotation: Option<Vec<f32>>,
    /// Encoding's weight `η` on the error along the row against the error across it
    /// (`aniso=`, at least 1): each row gets the centroids that minimise
    /// `‖r‖² + (η − 1)·⟨r, x⟩²/‖x‖²` for its error `r`, which search ranks by better than
    /// by `‖r‖²` alone. 1 picks the nearest centroids (plain PQ). Decoding ignores it.
    pub aniso: f32,
    /// Decoding scales each reconstruction to unit length: set when every training row
    /// had unit length (`unit=auto`), as normalised embeddings do. Their neighbours are
    /// found by angle alone, and a reconstruction's length (centroids shrink towards the
    /// mean, by more for some rows than others) would only add noise to L2 and inner
    /// product scores.
    pub unit: bool,
    /// How it was trained.
    pub facts: TrainingFacts,
}

impl Codebook {
    /// Centroids per subspace.
    pub fn ksub(&self) -> usize {
        1 << self.nbits
    }

    /// Dimensions per subspace.
    pub fn dsub(&self) -> usize {
        self.dims / self.m
    }

    /// Bytes of one encoded row: `m` codes of `nbits` bits, two 4-bit codes per byte.
    pub fn code_bytes(&self) -> usize {
        (self.m * self.nbits as usize).div_ceil(8)
    }

    /// The registry id this codebook belongs to.
    pub fn codec_id(&self) -> CodecId {
        if self.rotation.is_some() {
            CodecId::Opq
        } else {
            CodecId::Pq
        }
    }

    /// The codec parameter block (FORMAT.md, "pq and opq").
    pub fn to_params(&self) -> Vec<u8> {
        let mut out = vec![0u8; FIXED_LEN];
        LE::write_u32(&mut out[0..4], self.dims as u32);
        LE::write_u16(&mut out[4..6], self.m as u16);
        out[6] = self.nbits;
        out[7] = u8::from(self.rotation.is_some())
            | (u8::from(self.aniso != 1.0) << 1)
            | (u8::from(self.unit) << 2);
        let f = &self.facts;
        LE::write_u64(&mut out[8..16], f.sample_rows);
        LE::write_u32(&mut out[16..20], f.kmeans_iterations);
        LE::write_u32(&mut out[20..24], f.opq_iterations);
        LE::write_f64(&mut out[24..32], f.distortion);
        LE::write_u64(&mut out[32..40], f.seed);
        for v in self.centroids.iter().chain(self.rotation.iter().flatten()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if self.aniso != 1.0 {
            out.extend_from_slice(&self.aniso.to_le_bytes());
        }
        out
    }

    /// Parses a parameter block for codec `id`, for `dims`-dimensional rows.
    ///
    /// # Errors
    /// [`Error::Config`] naming the field that does not fit.
    pub fn from_params(id: CodecId, params: &[u8], dims: usize) -> Result<Codebook> {
        let bad = |msg: String| Error::Config(format!("{} codebook: {msg}", id_name(id)));
        if params.len() < FIXED_LEN {
            return Err(bad(format!(
                "{} bytes, at least {FIXED_LEN} expected",
                params.len()
            )));
        }
        let stored_dims = LE::read_u32(&params[0..4]) as usize;
        if stored_dims != dims {
            return Err(Error::Mismatch(format!(
                "the codebook is for {stored_dims}-dimensional vectors, the data has {dims} dims; \
                 train a codebook on data of this shape"
            )));
        }
        let m = LE::read_u16(&params[4..6]) as usize;
        let nbits = params[6];
        if m == 0 || !dims.is_multiple_of(m) {
            return Err(bad(format!("m = {m} does not divide dims {dims}")));
        }
        if nbits != 4 && nbits != 8 {
            return Err(bad(format!("nbits = {nbits}, expected 4 or 8")));
        }
        let flags = params[7];
        if flags & !0b111 != 0 {
            return Err(bad(format!("unknown flags {flags:#x} at byte 7")));
        }
        let (rotated, anisotropic) = (flags & 1 != 0, flags & 2 != 0);
        if rotated != (id == CodecId::Opq) {
            return Err(bad("rotation flag does not match the codec id".into()));
        }
        let facts = TrainingFacts {
            sample_rows: LE::read_u64(&params[8..16]),
            kmeans_iterations: LE::read_u32(&params[16..20]),
            opq_iterations: LE::read_u32(&params[20..24]),
            distortion: LE::read_f64(&params[24..32]),
            seed: LE::read_u64(&params[32..40]),
        };
        let ncent = dims << nbits;
        let nrot = if rotated { dims * dims } else { 0 };
        let want = FIXED_LEN + 4 * (ncent + nrot + usize::from(anisotropic));
        if params.len() != want {
            return Err(bad(format!("{} bytes, expected {want}", params.len())));
        }
        let floats: Vec<f32> = params[FIXED_LEN..]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(i) = floats.iter().position(|v| !v.is_finite()) {
            return Err(bad(format!(
                "non-finite value at byte {}",
                FIXED_LEN + 4 * i
            )));
        }
        let (c, rest) = floats.split_at(ncent);
        let (r, a) = rest.split_at(nrot);
        let aniso = a.first().copied().unwrap_or(1.0);
        if anisotropic && !(aniso > 1.0 && aniso <= super::aniso::MAX) {
            return Err(bad(format!(
                "anisotropic weight {aniso} at byte {}, expected above 1 and at most {}",
                params.len() - 4,
                super::aniso::MAX
            )));
        }
        Ok(Codebook {
            dims,
            m,
            nbits,
            centroids: c.to_vec(),
            rotation: rotated.then(|| r.to_vec()),
            aniso,
            unit: flags & 4 != 0,
            facts,
        })
    }

    /// A short identity for people comparing shards: the crc32c of the parameter block.
    /// Two containers with the same fingerprint share one codebook.
    pub fn fingerprint(&self) -> u32 {
        crate::checksum::crc(&self.to_params())
    }

    /// The standalone `.vcb` bytes: frame, parameter block, the training recipe if given
    /// ([`crate::codec::training_recipe`]), crc32c.
    ///
    /// # Panics
    /// If `recipe` is 64 KiB or longer (a recipe is a codec string and a row count).
    pub fn to_vcb(&self, recipe: Option<&str>) -> Vec<u8> {
        write_vcb(self.codec_id(), &self.to_params(), recipe)
    }

    /// The training recipe a `.vcb` file records, if any. Call on bytes that
    /// [`Codebook::from_vcb`] accepted.
    pub fn vcb_recipe(bytes: &[u8]) -> Option<String> {
        let r = bytes.get(10..12).map_or(0, LE::read_u16) as usize;
        let p = bytes.get(12..16).map_or(0, LE::read_u32) as usize;
        let text = bytes.get(VCB_HEAD + p..VCB_HEAD + p + r)?;
        std::str::from_utf8(text)
            .ok()
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }

    /// Parses a `.vcb` file's bytes; `dims` is the data's dimension it must fit.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged or foreign file, or one holding another trained
    /// codec (binary-itq); [`Error::Mismatch`] when the codebook was trained for another
    /// dimension.
    pub fn from_vcb(path: &Path, bytes: &[u8], dims: usize) -> Result<Codebook> {
        let vcb = VcbFile::parse(path, bytes)?;
        if !matches!(vcb.id, CodecId::Pq | CodecId::Opq) {
            return Err(Error::corrupt(
                path,
                format!(
                    "holds a {} codebook, not pq or opq",
                    super::registry_name(vcb.id)
                ),
            ));
        }
        Codebook::from_params(vcb.id, vcb.section, dims).map_err(|e| vcb_error(path, e))
    }

    /// Parses a `.vcb` file's bytes for the dimension it records itself (for `info`, which
    /// has no data to fit it to).
    ///
    /// # Errors
    /// As [`Codebook::from_vcb`].
    pub fn from_vcb_own_dims(path: &Path, bytes: &[u8]) -> Result<Codebook> {
        // The dims field opens the section; from_vcb checks the frame and crc before
        // trusting it, and refuses a section too short to hold it.
        let dims = bytes.get(VCB_HEAD..VCB_HEAD + 4).map_or(0, LE::read_u32);
        Codebook::from_vcb(path, bytes, dims as usize)
    }
}

fn id_name(id: CodecId) -> &'static str {
    if id == CodecId::Opq { "opq" } else { "pq" }
}

/// The errors of reading a section out of `path`: a dims mismatch stays one (bad input,
/// named by the file); anything else is a corrupt file.
fn vcb_error(path: &Path, e: Error) -> Error {
    match e {
        Error::Mismatch(m) => Error::Mismatch(format!("{}: {m}", path.display())),
        e => Error::corrupt(path, e.to_string()),
    }
}

/// The `.vcb` minor version a file of codec `id` is written with (FORMAT.md, "The
/// standalone codebook file"): 3 for binary-itq, which older readers refuse by its id; for
/// pq and opq, 2 with a recipe, else 1, as before, so their files keep their bytes; for
/// a centred sq block, 7 for layout 3 (padded) with other than `⌊32 / B⌋` zero coordinates
/// (`extra=N`, which a reader of minor 6 refuses by its count), 6 for layout 3 with
/// `⌊32 / B⌋` and 5 for layout 2.
fn vcb_minor(id: CodecId, section: &[u8], recipe: &[u8]) -> u16 {
    match id {
        CodecId::BinaryItq => 3,
        CodecId::Rq => 4,
        CodecId::Sq if section.first() == Some(&3) && section.len() >= 4 => {
            let p = usize::from(LE::read_u16(&section[2..4]));
            if p == super::sq::pad_dims(section[1]) {
                6
            } else {
                7
            }
        }
        CodecId::Sq if section.first() == Some(&3) => 6,
        CodecId::Sq => 5,
        _ if recipe.is_empty() => 1,
        _ => 2,
    }
}

/// The standalone `.vcb` bytes of a trained codec's parameter block `section` (the
/// container's, copied unchanged), with the training recipe if given.
///
/// # Panics
/// If `recipe` is 64 KiB or longer (a recipe is a codec string and a row count).
pub fn write_vcb(id: CodecId, section: &[u8], recipe: Option<&str>) -> Vec<u8> {
    let recipe = recipe.unwrap_or("").as_bytes();
    // A recipe is one short line of parameters (training_recipe), far below 64 KiB.
    let recipe_len = u16::try_from(recipe.len()).expect("a training recipe under 64 KiB");
    let mut out = vec![0u8; VCB_HEAD];
    out[0..4].copy_from_slice(&VCB_MAGIC);
    LE::write_u16(&mut out[4..6], 1);
    LE::write_u16(&mut out[6..8], vcb_minor(id, section, recipe));
    LE::write_u16(&mut out[8..10], id.code());
    LE::write_u16(&mut out[10..12], recipe_len);
    LE::write_u32(&mut out[12..16], section.len() as u32);
    out.extend_from_slice(section);
    out.extend_from_slice(recipe);
    let c = crate::checksum::crc(&out);
    out.extend_from_slice(&c.to_le_bytes());
    out
}

/// A `.vcb` file whose frame and checksum were checked: which trained codec it holds, its
/// parameter block (not yet parsed) and the recipe it records.
#[derive(Debug, Clone, Copy)]
pub struct VcbFile<'a> {
    /// `pq`, `opq` or `binary-itq`.
    pub id: CodecId,
    /// The minor version at byte 6 (informational).
    pub minor: u16,
    /// The codec parameter block, as a container holds it.
    pub section: &'a [u8],
    /// The training recipe (container metadata `train`), if the file records one.
    pub recipe: Option<&'a str>,
}

impl<'a> VcbFile<'a> {
    /// Checks the frame of a `.vcb` file's bytes: magic, major version, length, crc32c,
    /// a UTF-8 recipe and a trained codec id.
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `path` and what is wrong.
    pub fn parse(path: &Path, bytes: &'a [u8]) -> Result<VcbFile<'a>> {
        let corrupt = |msg: &str| Error::corrupt(path, msg.to_string());
        if bytes.len() < VCB_HEAD + 4 || bytes[0..4] != VCB_MAGIC {
            return Err(corrupt("not a vectro codebook (.vcb): bad magic at byte 0"));
        }
        if LE::read_u16(&bytes[4..6]) != 1 {
            return Err(corrupt(
                "codebook written by a newer vectro: upgrade vectro",
            ));
        }
        let p = LE::read_u32(&bytes[12..16]) as usize;
        let r = LE::read_u16(&bytes[10..12]) as usize;
        if bytes.len() as u64 != (VCB_HEAD + r + 4) as u64 + p as u64 {
            return Err(corrupt(
                "truncated or padded: length does not match bytes 10 and 12",
            ));
        }
        let end = VCB_HEAD + p + r;
        let stored = LE::read_u32(&bytes[end..]);
        if crate::checksum::crc(&bytes[..end]) != stored {
            return Err(corrupt("checksum mismatch: the codebook is corrupt"));
        }
        let Ok(recipe) = std::str::from_utf8(&bytes[VCB_HEAD + p..end]) else {
            return Err(corrupt(
                "the training recipe after the section is not UTF-8",
            ));
        };
        let code = LE::read_u16(&bytes[8..10]);
        let id = match CodecId::from_code(code) {
            Some(
                id @ (CodecId::Pq | CodecId::Opq | CodecId::BinaryItq | CodecId::Rq | CodecId::Sq),
            ) => id,
            _ => {
                return Err(corrupt(&format!(
                    "codec id {code} at byte 8 is not pq, opq, rq, binary-itq or sq"
                )));
            }
        };
        Ok(VcbFile {
            id,
            minor: LE::read_u16(&bytes[6..8]),
            section: &bytes[VCB_HEAD..VCB_HEAD + p],
            recipe: Some(recipe).filter(|r| !r.is_empty()),
        })
    }

    /// The dimension the section is for: recorded by pq and opq (bytes 0..4); for
    /// binary-itq, the `d` whose block of `16 + 4·(d + d²)` bytes it is (0 if none).
    pub fn own_dims(&self) -> usize {
        match self.id {
            CodecId::BinaryItq => {
                let k = self.section.len().saturating_sub(16) / 4;
                let d = ((((1 + 4 * k) as f64).sqrt() - 1.0) / 2.0).round() as usize;
                if d * (d + 1) == k && self.section.len() == 16 + 4 * k {
                    d
                } else {
                    0
                }
            }
            // A centred sq block (layout 2 or 3) records its dims at bytes 20..24.
            CodecId::Sq => self.section.get(20..24).map_or(0, LE::read_u32) as usize,
            _ => self.section.get(0..4).map_or(0, LE::read_u32) as usize,
        }
    }

    /// The codec the section describes, for `dims`-dimensional data.
    ///
    /// # Errors
    /// [`Error::Mismatch`] naming `path` when it was trained for another dimension;
    /// [`Error::Corrupt`] when the section does not parse.
    pub fn codec(&self, path: &Path, dims: usize) -> Result<Trained> {
        match self.id {
            CodecId::BinaryItq => {
                let own = self.own_dims();
                if own != 0 && own != dims {
                    return Err(Error::Mismatch(format!(
                        "{}: the codebook is for {own}-dimensional vectors, the data has \
                         {dims} dims; train a codebook on data of this shape",
                        path.display()
                    )));
                }
                super::itq::Itq::from_params(self.section, dims)
                    .map(Trained::Itq)
                    .map_err(|e| Error::corrupt(path, e.to_string()))
            }
            CodecId::Rq => super::rq::Rq::from_params(self.section, dims)
                .map(Trained::Rq)
                .map_err(|e| vcb_error(path, e)),
            CodecId::Sq => {
                let own = self.own_dims();
                if own != dims {
                    return Err(Error::Mismatch(format!(
                        "{}: the codebook is for {own}-dimensional vectors, the data has \
                         {dims} dims; train a codebook on data of this shape",
                        path.display()
                    )));
                }
                super::sq::Sq::from_params(self.section, dims)
                    .map(Trained::Sq)
                    .map_err(|e| Error::corrupt(path, e.to_string()))
            }
            id => Codebook::from_params(id, self.section, dims)
                .map(Trained::Pq)
                .map_err(|e| vcb_error(path, e)),
        }
    }
}

/// A trained codec, as `vectro train` writes it to a `.vcb` and `compress --codebook`
/// reads it back: a PQ/OPQ codebook or a binary-itq rotation.
#[derive(Debug)]
pub enum Trained {
    /// `pq` or `opq`.
    Pq(Codebook),
    /// `binary-itq`.
    Itq(super::itq::Itq),
    /// `rq`.
    Rq(super::rq::Rq),
    /// `sq:bits=B,centre=1`: the mean its rows are centred on.
    Sq(super::sq::Sq),
}

impl Trained {
    /// The codec that encodes with it.
    pub fn into_codec(self) -> Box<dyn super::Codec> {
        match self {
            Trained::Pq(b) => Box::new(super::Pq::new(b)),
            Trained::Itq(i) => Box::new(i),
            Trained::Rq(r) => Box::new(r),
            Trained::Sq(s) => Box::new(s),
        }
    }

    /// The vector dimension it was trained for.
    pub fn dims(&self) -> usize {
        match self {
            Trained::Pq(b) => b.dims,
            Trained::Itq(i) => super::Codec::dims(i),
            Trained::Rq(r) => super::Codec::dims(r),
            Trained::Sq(s) => super::Codec::dims(s),
        }
    }

    /// The registry id.
    pub fn codec_id(&self) -> CodecId {
        match self {
            Trained::Pq(b) => b.codec_id(),
            Trained::Itq(_) => CodecId::BinaryItq,
            Trained::Rq(_) => CodecId::Rq,
            Trained::Sq(_) => CodecId::Sq,
        }
    }

    /// The container's parameter block: the `.vcb` section.
    pub fn to_params(&self) -> Vec<u8> {
        match self {
            Trained::Pq(b) => b.to_params(),
            Trained::Itq(i) => super::Codec::spec(i).params,
            Trained::Rq(r) => r.to_params(),
            Trained::Sq(s) => super::Codec::spec(s).params,
        }
    }

    /// The `.vcb` bytes, with the training recipe if given.
    ///
    /// # Panics
    /// As [`write_vcb`].
    pub fn to_vcb(&self, recipe: Option<&str>) -> Vec<u8> {
        write_vcb(self.codec_id(), &self.to_params(), recipe)
    }

    /// The crc32c of the parameter block: shards with the same fingerprint share one
    /// trained codec.
    pub fn fingerprint(&self) -> u32 {
        crate::checksum::crc(&self.to_params())
    }

    /// The codec's name with its parameters, as `info` shows it (`pq:m=48,nbits=8`).
    pub fn name(&self) -> String {
        match self {
            Trained::Pq(b) => super::Codec::name(&super::Pq::new(b.clone())),
            Trained::Itq(i) => super::Codec::name(i),
            Trained::Rq(r) => super::Codec::name(r),
            Trained::Sq(s) => super::Codec::name(s),
        }
    }

    /// Whether `asked` (`--codec`) names this trained codec: the same codec and, for pq
    /// and opq, the same `m` and `nbits`.
    pub fn fits(&self, asked: &super::CodecRequest) -> bool {
        use super::{CodecRequest, TrainedRequest};
        match (self, asked) {
            (Trained::Itq(_), CodecRequest::Trained(TrainedRequest::BinaryItq)) => true,
            (Trained::Rq(r), CodecRequest::Trained(TrainedRequest::Rq(p))) => r.m() == p.m,
            (Trained::Sq(s), CodecRequest::Trained(TrainedRequest::Sq(p))) => s.params() == *p,
            (Trained::Pq(b), CodecRequest::Trained(TrainedRequest::Pq { id, params })) => {
                *id == b.codec_id() && params.m == b.m && params.nbits == b.nbits
            }
            _ => false,
        }
    }

    /// The [`Error::Config`] (a usage error: the command line contradicts itself) of a
    /// `--codec` that the codebook at `path` does not fit, or `Ok` when it does.
    ///
    /// # Errors
    /// As said.
    pub fn check_fits(&self, path: &Path, asked: &super::CodecRequest) -> Result<()> {
        if self.fits(asked) {
            return Ok(());
        }
        let fix = if asked.is_trained() {
            format!("or train a matching one (vectro train --codec {asked})")
        } else {
            "or drop --codebook".to_string()
        };
        Err(Error::Config(format!(
            "--codebook {} holds a {} codebook, which --codec {asked} does not match; \
             drop --codec to encode with the codebook, {fix}",
            path.display(),
            self.name()
        )))
    }
}

/// Rows a trained codec may sample, without reading anything else.
pub trait RowSource: Sync {
    /// Rows available.
    fn rows(&self) -> u64;
    /// Dimensions per row.
    fn dims(&self) -> usize;
    /// Copies rows `ids` (ascending) as float32 into `out` (`ids.len() × dims`).
    ///
    /// # Errors
    /// A non-finite value, named by row and column.
    fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()>;
    /// The file and the row within it that hold `row`, for messages.
    fn locate(&self, row: u64) -> (PathBuf, u64) {
        (PathBuf::from("<input>"), row)
    }
}

/// Rows held in memory, for tests of training: `part` names the file and its first row
/// that [`RowSource::locate`] reports (the default's otherwise).
#[cfg(test)]
pub(crate) struct MemRows {
    pub data: Vec<f32>,
    pub dims: usize,
    pub part: Option<(&'static str, u64)>,
}

#[cfg(test)]
impl MemRows {
    pub fn new(data: Vec<f32>, dims: usize) -> MemRows {
        MemRows {
            data,
            dims,
            part: None,
        }
    }
}

#[cfg(test)]
impl RowSource for MemRows {
    fn rows(&self) -> u64 {
        (self.data.len() / self.dims) as u64
    }
    fn dims(&self) -> usize {
        self.dims
    }
    fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
        for (&id, o) in ids.iter().zip(out.chunks_exact_mut(self.dims)) {
            let at = id as usize * self.dims;
            o.copy_from_slice(&self.data[at..at + self.dims]);
        }
        Ok(())
    }
    fn locate(&self, row: u64) -> (PathBuf, u64) {
        match self.part {
            Some((name, first)) => (PathBuf::from(name), row - first),
            None => (PathBuf::from("<input>"), row),
        }
    }
}

/// How to draw the training sample, and when to give up.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions<'a> {
    /// Rows to sample; `None` means `min(rows, 65536)`.
    pub train_rows: Option<u64>,
    /// Set by another thread (the binary's Ctrl-C handler) to stop: training then returns
    /// [`Error::Cancelled`] within about a second. `None` never cancels.
    pub cancel: Option<&'a AtomicBool>,
}

impl<'a> TrainOptions<'a> {
    /// The cancel flag, or one that is never set.
    pub(crate) fn flag(&self) -> &'a AtomicBool {
        static NEVER: AtomicBool = AtomicBool::new(false);
        self.cancel.unwrap_or(&NEVER)
    }
}

/// [`Error::Cancelled`] once `flag` is set: polled between the steps of training, each of
/// which takes well under a second on a default sample.
pub(crate) fn check_cancel(flag: &AtomicBool) -> Result<()> {
    if flag.load(Ordering::Relaxed) {
        return Err(Error::Cancelled);
    }
    Ok(())
}

/// What a training loop polls between iterations: whether to stop, and where to count
/// the iterations done. A bare cancel flag counts nothing.
pub trait Watch: Sync {
    /// [`Error::Cancelled`] once the run is to stop.
    ///
    /// # Errors
    /// As said.
    fn check(&self) -> Result<()>;
    /// `n` more planned iterations are done (or will not run: a loop that converged early
    /// reports the rest, so the count reaches what was planned).
    fn steps(&self, _n: u64) {}
}

impl Watch for AtomicBool {
    fn check(&self) -> Result<()> {
        check_cancel(self)
    }
}

/// A cancel flag that also reports iterations to a [`Progress`] ([`Progress::step`]).
pub(crate) struct Ticker<'a> {
    pub(crate) cancel: &'a AtomicBool,
    pub(crate) progress: &'a dyn Progress,
}

impl Watch for Ticker<'_> {
    fn check(&self) -> Result<()> {
        check_cancel(self.cancel)
    }
    fn steps(&self, n: u64) {
        if n > 0 {
            self.progress.step(n);
        }
    }
}

/// Rows read between two looks at the cancel flag: a sample of a cold file is 65,536
/// random reads.
const READ_BATCH: usize = 4096;

/// The largest magnitude a training sample of `n` rows × `d` dims may hold.
///
/// Training sums float32 squares of sample values and of differences of two of them (k-means
/// distances, the OPQ cross products, the ITQ loss) over up to all `n × d` values. With
/// every `|v| ≤ M`, such a sum is at most `n·d·(2M)²`, and a further factor 4 covers the
/// squared norm of a rotated row; keeping `16·n·d·M²` below `f32::MAX` keeps every sum
/// finite. Past it, an infinity turns into NaN in the matrices handed to the SVD or eigen
/// decomposition, which then never converges. Even at 65536 rows × 4096 dims the bound is
/// about 3·10¹⁴, far above any real embedding.
pub fn max_train_abs(n: usize, d: usize) -> f32 {
    (f64::from(f32::MAX) / (16.0 * n.max(1) as f64 * d.max(1) as f64)).sqrt() as f32
}

/// The default sample size cap: 256 rows per centroid at 8 bits, as faiss caps it.
pub const DEFAULT_TRAIN_ROWS: u64 = 65_536;

/// Draws a seeded sample of distinct rows from `src`, in file order, and returns them as
/// `n × dims` floats. Only the sampled rows are read.
///
/// # Errors
/// [`Error::Config`] for `--train-rows 0`; errors of [`RowSource::read_rows`];
/// [`Error::OutOfRange`] naming the file and row of a value above [`max_train_abs`];
/// [`Error::Cancelled`] once `opts.cancel` is set.
pub fn draw_sample(
    src: &dyn RowSource,
    opts: &TrainOptions,
    seed: u64,
    ksub: usize,
    progress: &dyn Progress,
) -> Result<Vec<f32>> {
    let want = opts.train_rows.unwrap_or(DEFAULT_TRAIN_ROWS);
    if want == 0 {
        return Err(Error::Config("--train-rows must be at least 1".into()));
    }
    let n = want.min(src.rows());
    let floor = MIN_ROWS_PER_CENTROID * ksub as u64;
    if n < ksub as u64 {
        return Err(Error::Config(format!(
            "training needs at least {ksub} rows (one per centroid), the sample has {n}; \
             use more rows, a larger --train-rows, or nbits=4"
        )));
    }
    if n < floor {
        progress.note(&format!(
            "training on {n} rows, fewer than {floor} ({MIN_ROWS_PER_CENTROID} per centroid): \
             the codebook may be poor; use more rows or --train-rows"
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ids: Vec<u64> = if n == src.rows() {
        (0..n).collect()
    } else {
        sample(&mut rng, src.rows() as usize, n as usize)
            .into_iter()
            .map(|i| i as u64)
            .collect()
    };
    ids.sort_unstable();
    let d = src.dims();
    let mut out = vec![0f32; n as usize * d];
    progress.stage("rows sampled", n);
    for (batch, o) in ids
        .chunks(READ_BATCH)
        .zip(out.chunks_mut(READ_BATCH * d.max(1)))
    {
        check_cancel(opts.flag())?;
        src.read_rows(batch, o)?;
        progress.step(batch.len() as u64);
    }
    check_magnitude(src, &ids, &out)?;
    Ok(out)
}

/// Refuses a sample holding a value above [`max_train_abs`], naming its file and row.
fn check_magnitude(src: &dyn RowSource, ids: &[u64], sample: &[f32]) -> Result<()> {
    let d = src.dims();
    let bound = max_train_abs(ids.len(), d);
    let Some(at) = sample.iter().position(|v| v.abs() > bound) else {
        return Ok(());
    };
    let (path, row) = src.locate(ids[at / d]);
    Err(Error::OutOfRange {
        path,
        row,
        col: (at % d) as u64,
        msg: format!(
            "{:e} is too large to train on: a sample of {} rows x {d} dims must stay within \
             ±{bound:.1e}, or float32 sums of squares overflow; check this row for corruption, \
             or normalise the data (e.g. to unit length) before training",
            sample[at],
            ids.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_book(rot: bool) -> Codebook {
        let dims = 4;
        Codebook {
            dims,
            m: 2,
            nbits: 4,
            centroids: (0..dims * 16).map(|i| i as f32 * 0.5).collect(),
            rotation: rot.then(|| (0..16).map(|i| i as f32).collect()),
            aniso: 1.0,
            unit: false,
            facts: TrainingFacts {
                sample_rows: 100,
                kmeans_iterations: 7,
                opq_iterations: 3,
                distortion: 0.25,
                seed: 9,
            },
        }
    }

    #[test]
    fn params_and_vcb_round_trip() {
        for (rot, aniso, unit) in [
            (false, 1.0, false),
            (true, 1.0, true),
            (false, 4.0, true),
            (true, 2.5, false),
        ] {
            let b = Codebook {
                aniso,
                unit,
                ..sample_book(rot)
            };
            let id = b.codec_id();
            let params = b.to_params();
            // Plain encoding keeps the layout it always had: no weight is stored.
            let floats = 4 * 16 + if rot { 16 } else { 0 } + usize::from(aniso != 1.0);
            assert_eq!(params.len(), FIXED_LEN + 4 * floats);
            assert_eq!(Codebook::from_params(id, &params, 4).unwrap(), b);
            let v = b.to_vcb(None);
            assert_eq!(Codebook::from_vcb(Path::new("x.vcb"), &v, 4).unwrap(), b);
            assert_eq!(Codebook::vcb_recipe(&v), None);
            // Without a recipe the file is laid out as before minor version 2.
            assert_eq!(v.len(), VCB_HEAD + params.len() + 4);
            assert_eq!((v[6], v[10], v[11]), (1, 0, 0));
            let recipe = "pq:m=4,nbits=4;train_rows=100";
            let v = b.to_vcb(Some(recipe));
            assert_eq!(Codebook::from_vcb(Path::new("x.vcb"), &v, 4).unwrap(), b);
            assert_eq!(Codebook::vcb_recipe(&v).as_deref(), Some(recipe));
            assert_eq!(v[6], 2);
        }
    }

    #[test]
    fn a_bad_anisotropic_weight_is_refused() {
        let b = Codebook {
            aniso: 4.0,
            ..sample_book(false)
        };
        let mut params = b.to_params();
        let at = params.len() - 4;
        for bad in [1.0f32, 0.5, 100.0] {
            params[at..].copy_from_slice(&bad.to_le_bytes());
            let e = Codebook::from_params(CodecId::Pq, &params, 4)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("anisotropic weight") && e.contains(&format!("byte {at}")),
                "{e}"
            );
        }
        params[7] |= 8;
        let e = Codebook::from_params(CodecId::Pq, &params, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown flags"), "{e}");
    }

    #[test]
    fn vcb_damage_and_wrong_dims_are_named() {
        let v = sample_book(false).to_vcb(Some("pq:m=4;train_rows=100"));
        for i in 0..v.len() {
            let mut w = v.clone();
            w[i] ^= 0x10;
            assert!(
                Codebook::from_vcb(Path::new("x.vcb"), &w, 4).is_err(),
                "byte {i}"
            );
        }
        let e = Codebook::from_vcb(Path::new("x.vcb"), &v, 8)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.vcb") && e.contains("4-dimensional") && e.contains("8 dims"),
            "{e}"
        );
    }

    #[test]
    fn a_sample_value_past_the_bound_is_named_by_file_and_row() {
        let (n, d) = (300, 8);
        let bound = max_train_abs(n, d);
        // 16·n·d·bound² is f32::MAX: a sum of squares of differences stays finite.
        let worst = 16.0 * n as f64 * d as f64 * f64::from(bound).powi(2);
        assert!(worst <= f64::from(f32::MAX) * 1.000_001, "{worst}");
        let mut x = vec![0.5f32; n * d];
        x[123 * d + 5] = bound;
        x[124 * d + 5] = -bound;
        let opts = TrainOptions::default();
        let progress = crate::progress::NoProgress;
        let in_part = |x: Vec<f32>| MemRows {
            part: Some(("part-1.npy", 100)),
            ..MemRows::new(x, d)
        };
        assert!(draw_sample(&in_part(x.clone()), &opts, 1, 16, &progress).is_ok());
        x[200 * d + 6] = -bound * 1.01;
        let e = draw_sample(&in_part(x), &opts, 1, 16, &progress).unwrap_err();
        assert!(
            matches!(
                e,
                Error::OutOfRange {
                    row: 100,
                    col: 6,
                    ..
                }
            ),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("part-1.npy: row 100, column 6: ") && msg.contains("normalise"),
            "{msg}"
        );
    }

    /// Sets the flag once the sample is read, so that only training itself can see it.
    struct CancelAfterRead<'a>(MemRows, &'a AtomicBool);

    impl RowSource for CancelAfterRead<'_> {
        fn rows(&self) -> u64 {
            self.0.rows()
        }
        fn dims(&self) -> usize {
            self.0.dims()
        }
        fn read_rows(&self, ids: &[u64], out: &mut [f32]) -> Result<()> {
            self.0.read_rows(ids, out)?;
            self.1.store(true, Ordering::Relaxed);
            Ok(())
        }
    }

    #[test]
    fn a_set_cancel_flag_stops_every_trained_codec() {
        let (n, d) = (400, 8);
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919) % 113) as f32 / 113.0)
            .collect();
        let codecs = [
            "pq:m=4,nbits=4",
            "pq:m=4,nbits=4,kinit=kpp",
            "opq:m=4,nbits=4",
            "opq:m=4,nbits=4,opq_init=random",
            "binary-itq",
        ];
        let progress = crate::progress::NoProgress;
        for codec in codecs {
            // Not cancelled: trains.
            let flag = AtomicBool::new(false);
            let opts = TrainOptions {
                cancel: Some(&flag),
                ..TrainOptions::default()
            };
            let src = MemRows::new(x.clone(), d);
            assert!(super::super::parse_trained(codec, &src, &opts, &progress).is_ok());
            // Set before the start (Ctrl-C during the sampling) ...
            flag.store(true, Ordering::Relaxed);
            let e = super::super::parse_trained(codec, &src, &opts, &progress).unwrap_err();
            assert!(matches!(e, Error::Cancelled), "{codec}: {e:?}");
            // ... and set once the sample is in: k-means, OPQ and ITQ loops must see it.
            flag.store(false, Ordering::Relaxed);
            let src = CancelAfterRead(MemRows::new(x.clone(), d), &flag);
            let e = super::super::parse_trained(codec, &src, &opts, &progress).unwrap_err();
            assert!(
                matches!(e, Error::Cancelled),
                "{codec} during training: {e:?}"
            );
        }
    }

    #[test]
    fn a_binary_itq_section_round_trips_through_a_vcb_of_minor_3() {
        let (n, d) = (300, 6);
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919) % 113) as f32 / 113.0 - 0.4)
            .collect();
        let src = MemRows::new(x, d);
        let opts = TrainOptions::default();
        let trained =
            super::super::train("binary-itq", &src, &opts, &crate::progress::NoProgress).unwrap();
        let section = trained.to_params();
        let recipe = "binary-itq;train_rows=20000";
        let v = trained.to_vcb(Some(recipe));
        assert_eq!((v[6], LE::read_u16(&v[8..10])), (3, 18));
        let path = Path::new("itq.vcb");
        let f = VcbFile::parse(path, &v).unwrap();
        assert_eq!(
            (f.id, f.minor, f.recipe),
            (CodecId::BinaryItq, 3, Some(recipe))
        );
        assert_eq!(
            f.section,
            &section[..],
            "the section is the container's block, unchanged"
        );
        assert_eq!(f.own_dims(), d);
        let back = f.codec(path, d).unwrap();
        assert_eq!(back.to_params(), section);
        assert_eq!(back.fingerprint(), trained.fingerprint());
        let r = |t: &str| t.parse::<crate::codec::CodecRequest>().unwrap();
        assert!(
            back.fits(&r("binary-itq")) && !back.fits(&r("binary")) && !back.fits(&r("pq:m=4"))
        );
        // Another dimension is a mismatch naming the file; a pq reader refuses it by name.
        let e = f.codec(path, d + 1).unwrap_err();
        assert!(matches!(e, Error::Mismatch(_)), "{e:?}");
        assert!(e.to_string().contains("itq.vcb"), "{e}");
        let e = Codebook::from_vcb(path, &v, d).unwrap_err().to_string();
        assert!(e.contains("holds a binary-itq codebook"), "{e}");
        // Every byte is covered.
        for i in 0..v.len() {
            let mut w = v.clone();
            w[i] ^= 0x10;
            assert!(
                VcbFile::parse(path, &w)
                    .and_then(|f| f.codec(path, d))
                    .is_err(),
                "byte {i}"
            );
        }
    }

    /// Records stages and their steps.
    #[derive(Default)]
    struct Stages(std::sync::Mutex<Vec<(String, u64, u64)>>);

    impl Progress for Stages {
        fn stage(&self, what: &str, steps: u64) {
            self.0.lock().unwrap().push((what.to_string(), steps, 0));
        }
        fn step(&self, n: u64) {
            self.0.lock().unwrap().last_mut().expect("a stage first").2 += n;
        }
    }

    #[test]
    fn training_reports_each_stage_by_iteration_up_to_what_it_planned() {
        let (n, d) = (400, 8);
        let x: Vec<f32> = (0..n * d)
            .map(|i| ((i * 7919) % 113) as f32 / 113.0)
            .collect();
        let src = MemRows::new(x, d);
        let cases = [
            ("pq:m=4,nbits=4", "k-means iterations", 4 * 25),
            (
                "pq:m=4,nbits=4,redo=2,iters=7,tol=0.5",
                "k-means iterations",
                4 * 2 * 7,
            ),
            ("pq:m=4,nbits=4,kinit=kpp", "k-means iterations", 4 * 25),
            (
                "opq:m=4,nbits=4,opq_iters=3",
                "k-means iterations",
                4 * (8 + 3 + 3 + 25),
            ),
            ("opq:m=2,nbits=4,opq_iters=0", "k-means iterations", 2 * 25),
            ("binary-itq", "itq iterations", 50),
        ];
        for (codec, unit, planned) in cases {
            let p = Stages::default();
            super::super::train(codec, &src, &TrainOptions::default(), &p).unwrap();
            let got = p.0.into_inner().unwrap();
            assert_eq!(
                got,
                vec![
                    ("rows sampled".to_string(), n as u64, n as u64),
                    (unit.to_string(), planned, planned)
                ],
                "{codec}"
            );
        }
    }

    #[test]
    fn fingerprint_tells_codebooks_apart() {
        let a = sample_book(false);
        let mut b = a.clone();
        b.centroids[3] += 1.0;
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }
}
