//! kubernetes-validate on the rendered manifests.

use super::*;

/// `kubernetes-validate --strict` (unknown fields fail) against its bundled schemas (offline).
/// It only warns for kinds it has no schema for (CRDs such as cert-manager's `ClusterIssuer`,
/// `Kustomization`): those warnings fail too unless the kind is in `allowed_unknown_kinds`.
pub fn kubernetes_validate(
    files: &[PathBuf],
    allowed_unknown_kinds: &[&str],
) -> Result<(), String> {
    if files.is_empty() {
        return Err("kubernetes-validate: no files given".into());
    }
    let run = run(
        tool("kubernetes-validate")?.arg("--strict").args(files),
        TIMEOUT,
    )?;
    let all = format!("{}\n{}", run.stdout, run.stderr);
    let unexpected: Vec<&str> = all
        .lines()
        .filter(|l| l.starts_with("WARN"))
        .filter(|l| {
            !allowed_unknown_kinds
                .iter()
                .any(|kind| l.contains(&format!("schema for kind {kind} ")))
        })
        .collect();
    if run.success() && !all.contains("ERROR") && unexpected.is_empty() {
        Ok(())
    } else {
        Err(run.report(&format!(
            "kubernetes-validate rejected the manifests{}",
            if unexpected.is_empty() {
                String::new()
            } else {
                format!(" (warnings not allowed: {})", unexpected.join(" | "))
            }
        )))
    }
}
