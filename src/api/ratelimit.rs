//! Per-client vote rate limit, and who the client is.
//!
//! Off by default (`TALLY_VOTE_RATE=0`). The client is the TCP peer, or —
//! only when that peer is a configured trusted proxy — the address the
//! proxy reports in `X-Forwarded-For`, so nobody can dodge the limit by
//! sending that header themselves.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::error::Error;

/// The vote rate limiter of one instance.
pub struct VoteLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

impl VoteLimiter {
    /// `per_second` votes per client per second (bursts of as many); 0 = off.
    pub fn new(per_second: u32, trusted_proxies: Vec<IpNet>) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|n| RateLimiter::keyed(Quota::per_second(n)));
        Self {
            limiter,
            trusted_proxies,
        }
    }

    /// The client's address: the peer, or the nearest untrusted hop of
    /// `X-Forwarded-For` when the peer is a trusted proxy.
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.ip();
        if !self.is_trusted(&peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !self.is_trusted(ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }

    fn is_trusted(&self, ip: &IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// Takes one vote from the client's allowance, or refuses with 429.
    pub fn check(&self, client: IpAddr) -> Result<(), Error> {
        match &self.limiter {
            Some(limiter) if limiter.check_key(&client).is_err() => {
                crate::metrics::vote_rejected("rate_limited");
                Err(Error::RateLimited)
            }
            _ => Ok(()),
        }
    }

    /// Forgets clients that are back to a full allowance, so the table
    /// does not grow with every address ever seen. Called periodically.
    pub fn forget_idle_clients(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static(v));
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let limiter = VoteLimiter::new(1, vec![IpNet::from(proxy)]);
        let from_proxy = SocketAddr::new(proxy, 1234);
        let from_client = "192.0.2.7:999".parse().unwrap();
        let h = xff("198.51.100.1, 203.0.113.9");
        assert_eq!(
            limiter.client_ip(from_proxy, &h),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            limiter.client_ip(from_client, &h),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(limiter.client_ip(from_proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn a_trusted_range_covers_every_proxy_in_it() {
        let limiter = VoteLimiter::new(1, vec!["172.16.0.0/12".parse().unwrap()]);
        let h = xff("198.51.100.1, 172.18.0.7");
        let peer = "172.18.0.9:80".parse().unwrap();
        assert_eq!(
            limiter.client_ip(peer, &h),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        let outside = "192.0.2.1:80".parse().unwrap();
        assert_eq!(
            limiter.client_ip(outside, &h),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn a_client_past_its_rate_is_refused_and_others_are_not() {
        let limiter = VoteLimiter::new(2, vec![]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        assert!(matches!(limiter.check(a), Err(Error::RateLimited)));
        assert!(limiter.check(b).is_ok());
        assert!(VoteLimiter::new(0, vec![]).check(a).is_ok());
    }
}
