//! Accepting connections so that slow or abusive clients cannot starve the
//! executor: a cap on concurrent connections (with a log line when it is
//! reached), a deadline for a request's headers (slowloris), and caps on
//! header size and count. Each connection's peer address and scheme reach
//! the handlers (for per-address limits and the URLs machines are sent).
//! With TLS, the handshake must also finish within the header deadline.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

use tokio_rustls::TlsAcceptor;

use super::clock::now;
use super::log;
use super::tls::Tls;

/// How much of the executor one client may hold.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Connections served at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Connections one client address may hold at once.
    pub max_connections_per_address: usize,
    /// Time a client has to send a request's headers.
    pub header_timeout: Duration,
    /// Failed authentications an address may have in a minute before it
    /// is refused for a minute.
    pub max_auth_failures: u32,
    /// Bytes a facts report may have.
    pub max_facts_bytes: usize,
    /// `/v1/events` streams open at once.
    pub max_event_streams: usize,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 4096,
            max_connections_per_address: 512,
            header_timeout: Duration::from_secs(10),
            max_auth_failures: 20,
            max_facts_bytes: 1024 * 1024,
            max_event_streams: 32,
        }
    }
}

/// Bytes a request's headers may take, and how many there may be.
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Connections held per client address.
#[derive(Clone)]
struct PerAddress {
    max: usize,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection of an address; given back when dropped.
struct AddressSlot {
    ip: IpAddr,
    held: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    fn new(max: usize) -> PerAddress {
        PerAddress {
            max,
            held: Arc::default(),
        }
    }

    /// A slot for one more connection of `ip`, unless it holds its share.
    fn take(&self, ip: IpAddr) -> Option<AddressSlot> {
        let mut held = self.held.lock().ok()?;
        let n = held.entry(ip).or_default();
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            ip,
            held: self.held.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut held) = self.held.lock() {
            if let Some(n) = held.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    held.remove(&self.ip);
                }
            }
        }
    }
}

/// The scheme a request arrived by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Scheme(pub &'static str);

/// Serves `router` on `listener` (over TLS when given) until `shutdown`
/// resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let scheme = Scheme(if tls.is_some() { "https" } else { "http" });
    let acceptor = tls.map(|t| TlsAcceptor::from(t.config.clone()));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = PerAddress::new(limits.max_connections_per_address);
    let (last_full_log, last_address_log) = (AtomicU64::new(0), AtomicU64::new(0));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    log(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(address_slot) = per_address.take(peer.ip()) else {
            let minute = now() / 60;
            if last_address_log.swap(minute as u64, Ordering::Relaxed) != minute as u64 {
                log(&format!(
                    "{} holds {} connections (--max-connections-per-address): closing its new ones",
                    peer.ip(),
                    limits.max_connections_per_address
                ));
            }
            drop(stream);
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // One line a minute at most, however long the flood lasts.
            let minute = now() / 60;
            if last_full_log.swap(minute as u64, Ordering::Relaxed) != minute as u64 {
                log(&format!(
                    "connection limit reached ({} at once, --max-connections): closing new connections",
                    limits.max_connections
                ));
            }
            drop(stream);
            continue;
        };
        let service = router
            .clone()
            .map_request(move |mut request: axum::extract::Request<_>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request.extensions_mut().insert(scheme);
                request
            });
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(MAX_HEADER_BYTES.max(8192))
                .max_headers(MAX_HEADERS);
            let service = TowerToHyperService::new(service);
            match acceptor {
                None => {
                    let _ = http.serve_connection(TokioIo::new(stream), service).await;
                }
                Some(acceptor) => {
                    // A handshake that stalls is a slow client like any other.
                    let handshake = tokio::time::timeout(limits.header_timeout, acceptor.accept(stream)).await;
                    if let Ok(Ok(stream)) = handshake {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            }
            drop(slot);
            drop(address_slot);
        });
    }
    // Let requests under way finish, briefly.
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        slots.acquire_many(limits.max_connections as u32),
    )
    .await;
}

/// The peer's address, for handlers.
pub(crate) type Peer = ConnectInfo<SocketAddr>;
