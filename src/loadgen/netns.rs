//! A private network namespace for runs whose subscribers vanish (`faults.vanish`): the load
//! generator re-runs itself under `unshare -n` (root only), so the server it starts and every
//! subscriber live in a namespace of their own with their own loopback, and no test address
//! or filter ever touches the machine's namespace; it goes away with the process.
//!
//! Inside, a veth pair (`pushlab-v0`, `pushlab-v1`) and a `clsact` qdisc on `lo` are made; a
//! subscriber vanishes when its socket's packets, both ways, are redirected into the veth by
//! a `u32` filter with tc's `mirred` action: they leave loopback and go nowhere, with no FIN
//! or RST, as when a phone loses its network. (tc's `drop` action and netem do not load on
//! this machine kind; `mirred` does.)

use std::io::Write;
use std::process::{Command, ExitStatus, Stdio};

/// Set in the re-run's environment: this process is the one inside the namespace.
const INSIDE: &str = "PUSHLAB_PRIVATE_NETNS";
/// The veth end vanished packets are redirected into.
const SINK: &str = "pushlab-v0";

/// Why vanishing subscribers cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(
        "`faults.vanish` cannot run here: it needs a network namespace of its own (`unshare -n`), which needs root ({0}); the run would put the server and every subscriber in it and remove it at the end"
    )]
    NoNamespace(String),
    #[error(
        "`faults.vanish` cannot drive `--target`: the server must be inside the run's own network namespace, so the load generator must start it"
    )]
    Target,
    #[error("setting up the namespace: `{command}` failed: {detail}")]
    Setup { command: String, detail: String },
}

/// Whether this process runs inside the namespace its parent made.
pub fn inside() -> bool {
    std::env::var(INSIDE).is_ok_and(|v| v == "1")
}

/// Runs this same command line again under `unshare -n` and returns its exit status.
pub fn rerun_inside() -> Result<ExitStatus, NetnsError> {
    rerun_inside_with(&[])
}

/// [`rerun_inside`], with these variables added to the re-run's environment (what the
/// command decided that the re-run must not decide again, such as a folder named by the
/// time).
pub fn rerun_inside_with(vars: &[(&str, &std::path::Path)]) -> Result<ExitStatus, NetnsError> {
    let probe = Command::new("unshare")
        .args(["-n", "true"])
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| NetnsError::NoNamespace(format!("cannot run unshare: {e}")))?;
    if !probe.status.success() {
        return Err(NetnsError::NoNamespace(
            String::from_utf8_lossy(&probe.stderr).trim().to_string(),
        ));
    }
    let exe = std::env::current_exe()
        .map_err(|e| NetnsError::NoNamespace(format!("cannot find this program: {e}")))?;
    Command::new("unshare")
        .arg("-n")
        .arg("--")
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .envs(vars.iter().map(|(k, v)| (*k, v.as_os_str())))
        .env(INSIDE, "1")
        .status()
        .map_err(|e| NetnsError::NoNamespace(format!("cannot run unshare: {e}")))
}

fn run(program: &str, args: &[&str]) -> Result<(), NetnsError> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| NetnsError::Setup {
            command: format!("{program} {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Setup {
            command: format!("{program} {}", args.join(" ")),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// Inside the namespace: loopback up, the veth sink, and the qdisc filters attach to.
pub fn prepare() -> Result<(), NetnsError> {
    run("ip", &["link", "set", "lo", "up"])?;
    run(
        "ip",
        &[
            "link",
            "add",
            SINK,
            "type",
            "veth",
            "peer",
            "name",
            "pushlab-v1",
        ],
    )?;
    run("ip", &["link", "set", SINK, "up"])?;
    run("ip", &["link", "set", "pushlab-v1", "up"])?;
    run("tc", &["qdisc", "add", "dev", "lo", "clsact"])?;
    Ok(())
}

/// Black-holes every packet to or from these local ports, in one `tc -batch`, so they
/// vanish together.
pub fn vanish(ports: &[u16]) -> Result<(), NetnsError> {
    let mut batch = String::new();
    for port in ports {
        for field in ["sport", "dport"] {
            batch.push_str(&format!(
                "filter add dev lo egress protocol ip prio 1 u32 match ip {field} {port} 0xffff action mirred egress redirect dev {SINK}\n"
            ));
        }
    }
    let setup = |detail: String| NetnsError::Setup {
        command: "tc -batch -".into(),
        detail,
    };
    let mut child = Command::new("tc")
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| setup(e.to_string()))?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(batch.as_bytes())
        .map_err(|e| setup(e.to_string()))?;
    let output = child.wait_with_output().map_err(|e| setup(e.to_string()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(setup(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ))
    }
}
