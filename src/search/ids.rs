//! Rows and the ids a search reports: the one place that maps between them.
//!
//! A container stores no ids of its own yet, so a row's id is its row number. When the
//! format gains stored ids, [`IdMap::of`] reads them and these two functions look them
//! up; nothing else in `search` knows the difference.

use std::path::Path;

use crate::error::{Error, Result};
use crate::format::Container;

/// The row ↔ id mapping of one container.
#[derive(Debug, Clone)]
pub struct IdMap {
    rows: u64,
}

impl IdMap {
    /// The mapping of `c`.
    pub fn of(c: &Container) -> IdMap {
        IdMap { rows: c.rows() }
    }

    /// The id of row `row`.
    #[inline]
    pub fn id(&self, row: u64) -> u64 {
        row
    }

    /// The rows of `ids`, in the same order.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first id the container (`path`) does not have.
    pub fn rows_of(&self, ids: &[u64], path: &Path) -> Result<Vec<u64>> {
        if let Some(&bad) = ids.iter().find(|&&id| id >= self.rows) {
            return Err(Error::Config(format!(
                "filter id {bad} is not in {} (ids 0..{})",
                path.display(),
                self.rows
            )));
        }
        Ok(ids.to_vec())
    }
}
