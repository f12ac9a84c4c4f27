//! Integration tests against the real local control plane started by `hack/test.sh` (the
//! `dataplane` tests need no control plane: they run a real engine and HTTP server locally).

mod actor;
mod admission;
mod argocd;
mod basic_lifecycle;
mod builders;
mod control_plane;
mod controller;
mod controller_support;
mod crd;
mod dataplane;
mod engine;
mod engine_process;
mod engine_service;
mod examples;
mod expression_limits;
mod finalizer;
mod holds;
mod image;
mod install;
mod lifecycle_parity;
mod operator;
mod operator_process;
mod plan;
mod plugin;
mod policy;
mod remote_mode;
mod roles;
mod semantics;
mod support;
mod tcp_proxy;
mod webhooks;
