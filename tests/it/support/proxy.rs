//! An HTTP proxy in front of the S3 server that misbehaves on purpose: it answers some
//! requests with 503 SlowDown (a transient error clients must retry), or strips the
//! conditional-write headers (a server without conditional writes).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[derive(Clone, Copy)]
pub enum Mode {
    /// Every `n`-th request gets 503, but never the same request twice in a row (with
    /// requests in flight at once, a fixed pattern could otherwise starve one of them).
    SlowDownEvery(usize),
    /// `If-None-Match` / `If-Match` never reach the server.
    NoConditionalWrites,
    /// Forward everything (to see which requests a client sends).
    PassThrough,
}

pub struct Proxy {
    pub endpoint: String,
    pub refused: Arc<AtomicUsize>,
    /// The request lines seen (`PUT /bucket/key?uploads HTTP/1.1`).
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
}

/// Starts the proxy to `upstream` (`http://host:port`); it runs until the process ends.
pub fn start(upstream: &str, mode: Mode) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let upstream = upstream.trim_start_matches("http://").to_string();
    let requests = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pending = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
    let (req, ref_, log) = (requests.clone(), refused.clone(), seen.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let upstream = upstream.clone();
            let (req, ref_, log) = (req.clone(), ref_.clone(), log.clone());
            let pending = pending.clone();
            std::thread::spawn(move || {
                let state = State {
                    requests: &req,
                    refused: &ref_,
                    seen: &log,
                    retried: &pending,
                };
                let _ = serve(conn, &upstream, mode, &state);
            });
        }
    });
    Proxy {
        endpoint,
        refused,
        seen,
    }
}

struct State<'a> {
    requests: &'a AtomicUsize,
    refused: &'a AtomicUsize,
    seen: &'a std::sync::Mutex<Vec<String>>,
    /// Request lines refused once and not yet served.
    retried: &'a std::sync::Mutex<std::collections::HashSet<String>>,
}

fn serve(conn: TcpStream, upstream: &str, mode: Mode, state: &State) -> std::io::Result<()> {
    let State {
        requests,
        refused,
        seen,
        retried,
    } = state;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut out = conn;
    {
        // One request: head lines, then a Content-Length body.
        let mut head = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            let lower = line.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            let conditional = lower.starts_with("if-none-match:") || lower.starts_with("if-match:");
            if matches!(mode, Mode::NoConditionalWrites) && conditional {
                continue;
            }
            if lower.starts_with("connection:") {
                continue;
            }
            head.push(line);
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        let line = head
            .first()
            .map(|l| l.trim_end().to_string())
            .unwrap_or_default();
        seen.lock().unwrap().push(line.clone());
        let n = requests.fetch_add(1, Ordering::SeqCst) + 1;
        if let Mode::SlowDownEvery(every) = mode {
            // A request refused once is served when it comes back.
            let again = retried.lock().unwrap().remove(&line);
            if n.is_multiple_of(every) && !again {
                retried.lock().unwrap().insert(line.clone());
                refused.fetch_add(1, Ordering::SeqCst);
                let msg = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
                write!(
                    out,
                    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{msg}",
                    msg.len()
                )?;
                return Ok(());
            }
        }
        let mut up = TcpStream::connect(upstream)?;
        for line in &head {
            up.write_all(line.as_bytes())?;
        }
        up.write_all(b"Connection: close\r\n\r\n")?;
        up.write_all(&body)?;
        let mut reply = Vec::new();
        up.read_to_end(&mut reply)?;
        // One request per connection: the reply says `Connection: close`.
        out.write_all(&reply)
    }
}
