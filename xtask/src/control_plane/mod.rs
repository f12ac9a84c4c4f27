//! A real local Kubernetes control plane — etcd and the upstream kube-apiserver — started and
//! torn down by the project itself. The test command and the main-job command both use it when
//! no cluster is configured.

mod certs;
pub(crate) mod process;

use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use thiserror::Error;

pub use certs::{ClientCert, mint_client_cert, write_serving_certificates};

#[derive(Debug, Error)]
pub enum ControlPlaneError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("generating certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("etcd is not available for this platform: {0}")]
    NoEtcd(String),
    #[error("{component} exited early ({status}); last log lines:\n{log_tail}")]
    ExitedEarly {
        component: &'static str,
        status: String,
        log_tail: String,
    },
    #[error("{component} was not ready after {seconds}s; last log lines:\n{log_tail}")]
    NotReady {
        component: &'static str,
        seconds: u64,
        log_tail: String,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ControlPlaneError {
    let what = what.into();
    move |source| ControlPlaneError::Io { what, source }
}

/// Where the control plane keeps its files and which binaries it runs.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// Certificates, kubeconfig, etcd data, logs and the audit log live here.
    pub dir: PathBuf,
    pub kube_apiserver: PathBuf,
    pub etcd: PathBuf,
    /// Where the apiserver listens and what it advertises. Loopback (the default for tests)
    /// leaves the `kubernetes` Service without endpoints; an address pods can route to (the
    /// real node's) gets them from the lease reconciler, so in-cluster clients work.
    pub address: IpAddr,
}

impl ControlPlaneConfig {
    /// A control plane on loopback, what every test but the real node's uses.
    pub fn loopback(dir: PathBuf, kube_apiserver: PathBuf, etcd: PathBuf) -> Self {
        ControlPlaneConfig {
            dir,
            kube_apiserver,
            etcd,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

/// The etcd binary shipped by the `etcd-bin-vendored` crate.
pub fn vendored_etcd() -> Result<PathBuf, ControlPlaneError> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        etcd_bin_vendored::etcd_bin_path()
            .map(Path::to_path_buf)
            .map_err(|e| ControlPlaneError::NoEtcd(e.to_string()))
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        Err(ControlPlaneError::NoEtcd(
            "only linux x86_64 is wired up; pass --etcd".into(),
        ))
    }
}

/// A running control plane. Dropping it stops etcd and the apiserver.
#[derive(Debug)]
pub struct LocalControlPlane {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub server: String,
    pub apiserver_version: String,
    pub audit_log: PathBuf,
    /// The apiserver's secure port.
    pub port: u16,
    etcd: Child,
    apiserver: Child,
}

const AUDIT_POLICY: &str = "apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
";

pub(crate) fn free_port() -> Result<u16, ControlPlaneError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io_err("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_err("finding a free port"))?
        .port();
    Ok(port)
}

fn kubeconfig_yaml(server: &str, dir: &Path, user: &str, cert: &str, key: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {server}
    certificate-authority: {ca}
users:
- name: {user}
  user:
    client-certificate: {cert}
    client-key: {key}
contexts:
- name: local
  context:
    cluster: local
    user: {user}
current-context: local
",
        ca = dir.join("ca.crt").display(),
        cert = dir.join(cert).display(),
        key = dir.join(key).display(),
    )
}

/// Writes a kubeconfig for the client certificate `cert` (PEM files are written beside it) and
/// returns its path.
pub fn write_kubeconfig_for(
    dir: &Path,
    server: &str,
    name: &str,
    cert: &ClientCert,
) -> Result<PathBuf, ControlPlaneError> {
    let cert_file = format!("{name}.crt");
    let key_file = format!("{name}.key");
    std::fs::write(dir.join(&cert_file), &cert.cert_pem).map_err(io_err("writing cert"))?;
    std::fs::write(dir.join(&key_file), &cert.key_pem).map_err(io_err("writing key"))?;
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(
        &path,
        kubeconfig_yaml(server, dir, name, &cert_file, &key_file),
    )
    .map_err(io_err("writing kubeconfig"))?;
    Ok(path)
}

impl LocalControlPlane {
    /// Starts etcd and kube-apiserver and waits until the apiserver reports ready. Must be
    /// called from a thread that outlives the control plane: children are tied to it with a
    /// parent-death signal so nothing is orphaned.
    pub fn start(config: &ControlPlaneConfig) -> Result<Self, ControlPlaneError> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        certs::generate_all(dir, config.address)?;
        std::fs::write(dir.join("audit-policy.yaml"), AUDIT_POLICY)
            .map_err(io_err("writing the audit policy"))?;

        let etcd_client = free_port()?;
        let etcd_peer = free_port()?;
        let etcd_url = format!("http://127.0.0.1:{etcd_client}");
        let peer_url = format!("http://127.0.0.1:{etcd_peer}");
        let etcd_data = dir.join("etcd-data");
        let mut etcd = process::spawn(
            &config.etcd,
            &[
                "--name=local".to_string(),
                format!("--data-dir={}", etcd_data.display()),
                format!("--listen-client-urls={etcd_url}"),
                format!("--advertise-client-urls={etcd_url}"),
                format!("--listen-peer-urls={peer_url}"),
                format!("--initial-advertise-peer-urls={peer_url}"),
                format!("--initial-cluster=local={peer_url}"),
                // Tests recreate everything each run; durability across power loss buys nothing.
                "--unsafe-no-fsync=true".to_string(),
                "--log-level=warn".to_string(),
            ],
            &dir.join("etcd.log"),
        )?;
        if let Err(e) = process::wait_for_tcp(
            "etcd",
            &mut etcd,
            etcd_client,
            &dir.join("etcd.log"),
            Duration::from_secs(30),
        ) {
            process::terminate(&mut etcd);
            return Err(e);
        }

        let port = free_port()?;
        let address = config.address;
        let server = format!("https://{address}:{port}");
        let p = |name: &str| dir.join(name).display().to_string();
        // The kubernetes Service's endpoints must not be loopback: nothing routes to them.
        let reconciler = if address.is_loopback() {
            "none"
        } else {
            "lease"
        };
        let mut apiserver_args = vec![
            format!("--etcd-servers={etcd_url}"),
            format!("--bind-address={address}"),
            format!("--advertise-address={address}"),
            format!("--endpoint-reconciler-type={reconciler}"),
            format!("--secure-port={port}"),
            format!("--cert-dir={}", p("apiserver-certs")),
            format!("--tls-cert-file={}", p("apiserver.crt")),
            format!("--tls-private-key-file={}", p("apiserver.key")),
            format!("--client-ca-file={}", p("ca.crt")),
            "--authorization-mode=RBAC".to_string(),
            format!("--service-account-key-file={}", p("sa.pub")),
            format!("--service-account-signing-key-file={}", p("sa.key")),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".to_string(),
            "--service-cluster-ip-range=10.0.0.0/24".to_string(),
            format!("--audit-policy-file={}", p("audit-policy.yaml")),
            format!("--audit-log-path={}", p("audit.log")),
            "--audit-log-format=json".to_string(),
            "--audit-log-mode=blocking".to_string(),
            "--v=1".to_string(),
        ];
        if !address.is_loopback() {
            // A node's name does not resolve here; its InternalIP does (logs, exec).
            apiserver_args.push("--kubelet-preferred-address-types=InternalIP".to_string());
        }
        let log = dir.join("kube-apiserver.log");
        let mut apiserver = match process::spawn(&config.kube_apiserver, &apiserver_args, &log) {
            Ok(child) => child,
            Err(e) => {
                process::terminate(&mut etcd);
                return Err(e);
            }
        };
        let kubeconfig = dir.join("kubeconfig");
        let written = std::fs::write(
            &kubeconfig,
            kubeconfig_yaml(&server, dir, "admin", "admin.crt", "admin.key"),
        )
        .map_err(io_err("writing the kubeconfig"));
        let ready = written.and_then(|_| {
            process::wait_for_readyz(
                &mut apiserver,
                (address, port),
                dir,
                &log,
                Duration::from_secs(120),
            )
        });
        if let Err(e) = ready {
            process::terminate(&mut apiserver);
            process::terminate(&mut etcd);
            return Err(e);
        }
        let apiserver_version = process::binary_version(&config.kube_apiserver)
            .unwrap_or_else(|| "unknown".to_string());
        Ok(LocalControlPlane {
            dir: dir.clone(),
            kubeconfig,
            server,
            apiserver_version,
            audit_log: dir.join("audit.log"),
            port,
            etcd,
            apiserver,
        })
    }

    /// Stops the apiserver, then etcd.
    pub fn stop(&mut self) {
        process::terminate(&mut self.apiserver);
        process::terminate(&mut self.etcd);
    }

    /// Returns the first child that has exited, for supervision.
    pub fn exited(&mut self) -> Option<(&'static str, String)> {
        for (name, child) in [
            ("kube-apiserver", &mut self.apiserver),
            ("etcd", &mut self.etcd),
        ] {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((name, status.to_string()));
            }
        }
        None
    }
}

impl Drop for LocalControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}
