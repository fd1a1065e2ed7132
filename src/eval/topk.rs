//! A bounded top-k by score, ties broken by the smaller id, so results are deterministic
//! whatever order candidates arrive in (and so whatever the thread count or chunking).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// One candidate: its score (greater is better) and its row id.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// Greater is closer.
    pub score: f32,
    /// Row id.
    pub id: u64,
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
    /// The worst kept score once full (`-inf` before): most candidates of a scan lose to
    /// it, and a float compare rejects them without touching the heap.
    floor: f32,
}

impl TopK {
    /// An empty top-k.
    pub fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
            floor: f32::NEG_INFINITY,
        }
    }

    /// Offers one candidate.
    #[inline]
    pub fn push(&mut self, score: f32, id: u64) {
        // Strictly below the floor can never enter; equal scores fall through to the id
        // tie-break.
        if score < self.floor || self.k == 0 {
            return;
        }
        self.push_slow(Entry { score, id });
    }

    fn push_slow(&mut self, e: Entry) {
        if self.heap.len() < self.k {
            self.heap.push(std::cmp::Reverse(e));
        } else if let Some(worst) = self.heap.peek()
            && e > worst.0
        {
            self.heap.pop();
            self.heap.push(std::cmp::Reverse(e));
        }
        if self.heap.len() == self.k {
            self.floor = self.heap.peek().map_or(f32::NEG_INFINITY, |w| w.0.score);
        }
    }

    /// Takes in every candidate of `other`.
    pub fn merge(&mut self, other: TopK) {
        for e in other.heap {
            self.push(e.0.score, e.0.id);
        }
    }

    /// The kept entries, best first.
    pub fn sorted(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = self.heap.iter().map(|e| e.0).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v
    }

    /// The ids of the best `k` (at most), best first.
    pub fn ids(&self, k: usize) -> Vec<u64> {
        self.sorted().into_iter().take(k).map(|e| e.id).collect()
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

    #[test]
    fn any_arrival_order_gives_the_same_result() {
        let cands: Vec<(f32, u64)> = (0..200u64).map(|i| (((i * 37) % 23) as f32, i)).collect();
        let mut fwd = TopK::new(7);
        cands.iter().for_each(|&(s, i)| fwd.push(s, i));
        let mut rev = TopK::new(7);
        cands.iter().rev().for_each(|&(s, i)| rev.push(s, i));
        let mut split = TopK::new(7);
        let mut other = TopK::new(7);
        for (n, &(s, i)) in cands.iter().enumerate() {
            if n % 2 == 0 {
                split.push(s, i)
            } else {
                other.push(s, i)
            }
        }
        split.merge(other);
        let mut naive = cands.clone();
        naive.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let want: Vec<u64> = naive.iter().take(7).map(|c| c.1).collect();
        assert_eq!(fwd.ids(7), want);
        assert_eq!(rev.ids(7), want);
        assert_eq!(split.ids(7), want);
    }
}
