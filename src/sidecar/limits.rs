//! What the sidecar's HTTP server grants one client: a few seconds to send
//! its request headers, a few KiB of them, and one of a bounded number of
//! connections. Past the bound a new connection is closed at once, so
//! thousands of idle or slow clients hold neither the probes nor the memory.

use std::future::{Ready, ready};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// Time a client has to send its request headers.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The most request-header bytes read.
pub const MAX_HEADER_BYTES: usize = 16 << 10;
/// Idle time before TCP keepalive probes a client.
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// How long data sent to a client may stay unacknowledged before its
/// connection is closed (`TCP_USER_TIMEOUT`).
pub const UNACKED_TIMEOUT: Duration = Duration::from_secs(30);

/// Sets the header limits on the server's HTTP/1 and HTTP/2 sides.
pub fn configure(b: &mut Builder<TokioExecutor>) {
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
}

/// Admits a connection while fewer than [`MAX_CONNECTIONS`] are open.
#[derive(Clone)]
pub struct ConnectionLimit(Arc<Semaphore>);

impl ConnectionLimit {
    pub fn new(max: usize) -> ConnectionLimit {
        ConnectionLimit(Arc::new(Semaphore::new(max)))
    }
}

impl<S> Accept<TcpStream, S> for ConnectionLimit {
    type Stream = Admitted;
    type Service = S;
    type Future = Ready<io::Result<(Admitted, S)>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        ready(match self.0.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                // A client gone without a reset (a recipient whose node died)
                // must not hold a clone stream, and the donor's one slot, for
                // the quarter of an hour TCP takes to give up.
                let _ = rustix::net::sockopt::set_socket_keepalive(&stream, true);
                let _ = rustix::net::sockopt::set_tcp_keepidle(&stream, KEEPALIVE_IDLE);
                let _ = rustix::net::sockopt::set_tcp_user_timeout(
                    &stream,
                    UNACKED_TIMEOUT.as_millis() as u32,
                );
                Ok((
                    Admitted {
                        stream,
                        _permit: permit,
                    },
                    service,
                ))
            }
            // Dropping the stream closes it.
            Err(_) => Err(io::Error::other("too many connections")),
        })
    }
}

/// An admitted connection; its slot frees when it closes.
pub struct Admitted {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Admitted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Raises this process's open-file limit to its hard limit, so that the
/// connection bound, not the descriptor limit, is what turns clients away.
pub fn raise_open_files() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut l = getrlimit(Resource::Nofile);
    if l.current < l.maximum {
        l.current = l.maximum;
        let _ = setrlimit(Resource::Nofile, l);
    }
}
