//! docker-compose (1.29.2) `config` on the rendered compose files.

use super::*;

/// Debian's `docker-compose -f FILE config -q` (1.29.2), run in the file's directory with only
/// the given variables set for interpolation (`COMPOSE_*` and `DOCKER_*` from the caller's
/// environment are removed). Its warnings (an unset variable, say) count as failures.
///
/// Known limits of 1.29.2: it rejects newer Compose-spec keys such as a top-level `name:` and
/// `healthcheck.start_interval`; it does not check that `secrets: file:` paths exist.
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
    if run.success() && !run.stderr.contains("WARNING") && !run.stdout.contains("WARNING") {
        Ok(())
    } else {
        Err(run.report("docker-compose config rejected the compose file"))
    }
}
