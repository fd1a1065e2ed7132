//! A bounded top-k by score, ties broken by the smaller id, so results are deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Entry {
    score: f32,
    id: u64,
}

impl Eq for Entry {}

impl Ord for Entry {
    /// "Greater" means "better": higher score, then lower id. The heap keeps the worst on
    /// top by reversing this.
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.id.cmp(&self.id))
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The best `k` (score, id) pairs seen.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<std::cmp::Reverse<Entry>>,
}

impl TopK {
    /// An empty top-k.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    /// Offers one candidate.
    pub fn push(&mut self, score: f32, id: u64) {
        let e = Entry { score, id };
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(e));
        } else if let Some(worst) = self.heap.peek()
            && e > worst.0
        {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(e));
        }
    }

    /// Takes in every candidate of `other`.
    pub fn merge(&mut self, other: TopK) {
        for e in other.heap {
            self.push(e.0.score, e.0.id);
        }
    }

    /// The ids of the best `k` (at most), best first.
    pub fn ids(&self, k: usize) -> Vec<u64> {
        let mut v: Vec<Entry> = self.heap.iter().map(|e| e.0).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().take(k).map(|e| e.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_with_deterministic_ties() {
        let mut t = TopK::new(3);
        for (s, id) in [(0.5, 9), (0.9, 1), (0.5, 2), (0.1, 3), (0.9, 0), (0.5, 1)] {
            t.push(s, id);
        }
        assert_eq!(t.ids(3), vec![0, 1, 1]);
        let mut a = TopK::new(2);
        a.push(1.0, 5);
        let mut b = TopK::new(2);
        b.push(2.0, 6);
        b.push(0.5, 7);
        a.merge(b);
        assert_eq!(a.ids(2), vec![6, 5]);
    }
}
