//! A client connection's byte stream: plain TCP or TLS, split into a read and a write
//! half so the connection task can wait for input while it writes.
//!
//! Plain TCP keeps its fast paths (readiness, then a non-blocking read into a buffer
//! that is only grown once data is there; a first non-blocking write that arms no timer):
//! the idle-connection memory target depends on them. TLS goes through `tokio-rustls`,
//! whose session holds its own buffers, with ordinary async reads and writes.

use std::io;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A TLS connection accepted by a listener.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<TcpStream>;

/// The read half of a connection.
pub(crate) enum Reader {
    Plain(OwnedReadHalf),
    Tls(tokio::io::ReadHalf<TlsStream>),
}

/// The write half of a connection.
pub(crate) enum Writer {
    Plain(OwnedWriteHalf),
    Tls(tokio::io::WriteHalf<TlsStream>),
}

/// Splits a plain TCP connection.
pub(crate) fn plain(stream: TcpStream) -> (Reader, Writer) {
    let (r, w) = stream.into_split();
    (Reader::Plain(r), Writer::Plain(w))
}

/// Splits a TLS connection.
pub(crate) fn tls(stream: TlsStream) -> (Reader, Writer) {
    let (r, w) = tokio::io::split(stream);
    (Reader::Tls(r), Writer::Tls(w))
}

/// Grows `buf` by `chunk` when less than a quarter of that is spare; returns the spare
/// room offered to the next read.
fn make_room(buf: &mut BytesMut, chunk: usize) -> usize {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    buf.capacity() - buf.len()
}

impl Reader {
    /// Waits for input and appends what is available to `buf`, offering at least a
    /// quarter of `chunk` of room. Returns `(bytes read, room offered)`, `Ok(None)` after
    /// a spurious wake-up, and `(0, _)` at end of stream. Cancel-safe: nothing read is
    /// lost when the future is dropped (plain: readiness only; TLS: `read_buf`, which
    /// is cancel-safe, and plaintext already decrypted stays in the session).
    pub(crate) async fn read_some(
        &mut self,
        buf: &mut BytesMut,
        chunk: usize,
    ) -> io::Result<Option<(usize, usize)>> {
        match self {
            Reader::Plain(r) => {
                // Grow the buffer only once data is there: idle connections hold none.
                r.readable().await?;
                let room = make_room(buf, chunk);
                match r.try_read_buf(buf) {
                    Ok(n) => Ok(Some((n, room))),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                    Err(e) => Err(e),
                }
            }
            Reader::Tls(r) => {
                let room = make_room(buf, chunk);
                r.read_buf(buf).await.map(|n| Some((n, room)))
            }
        }
    }

    /// Appends at least one byte to `buf` (or returns 0 at end of stream).
    pub(crate) async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Reader::Plain(r) => r.read_buf(buf).await,
            Reader::Tls(r) => r.read_buf(buf).await,
        }
    }
}

impl Writer {
    /// Writes what the socket takes right now without waiting. TLS always answers 0:
    /// its records are written by [`Writer::write_all`].
    pub(crate) fn try_write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Writer::Plain(w) => match w.try_write(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
                other => other,
            },
            Writer::Tls(_) => Ok(0),
        }
    }

    /// Writes all of `buf` and, for TLS, flushes the records the session still holds.
    pub(crate) async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Writer::Plain(w) => w.write_all(buf).await,
            Writer::Tls(w) => {
                w.write_all(buf).await?;
                w.flush().await
            }
        }
    }

    /// Closes the write direction (TLS: sends close_notify first).
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            Writer::Plain(w) => w.shutdown().await,
            Writer::Tls(w) => w.shutdown().await,
        }
    }
}
