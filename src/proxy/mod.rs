//! The IMDS- and App Service-compatible token proxy.
