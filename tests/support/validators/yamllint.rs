//! yamllint on the rendered YAML.

use super::*;

/// `yamllint --strict` (warnings fail too) with the repository's `.yamllint.yaml`.
///
/// The `#cloud-config` first line is cloud-init's magic header, not a comment, so for that one
/// line the file is linted as if it read `# cloud-config` (yamllint's `comments` rule would
/// otherwise demand a space after `#`, which cloud-init does not accept).
pub fn yamllint(files: &[PathBuf]) -> Result<(), String> {
    if files.is_empty() {
        return Err("yamllint: no files given".into());
    }
    let config = repo_root().join(".yamllint.yaml");
    if !config.is_file() {
        return Err(format!("yamllint: no config at {}", config.display()));
    }
    let scratch = tempdir("yamllint")?;
    let mut args = Vec::new();
    let mut renamed = Vec::new();
    for (i, file) in files.iter().enumerate() {
        let text = read(file)?;
        if let Some(rest) = text.strip_prefix("#cloud-config") {
            let copy = scratch
                .path()
                .join(format!("{i}"))
                .join(file.file_name().unwrap_or_default());
            write(&copy, format!("# cloud-config{rest}"))?;
            renamed.push((copy.display().to_string(), file.display().to_string()));
            args.push(copy);
        } else {
            args.push(file.clone());
        }
    }
    let run = run(
        tool("yamllint")?
            .args(["--strict", "-f", "parsable", "-c"])
            .arg(&config)
            .arg("--")
            .args(&args),
        TIMEOUT,
    )
    .map(|mut run| {
        for (copy, original) in &renamed {
            run.stdout = run.stdout.replace(copy, original);
        }
        run
    })?;
    if run.success() {
        Ok(())
    } else {
        Err(run.report("yamllint rejected the files"))
    }
}
