//! The wire code of the loopback HTTP stand-ins, the demo's token endpoint and the tests' fake
//! STACKIT: read one request (head, then a `Content-Length` body, both capped) and write one
//! `Connection: close` answer. Plain HTTP/1.1 and nothing more; never used to talk to a real
//! server.

use std::io::{Read, Write};

/// Request line, lower-cased headers, body.
pub type Request = (String, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP/1.1 request (a head of at most 64 KiB and a `Content-Length` body of at most
/// 1 MiB) from a stream; `None` for a connection that closes first.
pub fn read_request(stream: &mut impl Read) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len.min(1024 * 1024) {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((request_line, headers, body))
}

/// Writes a complete `Connection: close` HTTP/1.1 response.
pub fn write_response(
    stream: &mut impl Write,
    status: u16,
    content_type: &str,
    body: &[u8],
    headers: &[(String, String)],
) {
    let _ = stream.write_all(&response_bytes(status, content_type, body, headers));
    let _ = stream.flush();
}

/// A complete `Connection: close` HTTP/1.1 response as bytes.
pub fn response_bytes(status: u16, content_type: &str, body: &[u8], headers: &[(String, String)]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} Stand-in\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
