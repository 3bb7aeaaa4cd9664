//! What every request handler of the proxy shares. A module of its own, so that the handlers
//! (imds, app_service, token) and the server that routes to them do not import each other.

use super::{Credentials, ProxyConfig, forward::Forwarder};

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct ProxyState {
    pub(crate) config: ProxyConfig,
    pub(crate) credentials: Credentials,
    pub(crate) forwarder: Forwarder,
}
