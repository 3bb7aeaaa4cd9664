//! A close that lets the client read the last answer.
//!
//! When hyper refuses a request before reading all of it (a 431 for headers over the read
//! buffer, a 414 for a path over it), it writes the answer and shuts the connection down. Closing
//! a TCP socket with unread bytes in its receive queue makes the kernel send a reset, and a reset
//! can reach the client before it has read the answer: the client then sees a dropped
//! connection instead of the status. [`LingeringClose`] makes the shutdown send FIN (and, over
//! TLS, `close_notify` first, from the layer above), then read and discard what the client still
//! sends, for at most [`LINGER`] and [`LINGER_BYTES`], before the socket is dropped.

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

/// Longest time spent discarding a closed connection's input.
pub const LINGER: Duration = Duration::from_secs(2);

/// Most bytes discarded after the close.
pub const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// A stream that drains its input (bounded) when shut down.
#[derive(Debug)]
pub struct LingeringClose<T> {
    inner: T,
    linger: Option<Linger>,
}

#[derive(Debug)]
struct Linger {
    deadline: Pin<Box<Sleep>>,
    discarded: usize,
    write_shut: bool,
}

impl<T> LingeringClose<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self { inner, linger: None }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for LingeringClose<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncWrite for LingeringClose<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
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

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let linger = this.linger.get_or_insert_with(|| Linger {
            deadline: Box::pin(tokio::time::sleep(LINGER)),
            discarded: 0,
            write_shut: false,
        });
        if !linger.write_shut {
            ready!(Pin::new(&mut this.inner).poll_shutdown(cx))?;
            linger.write_shut = true;
        }
        let mut scratch = [0u8; 8192];
        loop {
            if linger.discarded >= LINGER_BYTES || linger.deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ok(()));
            }
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => linger.discarded += buf.filled().len(),
                // EOF or an error: the client is gone, nothing left to protect.
                Poll::Ready(_) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn shutdown_drains_what_the_client_still_sends_until_it_closes() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = LingeringClose::new(server);
        io.write_all(b"HTTP/1.1 431\r\n\r\n").await.unwrap();
        let writer = tokio::spawn(async move {
            // More than the pipe holds: the shutdown must read it for this to finish.
            client.write_all(&[b'x'; 10_000]).await.unwrap();
            let mut answer = Vec::new();
            client.read_to_end(&mut answer).await.unwrap();
            answer
        });
        io.shutdown().await.unwrap();
        drop(io);
        let answer = writer.await.unwrap();
        assert_eq!(answer, b"HTTP/1.1 431\r\n\r\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_stops_is_cut_after_the_linger() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut io = LingeringClose::new(server);
        let _writer = tokio::spawn(async move {
            loop {
                if client.write_all(&[b'x'; 64]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let started = tokio::time::Instant::now();
        io.shutdown().await.unwrap();
        assert!(started.elapsed() >= LINGER);
    }
}
