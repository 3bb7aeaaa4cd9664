//! Which user-assigned identity to ask for, and how each platform spells it on the wire.

use std::fmt;

/// A user-assigned managed identity, named by one of its three identifiers.
///
/// Each platform spells the selector differently on the wire (`client_id`, `clientid`,
/// `object_id`, `msi_res_id`, `mi_res_id`); the credential maps this enum to the right name, so
/// a resource id never silently selects the system-assigned identity because of a misspelled
/// parameter.
///
/// ```
/// use azure_wi_identity::{ManagedIdentityCredentialOptions, UserAssignedId};
///
/// let id = UserAssignedId::ResourceId(
///     "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app".into(),
/// );
/// assert_eq!(id.kind_name(), "resource id");
/// let options = ManagedIdentityCredentialOptions {
///     user_assigned_id: Some(id),
///     ..Default::default()
/// };
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserAssignedId {
    /// The identity's client (application) id.
    ClientId(String),
    /// The identity's object (principal) id.
    ObjectId(String),
    /// The identity's ARM resource id,
    /// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}`.
    ResourceId(String),
}

impl UserAssignedId {
    /// The identifier's value.
    pub fn value(&self) -> &str {
        match self {
            Self::ClientId(v) | Self::ObjectId(v) | Self::ResourceId(v) => v,
        }
    }

    /// What kind of identifier this is, in words (`client id`, `object id`, `resource id`).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Self::ClientId(_) => "client id",
            Self::ObjectId(_) => "object id",
            Self::ResourceId(_) => "resource id",
        }
    }

    /// Checks the value once, at construction: it must be non-empty and free of whitespace and
    /// control characters (a pasted newline would otherwise select a different identity).
    pub(crate) fn validate(&self) -> Result<(), String> {
        let value = self.value();
        if value.is_empty() {
            return Err(format!(
                "the user-assigned identity's {} is empty; give its value or omit it",
                self.kind_name()
            ));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the user-assigned identity's {} {value:?} contains whitespace or control characters; \
                 copy the id again without them",
                self.kind_name()
            ));
        }
        Ok(())
    }

    /// The query parameter (name, value) for a platform's spelling.
    pub(crate) fn query_pair(&self, names: &SelectorNames) -> (&'static str, &str) {
        let name = match self {
            Self::ClientId(_) => names.client_id,
            Self::ObjectId(_) => names.object_id,
            Self::ResourceId(_) => names.resource_id,
        };
        (name, self.value())
    }
}

impl fmt::Debug for UserAssignedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Identity ids are not secrets; printing them helps diagnose "identity not found".
        let name = match self {
            Self::ClientId(_) => "ClientId",
            Self::ObjectId(_) => "ObjectId",
            Self::ResourceId(_) => "ResourceId",
        };
        f.debug_tuple(name).field(&self.value()).finish()
    }
}

impl fmt::Display for UserAssignedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind_name(), self.value())
    }
}

/// The query parameter names one platform uses for the three kinds of identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SelectorNames {
    pub(crate) client_id: &'static str,
    pub(crate) object_id: &'static str,
    pub(crate) resource_id: &'static str,
}

/// IMDS and Azure Arc: `client_id`, `object_id`, `msi_res_id`.
pub(crate) const IMDS_NAMES: SelectorNames = SelectorNames {
    client_id: "client_id",
    object_id: "object_id",
    resource_id: "msi_res_id",
};

/// App Service 2019-08-01: `client_id`, `object_id`, `mi_res_id` (App Service ignores `msi_res_id`).
pub(crate) const APP_SERVICE_NAMES: SelectorNames = SelectorNames {
    client_id: "client_id",
    object_id: "object_id",
    resource_id: "mi_res_id",
};

/// Azure ML 2017-09-01: `clientid` (no underscore), `object_id`, `msi_res_id`.
pub(crate) const AZURE_ML_NAMES: SelectorNames = SelectorNames {
    client_id: "clientid",
    object_id: "object_id",
    resource_id: "msi_res_id",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_spells_the_selector_its_own_way() {
        let res = UserAssignedId::ResourceId("/subscriptions/s/rg".into());
        assert_eq!(res.query_pair(&IMDS_NAMES), ("msi_res_id", "/subscriptions/s/rg"));
        assert_eq!(
            res.query_pair(&APP_SERVICE_NAMES),
            ("mi_res_id", "/subscriptions/s/rg")
        );
        let client = UserAssignedId::ClientId("c".into());
        assert_eq!(client.query_pair(&AZURE_ML_NAMES), ("clientid", "c"));
        assert_eq!(client.query_pair(&APP_SERVICE_NAMES), ("client_id", "c"));
        let object = UserAssignedId::ObjectId("o".into());
        assert_eq!(object.query_pair(&AZURE_ML_NAMES), ("object_id", "o"));
    }

    #[test]
    fn empty_or_whitespace_ids_are_refused_with_the_kind_named() {
        let err = UserAssignedId::ObjectId(String::new()).validate().unwrap_err();
        assert!(err.contains("object id is empty"), "{err}");
        let err = UserAssignedId::ClientId("abc\n".into()).validate().unwrap_err();
        assert!(err.contains("client id") && err.contains("whitespace"), "{err}");
        assert!(UserAssignedId::ClientId("0b3e-11".into()).validate().is_ok());
    }
}
