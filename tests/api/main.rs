//! The integration suite: one binary, one module per feature.

mod helpers;
mod pages;
mod smoke;
