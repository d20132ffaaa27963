//! A minimal HTTP/1.1 client connection: write a prepared request, read one response.
//!
//! The load generator shares the machine with the server it measures, so it does as
//! little as it can per request: the request bytes are built (and signed) beforehand,
//! a response is parsed in place in one reused buffer, nothing is pipelined.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// Response heads larger than this are refused.
const MAX_HEAD: usize = 64 * 1024;
/// Response bodies larger than this are refused.
const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 32;

/// One keep-alive connection, over TCP unless told otherwise (the Docker engine's API
/// is HTTP on a Unix socket).
pub struct Connection<S = TcpStream> {
    stream: S,
    /// The bytes read for the current response.
    buf: Vec<u8>,
    /// The decoded body of a chunked response.
    chunked: Vec<u8>,
}

/// A response, borrowed from its connection until the next request.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
    /// The server will close the connection: open a new one for the next request.
    pub close: bool,
}

enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl Connection<TcpStream> {
    pub async fn open(address: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        Ok(Self::over(stream))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// A connection over an already connected stream.
    pub fn over(stream: S) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            chunked: Vec::new(),
        }
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads its response.
    pub async fn round_trip(&mut self, request: &[u8]) -> io::Result<Response<'_>> {
        self.stream.write_all(request).await?;
        self.buf.clear();

        let (status, head_len, framing, mut close) = loop {
            self.fill().await?;
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&self.buf) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let status = response.code.unwrap_or(0);
                    let (framing, close) = framing(status, response.version, response.headers)?;
                    break (status, head_len, framing, close);
                }
                Ok(httparse::Status::Partial) if self.buf.len() < MAX_HEAD => {}
                Ok(httparse::Status::Partial) => return Err(invalid("response head too large")),
                Err(err) => return Err(invalid(format!("malformed response head: {err}"))),
            }
        };

        match framing {
            Framing::Length(length) => {
                let end = head_len + length;
                while self.buf.len() < end {
                    self.fill().await?;
                }
                // Bytes past the response would be a server bug; start afresh rather
                // than misread them as the next response.
                close |= self.buf.len() > end;
                Ok(Response {
                    status,
                    body: &self.buf[head_len..end],
                    close,
                })
            }
            Framing::Chunked => {
                let end = self.read_chunked(head_len).await?;
                close |= self.buf.len() > end;
                Ok(Response {
                    status,
                    body: &self.chunked,
                    close,
                })
            }
            Framing::UntilClose => {
                loop {
                    match self.fill().await {
                        Ok(()) => {}
                        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => break,
                        Err(err) => return Err(err),
                    }
                }
                Ok(Response {
                    status,
                    body: &self.buf[head_len..],
                    close: true,
                })
            }
        }
    }

    /// Reads more bytes into `buf`; the end of the stream is an error.
    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.len() > MAX_HEAD + MAX_BODY {
            return Err(invalid("response too large"));
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        Ok(())
    }

    /// Decodes a chunked body starting at `pos` into `chunked`; returns where it ends.
    async fn read_chunked(&mut self, mut pos: usize) -> io::Result<usize> {
        self.chunked.clear();
        loop {
            let parsed = httparse::parse_chunk_size(&self.buf[pos..])
                .map_err(|_| invalid("malformed chunk size"))?;
            let httparse::Status::Complete((size_len, size)) = parsed else {
                self.fill().await?;
                continue;
            };
            let size = usize::try_from(size).map_err(|_| invalid("chunk too large"))?;
            if size > MAX_BODY {
                return Err(invalid("chunk too large"));
            }
            let data = pos + size_len;
            if size == 0 {
                // No trailers expected: the body ends with an empty line.
                while self.buf.len() < data + 2 {
                    self.fill().await?;
                }
                if &self.buf[data..data + 2] != b"\r\n" {
                    return Err(invalid("trailers are not supported"));
                }
                return Ok(data + 2);
            }
            while self.buf.len() < data + size + 2 {
                self.fill().await?;
            }
            if &self.buf[data + size..data + size + 2] != b"\r\n" {
                return Err(invalid("chunk not followed by CRLF"));
            }
            self.chunked.extend_from_slice(&self.buf[data..data + size]);
            pos = data + size + 2;
        }
    }
}

/// How the body is delimited, and whether the connection closes after it.
fn framing(
    status: u16,
    version: Option<u8>,
    headers: &[httparse::Header<'_>],
) -> io::Result<(Framing, bool)> {
    let mut close = version == Some(0);
    let mut length = None;
    let mut chunked = false;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or_else(|| invalid("malformed Content-Length"))?;
            if value > MAX_BODY {
                return Err(invalid("response body too large"));
            }
            length = Some(value);
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .split(|&b| b == b',')
                .any(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            let value = header.value;
            if value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
            {
                close = true;
            } else if value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"keep-alive"))
            {
                close = false;
            }
        }
    }
    let framing = if status == 204 || status == 304 || (100..200).contains(&status) {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(length) = length {
        Framing::Length(length)
    } else {
        close = true;
        Framing::UntilClose
    };
    Ok((framing, close))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// Serves `responses`, one per request read, on one connection.
    async fn serve(responses: Vec<&'static [u8]>) -> io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            for response in responses {
                // Every test request fits one read and ends with its empty line.
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if socket.write_all(response).await.is_err() {
                    return;
                }
            }
        });
        Ok(address)
    }

    const REQUEST: &[u8] = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n";

    #[tokio::test]
    async fn keep_alive_responses_with_length_and_chunks() -> io::Result<()> {
        let address = serve(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}",
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        ])
        .await?;
        let mut conn = Connection::open(address).await?;
        let r = conn.round_trip(REQUEST).await?;
        assert_eq!((r.status, r.body, r.close), (200, &b"{}"[..], false));
        let r = conn.round_trip(REQUEST).await?;
        assert_eq!((r.status, r.body, r.close), (400, &b"abcde"[..], false));
        let r = conn.round_trip(REQUEST).await?;
        assert_eq!((r.status, r.body, r.close), (200, &b"hello"[..], true));
        Ok(())
    }

    #[tokio::test]
    async fn body_until_close_and_eof_error() -> io::Result<()> {
        let address = serve(vec![b"HTTP/1.1 500 Oops\r\n\r\nbody"]).await?;
        let mut conn = Connection::open(address).await?;
        let r = conn.round_trip(REQUEST).await?;
        assert_eq!((r.status, r.body, r.close), (500, &b"body"[..], true));
        let err = conn.round_trip(REQUEST).await.err();
        assert!(err.is_some());
        Ok(())
    }
}
