//! A real S3-speaking server for the tests: `moto_server` (pinned), on 127.0.0.1 with a
//! free port, started on first use and killed by the kernel when the test process ends.
//!
//! The server is `BACKFILL_MOTO_SERVER` if set (`.ci/run` sets it), else one installed on
//! first use into a virtual environment under the target folder.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use backfill::storage::{Backend, Location};

// Declared here, not in `support`, so that the listing benchmark (which includes this
// file alone) has it too.
#[path = "python_env.rs"]
pub mod python_env;
use object_store::aws::AmazonS3Builder;
use object_store::ObjectStore;

pub const MOTO: &str = "moto[server]==5.2.5";

pub struct Server {
    pub endpoint: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("BACKFILL_MOTO_SERVER") {
        return PathBuf::from(p);
    }
    python_env::python_env("moto-venv", &[MOTO], "the S3 tests").join("bin/moto_server")
}

/// Starts a moto server with extra environment; it lives as long as the test process.
pub fn start(env: &[(&str, &str)]) -> Server {
    let bin = moto_binary();
    let port = free_port();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    // The spawning thread never ends, so PDEATHSIG fires only when the process does.
    std::thread::spawn(move || {
        let mut cmd = std::process::Command::new(bin);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .envs(env)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it only sets the parent-death signal.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("moto_server starts");
        tx.send(()).unwrap();
        let _child = child;
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Server {
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// The shared server of this test process.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| start(&[]))
}

/// A new empty bucket.
pub fn bucket(server: &Server) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "bf-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let addr = server.endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "creating bucket {name}: {reply}"
    );
    name
}

pub fn store(endpoint: &str, bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_allow_http(true)
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig {
                    init_backoff: Duration::from_millis(10),
                    max_backoff: Duration::from_millis(100),
                    base: 2.0,
                },
                max_retries: 6,
                retry_timeout: Duration::from_secs(30),
            })
            .build()
            .unwrap(),
    )
}

pub fn location(endpoint: &str, bucket: &str, prefix: &str) -> Location {
    Location::with_store(
        store(endpoint, bucket),
        Backend::S3,
        &format!("s3://{bucket}"),
        prefix,
    )
}

/// Environment for the binary to reach the server.
pub fn env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test-secret-never-printed".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}
