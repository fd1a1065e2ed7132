//! The seeded xorshift64 generator the unit tests draw their data from: tiny, fast, and the
//! same sequence everywhere, so a failing case can be replayed from its seed.

/// xorshift64 (13, 7, 17). The seed must not be 0.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub(crate) fn sign(&mut self) -> f32 {
        if self.below(2) == 0 { 1.0 } else { -1.0 }
    }

    /// Uniform in [-0.5, 0.5), from the top 24 bits.
    pub(crate) fn centred(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }
}
