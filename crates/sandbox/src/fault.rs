//! Deterministic fault decisions.
//!
//! A decision depends only on the seed, the request's route key (method and path) and how many
//! times that key was requested before, so the same client behaviour meets the same faults
//! whatever the interleaving of parallel requests.

use std::collections::HashMap;

/// The faults the sandbox can inject. Shares are fractions in `0.0..=1.0` of the requests they
/// apply to; they are drawn from one uniform number per request, in the order listed here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Share of requests (every route) answered 500 or 503 (`Retry-After`).
    pub server_errors: f64,
    /// Share of requests (every route but `/auth/token`) answered 429 with `Retry-After`.
    pub throttle: f64,
    /// Share of `/data` downloads answered with a transient 404.
    pub data_not_found: f64,
    /// Share of `/data` downloads whose connection is dropped half-way through the body.
    pub drops: f64,
    /// Tokens expire early: after this many authenticated requests, whatever `expires_in` said.
    pub token_max_uses: Option<u32>,
    /// Every export job ends failed (status 500 with an OperationOutcome).
    pub fail_jobs: bool,
}

/// What a request meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    ServerError { status: u16 },
    Throttle,
    NotFound,
    Drop,
}

/// A key never faults more than this many times in a row, so a client that retries a few times
/// always gets through.
pub(crate) const MAX_CONSECUTIVE: u32 = 3;

#[derive(Debug, Default)]
pub(crate) struct FaultState {
    /// Per route key: requests seen, current run of consecutive faults.
    seen: HashMap<String, (u64, u32)>,
}

/// SplitMix64: a small, well-mixed hash step.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a over bytes, then mixed.
pub(crate) fn hash_str(seed: u64, s: &str) -> u64 {
    mix(claimline_model::Fnv1a64::with_seed(seed)
        .write(s.as_bytes())
        .finish())
}

impl FaultState {
    /// Decides the fault for one request to `key`.
    pub(crate) fn decide(
        &mut self,
        faults: &Faults,
        seed: u64,
        key: &str,
        is_data: bool,
        is_token: bool,
    ) -> Fault {
        let entry = self.seen.entry(key.to_owned()).or_insert((0, 0));
        let n = entry.0;
        entry.0 += 1;
        let draw = mix(hash_str(seed, key) ^ mix(n));
        // 53 random bits into [0, 1).
        let u = (draw >> 11) as f64 / (1u64 << 53) as f64;
        let mut edge = faults.server_errors;
        let fault = if u < edge {
            let status = if draw & 1 == 0 { 500 } else { 503 };
            Fault::ServerError { status }
        } else if !is_token
            && u < {
                edge += faults.throttle;
                edge
            }
        {
            Fault::Throttle
        } else if is_data
            && u < {
                edge += faults.data_not_found;
                edge
            }
        {
            Fault::NotFound
        } else if is_data
            && u < {
                edge += faults.drops;
                edge
            }
        {
            Fault::Drop
        } else {
            Fault::None
        };
        if fault == Fault::None {
            entry.1 = 0;
            return Fault::None;
        }
        if entry.1 >= MAX_CONSECUTIVE {
            entry.1 = 0;
            return Fault::None;
        }
        entry.1 += 1;
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_decisions_and_runs_are_capped() {
        let faults = Faults {
            server_errors: 1.0,
            ..Faults::default()
        };
        let mut a = FaultState::default();
        let got: Vec<Fault> = (0..8)
            .map(|_| a.decide(&faults, 7, "GET /x", false, false))
            .collect();
        // Always-fault is cut after MAX_CONSECUTIVE.
        assert_eq!(got[3], Fault::None);
        assert!(matches!(got[0], Fault::ServerError { .. }));
        let mut b = FaultState::default();
        let again: Vec<Fault> = (0..8)
            .map(|_| b.decide(&faults, 7, "GET /x", false, false))
            .collect();
        assert_eq!(got, again);
    }

    #[test]
    fn shares_are_roughly_respected() {
        let faults = Faults {
            drops: 0.25,
            ..Faults::default()
        };
        let mut s = FaultState::default();
        let drops = (0..4000)
            .filter(|i| s.decide(&faults, 1, &format!("GET /data/{i}"), true, false) == Fault::Drop)
            .count();
        assert!((800..1200).contains(&drops), "{drops}");
        let none = (0..100)
            .filter(|i| s.decide(&faults, 1, &format!("GET /api/{i}"), false, false) != Fault::None)
            .count();
        assert_eq!(none, 0, "drops apply to data only");
    }
}
