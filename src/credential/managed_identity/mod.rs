//! Managed identity: source selection and the platform sources.
