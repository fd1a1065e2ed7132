//! A bounded top-k by score, ties broken by the smaller id, so results are deterministic
//! whatever order candidates arrive in (and so whatever the thread count or chunking).

use std::cmp::Ordering;

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
    /// "Greater" means "better": higher score, then lower id.
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
///
/// Candidates collect in a buffer of up to `2k`; when it fills, a selection keeps the best
/// `k` and raises the floor to the worst kept score. That is amortised O(1) per accepted
/// candidate (a heap costs O(log k)), and most candidates of a long scan fall below the
/// floor and cost one float compare.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    buf: Vec<Entry>,
    /// No candidate scoring strictly below this can be among the best `k`.
    floor: f32,
    /// Nothing was pushed since the last selection: it would change nothing. A search
    /// merges each chunk's few candidates into every query's top-k and asks for its floor
    /// after each chunk; most chunks bring none.
    clean: bool,
    /// `k` were kept at a selection (and so ever since): the floor is a kept score.
    full: bool,
}

impl TopK {
    /// An empty top-k.
    pub fn new(k: usize) -> TopK {
        TopK::with_floor(k, f32::NEG_INFINITY)
    }

    /// An empty top-k that ignores scores strictly below `floor`: pass the worst score of
    /// a full top-k over other rows of the same search, which those candidates can never
    /// beat.
    pub fn with_floor(k: usize, floor: f32) -> TopK {
        TopK {
            k,
            buf: Vec::new(),
            floor,
            clean: false,
            full: false,
        }
    }

    /// Offers one candidate.
    #[inline]
    pub fn push(&mut self, score: f32, id: u64) {
        // Strictly below the floor can never enter; equal scores are kept for the id
        // tie-break at the next selection.
        if score < self.floor || self.k == 0 {
            return;
        }
        let cap = 2 * self.k.max(16);
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(cap);
        }
        self.buf.push(Entry { score, id });
        self.clean = false;
        if self.buf.len() >= cap {
            self.compact();
        }
    }

    /// No candidate scoring strictly below this can enter ([`TopK::push`] drops it): a
    /// caller with many candidates can test them against it before pushing any.
    #[inline]
    pub(crate) fn floor(&self) -> f32 {
        self.floor
    }

    /// How many candidates are kept.
    #[inline]
    pub(crate) fn k(&self) -> usize {
        self.k
    }

    /// Offers candidates already selected (at most `k` of them, as
    /// [`smallest_by_count`] selects), holding exactly their room rather than the `2k` of a
    /// top-k pushed into one at a time.
    pub(crate) fn extend_selected(&mut self, cands: impl ExactSizeIterator<Item = (f32, u64)>) {
        self.buf.reserve_exact(cands.len());
        for (score, id) in cands {
            self.push(score, id);
        }
    }

    /// The best `k` (at most), in no particular order.
    pub(crate) fn best_unordered(&mut self) -> &[Entry] {
        self.compact();
        &self.buf
    }

    /// Raises the floor to `floor` (never lowers it): for a caller that knows at least `k`
    /// candidates still to be pushed score `floor` or more, so none below it can be among
    /// the best `k`.
    #[inline]
    pub(crate) fn raise_floor(&mut self, floor: f32) {
        self.floor = self.floor.max(floor);
    }

    /// Keeps the best `k` of the buffer and raises the floor.
    fn compact(&mut self) {
        if self.clean {
            return;
        }
        self.clean = true;
        if self.buf.len() > self.k {
            self.buf.select_nth_unstable_by(self.k - 1, |a, b| b.cmp(a));
            self.buf.truncate(self.k);
        }
        if self.buf.len() == self.k {
            self.full = self.k > 0;
            let worst = self.buf.iter().min().map_or(f32::NEG_INFINITY, |e| e.score);
            self.floor = self.floor.max(worst);
        }
    }

    /// Drops all but the best `k` and frees the spare buffer: for a top-k that is kept
    /// around (a chunk's, waiting to be merged) rather than pushed into.
    pub fn shrink(&mut self) {
        self.compact();
        self.buf.shrink_to_fit();
    }

    /// A floor for the other rows of the same search once `k` are kept, else `None`: the
    /// worst kept score as of the last selection, which runs only once `k / 8` candidates
    /// (at least one) have come since. Lower than [`TopK::full_floor`] by at most those,
    /// so still a floor; for a caller that asks after every small merge (a search, after
    /// each chunk), where selecting `k` entries each time would cost more than the few
    /// rows a slightly lower floor lets through.
    pub fn lazy_floor(&mut self) -> Option<f32> {
        if !(self.full && self.buf.len() < self.k + (self.k / 8).max(1)) {
            self.compact();
        }
        self.full.then_some(self.floor)
    }

    /// The worst kept score once `k` are kept, else `None`.
    pub fn full_floor(&mut self) -> Option<f32> {
        self.compact();
        (self.buf.len() == self.k && self.k > 0).then_some(self.floor)
    }

    /// Takes in every candidate of `other`.
    pub fn merge(&mut self, other: TopK) {
        for e in other.buf {
            self.push(e.score, e.id);
        }
    }

    /// The kept entries (at most `k`), best first.
    pub fn sorted(&self) -> Vec<Entry> {
        let mut v = self.buf.clone();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.truncate(self.k);
        v
    }

    /// The ids of the best `k` (at most), best first.
    pub fn ids(&self, k: usize) -> Vec<u64> {
        self.sorted().into_iter().take(k).map(|e| e.id).collect()
    }
}

/// Scratch of [`smallest_by_count`], reused across its calls (one per query of a chunk):
/// a histogram of the admitted values and the admitted positions.
#[derive(Debug, Default)]
pub(crate) struct CountScratch {
    hist: Vec<u32>,
    /// Admitted positions; never shortened, so reuse writes no fill.
    cand: Vec<u32>,
}

/// The positions of the `keep` smallest values of `dist` that are at most `max`, among the
/// positions `allow` admits, into `out` in increasing position.
///
/// For small integer scores (Hamming distances, `0..=bits`): one branch-free pass gathers
/// the positions with values at most `max` (once a search has a floor, a small share of
/// the rows), then a histogram of their values finds the `keep`-th smallest value `t`, and
/// a pass over the gathered positions takes every one below `t` and the lowest positions
/// holding `t` until `keep` are taken. So ties at the `keep`-th value go to the lower
/// positions, the rule [`TopK`] applies to equal scores (the smaller id wins) when ids
/// increase with positions: the selection is the one a [`TopK`] of `keep` gives for
/// scores `-dist`, in O(len + max) instead of a selection over every candidate.
///
/// # Panics
/// If `dist` has `u32::MAX` or more entries.
pub(crate) fn smallest_by_count(
    dist: &[u32],
    max: u32,
    keep: usize,
    allow: impl Fn(usize) -> bool,
    scratch: &mut CountScratch,
    out: &mut Vec<usize>,
) {
    out.clear();
    if keep == 0 {
        return;
    }
    assert!(
        u32::try_from(dist.len()).is_ok(),
        "smallest_by_count: too many values"
    );
    let CountScratch { hist, cand } = scratch;
    if cand.len() < dist.len() {
        cand.resize(dist.len(), 0);
    }
    // Every position is written; the count moves on only for an admitted value, so the
    // first `m` entries are the admitted positions in increasing order.
    let mut m = 0usize;
    for (r, &h) in dist.iter().enumerate() {
        cand[m] = r as u32;
        m += usize::from(h <= max);
    }
    let admitted = cand[..m].iter().copied().filter(|&r| allow(r as usize));
    hist.clear();
    hist.resize(max as usize + 1, 0);
    let mut n_allowed = 0usize;
    for r in admitted.clone() {
        hist[dist[r as usize] as usize] += 1;
        n_allowed += 1;
    }
    if n_allowed <= keep {
        // At most `keep` admitted: all of them.
        out.extend(admitted.map(|r| r as usize));
        return;
    }
    let mut below = 0usize;
    let mut cut = (max, keep);
    for (h, &c) in hist.iter().enumerate() {
        if below + c as usize >= keep {
            cut = (h as u32, keep - below);
            break;
        }
        below += c as usize;
    }
    let (t, mut ties) = cut;
    for r in admitted {
        let h = dist[r as usize];
        if h < t {
            out.push(r as usize);
        } else if h == t && ties > 0 {
            out.push(r as usize);
            ties -= 1;
        }
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

    #[test]
    fn a_floor_drops_only_candidates_that_cannot_win() {
        let cands: Vec<(f32, u64)> = (0..500u64).map(|i| (((i * 7919) % 97) as f32, i)).collect();
        let mut all = TopK::new(20);
        cands.iter().for_each(|&(s, i)| all.push(s, i));
        let mut first = TopK::new(20);
        cands[..250].iter().for_each(|&(s, i)| first.push(s, i));
        let floor = first.full_floor().unwrap();
        let mut second = TopK::with_floor(20, floor);
        cands[250..].iter().for_each(|&(s, i)| second.push(s, i));
        first.merge(second);
        assert_eq!(first.ids(20), all.ids(20));
        assert!(TopK::new(3).full_floor().is_none());
        assert!(TopK::new(3).lazy_floor().is_none());
    }

    /// The lazy floor never passes the exact floor, is the exact one whenever it has
    /// just selected, and holds fewer than `k / 8` (at least one) candidates beyond `k`
    /// unselected.
    #[test]
    fn the_lazy_floor_lags_by_fewer_than_k_over_8_candidates() {
        for k in [1usize, 7, 16, 100] {
            let lag = (k / 8).max(1);
            let mut lazy = TopK::new(k);
            let mut exact = TopK::new(k);
            let mut selected = 0;
            for i in 0..20 * k as u64 {
                let s = ((i * 7919) % 1009) as f32;
                lazy.push(s, i);
                exact.push(s, i);
                let (l, e) = (lazy.lazy_floor(), exact.full_floor());
                assert_eq!(l.is_some(), e.is_some(), "k={k} i={i}");
                assert!(lazy.buf.len() < k + lag, "k={k} i={i}");
                if let (Some(l), Some(e)) = (l, e) {
                    assert!(l <= e, "k={k} i={i}: {l} > {e}");
                    if lazy.buf.len() == k {
                        assert_eq!(l, e, "k={k} i={i}");
                        selected += 1;
                    }
                }
            }
            assert!(selected > 1, "k={k}");
            assert_eq!(lazy.ids(k), exact.ids(k));
        }
    }

    /// The counting selection is the top-k of `-dist` with its id tie-break, for every
    /// `keep` (below, at and above the admitted count), heavy ties at the cut, a `max`
    /// below the largest value and a filter.
    #[test]
    fn counting_selection_is_the_top_k_of_the_negated_values() {
        let mut rng = crate::test_rng::Rng(0x0c07_e5e1);
        let (mut scratch, mut out) = (CountScratch::default(), Vec::new());
        // Lengths up and down, so the scratch is reused longer and shorter than a call.
        for len in [0usize, 1, 7, 300, 2000, 5, 301] {
            // Few distinct values: many ties at any cut.
            let dist: Vec<u32> = (0..len).map(|_| rng.below(9) as u32 + 3).collect();
            for keep in [0usize, 1, 5, 64, 299, 300, 301, 5000] {
                for (max, filt) in [(20u32, false), (11, false), (8, true), (2, false)] {
                    let allow = |r: usize| !filt || r % 3 != 1;
                    smallest_by_count(&dist, max, keep, allow, &mut scratch, &mut out);
                    let mut top = TopK::new(keep);
                    for (r, &h) in dist.iter().enumerate() {
                        if h <= max && allow(r) {
                            top.push(-(h as f32), r as u64);
                        }
                    }
                    let mut want = top.ids(keep);
                    want.sort_unstable();
                    let got: Vec<u64> = out.iter().map(|&r| r as u64).collect();
                    assert_eq!(got, want, "len {len} keep {keep} max {max} filter {filt}");
                    assert!(got.windows(2).all(|w| w[0] < w[1]));
                }
            }
        }
    }
}
