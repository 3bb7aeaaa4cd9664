//! A deadline for a connection's first bytes.
//!
//! `hyper-util`'s HTTP/1 + HTTP/2 auto-detection reads the first bytes of a connection to tell the
//! HTTP/2 preface from an HTTP/1 request line, and waits for them without a timeout; HTTP/1's
//! header read timeout only starts once the version is known. A client that connects (and
//! completes TLS) but sends nothing, or only `P`, would hold the connection forever. [`FirstBytes`]
//! wraps the stream hyper reads from: unless [`PREFACE_LEN`] bytes arrive within the deadline,
//! reads fail with `TimedOut` and hyper closes the connection. Once they have arrived it only
//! passes bytes through, and marks the connection's [`Slot`] as started (no longer closed to
//! make room for others).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

use super::connection_slots::Slot;

/// Bytes that settle the protocol: the length of the HTTP/2 connection preface (an HTTP/1
/// request is longer).
pub const PREFACE_LEN: usize = 24;

/// A stream whose first [`PREFACE_LEN`] bytes must arrive before a deadline.
#[derive(Debug)]
pub struct FirstBytes<T> {
    inner: T,
    deadline: Option<Pin<Box<Sleep>>>,
    seen: usize,
    slot: Option<Slot>,
}

impl<T> FirstBytes<T> {
    /// `inner`, whose first bytes must arrive within `timeout` from now; `slot` (if any) is marked
    /// started when they have, and is held until the stream is dropped.
    pub fn new(inner: T, timeout: Duration, slot: Option<Slot>) -> Self {
        Self {
            inner,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            seen: 0,
            slot,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FirstBytes<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if this.deadline.is_some() {
                    this.seen += buf.filled().len() - before;
                    if this.seen >= PREFACE_LEN || buf.filled().len() == before {
                        // Enough to tell the protocol (or EOF/error): the deadline has done its job.
                        this.deadline = None;
                        if let Some(slot) = &this.slot {
                            slot.started();
                        }
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                if let Some(deadline) = &mut this.deadline {
                    ready!(deadline.as_mut().poll(cx));
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client sent no request in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FirstBytes<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_or_a_partial_preface_times_out_and_a_request_does_not() {
        // Nothing at all.
        let (_client, server) = tokio::io::duplex(1024);
        let mut io = FirstBytes::new(server, Duration::from_secs(10), None);
        let mut buf = [0u8; 64];
        let error = io.read(&mut buf).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);

        // Only the start of the HTTP/2 preface.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = FirstBytes::new(server, Duration::from_secs(10), None);
        client.write_all(b"PRI * HTTP").await.unwrap();
        assert_eq!(io.read(&mut buf).await.unwrap(), 10);
        assert_eq!(
            io.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );

        // A request: then the stream may be idle for as long as the protocol allows.
        let (mut client, server) = tokio::io::duplex(1024);
        let mut io = FirstBytes::new(server, Duration::from_secs(10), None);
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        assert!(io.read(&mut buf).await.unwrap() >= PREFACE_LEN);
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            client.write_all(b"\r\n").await.unwrap();
            client
        });
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        drop(later);
    }
}
