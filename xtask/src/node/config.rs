//! The configuration files of the real node's components: containerd, its CNI network and the
//! kubelet. Every path is the node's own, so nothing of the host's runtime is touched.

use std::net::IpAddr;
use std::path::Path;

/// The CNI network's name; its iptables rules carry it in their comments.
pub const CNI_NETWORK: &str = "journey-node";
/// The bridge the CNI plugin attaches pods to. The node creates it up front with the gateway
/// address, so the control plane can listen on an address pods route to before any pod exists.
pub const BRIDGE: &str = "journeycni0";
pub const POD_CIDR: &str = "10.244.0.0/24";
pub const SERVICE_CIDR: &str = "10.0.0.0/24";

pub fn containerd_toml(dir: &Path, sandbox_image: &str) -> String {
    let d = |name: &str| dir.join(name).display().to_string();
    format!(
        r#"version = 2
root = "{root}"
state = "{state}"

[grpc]
  address = "{socket}"

[ttrpc]
  address = ""

[debug]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  # The sandbox lacks CAP_SYS_RESOURCE: without this runc fails with "can't get final child's
  # PID from pipe: EOF" when it raises a container's oom_score_adj.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{cni_conf}"
"#,
        root = d("containerd/root"),
        state = d("containerd/state"),
        socket = d("containerd/containerd.sock"),
        cni_conf = d("cni/net.d"),
    )
}

pub fn cni_conflist(dir: &Path, gateway: IpAddr) -> String {
    format!(
        r#"{{
  "cniVersion": "1.0.0",
  "name": "{CNI_NETWORK}",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{BRIDGE}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "dataDir": "{ipam}",
        "ranges": [[{{"subnet": "{POD_CIDR}", "gateway": "{gateway}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"#,
        ipam = dir.join("cni/ipam").display(),
    )
}

pub fn kubelet_yaml(socket: &Path, ca: &Path, address: IpAddr, port: u16) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This host is cgroup v1, which the kubelet refuses by default since 1.35.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://{socket}
imageServiceEndpoint: unix://{socket}
address: {address}
port: {port}
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
  x509:
    clientCAFile: {ca}
authorization:
  mode: AlwaysAllow
# Test machines run with little free disk; the defaults would evict the operator.
evictionHard:
  memory.available: "50Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
# Imported images cannot be pulled again: never garbage-collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
"#,
        socket = socket.display(),
        ca = ca.display(),
    )
}
