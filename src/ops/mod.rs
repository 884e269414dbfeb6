//! Operations: the validated [`config`], [`logging`], [`metrics`] (with
//! per-server [`upstream_health`]), [`health`] and its [`http`] endpoint, the [`control`] socket or port behind `dns64d ctl`, and NAT64
//! prefix [`discovery`] (RFC 7050).

pub mod config;
pub mod control;
pub mod discovery;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod upstream_health;
