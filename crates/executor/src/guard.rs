//! Per-address limits on failed authentications. Tokens are 256 bits, so
//! guessing is hopeless, but a client that keeps failing is slowed down
//! all the same: after `max_failures` failed authentications within
//! `WINDOW` seconds, every request from its address gets 429 with
//! `Retry-After` until `BLOCK` seconds have passed, and the burst is
//! audited once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The window, in seconds.
const WINDOW: i64 = 60;
/// How long an address is refused once over the limit, in seconds.
pub(crate) const BLOCK: i64 = 60;

#[derive(Default)]
struct Record {
    window_start: i64,
    failures: u32,
    blocked_until: i64,
}

/// Failure counts by client address.
pub(crate) struct AuthGuard {
    /// Failed authentications allowed in a window.
    pub(crate) max_failures: u32,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl AuthGuard {
    pub(crate) fn new(max_failures: u32) -> AuthGuard {
        AuthGuard {
            max_failures,
            records: Mutex::default(),
        }
    }

    /// Seconds until `ip` may try again, when it is refused now.
    pub(crate) fn refused(&self, ip: IpAddr, now: i64) -> Option<i64> {
        let records = self.records.lock().ok()?;
        let until = records.get(&ip)?.blocked_until;
        (until > now).then_some(until - now)
    }

    /// Counts a failed authentication; true when this one starts a block
    /// (the moment to audit the burst).
    pub(crate) fn failed(&self, ip: IpAddr, now: i64) -> bool {
        let Ok(mut records) = self.records.lock() else {
            return false;
        };
        // Forget addresses that have been quiet, so the map stays small.
        if records.len() > 10_000 {
            records.retain(|_, r| r.blocked_until > now || now - r.window_start < WINDOW);
        }
        let r = records.entry(ip).or_default();
        if now - r.window_start >= WINDOW {
            r.window_start = now;
            r.failures = 0;
        }
        r.failures += 1;
        if r.failures > self.max_failures && r.blocked_until <= now {
            r.blocked_until = now + BLOCK;
            return true;
        }
        false
    }
}
