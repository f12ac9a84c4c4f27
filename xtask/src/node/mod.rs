//! A real Kubernetes node with a control plane of its own: etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, containerd (+ runc, CNI bridge), kubelet and
//! kube-proxy. Its control plane is separate from the loopback one the other tests share,
//! because installing the manifests there would start a cluster-wide operator that reconciles
//! every other test's journeys. The apiserver listens on the pod bridge's gateway address, so
//! pods reach it through the `kubernetes` Service without hostNetwork.

mod config;
mod host;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use crate::control_plane::process::{spawn, tail, terminate};
use crate::control_plane::{
    ControlPlaneConfig, ControlPlaneError, LocalControlPlane, free_port, io_err,
};
use host::{create_bridge, remove_kubelet_chains, run, unmount_under, write};

pub use config::{BRIDGE, CNI_NETWORK, POD_CIDR};

/// The node's name, as the kubelet registers it.
pub const NODE_NAME: &str = "node1";
/// The bridge gateway: the node's InternalIP and the apiserver's address.
pub const NODE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 244, 0, 1));
/// The pause image every pod sandbox runs (imported from `pause_archive`).
pub const PAUSE_IMAGE: &str = "localhost/journey/pause:1";

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub dir: PathBuf,
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    pub kube_scheduler: PathBuf,
    pub kubelet: PathBuf,
    pub kube_proxy: PathBuf,
    pub kubectl: PathBuf,
    /// A docker-archive of [`PAUSE_IMAGE`] (hack/lib.sh builds it with umoci).
    pub pause_archive: PathBuf,
}

#[derive(Debug)]
pub struct LocalNode {
    pub plane: LocalControlPlane,
    pub containerd_socket: PathBuf,
    config: NodeConfig,
    children: Vec<(&'static str, Child)>,
    stopped: bool,
}

/// Polls `check` every 250ms until it returns true, or fails with the log's tail.
fn wait_until(
    component: &'static str,
    log: &Path,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), ControlPlaneError> {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > timeout {
            return Err(ControlPlaneError::NotReady {
                component,
                seconds: timeout.as_secs(),
                log_tail: tail(log, 40),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Ok(())
}

impl LocalNode {
    pub fn start(config: &NodeConfig) -> Result<Self, ControlPlaneError> {
        let dir = &config.dir;
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        create_bridge()?;
        let plane = LocalControlPlane::start(&ControlPlaneConfig {
            dir: dir.join("control-plane"),
            kube_apiserver: config.kube_apiserver.clone(),
            etcd: config.etcd.clone(),
            address: NODE_IP,
        })?;
        let mut node = LocalNode {
            containerd_socket: dir.join("containerd/containerd.sock"),
            plane,
            config: config.clone(),
            children: Vec::new(),
            stopped: false,
        };
        match node.start_components() {
            Ok(()) => Ok(node),
            Err(e) => {
                node.stop();
                Err(e)
            }
        }
    }

    fn spawn(
        &mut self,
        name: &'static str,
        program: &Path,
        args: Vec<String>,
    ) -> Result<(), ControlPlaneError> {
        let child = spawn(program, &args, &self.log(name))?;
        self.children.push((name, child));
        Ok(())
    }

    pub fn log(&self, component: &str) -> PathBuf {
        self.config.dir.join(format!("{component}.log"))
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.plane.kubeconfig
    }

    fn kubectl(&self, args: &[&str]) -> Result<String, ControlPlaneError> {
        let kubeconfig = self.kubeconfig().display().to_string();
        let mut all = vec!["--kubeconfig", kubeconfig.as_str()];
        all.extend_from_slice(args);
        run(&self.config.kubectl.display().to_string(), &all)
    }

    fn ctr(&self, args: &[&str]) -> Result<String, ControlPlaneError> {
        let socket = self.containerd_socket.display().to_string();
        let mut all = vec!["--address", socket.as_str(), "--namespace", "k8s.io"];
        all.extend_from_slice(args);
        run("ctr", &all)
    }

    fn start_components(&mut self) -> Result<(), ControlPlaneError> {
        let dir = self.config.dir.clone();
        let cp = self.plane.dir.clone();
        let kubeconfig = self.kubeconfig().display().to_string();
        let p = |path: &Path| path.display().to_string();

        // ServiceAccounts, kube-root-ca.crt, Deployments, ReplicaSets, EndpointSlices and
        // PersistentVolume binding all come from the controller manager.
        let kcm = self.config.kube_controller_manager.clone();
        self.spawn(
            "kube-controller-manager",
            &kcm,
            vec![
                format!("--kubeconfig={kubeconfig}"),
                "--leader-elect=false".into(),
                format!(
                    "--service-account-private-key-file={}",
                    p(&cp.join("sa.key"))
                ),
                format!("--root-ca-file={}", p(&cp.join("ca.crt"))),
                format!("--service-cluster-ip-range={}", config::SERVICE_CIDR),
                "--secure-port=0".into(),
                "--controllers=*".into(),
                "--v=1".into(),
            ],
        )?;
        let scheduler = self.config.kube_scheduler.clone();
        self.spawn(
            "kube-scheduler",
            &scheduler,
            vec![
                format!("--kubeconfig={kubeconfig}"),
                "--leader-elect=false".into(),
                "--secure-port=0".into(),
                "--v=1".into(),
            ],
        )?;

        write(
            &dir.join("cni/net.d/10-journey-node.conflist"),
            &config::cni_conflist(&dir, NODE_IP),
        )?;
        let containerd_config = dir.join("containerd/config.toml");
        write(
            &containerd_config,
            &config::containerd_toml(&dir, PAUSE_IMAGE),
        )?;
        self.spawn(
            "containerd",
            Path::new("containerd"),
            vec!["--config".into(), p(&containerd_config)],
        )?;
        let socket = self.containerd_socket.clone();
        let log = self.log("containerd");
        wait_until("containerd", &log, Duration::from_secs(30), || {
            run("ctr", &["--address", &p(&socket), "version"]).is_ok()
        })?;
        let pause = p(&self.config.pause_archive);
        self.ctr(&["images", "import", &pause])?;

        let kubelet_port = free_port()?;
        let kubelet_config = dir.join("kubelet/config.yaml");
        write(
            &kubelet_config,
            &config::kubelet_yaml(&socket, &cp.join("ca.crt"), NODE_IP, kubelet_port),
        )?;
        let kubelet = self.config.kubelet.clone();
        self.spawn(
            "kubelet",
            &kubelet,
            vec![
                format!("--config={}", p(&kubelet_config)),
                format!("--kubeconfig={kubeconfig}"),
                format!("--hostname-override={NODE_NAME}"),
                // The apiserver dials this address for logs and exec.
                format!("--node-ip={NODE_IP}"),
                // Not the build output's directory: the kubelet owns everything under it.
                format!("--root-dir={}", p(&dir.join("kubelet/root"))),
                "--v=1".into(),
            ],
        )?;
        let proxy = self.config.kube_proxy.clone();
        self.spawn(
            "kube-proxy",
            &proxy,
            vec![
                format!("--kubeconfig={kubeconfig}"),
                format!("--hostname-override={NODE_NAME}"),
                "--proxy-mode=iptables".into(),
                format!("--cluster-cidr={POD_CIDR}"),
                // The sandbox cannot write nf_conntrack_max.
                "--conntrack-max-per-core=0".into(),
                format!("--metrics-bind-address=127.0.0.1:{}", free_port()?),
                format!("--healthz-bind-address=127.0.0.1:{}", free_port()?),
                "--v=1".into(),
            ],
        )?;

        let log = self.log("kubelet");
        let mut ready = || {
            self.kubectl(&[
                "get",
                "node",
                NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .is_ok_and(|s| s.trim() == "True")
        };
        wait_until(
            "kubelet (node Ready)",
            &log,
            Duration::from_secs(120),
            &mut ready,
        )?;
        // Pods are rejected until the namespace has its ServiceAccount.
        let log = self.log("kube-controller-manager");
        wait_until(
            "kube-controller-manager",
            &log,
            Duration::from_secs(60),
            || {
                self.kubectl(&["get", "serviceaccount", "default", "-n", "default"])
                    .is_ok()
            },
        )?;
        Ok(())
    }

    /// The first component that has exited, for supervision.
    pub fn exited(&mut self) -> Option<(&'static str, String)> {
        if let Some(e) = self.plane.exited() {
            return Some(e);
        }
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((*name, status.to_string()));
            }
        }
        None
    }

    /// Stops everything and leaves the host as it was: pods are stopped by the kubelet (so
    /// CNI removes their network), kube-proxy's rules are removed, what the kubelet and
    /// containerd mounted is unmounted and the bridge is deleted.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        // Without the controllers nothing recreates the pods deleted below.
        self.stop_component("kube-controller-manager");
        self.stop_component("kube-scheduler");
        if self.running("kubelet") {
            let _ = self.kubectl(&[
                "delete",
                "pods",
                "--all",
                "--all-namespaces",
                "--grace-period=1",
                "--timeout=60s",
            ]);
        }
        self.stop_component("kubelet");
        remove_kubelet_chains();
        self.stop_component("kube-proxy");
        let _ = run(
            &self.config.kube_proxy.display().to_string(),
            &["--cleanup", "--proxy-mode=iptables"],
        );
        if self.running("containerd") {
            // Whatever the kubelet did not stop (a crash) is killed here.
            if let Ok(tasks) = self.ctr(&["tasks", "ls", "-q"]) {
                for task in tasks.lines().filter(|t| !t.is_empty()) {
                    let _ = self.ctr(&["tasks", "kill", "--all", "--signal", "SIGKILL", task]);
                    let _ = self.ctr(&["tasks", "delete", "--force", task]);
                }
            }
        }
        self.stop_component("containerd");
        unmount_under(&self.config.dir);
        let _ = run("ip", &["link", "del", BRIDGE]);
        self.plane.stop();
    }

    fn running(&mut self, name: &str) -> bool {
        self.children
            .iter_mut()
            .any(|(n, c)| *n == name && matches!(c.try_wait(), Ok(None)))
    }

    fn stop_component(&mut self, name: &str) {
        for (n, child) in &mut self.children {
            if *n == name {
                terminate(child);
            }
        }
    }
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        self.stop();
    }
}
