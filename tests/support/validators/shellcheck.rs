//! shellcheck on the rendered shell scripts.

use super::*;

/// `shellcheck -x -S style` on `files`.
///
/// Severity `style` is the strictest level: every script we render is short, generated and fully
/// under our control, so there is no legacy noise to tolerate. A deliberate exception is written
/// next to the line as `# shellcheck disable=SCxxxx # reason`, where a reviewer sees it.
pub fn shellcheck(files: &[PathBuf]) -> Result<(), String> {
    if files.is_empty() {
        return Err("shellcheck: no files given".into());
    }
    let run = run(
        tool("shellcheck")?
            .args(["-x", "-S", "style", "--color=never", "--"])
            .args(files),
        TIMEOUT,
    )?;
    if run.success() {
        Ok(())
    } else {
        Err(run.report("shellcheck rejected the scripts"))
    }
}
