//! Per-client rate limits — votes and poll creation — and who the client is.
//!
//! Votes are unlimited by default (`TALLY_VOTE_RATE=0`); creation allows 10
//! polls a minute per client (`TALLY_CREATE_RATE`, 0 = off), so one client
//! cannot fill the store. Each limit is a keyed GCRA ([`governor`]) with a
//! burst as large as its rate, per instance. The client is the TCP peer,
//! or — only when that peer is a configured trusted proxy — the address the
//! proxy reports in `X-Forwarded-For`, so nobody can dodge a limit by
//! sending that header themselves.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::error::Error;

/// What a limiter counts, as its refusal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counted {
    Votes,
    Polls,
    Joins,
}

/// One per-client rate limit of one instance (votes, or poll creation).
pub struct ClientRateLimit {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
    counted: Counted,
}

/// The vote limit: what `TALLY_VOTE_RATE` configures.
pub type VoteLimiter = ClientRateLimit;

impl ClientRateLimit {
    /// `per_second` votes per client per second (bursts of as many); 0 = off.
    pub fn votes(per_second: u32, trusted_proxies: Vec<IpNet>) -> Self {
        let quota = NonZeroU32::new(per_second).map(Quota::per_second);
        Self::with(quota, trusted_proxies, Counted::Votes)
    }

    /// `per_minute` new polls per client per minute (bursts of as many, then
    /// one every `60 / per_minute` seconds); 0 = off.
    pub fn creates(per_minute: u32, trusted_proxies: Vec<IpNet>) -> Self {
        let quota = NonZeroU32::new(per_minute).map(Quota::per_minute);
        Self::with(quota, trusted_proxies, Counted::Polls)
    }

    pub(super) fn with(
        quota: Option<Quota>,
        trusted_proxies: Vec<IpNet>,
        counted: Counted,
    ) -> Self {
        Self {
            limiter: quota.map(RateLimiter::keyed),
            trusted_proxies,
            counted,
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

    /// Takes one from the client's allowance, or refuses with 429 and the
    /// whole seconds until the next one is allowed.
    pub fn check(&self, client: IpAddr) -> Result<(), Error> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let Err(not_until) = limiter.check_key(&client) else {
            return Ok(());
        };
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let what = match self.counted {
            Counted::Votes => {
                crate::metrics::vote_rejected("rate_limited");
                "votes"
            }
            Counted::Polls => "new polls",
            Counted::Joins => "failed join codes",
        };
        Err(Error::RateLimited {
            what,
            retry_after_secs: retry_after_secs.max(1),
        })
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
        let limiter = ClientRateLimit::votes(1, vec![IpNet::from(proxy)]);
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
        let limiter = ClientRateLimit::votes(1, vec!["172.16.0.0/12".parse().unwrap()]);
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
        let limiter = ClientRateLimit::votes(2, vec![]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_ok());
        assert!(matches!(limiter.check(a), Err(Error::RateLimited { .. })));
        assert!(limiter.check(b).is_ok());
        assert!(ClientRateLimit::votes(0, vec![]).check(a).is_ok());
    }

    #[test]
    fn the_eleventh_poll_in_a_minute_waits_about_six_seconds() {
        let limiter = ClientRateLimit::creates(10, vec![]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert!(limiter.check(a).is_ok());
        }
        match limiter.check(a) {
            Err(e @ Error::RateLimited { .. }) => {
                let secs = e.retry_after().unwrap();
                assert!((5..=6).contains(&secs), "Retry-After {secs}");
                assert!(e.to_string().contains("new polls"), "{e}");
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(ClientRateLimit::creates(0, vec![]).check(a).is_ok());
    }
}
