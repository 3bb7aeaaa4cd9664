//! The query string of a token request.

use std::collections::HashMap;

use super::rejection::Rejection;

/// The parameter names the token endpoints read or refuse, spelled as IMDS and App Service
/// document them.
pub(crate) const KNOWN_NAMES: [&str; 7] = [
    "resource",
    "api-version",
    "client_id",
    "object_id",
    "principal_id",
    "mi_res_id",
    "msi_res_id",
];

/// Decoded query parameters; a parameter given twice is refused rather than guessed at, and so
/// is a known name spelled in another case (`Client_Id`, `MSI_RES_ID`). Whether IMDS matches
/// names regardless of case is not documented; ignoring such a parameter would serve the
/// default identity's token to a caller that asked for another, and guessing would accept
/// spellings no SDK sends, so it is refused naming the spelling to use.
#[derive(Debug, Default)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, Rejection> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if let Some(known) = KNOWN_NAMES
                .iter()
                .find(|known| **known != name && known.eq_ignore_ascii_case(&name))
            {
                return Err(Rejection::bad_request(format!(
                    "Query parameter '{}' is not recognized: parameter names are case-sensitive; \
                     use '{known}'",
                    name
                )));
            }
            if params.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(Rejection::bad_request(format!(
                    "Query parameter '{name}' is given more than once; give it once"
                )));
            }
        }
        Ok(Self(params))
    }

    /// The value of `name`, `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_refuses_duplicates() {
        let q = Query::parse(Some("resource=https%3A%2F%2Fvault.azure.net&client_id=&x=1")).unwrap();
        assert_eq!(q.get("resource"), Some("https://vault.azure.net"));
        assert_eq!(q.get("client_id"), None);
        assert_eq!(q.get("missing"), None);
        let err = Query::parse(Some("resource=a&resource=b")).unwrap_err();
        assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        assert!(Query::parse(None).unwrap().get("resource").is_none());
    }

    #[test]
    fn known_names_in_another_case_are_refused_naming_the_spelling() {
        for (raw, expected) in [
            ("MSI_RES_ID=abc", "use 'msi_res_id'"),
            ("Client_Id=other", "use 'client_id'"),
            ("RESOURCE=x", "use 'resource'"),
            ("Api-Version=2018-02-01", "use 'api-version'"),
            ("Object_ID=1", "use 'object_id'"),
        ] {
            let err = Query::parse(Some(raw)).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST, "{raw}");
            assert!(format!("{err:?}").contains(expected), "{raw}: {err:?}");
        }
        // Names the endpoints do not know are left alone, as IMDS leaves them.
        assert!(Query::parse(Some("client_id=a&bearer=1&x-ms-foo=2")).is_ok());
    }
}
