//! A boot storm against a running `kiln serve`, as after a power cut: every
//! machine of the bench fleet (`bench/gen.py`) boots at once, CONCURRENCY
//! at a time, and goes through its whole workflow — boot script, install
//! file, report (`hardware_ok` for a commissioning step, `postinstall_done`
//! for the install) — until it is installed. Then the state database is
//! read: every report that got a 2xx must be in it.
//!
//!     cargo run --release --example storm -- URL STATE_DIR [MACHINES] [CONCURRENCY]
//!
//! HTTP/1.1 by hand over tokio, one request per connection: the load
//! generator must not be the bottleneck (the Python one was).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Status and body of one request.
async fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    stream.write_all(body.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no HTTP head")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, body))
}

fn dechunk(mut data: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = data.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        data = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// The run token and install file a boot script names.
fn install_url(script: &str) -> Option<(String, String)> {
    let at = script.find("/install/")? + "/install/".len();
    let mut parts = script[at..].splitn(2, '/');
    let token = parts.next()?.to_string();
    let file = parts.next()?.split(|c: char| c.is_whitespace()).next()?.to_string();
    Some((token, file))
}

/// One machine's whole workflow; the runs whose reports were acknowledged.
async fn machine(addr: &str, i: usize) -> Result<Vec<i64>, String> {
    let mac = format!("02-00-00-{:02x}-{:02x}-{:02x}", i >> 16 & 255, i >> 8 & 255, i & 255);
    let mut acknowledged = Vec::new();
    for _step in 0..2 {
        let (status, script) = request(addr, "GET", &format!("/boot/ipxe?mac={mac}"), None, "").await?;
        if status != 200 {
            return Err(format!("{mac}: boot {status}"));
        }
        let Some((token, file)) = install_url(&script) else {
            return Ok(acknowledged); // installed: the local-disk script
        };
        let (status, _) = request(addr, "GET", &format!("/install/{token}/{file}"), None, "").await?;
        if status != 200 {
            return Err(format!("{mac}: install file {status}"));
        }
        let commissioning = file.contains("commission");
        let snapshot = if commissioning {
            r#"{"snapshot": {"hardware_ok": true}}"#
        } else {
            r#"{"snapshot": {"postinstall_done": true}}"#
        };
        let (status, answer) = request(addr, "POST", "/v1/agents/facts", Some(&token), snapshot).await?;
        if !(200..300).contains(&status) {
            return Err(format!("{mac}: report {status}"));
        }
        let answer: serde_json::Value = serde_json::from_str(&answer).map_err(|e| e.to_string())?;
        acknowledged.push(answer["run"].as_i64().ok_or("no run in the answer")?);
        if answer["state"] == "installed" {
            return Ok(acknowledged);
        }
    }
    Err(format!("{mac}: not installed after two steps"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: storm URL STATE_DIR [MACHINES] [CONCURRENCY]");
        std::process::exit(2);
    }
    let addr = Arc::new(args[1].trim_start_matches("http://").trim_end_matches('/').to_string());
    let state = std::path::PathBuf::from(&args[2]);
    let machines: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(256);
    let next = Arc::new(AtomicUsize::new(0));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (addr, next, acknowledged, errors) = (addr.clone(), next.clone(), acknowledged.clone(), errors.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= machines {
                        break;
                    }
                    match machine(&addr, i).await {
                        Ok(runs) => acknowledged.lock().unwrap().extend(runs),
                        Err(e) => errors.lock().unwrap().push(e),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let took = started.elapsed();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let errors = errors.lock().unwrap().clone();
    // Every acknowledged report is in the database.
    let db = rusqlite::Connection::open_with_flags(
        state.join("kiln.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("the state database");
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    let mut stored = db.prepare("SELECT 1 FROM facts WHERE run_id = ?1 LIMIT 1").unwrap();
    let missing = acknowledged
        .iter()
        .filter(|run| !stored.exists([**run]).unwrap_or(false))
        .count();
    println!(
        "storm: {machines} machines, {concurrency} at a time: {} reports acknowledged in {:.2} s ({:.0} durable reports/s), {} errors, {missing} acknowledged reports missing from the database",
        acknowledged.len(),
        took.as_secs_f64(),
        acknowledged.len() as f64 / took.as_secs_f64(),
        errors.len()
    );
    for e in errors.iter().take(5) {
        println!("  error: {e}");
    }
    if !errors.is_empty() || missing > 0 {
        std::process::exit(1);
    }
}
