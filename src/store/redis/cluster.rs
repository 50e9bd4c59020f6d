//! What tally needs to know about a Redis Cluster's layout: which slot a
//! key hashes to, and which masters serve which slots (the bus proves each
//! master's subscription live with a heartbeat channel in one of its slots).

use std::collections::BTreeMap;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{FromRedisValue, RedisResult, Value};

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The slot of `key`: CRC16 (XMODEM) of its hash tag (the text between the
/// first `{` and the next `}`, when not empty) or of the whole key.
pub fn slot_of(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        rest.iter()
            .position(|&b| b == b'}')
            .filter(|&close| close > 0)
            .map(|close| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One master and the slot ranges it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    /// `host:port` as the cluster announces it.
    pub address: String,
    pub slots: Vec<(u16, u16)>,
}

impl Master {
    /// A hash tag whose slot this master serves: a key or channel with
    /// `{tag}` in it lands on this master.
    pub fn tag(&self) -> String {
        (0u32..)
            .map(|n| format!("hb{n}"))
            .find(|tag| {
                let slot = slot_of(tag.as_bytes());
                self.slots.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot))
            })
            .expect("a master serves at least one slot")
    }
}

/// The masters of the cluster, from `CLUSTER SLOTS` asked of any node,
/// sorted by address.
pub async fn masters(conn: &mut ClusterConnection) -> RedisResult<Vec<Master>> {
    let reply = conn
        .route_command(
            redis::cmd("CLUSTER").arg("SLOTS").to_owned(),
            RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
        )
        .await?;
    let mut by_address: BTreeMap<String, Vec<(u16, u16)>> = BTreeMap::new();
    for range in Vec::<Value>::from_redis_value(reply)? {
        let mut fields = Vec::<Value>::from_redis_value(range)?.into_iter();
        let (Some(lo), Some(hi), Some(master)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mut node = Vec::<Value>::from_redis_value(master)?.into_iter();
        let (Some(host), Some(port)) = (node.next(), node.next()) else {
            continue;
        };
        let address = format!(
            "{}:{}",
            String::from_redis_value(host)?,
            u16::from_redis_value(port)?
        );
        by_address
            .entry(address)
            .or_default()
            .push((u16::from_redis_value(lo)?, u16::from_redis_value(hi)?));
    }
    Ok(by_address
        .into_iter()
        .map(|(address, slots)| Master { address, slots })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT on redis-server 7.0.
        assert_eq!(slot_of(b"foo"), 12182);
        assert_eq!(slot_of(b"123456789"), 12739);
        assert_eq!(slot_of(b"tally:poll:{lpl}:votes"), slot_of(b"lpl"));
        assert_eq!(slot_of(b"a{}b"), slot_of(b"a{}b"));
        assert_ne!(slot_of(b"a{}b"), slot_of(b""));
    }

    #[test]
    fn a_master_gets_a_tag_in_its_own_slots() {
        let master = Master {
            address: "127.0.0.1:7000".into(),
            slots: vec![(10923, 16383)],
        };
        let slot = slot_of(master.tag().as_bytes());
        assert!((10923..=16383).contains(&slot));
    }
}
