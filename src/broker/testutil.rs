//! Test helpers: a loopback HTTP/1.1 server that records what it sees, and a fake DNS table.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use bytes::Bytes;

use super::addr::AddressPolicy;
use super::fetch::{FetchLimits, FetchRequest, HttpFetcher};
use super::resolve::Lookup;

/// A fixed name → addresses table; unknown names fail like NXDOMAIN.
pub struct TableLookup(HashMap<String, Vec<IpAddr>>);

#[async_trait::async_trait]
impl Lookup for TableLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        self.0
            .get(host)
            .cloned()
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no such name"))
    }
}

pub fn table_lookup(entries: &[(&str, &[&str])]) -> Arc<dyn Lookup> {
    let table = entries
        .iter()
        .map(|(name, ips)| {
            let ips = ips
                .iter()
                .map(|ip| ip.parse().expect("test address"))
                .collect();
            (name.to_string(), ips)
        })
        .collect();
    Arc::new(TableLookup(table))
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server answers.
pub enum Reply {
    /// Status, extra headers, body (sent with content-length).
    Full(u16, Vec<(String, String)>, Vec<u8>),
    /// `count` chunks of `chunk`, chunked encoding, no content-length.
    Chunked(Vec<u8>, usize),
    /// A 200 with these headers, then silence.
    HeadersThenStall(Vec<(String, String)>, Duration),
    /// Nothing at all for a while.
    Stall(Duration),
}

impl Reply {
    pub fn ok(body: &str) -> Self {
        Reply::Full(200, vec![], body.as_bytes().to_vec())
    }

    pub fn redirect(status: u16, location: &str) -> Self {
        Reply::Full(status, vec![("location".into(), location.into())], vec![])
    }
}

type Handler = dyn Fn(&Seen, u16) -> Reply + Send + Sync;

pub struct TestServer {
    pub port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Listens on 127.0.0.1:0; `handler` gets each request and the server's port.
    pub async fn start(handler: impl Fn(&Seen, u16) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let (c, s) = (connections.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (s, h) = (s.clone(), handler.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, port, s, h).await;
                });
            }
        });
        Self {
            port,
            connections,
            seen,
            task,
        }
    }

    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("http://127.0.0.1:{}{path}", self.port)).expect("url")
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one request per connection, then closes it.
async fn serve(
    stream: TcpStream,
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Handler>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((n, v)) = trimmed.split_once(':') {
            headers.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let mut req = Seen {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    let len: usize = req
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap_or(0));
    req.body.resize(len, 0);
    reader.read_exact(&mut req.body).await?;
    seen.lock().expect("lock").push(req.clone());
    let reply = handler(&req, port);
    let mut stream = reader.into_inner();
    match reply {
        Reply::Full(status, extra, body) => {
            let head = head(
                status,
                &extra,
                &format!("content-length: {}\r\n", body.len()),
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
        }
        Reply::Chunked(chunk, count) => {
            let head = head(200, &[], "transfer-encoding: chunked\r\n");
            stream.write_all(head.as_bytes()).await?;
            for _ in 0..count {
                stream
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
                stream.write_all(&chunk).await?;
                stream.write_all(b"\r\n").await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
        }
        Reply::HeadersThenStall(extra, wait) => {
            stream.write_all(head(200, &extra, "").as_bytes()).await?;
            stream.flush().await?;
            tokio::time::sleep(wait).await;
        }
        Reply::Stall(wait) => tokio::time::sleep(wait).await,
    }
    stream.shutdown().await
}

fn head(status: u16, extra: &[(String, String)], framing: &str) -> String {
    let mut head = format!("HTTP/1.1 {status} X\r\nconnection: close\r\n{framing}");
    for (n, v) in extra {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A loopback address nobody listens on.
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("local addr")
}

// Fetcher helpers shared by the fetch test modules.

pub fn fetcher(policy: &[&str]) -> HttpFetcher {
    let lookup = table_lookup(&[("rebind.test", &["127.0.0.1"])]);
    HttpFetcher::with_lookup(AddressPolicy::parse(policy).expect("policy"), lookup)
        .expect("fetcher")
}

pub fn loopback() -> HttpFetcher {
    fetcher(&["127.0.0.1/32"])
}

pub fn get(url: url::Url) -> FetchRequest {
    request("GET", url, &[], None)
}

pub fn request(
    method: &str,
    url: url::Url,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> FetchRequest {
    FetchRequest {
        method: method.into(),
        url,
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.map(|b| Bytes::from(b.to_owned())),
        sensitive_headers: vec![],
        redirect: Default::default(),
    }
}

pub fn parse(url: &str) -> url::Url {
    url::Url::parse(url).expect("url")
}

pub fn any_host(_: &str) -> bool {
    true
}

pub fn small(limit: u64) -> FetchLimits {
    FetchLimits {
        max_response_bytes: limit,
        timeout: Duration::from_secs(5),
        max_redirects: 5,
    }
}

/// Echoes the method, target and body, and a request header back.
pub async fn echo_server() -> TestServer {
    TestServer::start(|seen, _| {
        let body = format!(
            "{} {} {}",
            seen.method,
            seen.target,
            String::from_utf8_lossy(&seen.body)
        );
        let echoed = seen.header("x-agent").unwrap_or("-").to_owned();
        Reply::Full(
            201,
            vec![
                ("x-echo".into(), echoed),
                ("set-cookie".into(), "a=1".into()),
                ("set-cookie".into(), "b=2".into()),
            ],
            body.into_bytes(),
        )
    })
    .await
}
