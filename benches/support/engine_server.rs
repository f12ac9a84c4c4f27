//! A `journey-operator engine` child process over TLS (a CA of its own, an engine token), for
//! the controller benchmark's remote mode.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// The cluster id the bench's controllers send.
pub const CLUSTER_ID: &str = "bench-cluster";

pub struct EngineServer {
    child: Child,
    pub dir: PathBuf,
    pub url: String,
}

fn free_port() -> Res<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl EngineServer {
    pub async fn start(binary: &Path, dir: &Path) -> Res<EngineServer> {
        std::fs::create_dir_all(dir)?;
        xtask::control_plane::write_serving_certificates(dir)?;
        std::fs::write(dir.join("engine.token"), "bench-engine-token")?;
        let (api, ops) = (free_port()?, free_port()?);
        let log = std::fs::File::create(dir.join("engine.log"))?;
        let child = Command::new(binary)
            .arg("engine")
            .arg(format!("--data-dir={}", dir.join("data").display()))
            .arg(format!("--engine-api-addr=127.0.0.1:{api}"))
            .arg(format!(
                "--engine-token-file={}",
                dir.join("engine.token").display()
            ))
            .arg(format!("--ops-addr=127.0.0.1:{ops}"))
            .arg(format!("--tls-cert-file={}", dir.join("tls.crt").display()))
            .arg(format!("--tls-key-file={}", dir.join("tls.key").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let server = EngineServer {
            child,
            dir: dir.to_path_buf(),
            url: format!("https://127.0.0.1:{api}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = reqwest::get(format!("http://127.0.0.1:{ops}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("journey-operator engine not ready after 30s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The flags of `journey-operator run` that make it a controller of this engine.
    pub fn run_flags(&self) -> Vec<String> {
        vec![
            format!("--engine-url={}", self.url),
            format!("--engine-ca={}", self.dir.join("ca.crt").display()),
            format!(
                "--engine-token-file={}",
                self.dir.join("engine.token").display()
            ),
            format!("--cluster-id={CLUSTER_ID}"),
        ]
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
