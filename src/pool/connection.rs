//! A worker's sockets, made cheap per request. A connection nginx opens to a sync
//! worker carries one request, which is usually in the socket before the worker
//! accepts it, and one response, which fits in the socket's buffer. Such a connection
//! is served with `accept4`, `recvfrom`, `sendmsg` and `close`: it is registered with
//! the runtime's epoll only if a read or a write would block (a slow client, a large
//! body, a kept-alive connection waiting for its next request), which saves two
//! `epoll_ctl` and a trip through `epoll_wait` on every other one.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use socket2::Socket;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The worker's listening socket (inherited from the master, which set TCP_NODELAY
/// on it: accepted sockets inherit it on Linux, so a connection needs no
/// `setsockopt` of its own).
pub(crate) struct Listener(AsyncFd<std::net::TcpListener>);

impl Listener {
    /// Takes the inherited listener (put in non-blocking mode).
    pub(crate) fn new(listener: std::net::TcpListener) -> io::Result<Listener> {
        listener.set_nonblocking(true)?;
        // SAFETY: the listener owns its descriptor and is only dropped with the AsyncFd.
        let registered = unsafe { AsyncFd::register_with_interest(listener, Interest::READABLE)? };
        Ok(Listener(registered))
    }

    /// The next connection, non-blocking and close-on-exec from `accept4` itself.
    pub(crate) async fn accept(&self) -> io::Result<(Connection, SocketAddr)> {
        loop {
            let mut ready = self.0.readable().await?;
            let accepted = ready.try_io(|listener| {
                socket2::SockRef::from(listener.get_ref())
                    .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            });
            let Ok(accepted) = accepted else {
                // Nothing waiting any more (another worker took it): wait again.
                continue;
            };
            let (socket, peer) = accepted?;
            let peer = peer.as_socket().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidData, "peer is not an IP address")
            })?;
            return Ok((Connection::new(socket), peer));
        }
    }
}

/// An accepted connection for hyper: read and written directly while the socket can
/// take it, registered with the runtime the first time it cannot.
pub(crate) struct Connection {
    /// Until the first operation that would block.
    direct: Option<Socket>,
    /// From then on.
    registered: Option<AsyncFd<Socket>>,
}

impl Connection {
    fn new(socket: Socket) -> Connection {
        Connection {
            direct: Some(socket),
            registered: None,
        }
    }

    /// Registers the socket (once): from now on every wait goes through epoll.
    fn register(&mut self) -> io::Result<&AsyncFd<Socket>> {
        if let Some(socket) = self.direct.take() {
            // SAFETY: the socket owns its descriptor and is only dropped with the AsyncFd.
            self.registered = Some(unsafe { AsyncFd::register(socket)? });
        }
        Ok(self.registered.as_ref().expect("registered above"))
    }

    /// Runs `op` on the socket: directly at first; once it would block, registered
    /// and whenever epoll says the socket is ready for `interest`.
    fn poll_op<R>(
        &mut self,
        cx: &mut Context<'_>,
        interest: Interest,
        mut op: impl FnMut(&Socket) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        if let Some(socket) = &self.direct {
            match retry_interrupted(|| op(socket)) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                done => return Poll::Ready(done),
            }
        }
        let registered = self.register()?;
        loop {
            let mut ready = if interest == Interest::READABLE {
                ready!(registered.poll_read_ready(cx))?
            } else {
                ready!(registered.poll_write_ready(cx))?
            };
            // WouldBlock clears the readiness, so the next round waits for epoll.
            if let Ok(done) = ready.try_io(|socket| retry_interrupted(|| op(socket.get_ref()))) {
                return Poll::Ready(done);
            }
        }
    }
}

fn retry_interrupted<R>(mut op: impl FnMut() -> io::Result<R>) -> io::Result<R> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            done => return done,
        }
    }
}

impl hyper::rt::Read for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: `recv` only writes into the buffer, and `advance` counts only the
        // bytes it reports written.
        let unfilled: &mut [MaybeUninit<u8>] = unsafe { buf.as_mut() };
        let n = ready!(
            self.get_mut()
                .poll_op(cx, Interest::READABLE, |socket| socket.recv(&mut *unfilled))
        )?;
        // SAFETY: as above, `n` bytes were written.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_op(cx, Interest::WRITABLE, |socket| socket.send(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_op(cx, Interest::WRITABLE, |socket| socket.send_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    /// Nothing is buffered here: every write went to the socket.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// The connection ends when hyper drops it, with `close`: no `shutdown` first.
    /// On a socket this process alone holds, `close` sends the same FIN after the
    /// same queued data when everything the peer sent was read; when something was
    /// left unread (a body the application did not want), Linux answers RST either
    /// way, `shutdown` first or not. Neither is a lingering close (reading until the
    /// peer's FIN), which hyper never did here either.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
impl Connection {
    /// Whether the connection had to be registered with the runtime.
    pub(crate) fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    /// What one read returns.
    pub(crate) async fn read_some(&mut self) -> Vec<u8> {
        let mut storage = [0u8; 64 * 1024];
        let mut buf = hyper::rt::ReadBuf::new(&mut storage);
        std::future::poll_fn(|cx| {
            hyper::rt::Read::poll_read(Pin::new(&mut *self), cx, buf.unfilled())
        })
        .await
        .expect("read");
        let filled = buf.filled().len();
        storage[..filled].to_vec()
    }

    /// Whether the socket has TCP_NODELAY (inherited from the listener).
    pub(crate) fn nodelay(&self) -> bool {
        let socket = match (&self.direct, &self.registered) {
            (Some(socket), _) => socket,
            (None, Some(registered)) => registered.get_ref(),
            (None, None) => unreachable!("a connection always holds its socket"),
        };
        socket.tcp_nodelay().expect("getsockopt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn listener() -> std::net::TcpListener {
        // As the master binds it: TCP_NODELAY on the listening socket.
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_tcp_nodelay(true).unwrap();
        socket
            .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        socket.listen(16).unwrap();
        socket.into()
    }

    async fn roundtrip(conn: &mut Connection, want: usize) -> Vec<u8> {
        let mut got = Vec::new();
        while got.len() < want {
            let read = conn.read_some().await;
            assert!(!read.is_empty(), "EOF after {} of {want} bytes", got.len());
            got.extend_from_slice(&read);
        }
        got
    }

    #[tokio::test]
    async fn a_request_already_sent_is_served_without_registering_the_socket() {
        let std_listener = listener();
        let addr = std_listener.local_addr().unwrap();
        let listener = Listener::new(std_listener).unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let (mut conn, peer) = listener.accept().await.unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(conn.nodelay(), "TCP_NODELAY is inherited from the listener");
        assert_eq!(roundtrip(&mut conn, 18).await, b"GET / HTTP/1.1\r\n\r\n");
        let answer = [IoSlice::new(b"HTTP/1.1 200 OK\r\n"), IoSlice::new(b"\r\n")];
        let written = std::future::poll_fn(|cx| {
            hyper::rt::Write::poll_write_vectored(Pin::new(&mut conn), cx, &answer)
        })
        .await
        .unwrap();
        assert_eq!(written, 19);
        assert!(!conn.is_registered(), "nothing had to wait");
        drop(conn);
        let mut response = Vec::new();
        client.read_to_end(&mut response).unwrap();
        assert_eq!(
            response, b"HTTP/1.1 200 OK\r\n\r\n",
            "and the close ends it"
        );
    }

    #[tokio::test]
    async fn a_read_that_must_wait_registers_the_socket_and_is_woken() {
        let std_listener = listener();
        let addr = std_listener.local_addr().unwrap();
        let listener = Listener::new(std_listener).unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            client.write_all(b"late").unwrap();
            client
        });
        assert_eq!(roundtrip(&mut conn, 4).await, b"late");
        assert!(conn.is_registered());
        drop(sender.join().unwrap());
    }

    #[tokio::test]
    async fn a_write_the_socket_cannot_take_waits_for_the_reader() {
        let std_listener = listener();
        let addr = std_listener.local_addr().unwrap();
        let listener = Listener::new(std_listener).unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (mut conn, _) = listener.accept().await.unwrap();
        // Far more than both sockets' buffers hold: the writes must wait for the reader.
        let total = 32 * 1024 * 1024;
        let reader = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let mut got = 0;
            let mut buf = vec![0u8; 1 << 16];
            loop {
                match client.read(&mut buf).unwrap() {
                    0 => return got,
                    n => got += n,
                }
            }
        });
        let chunk = vec![7u8; 1 << 20];
        let mut sent = 0;
        while sent < total {
            sent += std::future::poll_fn(|cx| {
                hyper::rt::Write::poll_write(Pin::new(&mut conn), cx, &chunk)
            })
            .await
            .unwrap();
        }
        assert!(conn.is_registered());
        drop(conn);
        assert_eq!(reader.join().unwrap(), sent);
    }
}
