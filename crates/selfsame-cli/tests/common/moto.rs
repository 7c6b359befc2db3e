//! A real local S3 server for the remote tests: moto (PyPI `moto[s3]`),
//! installed once into a venv under the build's temp dir, started on a
//! free port per test and stopped by its pid. Before a test uses it, the
//! server must pass [`selfsame::testing::s3_self_check`]: a server that
//! ignores conditional writes fails the test instead of fooling it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The moto version the tests were written against (see the notes on S3
/// test servers: it honours `If-None-Match` and `If-Match`).
pub const MOTO: &str = "moto[s3]==5.2.5";

/// Dummy credentials: moto accepts any.
pub const AWS_KEY: &str = "AKIATESTKEY0000CANARY";
/// The AWS secret the tests pass; it must never show up anywhere.
pub const AWS_SECRET: &str = "aws-secret-canary/9f8e7d6c5b4a3f2e1d0c";

static INSTALL: Mutex<()> = Mutex::new(());

/// The venv with moto, made when missing (a venv's scripts name its
/// path, so it is made where it stays; `installed` marks it complete and
/// names where it was made: a target directory moved elsewhere gets a new
/// one).
fn venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("moto-5.2.5");
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let mark = format!("{MOTO}\n{}\n", dir.display());
    if std::fs::read_to_string(dir.join("installed")).is_ok_and(|m| m == mark) {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 -m venv")
        .success()
        && Command::new(dir.join("bin/pip"))
            .args(["install", "-q", MOTO, "flask", "flask-cors"])
            .status()
            .expect("pip install moto")
            .success();
    assert!(ok, "installing {MOTO} into {} failed", dir.display());
    std::fs::write(dir.join("installed"), mark).unwrap();
    dir
}

/// A running moto server with one bucket, stopped (by pid) when dropped.
pub struct Moto {
    child: Option<Child>,
    pub port: u16,
    pub bucket: String,
    venv: PathBuf,
}

impl Moto {
    /// Starts a server, makes the bucket `selfsame-test`, and checks that
    /// it honours conditional writes.
    pub fn start() -> Moto {
        let venv = venv();
        // A free port can be taken by another test between the probe and
        // moto's bind; moto then exits, and a new port is tried.
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut m = Moto {
                child: None,
                port,
                bucket: "selfsame-test".into(),
                venv: venv.clone(),
            };
            if !m.resume() {
                continue;
            }
            let bucket = format!("PUT /{} HTTP/1.1", m.bucket);
            let mut made = false;
            for _ in 0..50 {
                made = http(port, &bucket) == 200;
                if made {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !made || !m.alive() {
                continue;
            }
            selfsame::testing::s3_self_check(&m.endpoint(), &m.bucket)
                .unwrap_or_else(|e| panic!("the S3 server fails its self-check: {e}"));
            return m;
        }
        panic!("moto_server could not be started on a free port");
    }

    /// Whether the server process is still running.
    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts the server on its port; `false` when it exited (the port
    /// was taken) before it listened.
    pub fn resume(&mut self) -> bool {
        let child = Command::new(self.venv.join("bin/moto_server"))
            .args(["-H", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        self.child = Some(child);
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if !self.alive() {
                return false;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "moto_server did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.alive()
    }

    /// Stops the server (by its pid) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `s3://selfsame-test/PREFIX`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The env a command needs to reach the server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", AWS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", AWS_SECRET.to_owned()),
        ]
    }

    /// Every object in the bucket: key and bytes (through boto3 from the
    /// venv).
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
out = sys.stdout.buffer
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[2]):
    for o in page.get("Contents", []):
        body = s3.get_object(Bucket=sys.argv[2], Key=o["Key"])["Body"].read()
        k = o["Key"].encode()
        out.write(len(k).to_bytes(4, "big") + k + len(body).to_bytes(8, "big") + body)
"#;
        let out = Command::new(self.venv.join("bin/python"))
            .args(["-c", script, &self.endpoint(), &self.bucket])
            .output()
            .expect("list the bucket");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut rest = &out.stdout[..];
        let mut items = Vec::new();
        while !rest.is_empty() {
            let kl = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let key = String::from_utf8(rest[4..4 + kl].to_vec()).unwrap();
            rest = &rest[4 + kl..];
            let bl = u64::from_be_bytes(rest[..8].try_into().unwrap()) as usize;
            items.push((key, rest[8..8 + bl].to_vec()));
            rest = &rest[8 + bl..];
        }
        items
    }

    /// Writes `bytes` under `key`, or deletes `key` when `bytes` is
    /// `None` (through boto3: someone with the bucket's credentials).
    #[allow(dead_code)]
    pub fn set_object(&self, key: &str, bytes: Option<&[u8]>) {
        let script = r#"
import sys, boto3
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
if sys.argv[4] == "put":
    s3.put_object(Bucket=sys.argv[2], Key=sys.argv[3], Body=sys.stdin.buffer.read())
else:
    s3.delete_object(Bucket=sys.argv[2], Key=sys.argv[3])
"#;
        let mut child = Command::new(self.venv.join("bin/python"))
            .args(["-c", script, &self.endpoint(), &self.bucket, key])
            .arg(if bytes.is_some() { "put" } else { "delete" })
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start python");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(bytes.unwrap_or_default()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends one bodiless request line; returns the status.
fn http(port: u16, line: &str) -> u16 {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let sent = write!(
        s,
        "{line}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let mut resp = String::new();
    if sent.is_err() || s.read_to_string(&mut resp).is_err() {
        return 0;
    }
    resp.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A TCP relay in front of a server that can be switched off: off, it
/// drops every connection, as a server that is down would; the server
/// behind it keeps what it holds.
pub struct Relay {
    pub port: u16,
    on: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    /// A relay to `127.0.0.1:upstream`, on.
    pub fn new(upstream: u16) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let on = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let flag = on.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(client) = conn else { continue };
                if !flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c1, mut s1) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Relay { port, on }
    }

    /// Switches the relay on or off.
    pub fn set(&self, on: bool) {
        self.on.store(on, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
