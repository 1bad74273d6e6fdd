//! The body of the `sandbox_request` fuzz target in `fuzz/`, so that `cargo fuzz` and the
//! ordinary test suite run the same code: any bytes as one HTTP request (method, URL with its
//! query, headers) handled by the sandbox on the bundled real samples must get an answer,
//! never a panic. `tests/fuzz.rs` feeds it the seed corpus (`fuzz/corpus/sandbox_request/`) and a
//! few thousand generated requests. Not an API.

use std::sync::OnceLock;

use crate::SandboxConfig;
use crate::clock::Clock;
use crate::data::Dataset;
use crate::server::{Incoming, Shared};

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sample-data/real/r4");
        let mut config = SandboxConfig::new(dir);
        config.client_id = "fuzz".into();
        config.client_secret = "fuzz-secret".into();
        // Without the sample data the data routes would never be reached.
        let data = Dataset::load(&config.data).expect("the sample data loads");
        let shared = Shared::new(config, data, Clock::new());
        shared.grant_token(TOKEN);
        shared
    })
}

/// A bearer token the sandbox accepts, so requests reach the routes behind authorization.
pub const TOKEN: &str = "fuzz-token";

/// `data` as a request: the first line is the method, the second the URL, every further line a
/// `Name: value` header.
pub fn sandbox_request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let method = lines.next().unwrap_or_default().trim();
    let url = lines.next().unwrap_or_default().trim();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let reply = shared().handle(&Incoming {
        method,
        url,
        headers: &headers,
    });
    assert!((100..600).contains(&reply.status()), "an HTTP status");
}
