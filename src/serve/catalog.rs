//! The containers of the served directory: found by a scan, opened once, verified once in
//! the background, and opened again when their file changes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::format::{Container, Id, IdColumn, IdKind, verify};

/// The extension of the files served.
pub const EXTENSION: &str = "vectro";

/// Containers with more rows than this are not indexed by id in memory: an id lookup
/// scans their ids, a chunk at a time.
const MAX_INDEXED_ROWS: u64 = 50_000_000;

/// Where a container's background verification stands.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum VerifyState {
    /// Not finished yet.
    Pending,
    /// Every checksum matched.
    Ok {
        /// Chunks checked.
        chunks: u64,
        /// Seconds the pass took.
        seconds: f64,
    },
    /// The file is damaged (or could not be read): never served.
    Failed {
        /// What is wrong: the first problem found.
        reason: String,
        /// Problems found in all.
        problems: u64,
    },
}

/// One container file of the directory.
#[derive(Debug)]
pub struct Entry {
    /// Its name in URLs: the file name without `.vectro`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    stamp: (u64, Option<SystemTime>),
    /// The open container, or why it could not be opened.
    pub container: std::result::Result<Arc<Container>, String>,
    verify: Mutex<VerifyState>,
    ids: OnceLock<IdIndex>,
}

/// Ids to rows, for a container with stored ids.
#[derive(Debug)]
enum IdIndex {
    U64(HashMap<u64, u64>),
    Str(HashMap<String, u64>),
    /// Too many rows to index: lookups scan.
    Scan,
}

/// An id asked for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IdKey {
    /// An integer id (or a row's global number, without stored ids).
    U64(u64),
    /// A string id.
    Str(String),
}

impl Entry {
    /// The verification state.
    pub fn verify_state(&self) -> VerifyState {
        self.verify
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Marks the container failed: a read found it damaged.
    pub fn mark_failed(&self, reason: &str) {
        self.set_verify(VerifyState::Failed {
            reason: reason.to_string(),
            problems: 1,
        });
    }

    fn set_verify(&self, s: VerifyState) {
        *self.verify.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// The file name of the report beside the container, `NAME.report.html` (or
    /// `NAME.vectro.report.html`), if there is one.
    pub fn report(&self) -> Option<PathBuf> {
        let dir = self.path.parent()?;
        [
            format!("{}.report.html", self.name),
            format!("{}.{EXTENSION}.report.html", self.name),
        ]
        .into_iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
    }

    /// The rows carrying `keys` (the first row carrying each), `None` for an id the
    /// container does not have. Blocking: builds the id index on first use.
    pub fn rows_of(&self, c: &Container, keys: &[IdKey]) -> crate::Result<Vec<Option<u64>>> {
        if c.id_kind() == IdKind::None {
            let (base, n) = (c.first_row(), c.rows());
            return Ok(keys
                .iter()
                .map(|k| match k {
                    IdKey::U64(v) if (base..base + n).contains(v) => Some(v - base),
                    _ => None,
                })
                .collect());
        }
        let index = match self.ids.get() {
            Some(i) => i,
            None => {
                let built = build_index(c)?;
                self.ids.get_or_init(|| built)
            }
        };
        match index {
            IdIndex::U64(m) => Ok(keys
                .iter()
                .map(|k| match k {
                    IdKey::U64(v) => m.get(v).copied(),
                    IdKey::Str(_) => None,
                })
                .collect()),
            IdIndex::Str(m) => Ok(keys
                .iter()
                .map(|k| match k {
                    IdKey::Str(s) => m.get(s).copied(),
                    IdKey::U64(_) => None,
                })
                .collect()),
            IdIndex::Scan => scan_ids(c, keys),
        }
    }
}

fn build_index(c: &Container) -> crate::Result<IdIndex> {
    if c.rows() > MAX_INDEXED_ROWS {
        return Ok(IdIndex::Scan);
    }
    let mut u = HashMap::new();
    let mut s = HashMap::new();
    for (ci, e) in c.chunks().iter().enumerate() {
        match c.ids(e.first_row..e.first_row + e.rows)? {
            IdColumn::U64(v) => {
                for (j, id) in v.into_iter().enumerate() {
                    u.entry(id).or_insert(e.first_row + j as u64);
                }
            }
            IdColumn::Str(v) => {
                for (j, id) in v.into_iter().enumerate() {
                    s.entry(id).or_insert(e.first_row + j as u64);
                }
            }
        }
        c.release_chunks(ci..ci + 1);
    }
    Ok(if c.id_kind() == IdKind::Str {
        IdIndex::Str(s)
    } else {
        IdIndex::U64(u)
    })
}

fn scan_ids(c: &Container, keys: &[IdKey]) -> crate::Result<Vec<Option<u64>>> {
    let mut out = vec![None; keys.len()];
    for (ci, e) in c.chunks().iter().enumerate() {
        let ids = c.ids(e.first_row..e.first_row + e.rows)?;
        for j in 0..ids.len() {
            let id = ids.get(j);
            for (k, key) in keys.iter().enumerate() {
                let hit = match (key, id) {
                    (IdKey::U64(a), Id::U64(b)) => *a == b,
                    (IdKey::Str(a), Id::Str(b)) => a == b,
                    _ => false,
                };
                if hit && out[k].is_none() {
                    out[k] = Some(e.first_row + j as u64);
                }
            }
        }
        c.release_chunks(ci..ci + 1);
        if out.iter().all(Option::is_some) {
            break;
        }
    }
    Ok(out)
}

/// The directory's containers, by name.
#[derive(Debug)]
pub struct Catalog {
    dir: PathBuf,
    entries: RwLock<BTreeMap<String, Arc<Entry>>>,
    /// One verification at a time: they read whole files.
    verifying: tokio::sync::Semaphore,
}

impl Catalog {
    /// An empty catalog of `dir`; [`Catalog::rescan`] fills it.
    pub fn new(dir: PathBuf) -> Self {
        Catalog {
            dir,
            entries: RwLock::new(BTreeMap::new()),
            verifying: tokio::sync::Semaphore::new(1),
        }
    }

    /// The directory served.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every entry, by name.
    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<Entry>> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Looks at the directory again (on the blocking pool): opens new and changed files,
    /// forgets removed ones, and starts verifying what was opened.
    pub async fn rescan(self: &Arc<Self>) {
        let me = self.clone();
        let fresh = tokio::task::spawn_blocking(move || me.scan_blocking())
            .await
            .unwrap_or_default();
        for e in fresh {
            let me = self.clone();
            tokio::spawn(async move {
                let Ok(_permit) = me.verifying.acquire().await else {
                    return;
                };
                let e2 = e.clone();
                let state = tokio::task::spawn_blocking(move || verify_entry(&e2))
                    .await
                    .unwrap_or_else(|j| VerifyState::Failed {
                        reason: format!("internal error verifying: {j}"),
                        problems: 1,
                    });
                e.set_verify(state);
            });
        }
    }

    fn scan_blocking(&self) -> Vec<Arc<Entry>> {
        let mut found = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for de in rd.flatten() {
                let path = de.path();
                if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else {
                    continue;
                };
                if !meta.is_file() {
                    continue;
                }
                let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
                    continue;
                };
                found.insert(name.to_string(), (path, (meta.len(), meta.modified().ok())));
            }
        }
        let old = self
            .entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut next = BTreeMap::new();
        let mut fresh = Vec::new();
        for (name, (path, stamp)) in found {
            if let Some(e) = old
                .get(&name)
                .filter(|e| e.stamp == stamp && e.path == path)
            {
                next.insert(name, e.clone());
                continue;
            }
            let container = Container::open(&path)
                .map(Arc::new)
                .map_err(|e| e.to_string());
            let verify = match &container {
                Ok(_) => VerifyState::Pending,
                Err(msg) => VerifyState::Failed {
                    reason: msg.clone(),
                    problems: 1,
                },
            };
            let e = Arc::new(Entry {
                name: name.clone(),
                path,
                stamp,
                container,
                verify: Mutex::new(verify),
                ids: OnceLock::new(),
            });
            if e.container.is_ok() {
                fresh.push(e.clone());
            }
            next.insert(name, e);
        }
        *self.entries.write().unwrap_or_else(|p| p.into_inner()) = next;
        fresh
    }
}

fn verify_entry(e: &Entry) -> VerifyState {
    let t = Instant::now();
    match verify(&e.path) {
        Ok(r) if r.ok => {
            // `verify` read the file on its own; touch every chunk through the open
            // container too, so that the container remembers each chunk's crc as checked
            // and the first reads of a chunk do not hash the whole of it.
            if let Ok(c) = &e.container
                && let Err(err) = remember_checked(c)
            {
                return VerifyState::Failed {
                    reason: err.to_string(),
                    problems: 1,
                };
            }
            VerifyState::Ok {
                chunks: r.chunks_ok,
                seconds: t.elapsed().as_secs_f64(),
            }
        }
        Ok(r) => VerifyState::Failed {
            reason: r.problems.first().map_or_else(
                || "damaged".into(),
                |p| match (p.chunk, p.rows) {
                    (Some(c), Some([a, b])) => format!("chunk {c} (rows {a}..{b}): {}", p.message),
                    _ => format!("{}: {}", p.part, p.message),
                },
            ),
            problems: r.problem_count,
        },
        Err(err) => VerifyState::Failed {
            reason: err.to_string(),
            problems: 1,
        },
    }
}

/// Checks every chunk's crc through `c` (which remembers it), releasing each chunk's pages
/// after it, as a streaming pass does.
fn remember_checked(c: &Container) -> crate::Result<()> {
    for i in 0..c.chunks().len() {
        c.chunk_stored(i)?;
        c.release_chunks(i..i + 1);
    }
    c.check_unchanged()
}
