//! The integration suite: one binary, one module per feature.

mod helpers;
mod redis_cluster;
mod redis_faults;
mod smoke;
