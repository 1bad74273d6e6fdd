//! One small, stable, non-cryptographic hash (FNV-1a, 64 bits) for names that must not change
//! between releases: the views' hash in the run records, a client id kept only as a hash, the
//! sandbox's seeded decisions. Never for secrets' protection or for data integrity (downloads
//! are checked with SHA-256).

/// FNV-1a, 64 bits.
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a64(u64);

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;

    /// The hash of nothing.
    pub fn new() -> Self {
        Fnv1a64(Self::OFFSET)
    }

    /// A hash whose start is mixed with `seed` (different seeds, unrelated streams).
    pub fn with_seed(seed: u64) -> Self {
        Fnv1a64(Self::OFFSET ^ seed)
    }

    /// Adds `bytes`.
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
        self
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }

    /// The hash so far as 16 hex digits.
    pub fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Fnv1a64;

    #[test]
    fn known_values() {
        assert_eq!(Fnv1a64::new().hex(), "cbf29ce484222325");
        assert_eq!(Fnv1a64::new().write(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
