//! The body of the `sandbox_request` fuzz target in `fuzz/`, so that `cargo fuzz` and the
//! ordinary test suite run the same code: any bytes as one HTTP request (method, URL with its
//! query, headers) handled by the sandbox on the bundled real samples must get an answer,
//! never a panic. The tests below feed it the seed corpus (`fuzz/corpus/sandbox_request/`) and a
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
        let data = Dataset::load(&config.data).unwrap_or_default();
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::sandbox_request;

    #[test]
    fn the_seed_corpus() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/sandbox_request");
        let mut n = 0;
        for e in std::fs::read_dir(dir).expect("corpus").flatten() {
            sandbox_request(&std::fs::read(e.path()).expect("seed"));
            n += 1;
        }
        assert!(n >= 8, "{n} seeds");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_requests(
            method in "(GET|POST|DELETE|HEAD|PUT|[A-Z]{0,6})",
            path in "(/api/v[0-9]/(Group/(all|runout|[a-z0-9]{0,4})|Patient|jobs|metadata)(/\\$export)?|/data/[0-9a-z./]{0,20}|/auth/token|/api/v2/jobs/[0-9]{0,3}|[ -~]{0,30})",
            query in "(\\?(_type=[A-Za-z,%]{0,30}|_since=[0-9TZ:+%-]{0,30}|_typeFilter=[ -~]{0,20}|[ -~]{0,20})(&[ -~]{0,15})?)?",
            auth in "(Bearer fuzz-token|Bearer fuzz-token|Bearer [ -~]{0,40}|Basic [A-Za-z0-9+/=]{0,40}|[ -~]{0,20})",
            range in "(bytes=[0-9]{0,6}-[0-9]{0,6}|bytes=-[0-9]{0,4}|[ -~]{0,12})",
        ) {
            let request = format!(
                "{method}\n{path}{query}\nAuthorization: {auth}\nRange: {range}\nAccept: application/fhir+json\nPrefer: respond-async"
            );
            sandbox_request(request.as_bytes());
        }

        #[test]
        fn any_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            sandbox_request(&data);
        }
    }
}
