//! The query string of a token request.

use std::collections::HashMap;

use super::rejection::Rejection;

/// Decoded query parameters; a parameter given twice is refused rather than guessed at.
#[derive(Debug, Default)]
pub(crate) struct Query(HashMap<String, String>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Result<Self, Rejection> {
        let mut params = HashMap::new();
        for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
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
}
