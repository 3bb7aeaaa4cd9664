//! The HTTP serving stack shared by the webhook and the proxy.
