//! [`TokenFuture`]: what [`TokenCredential::get_token`](super::TokenCredential::get_token)
//! returns.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use super::{AccessToken, Result};

/// The future of a token request: already complete when a fresh cached token answered it,
/// otherwise the boxed request.
///
/// A cached token is the common case (every outgoing request of a workload asks for one), so
/// [`TokenCredential::get_token`](super::TokenCredential::get_token) answers it without
/// allocating a future; only a request that goes to the network pays for the box.
///
/// Implementations of [`TokenCredential`](super::TokenCredential) build it with
/// [`TokenFuture::ready`] or [`TokenFuture::new`]:
///
/// ```
/// use azure_wi_identity::{AccessToken, TokenCredential, TokenFuture, TokenRequestOptions};
///
/// /// A credential that always answers the same token (e.g. in a test).
/// #[derive(Debug)]
/// struct Fixed(AccessToken);
///
/// impl TokenCredential for Fixed {
///     fn get_token<'a>(&'a self, _: &'a [&'a str], _: Option<TokenRequestOptions>) -> TokenFuture<'a> {
///         TokenFuture::ready(Ok(self.0.clone()))
///     }
/// }
///
/// /// One that does asynchronous work first.
/// #[derive(Debug)]
/// struct Slow(AccessToken);
///
/// impl TokenCredential for Slow {
///     fn get_token<'a>(&'a self, _: &'a [&'a str], _: Option<TokenRequestOptions>) -> TokenFuture<'a> {
///         TokenFuture::new(async move {
///             tokio::task::yield_now().await;
///             Ok(self.0.clone())
///         })
///     }
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// # let token = AccessToken::new("t", time::OffsetDateTime::now_utc() + time::Duration::hours(1));
/// # assert_eq!(Fixed(token.clone()).get_token(&["s"], None).await.unwrap().token.secret(), "t");
/// # assert_eq!(Slow(token).get_token(&["s"], None).await.unwrap().token.secret(), "t");
/// # }
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct TokenFuture<'a>(State<'a>);

enum State<'a> {
    Ready(Option<Result<AccessToken>>),
    Pending(Pin<Box<dyn Future<Output = Result<AccessToken>> + Send + 'a>>),
}

impl<'a> TokenFuture<'a> {
    /// A future that is already complete with `result` (no allocation).
    pub fn ready(result: Result<AccessToken>) -> Self {
        Self(State::Ready(Some(result)))
    }

    /// Boxes `future`.
    pub fn new(future: impl Future<Output = Result<AccessToken>> + Send + 'a) -> Self {
        Self(State::Pending(Box::pin(future)))
    }

    /// Whether the result is already there (a cache hit).
    pub fn is_ready(&self) -> bool {
        matches!(self.0, State::Ready(_))
    }
}

impl Future for TokenFuture<'_> {
    type Output = Result<AccessToken>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().0 {
            State::Ready(result) => Poll::Ready(result.take().expect("TokenFuture polled after completion")),
            State::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for TokenFuture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token itself.
        f.debug_struct("TokenFuture")
            .field("ready", &self.is_ready())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    fn token() -> AccessToken {
        AccessToken::new("secret-token", time::OffsetDateTime::now_utc())
    }

    #[tokio::test]
    async fn ready_and_boxed_futures_yield_their_result() {
        let ready = TokenFuture::ready(Ok(token()));
        assert!(ready.is_ready());
        assert_eq!(ready.await.unwrap().token.secret(), "secret-token");
        let boxed = TokenFuture::new(async { Err(Error::unavailable("Test", "not here")) });
        assert!(!boxed.is_ready());
        assert!(boxed.await.unwrap_err().to_string().contains("not here"));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let debug = format!("{:?}", TokenFuture::ready(Ok(token())));
        assert!(!debug.contains("secret-token"), "{debug}");
        assert!(debug.contains("ready: true"), "{debug}");
    }

    #[test]
    fn it_is_send() {
        fn send<T: Send>(_: T) {}
        send(TokenFuture::ready(Ok(token())));
    }
}
