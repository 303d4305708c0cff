//! A loopback HTTP/1.1 origin for the aggregator tests: each path has a handler the test sets
//! (and may change between polls); every request is logged with its headers. It can misbehave on
//! purpose: drip a body byte by byte, send gigabytes of gzip, never answer.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    /// Header names in lower case, values as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    pub method: String,
    /// The body, when the request had a Content-Length.
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

#[derive(Clone, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// Send the body one byte per interval.
    pub drip: Option<Duration>,
    /// Stream this many bytes of gzip-compressed zeros (with Content-Encoding: gzip).
    pub gzip_zeros: Option<u64>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply { status, ..Default::default() }
    }

    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(200).header("Content-Type", content_type).body(body)
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Reply {
        self.headers.push((name.to_string(), value.as_ref().to_vec()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = body.into();
        self
    }
}

type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

#[derive(Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    routes: Arc<Mutex<HashMap<String, Handler>>>,
    log: Arc<Mutex<Vec<Request>>>,
}

impl Origin {
    pub fn start() -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind origin");
        let origin = Origin {
            addr: listener.local_addr().expect("addr"),
            routes: Arc::new(Mutex::new(HashMap::new())),
            log: Arc::new(Mutex::new(Vec::new())),
        };
        let o = origin.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let o = o.clone();
                std::thread::spawn(move || o.serve(stream));
            }
        });
        origin
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `reply` for `path` from now on.
    pub fn set(&self, path: &str, reply: Reply) {
        self.handle(path, move |_| reply.clone());
    }

    pub fn handle(&self, path: &str, f: impl Fn(&Request) -> Reply + Send + Sync + 'static) {
        self.routes.lock().expect("routes").insert(path.to_string(), Arc::new(f));
    }

    pub fn requests(&self, path: &str) -> Vec<Request> {
        self.log.lock().expect("log").iter().filter(|r| r.path == path).cloned().collect()
    }

    pub fn hits(&self, path: &str) -> usize {
        self.requests(path).len()
    }

    pub fn total_hits(&self) -> usize {
        self.log.lock().expect("log").len()
    }

    fn serve(&self, stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(match stream.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        });
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let method = line.split_whitespace().next().unwrap_or("GET").to_string();
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut headers = Vec::new();
        loop {
            let mut raw = Vec::new();
            if reader.read_until(b'\n', &mut raw).is_err() || raw == b"\r\n" || raw.is_empty() {
                break;
            }
            let raw = raw.strip_suffix(b"\r\n").unwrap_or(&raw);
            if let Some(colon) = raw.iter().position(|&b| b == b':') {
                let name = String::from_utf8_lossy(&raw[..colon]).trim().to_lowercase();
                let value = raw[colon + 1..].trim_ascii().to_vec();
                headers.push((name, value));
            }
        }
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let request = Request { path: path.clone(), headers, method, body };
        self.log.lock().expect("log").push(request.clone());
        let handler = self.routes.lock().expect("routes").get(&path).cloned();
        let reply = match handler {
            Some(h) => h(&request),
            None => Reply::new(404).body("not found"),
        };
        let _ = write_reply(stream, reply);
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn write_reply(mut stream: TcpStream, reply: Reply) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status)).into_bytes();
    for (n, v) in &reply.headers {
        head.extend_from_slice(n.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(v);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"Connection: close\r\n");
    if let Some(total) = reply.gzip_zeros {
        head.extend_from_slice(b"Content-Type: application/rss+xml\r\nContent-Encoding: gzip\r\n\r\n");
        stream.write_all(&head)?;
        return write_gzip_zeros(&mut stream, total);
    }
    if reply.status != 304 && reply.drip.is_none() {
        head.extend_from_slice(format!("Content-Length: {}\r\n", reply.body.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    stream.write_all(&head)?;
    match reply.drip {
        Some(every) => {
            for b in &reply.body {
                stream.write_all(&[*b])?;
                stream.flush()?;
                std::thread::sleep(every);
            }
            Ok(())
        }
        None => stream.write_all(&reply.body),
    }
}

/// A gzip body of `total` zero bytes that is about 1/1000 of that on the wire: one member of
/// 1 MiB of zeros, repeated (gzip allows concatenated members, and decoders read them all).
fn write_gzip_zeros(stream: &mut TcpStream, total: u64) -> std::io::Result<()> {
    let member = zero_member();
    let mut sent = 0u64;
    while sent < total {
        if stream.write_all(&member).is_err() {
            return Ok(());
        }
        sent += 1 << 20;
    }
    Ok(())
}

/// One gzip member holding 1 MiB of zeros (from the `gzip` tool, present on every Debian).
fn zero_member() -> Vec<u8> {
    let mut child = std::process::Command::new("gzip")
        .args(["-c", "-9"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip (Debian package gzip) is needed for the gzip-bomb test");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let zeros = vec![0u8; 1 << 20];
        let _ = stdin.write_all(&zeros);
    });
    let mut out = Vec::new();
    child.stdout.take().expect("stdout").read_to_end(&mut out).expect("gzip output");
    let _ = writer.join();
    let _ = child.wait();
    out
}
