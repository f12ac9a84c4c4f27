//! [`EngineClient`]: the [`JourneyEngine`] trait over the v1 engine API, so the controller
//! drives a remote engine through the same calls as the embedded one.
//!
//! The process must have a rustls crypto provider installed (the operator installs ring's).

use std::path::PathBuf;
use std::time::Duration;

use journey_engine::{
    BoxFuture, Declaration, Declared, EngineError, FeedPage, JourneyEngine, Result, StatusSnapshot,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::errors::from_wire;
use crate::v1::{
    ErrorBody, FeedRevision, JourneyDeleteResponse, JourneyGetResponse, JourneyPut,
    JourneyPutResponse,
};

/// Where the engine is and how to reach it.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://engine.example:8091` (or `http://` for loopback and tests).
    pub url: String,
    /// PEM file of the CA that signed the engine's certificate; the system roots are not used.
    pub ca_file: Option<PathBuf>,
    /// The engine credential; read on every call, so a rotated Secret takes effect at once.
    pub token_file: PathBuf,
    /// Longest a call other than the feed's long poll may take.
    pub timeout: Duration,
    /// The cluster this client speaks for, sent with every call: an engine that serves
    /// another refuses (`WrongCluster`).
    pub cluster_id: Option<String>,
}

/// The engine API client.
#[derive(Clone)]
pub struct EngineClient {
    http: reqwest::Client,
    base: String,
    token_file: PathBuf,
    timeout: Duration,
    cluster_id: Option<String>,
}

impl std::fmt::Debug for EngineClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read the engine CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the engine CA file {path} holds no usable PEM certificate: {message}")]
    CaPem { path: PathBuf, message: String },
    #[error(
        "invalid engine URL {url:?}: it must start with https:// (or http:// for loopback and tests)"
    )]
    Url { url: String },
    #[error("cannot build the engine API client: {0}")]
    Build(String),
}

impl EngineClient {
    pub fn new(config: &ClientConfig) -> std::result::Result<Self, ClientError> {
        let base = config.url.trim_end_matches('/').to_string();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(ClientError::Url {
                url: config.url.clone(),
            });
        }
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|source| ClientError::CaFile {
                path: path.clone(),
                source,
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ClientError::CaPem {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(ClientError::CaPem {
                    path: path.clone(),
                    message: "no certificate found".into(),
                });
            }
            builder = builder.tls_certs_only(certs);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Build(e.to_string()))?;
        Ok(EngineClient {
            http,
            base,
            token_file: config.token_file.clone(),
            timeout: config.timeout,
            cluster_id: config.cluster_id.clone(),
        })
    }

    fn token(&self) -> Result<String> {
        let text = std::fs::read_to_string(&self.token_file).map_err(|e| {
            EngineError::Unavailable(format!(
                "cannot read the engine token file {}: {e}",
                self.token_file.display()
            ))
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(EngineError::Unavailable(format!(
                "the engine token file {} is empty",
                self.token_file.display()
            )));
        }
        Ok(token.to_string())
    }

    fn journey_url(&self, key: &str) -> Result<String> {
        let (namespace, name) = key.split_once('/').ok_or_else(|| {
            EngineError::InvalidDefinition(format!("journey key {key:?} is not namespace/name"))
        })?;
        Ok(format!("{}/v1/journeys/{namespace}/{name}", self.base))
    }

    /// One call: the answer's body, `Ok(None)` for 404 when `missing_ok`, or the engine error
    /// the answer stands for.
    async fn call<T: DeserializeOwned>(
        &self,
        key: &str,
        method: Method,
        url: String,
        body: Option<serde_json::Value>,
        timeout: Duration,
        missing_ok: bool,
    ) -> Result<Option<T>> {
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.token()?)
            .timeout(timeout);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(id) = &self.cluster_id {
            request = request.header(crate::v1::CLUSTER_HEADER, id);
        }
        let response = request
            .send()
            .await
            .map_err(|e| EngineError::Unavailable(format!("{url}: {}", describe(&e))))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json::<T>()
                .await
                .map(Some)
                .map_err(|e| EngineError::Unavailable(format!("{url}: unreadable answer: {e}")));
        }
        if status == StatusCode::NOT_FOUND && missing_ok {
            return Ok(None);
        }
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(from_wire(key, body)),
            Err(_) => Err(EngineError::Unavailable(format!(
                "{url}: HTTP {status}: {}",
                text.chars().take(200).collect::<String>()
            ))),
        }
    }
}

/// A reqwest error with its causes (the TLS reason is in the chain).
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl JourneyEngine for EngineClient {
    fn declare(&self, key: &str, declaration: Declaration) -> BoxFuture<Result<Declared>> {
        let (client, key) = (self.clone(), key.to_string());
        Box::pin(async move {
            let url = client.journey_url(&key)?;
            let body = serde_json::to_value(JourneyPut::from_declaration(declaration))
                .map_err(|e| EngineError::InvalidDefinition(e.to_string()))?;
            let answer: JourneyPutResponse = client
                .call(&key, Method::PUT, url, Some(body), client.timeout, false)
                .await?
                .ok_or_else(|| EngineError::NotFound(key.clone()))?;
            Ok(Declared {
                status: answer.status,
                requests: answer.requests,
            })
        })
    }

    fn status(&self, key: &str) -> BoxFuture<Result<Option<StatusSnapshot>>> {
        let (client, key) = (self.clone(), key.to_string());
        Box::pin(async move {
            let url = client.journey_url(&key)?;
            let answer: Option<JourneyGetResponse> = client
                .call(&key, Method::GET, url, None, client.timeout, true)
                .await?;
            Ok(answer.map(|a| a.status))
        })
    }

    fn delete(&self, key: &str) -> BoxFuture<Result<bool>> {
        let (client, key) = (self.clone(), key.to_string());
        Box::pin(async move {
            let url = client.journey_url(&key)?;
            let answer: Option<JourneyDeleteResponse> = client
                .call(&key, Method::DELETE, url, None, client.timeout, false)
                .await?;
            Ok(answer.is_some_and(|a| a.deleted))
        })
    }

    fn changes_since(&self, since: i64, wait: Duration) -> BoxFuture<Result<FeedPage>> {
        let client = self.clone();
        Box::pin(async move {
            let seconds = wait.as_secs().min(crate::server::MAX_WAIT_SECONDS);
            let url = format!(
                "{}/v1/changes?since={since}&waitSeconds={seconds}",
                client.base
            );
            let timeout = Duration::from_secs(seconds) + client.timeout;
            client
                .call::<FeedPage>("", Method::GET, url, None, timeout, false)
                .await?
                .ok_or_else(|| EngineError::Unavailable("no change feed".into()))
        })
    }

    fn claim_cluster(&self, id: &str) -> BoxFuture<Result<()>> {
        // Every call carries the client's cluster id; an explicit claim only checks it.
        let mut client = self.clone();
        client.cluster_id = Some(id.to_string());
        Box::pin(async move { client.feed_revision().await.map(drop) })
    }

    fn feed_revision(&self) -> BoxFuture<Result<i64>> {
        let client = self.clone();
        Box::pin(async move {
            let url = format!("{}/v1/changes/revision", client.base);
            let answer: FeedRevision = client
                .call("", Method::GET, url, None, client.timeout, false)
                .await?
                .ok_or_else(|| EngineError::Unavailable("no change feed".into()))?;
            Ok(answer.revision)
        })
    }
}
