//! Compose v2 (`docker-compose` 2.26, Debian 13's: what the VMs run) `config` on the rendered
//! compose files.

use super::*;

/// Debian 13's `docker-compose -f FILE config -q` (Compose v2, [`debian13_bin`]), run in the
/// file's directory with only the given variables set for interpolation (`COMPOSE_*` and
/// `DOCKER_*` from the caller's environment are removed). Its warnings (an unset variable, say)
/// count as failures.
pub fn compose_config(file: &Path, env: &[(&str, &str)]) -> Result<(), String> {
    let mut cmd = tool("docker-compose")?;
    cmd.arg("-f").arg(file).args(["config", "-q"]);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        cmd.current_dir(dir);
    }
    for (key, _) in std::env::vars() {
        if key.starts_with("COMPOSE_") || key.starts_with("DOCKER_") {
            cmd.env_remove(key);
        }
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    let run = run(&mut cmd, TIMEOUT)?;
    let warned = |text: &str| text.to_lowercase().contains("warn");
    if run.success() && !warned(&run.stderr) && !warned(&run.stdout) {
        Ok(())
    } else {
        Err(run.report("docker-compose config rejected the compose file"))
    }
}
