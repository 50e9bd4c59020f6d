//! The limit on failed join-code look-ups: six-digit codes must not be
//! enumerable faster than the create and vote limits allow.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::http::HeaderMap;
use governor::Quota;
use ipnet::IpNet;

use super::ratelimit::{ClientRateLimit, Counted};
use crate::error::Error;

/// The limit on failed join-code look-ups (`TALLY_JOIN_RATE` a minute per
/// client): only failures count, and a client past it is refused before
/// any look-up, so a success cannot tell it which codes exist.
pub struct JoinLimiter {
    failures: ClientRateLimit,
    /// Clients refused until then.
    blocked: std::sync::Mutex<std::collections::HashMap<IpAddr, std::time::Instant>>,
}

impl JoinLimiter {
    /// `per_minute` failed look-ups per client; 0 = off.
    pub fn new(per_minute: u32, trusted_proxies: Vec<IpNet>) -> Self {
        let quota = NonZeroU32::new(per_minute).map(Quota::per_minute);
        Self {
            failures: ClientRateLimit::with(quota, trusted_proxies, Counted::Joins),
            blocked: Default::default(),
        }
    }

    /// The client's address, as for the other limits.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.failures.client_ip(peer, headers)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<IpAddr, std::time::Instant>> {
        self.blocked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a client that used up its failures.
    pub fn before(&self, client: IpAddr) -> Result<(), Error> {
        let now = std::time::Instant::now();
        let mut blocked = self.lock();
        match blocked.get(&client) {
            Some(until) if *until > now => Err(Error::RateLimited {
                what: "failed join codes",
                retry_after_secs: (*until - now).as_secs().max(1),
            }),
            Some(_) => {
                blocked.remove(&client);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed look-up; past the allowance the client is refused
    /// (this answer and every look-up until its allowance returns).
    pub fn failed(&self, client: IpAddr) -> Result<(), Error> {
        let refused = self.failures.check(client);
        if let Err(Error::RateLimited {
            retry_after_secs, ..
        }) = &refused
        {
            let until =
                std::time::Instant::now() + std::time::Duration::from_secs(*retry_after_secs);
            self.lock().insert(client, until);
        }
        refused
    }

    /// Forgets idle clients (called periodically).
    pub fn forget_idle_clients(&self) {
        self.failures.forget_idle_clients();
        let now = std::time::Instant::now();
        self.lock().retain(|_, until| *until > now);
    }
}
