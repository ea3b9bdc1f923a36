#![forbid(unsafe_code)]
//! alicloud-rollouts: a Kubernetes operator that drives the progressive-rollout APIs of
//! Alibaba Cloud PAI-EAS (model serving) and ESA (edge routines and edge container apps).
//!
//! The crate has three parts, each usable on its own:
//! - [`cloud`]: a typed, signed client for the EAS and ESA APIs;
//! - [`simulator`]: a local HTTP server speaking the same wire protocol, for tests and demos;
//! - [`controller`]: one reconciler per custom resource kind ([`crd`]);
//! - [`plugin`]: the kubectl plugin `kubectl alicloud-rollouts`.

pub mod analysis;
pub mod bench;
pub mod cloud;
pub mod controller;
pub mod crd;
pub mod notify;
pub mod plugin;
pub mod simulator;
