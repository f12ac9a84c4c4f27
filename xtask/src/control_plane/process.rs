//! Child processes of the control plane: started tied to their parent, watched until ready,
//! stopped politely then firmly.

use std::fs::File;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{ControlPlaneError, io_err};

/// The last `n` lines of a log file, for error messages.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Spawns `program` with its output in `log`. The child gets SIGKILL if the thread that
/// spawned it dies, so a crashed or killed parent never leaves etcd or an apiserver behind.
pub(crate) fn spawn(
    program: &Path,
    args: &[String],
    log: &Path,
) -> Result<Child, ControlPlaneError> {
    let out = File::create(log).map_err(io_err(format!("creating {}", log.display())))?;
    let err = out
        .try_clone()
        .map_err(io_err(format!("opening {}", log.display())))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: prctl is async-signal-safe and touches only the calling (child) process.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .map_err(io_err(format!("starting {}", program.display())))
}

/// Asks the child to stop (SIGTERM), then kills it after a grace period.
pub(crate) fn terminate(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: sending a signal to our own child has no memory-safety implications.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn check_alive(
    component: &'static str,
    child: &mut Child,
    log: &Path,
) -> Result<(), ControlPlaneError> {
    match child.try_wait() {
        Ok(Some(status)) => Err(ControlPlaneError::ExitedEarly {
            component,
            status: status.to_string(),
            log_tail: tail(log, 30),
        }),
        _ => Ok(()),
    }
}

/// Waits until something accepts connections on `port`.
pub(crate) fn wait_for_tcp(
    component: &'static str,
    child: &mut Child,
    port: u16,
    log: &Path,
    timeout: Duration,
) -> Result<(), ControlPlaneError> {
    let start = Instant::now();
    loop {
        check_alive(component, child, log)?;
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(ControlPlaneError::NotReady {
                component,
                seconds: timeout.as_secs(),
                log_tail: tail(log, 30),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the apiserver's `/readyz` answers 200 to the admin identity, which includes
/// its post-start hooks (RBAC bootstrap roles, CRD informers).
pub(crate) fn wait_for_readyz(
    child: &mut Child,
    addr: (std::net::IpAddr, u16),
    dir: &Path,
    log: &Path,
    timeout: Duration,
) -> Result<(), ControlPlaneError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("starting a runtime for the readiness probe"))?;
    let kubeconfig = dir.join("kubeconfig");
    let start = Instant::now();
    loop {
        check_alive("kube-apiserver", child, log)?;
        if std::net::TcpStream::connect(addr).is_ok() && runtime.block_on(readyz_ok(&kubeconfig)) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            return Err(ControlPlaneError::NotReady {
                component: "kube-apiserver",
                seconds: timeout.as_secs(),
                log_tail: tail(log, 30),
            });
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

async fn readyz_ok(kubeconfig: &Path) -> bool {
    let Ok(kc) = kube::config::Kubeconfig::read_from(kubeconfig) else {
        return false;
    };
    let Ok(config) =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await
    else {
        return false;
    };
    let Ok(client) = kube::Client::try_from(config) else {
        return false;
    };
    let request = match http::Request::get("/readyz").body(Vec::new()) {
        Ok(r) => r,
        Err(_) => return false,
    };
    matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok")
}

/// The version a Kubernetes binary reports with `--version`, e.g. `v1.37.1`.
pub(crate) fn binary_version(program: &Path) -> Option<String> {
    let out = Command::new(program).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().last().map(str::to_string)
}
