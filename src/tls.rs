//! One TLS crypto provider for the process: kube's client and reqwest (webhooks, the demo)
//! both use rustls, which needs exactly one process-wide provider. ring is the one kube uses.

/// Installs rustls' ring provider unless one is already installed. Idempotent.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An HTTP(S) client for outgoing requests, with the provider in place.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    ensure_crypto_provider();
    reqwest::Client::builder()
}
