//! `ChainedTokenCredential`: credentials tried in order until one returns a token.
//!
//! Chain semantics (azure-identity's): an [`ErrorKind::Unavailable`] error moves on to the next
//! credential; any other error stops the chain; the error returned lists every attempt. The first
//! credential that succeeds is remembered and asked directly afterwards.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use crate::{AccessToken, Error, ErrorKind, Result, TokenCredential, TokenRequestOptions};

const NONE_SELECTED: usize = usize::MAX;

/// Tries credentials in order until one returns a token.
///
/// ```no_run
/// use std::sync::Arc;
/// use azure_wi_identity::{
///     ChainedTokenCredential, TokenCredential, WorkloadIdentityCredential,
///     managed_identity::ManagedIdentityCredential,
/// };
///
/// # async fn run() -> azure_wi_identity::Result<()> {
/// let chain = ChainedTokenCredential::new(vec![
///     WorkloadIdentityCredential::new(None)? as Arc<dyn TokenCredential>,
///     ManagedIdentityCredential::new(None)?,
/// ])?;
/// let token = chain.get_token(&["https://vault.azure.net/.default"], None).await?;
/// # Ok(())
/// # }
/// ```
pub struct ChainedTokenCredential {
    name: &'static str,
    sources: Vec<Arc<dyn TokenCredential>>,
    /// The index of the credential that last succeeded, or [`NONE_SELECTED`].
    selected: AtomicUsize,
}

impl fmt::Debug for ChainedTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(self.name).field("sources", &self.sources).finish()
    }
}

impl ChainedTokenCredential {
    /// A chain of `sources`, tried in order. An empty list is
    /// [`ErrorKind::InvalidInput`].
    pub fn new(sources: Vec<Arc<dyn TokenCredential>>) -> Result<Arc<Self>> {
        Self::named("ChainedTokenCredential", sources).map(Arc::new)
    }

    pub(crate) fn named(name: &'static str, sources: Vec<Arc<dyn TokenCredential>>) -> Result<Self> {
        if sources.is_empty() {
            return Err(Error::invalid_input(
                name,
                "the chain has no credential: give at least one",
            ));
        }
        Ok(Self {
            name,
            sources,
            selected: AtomicUsize::new(NONE_SELECTED),
        })
    }
}

#[async_trait::async_trait]
impl TokenCredential for ChainedTokenCredential {
    async fn get_token(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken> {
        // Once a credential has worked, the chain is that credential.
        let selected = self.selected.load(Ordering::Acquire);
        if let Some(source) = self.sources.get(selected) {
            return source.get_token(scopes, options).await;
        }
        self.select(scopes, options).await
    }
}

impl ChainedTokenCredential {
    /// Tries each credential in order until one answers (azure-identity's chain rules).
    async fn select(&self, scopes: &[&str], options: Option<TokenRequestOptions>) -> Result<AccessToken> {
        let mut attempts: Vec<Error> = Vec::with_capacity(self.sources.len());
        for (i, source) in self.sources.iter().enumerate() {
            match source.get_token(scopes, options.clone()).await {
                Ok(token) => {
                    self.selected.store(i, Ordering::Release);
                    tracing::info!(chain = self.name, credential = ?source, "selected credential");
                    return Ok(token);
                }
                Err(e) if e.kind() == ErrorKind::Unavailable => {
                    tracing::debug!(chain = self.name, error = %e, "credential unavailable, trying the next");
                    attempts.push(e);
                }
                Err(e) => {
                    attempts.push(e);
                    break;
                }
            }
        }
        Err(chain_error(self.name, attempts))
    }
}

/// The chain's error: the kind of the last attempt (unavailable when every credential was), and
/// a message listing every attempt.
fn chain_error(name: &'static str, attempts: Vec<Error>) -> Error {
    let last = attempts.last().map_or(ErrorKind::Unavailable, Error::kind);
    let mut message = match last {
        ErrorKind::Unavailable => String::from("no credential in the chain could get a token. Attempts:"),
        _ => String::from("a credential in the chain failed, so the chain stopped. Attempts:"),
    };
    for e in &attempts {
        message.push_str(&format!("\n- {e}"));
    }
    let status = attempts.last().and_then(Error::status);
    let error = match last {
        ErrorKind::Unavailable => Error::unavailable(name, message),
        ErrorKind::InvalidInput => Error::invalid_input(name, message),
        _ => Error::authentication_failed(name, message),
    };
    let error = match status {
        Some(s) => error.with_status(s),
        None => error,
    };
    match attempts.into_iter().last() {
        Some(cause) => error.with_source(cause),
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    #[derive(Debug)]
    struct Fixed {
        result: fn() -> Result<AccessToken>,
        calls: AtomicUsize,
    }

    impl Fixed {
        fn new(result: fn() -> Result<AccessToken>) -> Arc<Self> {
            Arc::new(Self {
                result,
                calls: AtomicUsize::new(0),
            })
        }
    }

    #[async_trait::async_trait]
    impl TokenCredential for Fixed {
        async fn get_token(&self, _: &[&str], _: Option<TokenRequestOptions>) -> Result<AccessToken> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            (self.result)()
        }
    }

    fn ok() -> Result<AccessToken> {
        Ok(AccessToken::new(
            "tok",
            OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
    fn unavailable() -> Result<AccessToken> {
        Err(Error::unavailable("First", "not here"))
    }
    fn failed() -> Result<AccessToken> {
        Err(Error::authentication_failed("Second", "refused").with_status(401))
    }

    #[tokio::test]
    async fn unavailable_moves_on_and_the_winner_is_remembered() {
        let (a, b) = (Fixed::new(unavailable), Fixed::new(ok));
        let chain = ChainedTokenCredential::new(vec![a.clone(), b.clone()]).unwrap();
        chain.get_token(&["s"], None).await.unwrap();
        chain.get_token(&["s"], None).await.unwrap();
        assert_eq!(
            (a.calls.load(Ordering::SeqCst), b.calls.load(Ordering::SeqCst)),
            (1, 2)
        );
    }

    #[tokio::test]
    async fn failure_stops_the_chain_and_lists_attempts() {
        let (a, b, c) = (Fixed::new(unavailable), Fixed::new(failed), Fixed::new(ok));
        let chain = ChainedTokenCredential::new(vec![a, b, c.clone()]).unwrap();
        let e = chain.get_token(&["s"], None).await.unwrap_err();
        assert_eq!(
            (e.kind(), e.status()),
            (ErrorKind::AuthenticationFailed, Some(401))
        );
        let m = e.to_string();
        assert!(
            m.contains("First is unavailable: not here") && m.contains("Second authentication failed"),
            "{m}"
        );
        assert_eq!(c.calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn all_unavailable_is_unavailable() {
        let chain =
            ChainedTokenCredential::new(vec![Fixed::new(unavailable), Fixed::new(unavailable)]).unwrap();
        let e = chain.get_token(&["s"], None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert_eq!(e.to_string().matches("not here").count(), 2);
        assert!(ChainedTokenCredential::new(vec![]).is_err());
    }
}
