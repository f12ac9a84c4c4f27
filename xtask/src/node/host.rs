//! What the node changes on the host, and how it puts it back: the pod bridge, the kubelet's
//! iptables chains, the mounts under the node's directory.

use std::path::Path;
use std::process::Command;

use super::{BRIDGE, NODE_IP};
use crate::control_plane::{ControlPlaneError, io_err};

pub(super) fn run(program: &str, args: &[&str]) -> Result<String, ControlPlaneError> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(io_err(format!("running {program}")))?;
    if !out.status.success() {
        return Err(ControlPlaneError::Io {
            what: format!("{program} {}", args.join(" ")),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).into_owned()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub(super) fn write(path: &Path, text: &str) -> Result<(), ControlPlaneError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io_err(format!("creating {}", parent.display())))?;
    }
    std::fs::write(path, text).map_err(io_err(format!("writing {}", path.display())))
}

/// Creates the pod bridge with the gateway address, so the apiserver can bind to it.
pub(super) fn create_bridge() -> Result<(), ControlPlaneError> {
    // A crashed earlier run may have left it; its address would conflict.
    let _ = run("ip", &["link", "del", BRIDGE]);
    run("ip", &["link", "add", BRIDGE, "type", "bridge"])?;
    run(
        "ip",
        &["addr", "add", &format!("{NODE_IP}/24"), "dev", BRIDGE],
    )?;
    run("ip", &["link", "set", BRIDGE, "up"])?;
    // Pods' traffic to Services and the outside is routed by the host.
    write(Path::new("/proc/sys/net/ipv4/ip_forward"), "1")?;
    // kube-proxy's rules must see bridged traffic (a pod reaching a Service on its own node).
    let _ = std::fs::write("/proc/sys/net/bridge/bridge-nf-call-iptables", "1");
    Ok(())
}

/// The kubelet's own iptables chains (kube-proxy --cleanup leaves them): its canaries and the
/// firewall rule against martian localhost traffic.
pub(super) fn remove_kubelet_chains() {
    for program in ["iptables", "ip6tables"] {
        for table in ["filter", "nat", "mangle"] {
            for builtin in ["INPUT", "OUTPUT"] {
                let _ = run(
                    program,
                    &["-t", table, "-D", builtin, "-j", "KUBE-FIREWALL"],
                );
            }
            for chain in ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"] {
                let _ = run(program, &["-t", table, "-F", chain]);
                let _ = run(program, &["-t", table, "-X", chain]);
            }
        }
    }
}

/// Unmounts every mount below `dir` (pod volumes, container root filesystems, sandbox shm),
/// deepest first.
pub(super) fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.display().to_string();
    let mut points: Vec<&str> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        let Ok(c) = std::ffi::CString::new(point) else {
            continue;
        };
        // SAFETY: umount2 with a valid C string; failures leave the mount, which is reported
        // by the directory removal that follows.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}
