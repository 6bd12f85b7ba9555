//! CloudFormation: cfn-lint (in the specs' regions) and checkov.

use super::*;

/// `cfn-lint` on the templates, in its default region (us-east-1). Any finding fails: errors,
/// warnings and informational ones alike (cfn-lint's default non-zero exit code).
pub fn cfn_lint(files: &[PathBuf]) -> Result<(), String> {
    cfn_lint_in_regions(files, &[])
}

/// [`cfn_lint`] checked against the given regions (`--regions`), e.g. the spec's region.
pub fn cfn_lint_in_regions(files: &[PathBuf], regions: &[&str]) -> Result<(), String> {
    if files.is_empty() {
        return Err("cfn-lint: no files given".into());
    }
    let mut cmd = tool("cfn-lint")?;
    cmd.args(["--format", "parseable"]);
    if !regions.is_empty() {
        cmd.arg("--regions").args(regions);
    }
    let run = run(cmd.arg("--").args(files), TIMEOUT)?;
    if run.success() {
        Ok(())
    } else {
        Err(run.report("cfn-lint rejected the templates"))
    }
}

/// `checkov --framework cloudformation` on one template or a directory, offline, requiring
/// zero failed checks, zero parsing errors, at least one resource scanned (so a file checkov did
/// not recognise cannot pass), and a reason on every skip. Skips live in the template, in the
/// resource's `Metadata: checkov: skip: [{id: CKV_AWS_n, comment: why}]`.
///
/// Offline: `--skip-download` and `BC_SKIP_MAPPING=TRUE` stop the platform/guidelines calls,
/// `CKV_SKIP_PACKAGE_UPDATE_CHECK=true` stops the PyPI version check made on import; no
/// `BC_API_KEY` is passed on. (Verified with strace: no connect() besides local sockets.)
pub fn checkov_cfn(path: &Path) -> Result<(), String> {
    checkov_cfn_files(&[path.to_path_buf()])
}

/// [`checkov_cfn`] on several templates (or directories) in one run: checkov spends a few
/// seconds loading its policies on every start, so one run for all templates is much faster.
pub fn checkov_cfn_files(paths: &[PathBuf]) -> Result<(), String> {
    if paths.is_empty() {
        return Err("checkov: no files given".into());
    }
    let mut cmd = tool("checkov")?;
    cmd.args([
        "--framework",
        "cloudformation",
        "--skip-download",
        "--compact",
        "-o",
        "json",
    ]);
    for path in paths {
        cmd.arg(if path.is_dir() { "-d" } else { "-f" }).arg(path);
    }
    cmd.env("CKV_SKIP_PACKAGE_UPDATE_CHECK", "true")
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("LOG_LEVEL", "WARNING")
        .env_remove("BC_API_KEY")
        .env_remove("PRISMA_API_URL");
    let run = run(&mut cmd, CHECKOV_TIMEOUT)?;
    let fail = |why: String| Err(run.report(&format!("checkov: {why}")));
    if run.timed_out {
        return fail("timed out".into());
    }
    let json: serde_json::Value = match serde_json::from_str(run.stdout.trim()) {
        Ok(v) => v,
        Err(e) => return fail(format!("output is not JSON ({e})")),
    };
    // One framework gives one report object; checkov gives a bare summary when it found no
    // CloudFormation at all, and a list when several runners reported.
    let reports: Vec<&serde_json::Value> = match &json {
        serde_json::Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut problems = Vec::new();
    let mut resources = 0;
    for report in &reports {
        let summary = report.get("summary").unwrap_or(report);
        let num = |k: &str| summary.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        resources += num("resource_count");
        if num("parsing_errors") > 0 {
            problems.push(format!("{} parsing error(s)", num("parsing_errors")));
        }
        let results = report.get("results");
        let list = |k: &str| {
            results
                .and_then(|r| r.get(k))
                .and_then(|v| v.as_array())
                .cloned()
                .unwrap_or_default()
        };
        for check in list("failed_checks") {
            let s = |k: &str| {
                check
                    .get(k)
                    .and_then(|v| v.as_str())
                    .unwrap_or("?")
                    .to_string()
            };
            let lines = check
                .get("file_line_range")
                .map(|v| v.to_string())
                .unwrap_or_default();
            problems.push(format!(
                "FAILED {} \"{}\" on {} ({} lines {})",
                s("check_id"),
                s("check_name"),
                s("resource"),
                s("file_path"),
                lines
            ));
        }
        if num("failed") as usize > list("failed_checks").len() {
            problems.push(format!("{} failed check(s)", num("failed")));
        }
        for check in list("skipped_checks") {
            let comment = check
                .pointer("/check_result/suppress_comment")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .trim()
                .to_string();
            if comment.is_empty() || comment == "No comment provided" {
                problems.push(format!(
                    "SKIPPED {} on {} without a reason: add `comment:` to the skip in the \
                     resource's Metadata",
                    check
                        .get("check_id")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?"),
                    check
                        .get("resource")
                        .and_then(|v| v.as_str())
                        .unwrap_or("?"),
                ));
            }
        }
    }
    if resources == 0 {
        problems.push("no CloudFormation resource was scanned (not a template?)".into());
    }
    if problems.is_empty() && run.success() {
        Ok(())
    } else if problems.is_empty() {
        fail("exited unsuccessfully".into())
    } else {
        Err(format!(
            "checkov rejected {}:\n  {}\n--- stderr ---\n{}",
            paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            problems.join("\n  "),
            run.stderr.trim_end()
        ))
    }
}
