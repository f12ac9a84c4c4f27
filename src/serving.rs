//! Serving a router on a listener: TLS with rustls (the certificate and key are read again
//! when their files change, as a mounted Secret rotates) or, only when asked for, plain HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;

/// The certificate chain and key a listener presents (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How a listener speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Tls(TlsFiles),
    /// Only with `--insecure-plain-http` (loopback, tests, or behind a TLS-terminating mesh).
    PlainHttp,
}

impl Transport {
    /// From the command line: TLS files, or plain HTTP only when it was asked for.
    pub fn from_flags(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        insecure_plain_http: bool,
    ) -> Result<Self, ServeError> {
        match (cert, key, insecure_plain_http) {
            (Some(cert), Some(key), false) => Ok(Transport::Tls(TlsFiles { cert, key })),
            (None, None, true) => Ok(Transport::PlainHttp),
            (Some(_), Some(_), true) => Err(ServeError::Flags(
                "--insecure-plain-http and --tls-cert-file/--tls-key-file exclude each other".into(),
            )),
            (Some(_), None, _) | (None, Some(_), _) => Err(ServeError::Flags(
                "--tls-cert-file and --tls-key-file go together".into(),
            )),
            (None, None, false) => Err(ServeError::Flags(
                "give --tls-cert-file and --tls-key-file (a mounted TLS Secret), or --insecure-plain-http to serve plain HTTP (loopback and tests only)".into(),
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Flags(String),
    #[error("cannot listen on {addr} for the {name}: {source}")]
    Bind {
        name: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot load the TLS certificate {cert} and key {key}: {source}")]
    Tls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How often the certificate files are checked for a change.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

fn stamp(files: &TlsFiles) -> Option<(SystemTime, u64, SystemTime, u64)> {
    let c = std::fs::metadata(&files.cert).ok()?;
    let k = std::fs::metadata(&files.key).ok()?;
    Some((c.modified().ok()?, c.len(), k.modified().ok()?, k.len()))
}

/// A listener bound (so a taken port fails at start-up) with its certificate loaded.
pub struct Bound {
    name: &'static str,
    listener: std::net::TcpListener,
    addr: SocketAddr,
    tls: Option<(RustlsConfig, TlsFiles)>,
}

impl Bound {
    pub async fn bind(
        name: &'static str,
        addr: SocketAddr,
        transport: &Transport,
    ) -> Result<Self, ServeError> {
        let bind_error = |source| ServeError::Bind { name, addr, source };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        let tls = match transport {
            Transport::PlainHttp => None,
            Transport::Tls(files) => {
                crate::tls::ensure_crypto_provider();
                let config = RustlsConfig::from_pem_file(&files.cert, &files.key)
                    .await
                    .map_err(|source| ServeError::Tls {
                        cert: files.cert.clone(),
                        key: files.key.clone(),
                        source,
                    })?;
                Some((config, files.clone()))
            }
        };
        Ok(Bound {
            name,
            listener,
            addr: local,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes; requests in flight get 10 s to finish.
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Bound {
            name,
            listener,
            addr,
            tls,
        } = self;
        let handle: Handle<SocketAddr> = Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.await;
            stopper.graceful_shutdown(Some(Duration::from_secs(10)));
        });
        let service = router.into_make_service();
        match tls {
            None => {
                tracing::info!(%addr, "{name} serving plain HTTP (--insecure-plain-http)");
                axum_server::from_tcp(listener)?
                    .handle(handle)
                    .serve(service)
                    .await
            }
            Some((config, files)) => {
                tracing::info!(%addr, cert = %files.cert.display(), "{name} serving HTTPS");
                let reloader = tokio::spawn(reload_on_change(name, config.clone(), files));
                let served = axum_server::from_tcp_rustls(listener, config)?
                    .handle(handle)
                    .serve(service)
                    .await;
                reloader.abort();
                served
            }
        }
    }
}

/// Reads the certificate and key again whenever their files change; a pair that does not
/// load keeps the previous one in use (logged), so a half-written Secret never takes a
/// listener down.
async fn reload_on_change(name: &'static str, config: RustlsConfig, files: TlsFiles) {
    let mut seen = stamp(&files);
    loop {
        tokio::time::sleep(RELOAD_CHECK).await;
        let now = stamp(&files);
        if now == seen {
            continue;
        }
        match config.reload_from_pem_file(&files.cert, &files.key).await {
            Ok(()) => {
                tracing::info!(cert = %files.cert.display(), "{name}: TLS certificate reloaded");
                seen = now;
            }
            Err(e) => {
                tracing::warn!(error = %e, cert = %files.cert.display(), "{name}: the changed TLS certificate does not load; keeping the previous one");
            }
        }
    }
}
