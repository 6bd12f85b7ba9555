//! cloud-init: `cloud-init schema` on the rendered user-data, the keys its schema does not
//! cover, and the scripts it embeds (for shellcheck).

use super::*;

/// `cloud-init schema -c FILE` with Debian 13's cloud-init (25.1, what the default AMI runs; see
/// [`debian13_bin`]). Deprecation notices count as failures too; the file must start with
/// `#cloud-config`.
pub fn cloud_init_schema(file: &Path) -> Result<(), String> {
    let text = read(file)?;
    if !text.starts_with("#cloud-config") {
        return Err(format!(
            "{}: user-data must start with `#cloud-config` on its first line",
            file.display()
        ));
    }
    let run = run(
        tool("cloud-init")?.args(["schema", "-c"]).arg(file),
        TIMEOUT,
    )?;
    let all = format!("{}{}", run.stdout, run.stderr);
    if !(run.success() && all.contains("Valid schema") && !all.to_lowercase().contains("deprecat"))
    {
        return Err(run.report("cloud-init schema rejected the cloud-config"));
    }
    cloud_init_unknown_keys(file, &text)
}

/// Where Debian 13's cloud-init keeps the JSON schema that `cloud-init schema` checks against.
pub(super) fn cloud_config_schema() -> PathBuf {
    debian13_bin()
        .join("../root/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json")
}

/// Top-level keys that cloud-init reads but its schema does not describe.
pub(super) const CLOUD_CONFIG_UNSCHEMATIZED_KEYS: &[&str] = &[
    "merge_how",
    "merge_type",
    "output",
    "datasource",
    "system_info",
    "manual_cache_clean",
    "syslog_fix_perms",
    "def_log_file",
    "log_cfgs",
];

/// `cloud-init schema` accepts any unknown top-level key (cloud-init then silently ignores
/// it, so a typo like `write_file:` would never fail): reject keys that no module's schema
/// declares.
pub(super) fn cloud_init_unknown_keys(file: &Path, text: &str) -> Result<(), String> {
    let schema_path = cloud_config_schema();
    let schema_text = fs::read_to_string(&schema_path).map_err(|e| {
        format!(
            "cannot read cloud-init's schema {} ({e}): run scripts/debian13-tools",
            schema_path.display()
        )
    })?;
    let schema: serde_json::Value = serde_json::from_str(&schema_text)
        .map_err(|e| format!("cannot read {}: {e}", schema_path.display()))?;
    let mut known: Vec<String> = CLOUD_CONFIG_UNSCHEMATIZED_KEYS
        .iter()
        .map(|k| k.to_string())
        .collect();
    // The top level is `allOf: [{$ref: "#/$defs/cc_<module>"}, ...]`; each module lists its keys.
    let modules = schema.get("allOf").and_then(|a| a.as_array());
    for reference in modules.into_iter().flatten() {
        let Some(name) = reference
            .get("$ref")
            .and_then(|r| r.as_str())
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            continue;
        };
        let props = schema
            .pointer(&format!("/$defs/{name}/properties"))
            .and_then(|p| p.as_object());
        known.extend(props.into_iter().flat_map(|p| p.keys().cloned()));
    }
    if known.len() <= CLOUD_CONFIG_UNSCHEMATIZED_KEYS.len() {
        return Err(format!(
            "could not read the module keys from {}",
            schema_path.display()
        ));
    }
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
    let unknown: Vec<String> = doc
        .as_mapping()
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str())
                .filter(|k| !known.iter().any(|known| known == k))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}: cloud-config key(s) {} are not in cloud-init's schema ({}); \
             cloud-init would silently ignore them",
            file.display(),
            unknown.join(", "),
            schema_path.display()
        ))
    }
}

/// Writes every shell script embedded in a cloud-config into `out_dir`, ready for
/// [`shellcheck`]: each `write_files` entry whose content starts with a `#!` line naming a shell
/// (sh, bash, dash, ksh), and `bootcmd` and `runcmd` each as one `#!/bin/sh` script, the way
/// cloud-init itself runs them (a string item is a shell line, a list item is an argv that
/// cloud-init quotes). A `write_files` entry named `*.sh` without a shebang, or one with an
/// `encoding` (its content cannot be checked), is an error.
pub fn cloud_init_scripts(file: &Path, out_dir: &Path) -> Result<Vec<PathBuf>, String> {
    let text = read(file)?;
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: not YAML: {e}", file.display()))?;
    let mut scripts = Vec::new();

    if let Some(entries) = doc.get("write_files").and_then(|v| v.as_sequence()) {
        for (i, entry) in entries.iter().enumerate() {
            let path = entry
                .get("path")
                .and_then(|v| v.as_str())
                .unwrap_or("(no path)");
            let mut content = entry
                .get("content")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            match entry.get("encoding").and_then(|v| v.as_str()) {
                None | Some("text/plain") => {}
                // Gzipped to fit EC2's 16 KB: validated as cloud-init will write it.
                Some("gz+b64") => {
                    use base64::Engine as _;
                    use std::io::Read as _;
                    let packed = base64::engine::general_purpose::STANDARD
                        .decode(content.trim())
                        .map_err(|e| format!("{}: {path}: not base64: {e}", file.display()))?;
                    let mut text = String::new();
                    flate2::read::GzDecoder::new(packed.as_slice())
                        .read_to_string(&mut text)
                        .map_err(|e| format!("{}: {path}: not gzip text: {e}", file.display()))?;
                    content = text;
                }
                Some(enc) => {
                    return Err(format!(
                        "{}: write_files entry {path} uses encoding {enc}; render it as plain \
                         text or gz+b64 so it can be validated",
                        file.display()
                    ));
                }
            }
            let content = content.as_str();
            let first = content.lines().next().unwrap_or("");
            if is_shell_shebang(first) {
                let name = format!(
                    "write_files_{:02}_{}",
                    i + 1,
                    path.trim_start_matches('/').replace('/', "_")
                );
                let out = out_dir.join(name);
                write(&out, content)?;
                scripts.push(out);
            } else if path.ends_with(".sh") {
                return Err(format!(
                    "{}: write_files entry {path} looks like a shell script but has no `#!` line \
                     naming its shell (first line: {first:?})",
                    file.display()
                ));
            }
        }
    }

    for key in ["bootcmd", "runcmd"] {
        let Some(items) = doc.get(key).and_then(|v| v.as_sequence()) else {
            continue;
        };
        let mut script = String::from("#!/bin/sh\n");
        script.push_str(&format!(
            "# {key} of {}, as cloud-init runs it\n",
            file.display()
        ));
        for item in items {
            match item {
                serde_yaml::Value::String(line) => script.push_str(line),
                serde_yaml::Value::Sequence(argv) => {
                    let words: Vec<String> =
                        argv.iter().map(|w| shell_quote(&yaml_scalar(w))).collect();
                    script.push_str(&words.join(" "));
                }
                other => {
                    return Err(format!(
                        "{}: {key} item is neither a string nor a list: {other:?}",
                        file.display()
                    ))
                }
            }
            script.push('\n');
        }
        let out = out_dir.join(format!("{key}.sh"));
        write(&out, script)?;
        scripts.push(out);
    }
    Ok(scripts)
}

pub(super) fn is_shell_shebang(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("#!") else {
        return false;
    };
    let mut words = rest.split_whitespace();
    let mut interp = words.next().unwrap_or("");
    if interp.ends_with("/env") {
        interp = words.find(|w| !w.starts_with('-')).unwrap_or("");
    }
    let name = interp.rsplit('/').next().unwrap_or("");
    matches!(name, "sh" | "bash" | "dash" | "ksh")
}

pub(super) fn yaml_scalar(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

pub(super) fn shell_quote(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
