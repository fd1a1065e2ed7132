//! Shards: shard `K` of `N` compresses a contiguous run of whole chunks, so that the shards'
//! chunks are exactly the chunks a single run writes, and `merge` can join them by copying.
//!
//! Which run of chunks: shard `K` gets chunks `⌊K·C/N⌋ .. ⌊(K+1)·C/N⌋` of the `C` chunks
//! the whole input makes. `K` comes from `--shard K/N`, or with `--shard auto` from the
//! variables the engines set: `JOB_COMPLETION_INDEX` (Kubernetes Indexed Job, with
//! `--shards N`) or `SLURM_ARRAY_TASK_ID` and `SLURM_ARRAY_TASK_COUNT` (Slurm job array).

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::{Container, Header, Metadata};

/// Metadata key of a shard's `K/N`. Every key that is `shard` or starts with `shard_` names
/// the shard, and `merge` leaves it out.
pub const KEY: &str = "shard";
/// Metadata key of the shard's first row in the whole input.
pub const KEY_FIRST_ROW: &str = "shard_first_row";
/// Metadata key of the whole input's row count.
pub const KEY_TOTAL_ROWS: &str = "shard_total_rows";

/// True for the metadata keys that say which shard a file is.
pub fn is_shard_key(key: &str) -> bool {
    key == KEY || key.starts_with("shard_")
}

/// Shard `k` (from 0) of `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, from 0.
    pub k: u32,
    /// The number of shards.
    pub n: u32,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// Checks `k < n`.
    ///
    /// # Errors
    /// [`Error::Config`] otherwise.
    pub fn new(k: u32, n: u32) -> Result<Shard> {
        if n == 0 || k >= n {
            return Err(Error::Config(format!(
                "shard {k}/{n} is out of range: shards are numbered 0..N-1 and N must be at least 1"
            )));
        }
        Ok(Shard { k, n })
    }

    /// Parses `K/N`.
    ///
    /// # Errors
    /// [`Error::Config`] for anything else.
    pub fn parse(text: &str) -> Result<Shard> {
        let bad = || {
            Error::Config(format!(
                "--shard {text:?}: expected K/N (e.g. 0/4, shards numbered from 0) or auto"
            ))
        };
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        Shard::new(
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        )
    }

    /// Resolves `--shard` (`K/N` or `auto`) with `--shards`; `env` reads the environment.
    ///
    /// `auto` takes `K` from `JOB_COMPLETION_INDEX` (then `N` is `--shards`), else from
    /// `SLURM_ARRAY_TASK_ID` relative to `SLURM_ARRAY_TASK_MIN` and `SLURM_ARRAY_TASK_STEP`,
    /// with `N` from `SLURM_ARRAY_TASK_COUNT` (or `--shards`).
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable or flag that is missing or wrong.
    pub fn resolve(
        spec: &str,
        shards: Option<u32>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Shard> {
        if spec != "auto" {
            let s = Shard::parse(spec)?;
            if shards.is_some_and(|n| n != s.n) {
                return Err(Error::Config(format!(
                    "--shard {spec} and --shards {} disagree",
                    shards.unwrap_or(0)
                )));
            }
            return Ok(s);
        }
        let var = |name: &str| -> Result<Option<u32>> {
            env(name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| {
                    v.trim().parse::<u32>().map_err(|_| {
                        Error::Config(format!("--shard auto: {name}={v:?} is not a number"))
                    })
                })
                .transpose()
        };
        if let Some(k) = var("JOB_COMPLETION_INDEX")? {
            let n = shards.ok_or_else(|| {
                Error::Config(
                    "--shard auto under a Kubernetes Indexed Job (JOB_COMPLETION_INDEX is set) needs --shards N, N being the Job's completions"
                        .into(),
                )
            })?;
            return Shard::new(k, n);
        }
        if let Some(id) = var("SLURM_ARRAY_TASK_ID")? {
            let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = var("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            let n = match (shards, var("SLURM_ARRAY_TASK_COUNT")?) {
                (Some(n), _) | (None, Some(n)) => n,
                (None, None) => {
                    return Err(Error::Config(
                        "--shard auto: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not; pass --shards N".into(),
                    ));
                }
            };
            if id < min || (id - min) % step != 0 {
                return Err(Error::Config(format!(
                    "--shard auto: SLURM_ARRAY_TASK_ID={id} is not in the array (min {min}, step {step})"
                )));
            }
            return Shard::new((id - min) / step, n);
        }
        Err(Error::Config(
            "--shard auto: neither JOB_COMPLETION_INDEX (Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm array) is set; pass --shard K/N instead".into(),
        ))
    }

    /// The chunk numbers this shard compresses, out of `chunks` in all.
    pub fn chunk_range(&self, chunks: u64) -> Range<u64> {
        let at = |k: u32| (k as u128 * chunks as u128 / self.n as u128) as u64;
        at(self.k)..at(self.k + 1)
    }

    /// The chunks and the rows this shard compresses out of `rows` rows cut into chunks of
    /// `chunk_rows`.
    ///
    /// # Errors
    /// [`Error::Config`] if the shard would be empty (more shards than chunks).
    pub fn plan(&self, rows: u64, chunk_rows: u64) -> Result<(Range<u64>, Range<u64>)> {
        let chunks = rows.div_ceil(chunk_rows);
        let c = self.chunk_range(chunks);
        if c.is_empty() {
            return Err(Error::Config(format!(
                "shard {self} would be empty: the input has {rows} rows, only {chunks} chunks of {chunk_rows} rows; use at most {chunks} shards or a smaller --chunk-rows"
            )));
        }
        let r = c.start * chunk_rows..(c.end * chunk_rows).min(rows);
        Ok((c, r))
    }

    /// Replaces `{shard}` in `path` by `K`, zero-padded to the width of `N - 1`, so that a
    /// directory listing sorts the parts.
    pub fn expand_output(&self, path: &Path) -> PathBuf {
        let text = path.to_string_lossy();
        if !text.contains("{shard}") {
            return path.to_path_buf();
        }
        let width = (self.n - 1).max(1).to_string().len();
        PathBuf::from(text.replace("{shard}", &format!("{:0width$}", self.k)))
    }

    /// Records the shard in a container's metadata.
    pub fn record(&self, m: &mut Metadata, rows: &Range<u64>, total_rows: u64) {
        m.insert(KEY.into(), self.to_string());
        m.insert(KEY_FIRST_ROW.into(), rows.start.to_string());
        m.insert(KEY_TOTAL_ROWS.into(), total_rows.to_string());
    }
}

/// What a shard file says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardInfo {
    /// Which shard.
    pub shard: Shard,
    /// Its first row in the whole input.
    pub first_row: u64,
    /// The whole input's rows.
    pub total_rows: u64,
}

impl ShardInfo {
    /// Reads the shard keys of `m`; `None` if there are none (not a shard).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming `path` if they are present but malformed.
    pub fn from_metadata(path: &Path, m: &Metadata) -> Result<Option<ShardInfo>> {
        let Some(s) = m.get(KEY) else {
            return Ok(None);
        };
        let bad = |what: &str| Error::corrupt(path, format!("malformed shard metadata: {what}"));
        let shard = Shard::parse(s).map_err(|_| bad(KEY))?;
        let num = |k: &str| -> Result<u64> {
            m.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| bad(k))
        };
        Ok(Some(ShardInfo {
            shard,
            first_row: num(KEY_FIRST_ROW)?,
            total_rows: num(KEY_TOTAL_ROWS)?,
        }))
    }
}

/// Checks that `path` is already the complete output that `expected` describes: it opens
/// as a container with this very header (codec, shape, chunking, source and shard
/// metadata) and every chunk's crc32c checks. A retried shard uses this to exit at once.
///
/// # Errors
/// [`Error::Mismatch`] saying what differs, or what [`Container::open`] and
/// [`Container::chunk_payload`] report.
pub fn check_complete(path: &Path, expected: &Header) -> Result<()> {
    let c = Container::open(path)?;
    let got = c.header();
    if got != expected {
        let what = if got.metadata != expected.metadata {
            let key = expected
                .metadata
                .iter()
                .find(|(k, v)| got.metadata.get(*k) != Some(*v))
                .map(|(k, _)| k.clone())
                .or_else(|| {
                    got.metadata
                        .keys()
                        .find(|k| !expected.metadata.contains_key(*k))
                        .cloned()
                })
                .unwrap_or_default();
            format!("metadata {key:?}")
        } else {
            "codec, shape or chunking".into()
        };
        return Err(Error::Mismatch(format!(
            "{}: exists but was written from another input or with other settings ({what} differs)",
            path.display()
        )));
    }
    for i in 0..c.chunks().len() {
        c.chunk_payload(i)?;
        // Checked pages leave the resident set, which would otherwise grow to the whole
        // output (a retried shard or a `--resume` of a finished run).
        c.release_chunks(i..i + 1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shards_tile_the_chunks() {
        for chunks in [1u64, 4, 7, 100, 101] {
            for n in 1..=8u32 {
                let mut next = 0;
                for k in 0..n {
                    let r = Shard::new(k, n).unwrap().chunk_range(chunks);
                    assert_eq!(r.start, next);
                    next = r.end;
                }
                assert_eq!(next, chunks);
            }
        }
        let (c, r) = Shard::new(3, 4).unwrap().plan(1000, 64).unwrap();
        assert_eq!((c, r), (12..16, 768..1000));
        let e = Shard::new(0, 4)
            .unwrap()
            .plan(100, 64)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("shard 0/4 would be empty") && e.contains("at most 2 shards"),
            "{e}"
        );
    }

    #[test]
    fn resolves_from_the_engines_variables() {
        let k8s = [("JOB_COMPLETION_INDEX", "2")];
        assert_eq!(
            Shard::resolve("auto", Some(4), env(&k8s)).unwrap(),
            Shard { k: 2, n: 4 }
        );
        let e = Shard::resolve("auto", None, env(&k8s))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs --shards N"), "{e}");
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(
            Shard::resolve("auto", None, env(&slurm)).unwrap(),
            Shard { k: 3, n: 4 }
        );
        let stepped = [
            ("SLURM_ARRAY_TASK_ID", "15"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_STEP", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ];
        assert_eq!(
            Shard::resolve("auto", None, env(&stepped)).unwrap(),
            Shard { k: 2, n: 3 }
        );
        let e = Shard::resolve("auto", None, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("JOB_COMPLETION_INDEX") && e.contains("SLURM_ARRAY_TASK_ID"),
            "{e}"
        );
        assert_eq!(
            Shard::resolve("1/3", None, env(&[])).unwrap(),
            Shard { k: 1, n: 3 }
        );
        for bad in ["3/3", "x/2", "1", "1/0"] {
            assert!(Shard::resolve(bad, None, env(&[])).is_err(), "{bad}");
        }
        assert!(Shard::resolve("1/3", Some(4), env(&[])).is_err());
    }

    #[test]
    fn output_placeholder_is_padded() {
        let s = Shard::new(3, 12).unwrap();
        assert_eq!(
            s.expand_output(Path::new("o/part-{shard}.vectro")),
            Path::new("o/part-03.vectro")
        );
        assert_eq!(
            s.expand_output(Path::new("o/x.vectro")),
            Path::new("o/x.vectro")
        );
    }
}
