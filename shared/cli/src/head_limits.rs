//! The local server's connections: hyper refuses a request whose head it cannot take (a URI over
//! 64 KiB, a head over its read buffer, more than 100 headers) before the router runs, answering
//! 414 or 431 with an empty body. [`Listener`] hands hyper connections that rewrite exactly
//! those automatic answers into the API's JSON error shape (`uri_too_long`,
//! `headers_too_large`, as [`hourbridge_api::request_limits`] answers below those sizes), and
//! that, after such an answer, read what the client still sends for a moment before closing, so
//! the client gets to read the answer instead of a connection reset.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// How long, and how much, a connection refused by its head is read after the answer.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 << 20;

/// A TCP listener whose connections are [`Conn`]s.
pub(crate) struct Listener(pub(crate) TcpListener);

impl axum::serve::Listener for Listener {
    type Io = Conn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.0).await;
        (
            Conn {
                inner: Some(io),
                pending: None,
                refused: false,
            },
            addr,
        )
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A connection: passes everything through but hyper's automatic 414/431 answers, which it
/// writes as JSON errors instead. It does not offer vectored writes, so hyper hands it each
/// answer in one buffer.
pub(crate) struct Conn {
    inner: Option<TcpStream>,
    /// The JSON answer being written, how much of it is written, and how many bytes of hyper's
    /// buffer it stands for.
    pending: Option<(Vec<u8>, usize, usize)>,
    /// Whether an automatic answer was rewritten (the connection then lingers on drop).
    refused: bool,
}

impl Conn {
    fn io(&mut self) -> Pin<&mut TcpStream> {
        Pin::new(self.inner.as_mut().expect("connection in use"))
    }
}

/// Where in `buf` hyper's automatic answer to a refused head starts, and the JSON answer that
/// replaces it. That answer is a whole head with `content-length: 0` and status 414 or 431, the
/// last thing hyper writes on the connection; the API's own answers of those statuses always
/// have a body, so they never match.
fn automatic_answer(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    // The automatic head is about 130 bytes.
    let from = buf.len().saturating_sub(512);
    let start = (from..buf.len())
        .rev()
        .find(|&i| buf[i..].starts_with(b"HTTP/1."))?;
    let head = std::str::from_utf8(&buf[start..]).ok()?;
    let mut lines = head.trim_end_matches("\r\n").split("\r\n");
    let status_line = lines.next()?;
    let status: u16 = status_line.get(9..12)?.parse().ok()?;
    let body = hourbridge_api::head_limit_error(StatusCode::from_u16(status).ok()?)?;
    let mut others = Vec::new();
    let mut empty = false;
    for line in lines {
        if line.eq_ignore_ascii_case("content-length: 0") {
            empty = true;
        } else if line.is_empty() {
            return None;
        } else {
            others.push(line);
        }
    }
    if !empty {
        return None;
    }
    let mut answer = format!(
        "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for line in others {
        answer.push_str(line);
        answer.push_str("\r\n");
    }
    answer.push_str("\r\n");
    let mut answer = answer.into_bytes();
    answer.extend_from_slice(&body);
    Some((start, answer))
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.io().poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.pending.is_none() {
            match automatic_answer(buf) {
                Some((0, answer)) => {
                    this.pending = Some((answer, 0, buf.len()));
                    this.refused = true;
                }
                // What precedes it (an earlier answer) goes out first.
                Some((start, _)) => return this.io().poll_write(cx, &buf[..start]),
                None => return this.io().poll_write(cx, buf),
            }
        }
        let (answer, mut written, stands_for) = this.pending.take().expect("pending answer");
        while written < answer.len() {
            match this.io().poll_write(cx, &answer[written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    // hyper retries with the same buffer.
                    this.pending = Some((answer, written, stands_for));
                    return Poll::Pending;
                }
            }
        }
        Poll::Ready(Ok(stands_for))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.io().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.io().poll_shutdown(cx))?;
        Poll::Ready(Ok(()))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let (Some(mut io), true) = (self.inner.take(), self.refused) else {
            return;
        };
        // Closing with unread request bytes would reset the connection, and the client could
        // lose the answer: send FIN, then read what it still sends, for a bounded while.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = io.shutdown().await;
                let _ = tokio::time::timeout(LINGER, async {
                    let mut buf = vec![0u8; 64 << 10];
                    let mut read = 0;
                    while read < LINGER_BYTES {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => read += n,
                        }
                    }
                })
                .await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::automatic_answer;

    #[test]
    fn rewrites_only_the_empty_automatic_414_and_431() {
        let auto = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 01:51:18 GMT\r\n\r\n";
        let (at, answer) = automatic_answer(auto).unwrap();
        let answer = String::from_utf8(answer).unwrap();
        assert_eq!(at, 0);
        assert!(
            answer.starts_with("HTTP/1.1 414 URI Too Long\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\r\nconnection: close\r\n"), "{answer}");
        assert!(
            answer.contains("content-type: application/json"),
            "{answer}"
        );
        assert!(
            answer.ends_with(r#"}}"#) && answer.contains("uri_too_long"),
            "{answer}"
        );
        let (_, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(answer.contains(&format!("content-length: {}\r\n", body.len())));

        let mut both = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        let auto431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n";
        both.extend_from_slice(auto431);
        let (at, answer) = automatic_answer(&both).unwrap();
        assert_eq!(at, both.len() - auto431.len());
        assert!(
            String::from_utf8(answer)
                .unwrap()
                .contains("headers_too_large")
        );

        for other in [
            &b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 10\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
        ] {
            assert!(automatic_answer(other).is_none());
        }
    }
}
