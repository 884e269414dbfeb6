//! Operations: the validated [`config`], [`logging`], [`metrics`] and
//! [`health`], the [`control`] socket behind `dns64d ctl`, and NAT64
//! prefix [`discovery`] (RFC 7050).

pub mod config;
pub mod control;
pub mod discovery;
pub mod health;
pub mod logging;
pub mod metrics;
