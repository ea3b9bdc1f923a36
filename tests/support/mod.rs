//! Shared pieces of the integration tests. Each test file says `mod support;`.
#![allow(dead_code)]

pub mod apiserver;
pub mod e2e;
pub mod prometheus;
