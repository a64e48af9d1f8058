//! Ids for requests that bring none: UUIDs of version 4's layout made from a per-process random
//! key and a counter, so an id costs no system call (tower-http's `MakeRequestUuid` asks the
//! kernel for 16 random bytes per request). Unique within the process by construction, and
//! across processes as far as their keys differ.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, Request};
use tower_http::request_id::{MakeRequestId, RequestId};
use uuid::Uuid;

/// Makes `x-request-id` values for requests without one.
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeCountedUuid;

impl MakeRequestId for MakeCountedUuid {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&next_id().to_string())
            .ok()
            .map(RequestId::new)
    }
}

static KEY: LazyLock<(u64, u64)> = LazyLock::new(|| Uuid::new_v4().as_u64_pair());
static COUNTER: AtomicU64 = AtomicU64::new(0);

const LOW_62: u64 = (1 << 62) - 1;

/// The next id: the key's high half (its version bits set), then the counter mixed with the
/// key by a bijection of 62 bits (the variant's two bits stay free).
pub fn next_id() -> Uuid {
    let (high, low) = *KEY;
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = mix_62((count ^ low) & LOW_62);
    let bytes = ((u128::from(high) << 64) | u128::from(mixed)).to_be_bytes();
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A bijection on 62-bit values (xor-shifts and odd multipliers modulo 2^62), so distinct
/// counts give distinct ids that do not look sequential.
fn mix_62(mut x: u64) -> u64 {
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & LOW_62;
    x ^= x >> 29;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB) & LOW_62;
    x ^ (x >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_distinct_version_4_uuids() {
        let ids: HashSet<Uuid> = (0..200_000).map(|_| next_id()).collect();
        assert_eq!(ids.len(), 200_000);
        for id in ids.iter().take(100) {
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        }
    }

    #[test]
    fn the_mix_is_a_bijection_on_62_bits() {
        // Distinct inputs in a window and at the top of the range map to distinct outputs.
        let inputs = (0..100_000u64).chain((LOW_62 - 100_000)..=LOW_62);
        let outputs: HashSet<u64> = inputs.map(mix_62).collect();
        assert_eq!(outputs.len(), 200_001);
        assert!(outputs.iter().all(|&x| x <= LOW_62));
    }
}
