//! The container engine's side of `bookstore image`: which engine, the images' names, and the
//! command lines it gets (built here, run or printed by the caller).

use crate::cli::Failure;
use anyhow::anyhow;
use clap::ValueEnum;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The Dockerfile, relative to the repository root (the build context).
pub const DOCKERFILE: &str = "app/Dockerfile";

/// A container engine CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    /// Docker with BuildKit (`docker build`).
    Docker,
    /// Podman (`podman build`, buildah inside).
    Podman,
}

impl Engine {
    /// The executable's name.
    pub fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// Which of the two images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The shop (`bookstore-app`), Dockerfile target `app`.
    App,
    /// The `bookstore` CLI, Dockerfile target `cli`.
    Cli,
}

impl Kind {
    /// The Dockerfile stage that ships.
    pub fn target(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::Cli => "cli",
        }
    }

    /// The Dockerfile stage that compiles the binary (replaced by `--binary`).
    pub fn build_stage(self) -> &'static str {
        match self {
            Kind::App => "build-app",
            Kind::Cli => "build-cli",
        }
    }

    /// The binary's file name, in the image and under `out/` of the build stage.
    pub fn binary(self) -> &'static str {
        match self {
            Kind::App => "bookstore-app",
            Kind::Cli => "bookstore",
        }
    }
}

/// The image reference for `kind` from the spec's `app.image` and `app.tag`: the shop's as
/// written, the CLI's beside it (`ghcr.io/o/bookstore-app` -> `ghcr.io/o/bookstore`).
pub fn reference(kind: Kind, app_image: &str, tag: &str) -> String {
    match kind {
        Kind::App => format!("{app_image}:{tag}"),
        Kind::Cli => match app_image.rsplit_once('/') {
            Some((repo, _)) => format!("{repo}/bookstore:{tag}"),
            None => format!("bookstore:{tag}"),
        },
    }
}

/// The registry a reference is pushed to (what `docker login` takes).
pub fn registry(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// One command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Program and arguments.
    pub argv: Vec<String>,
}

/// Where `--binary` is staged: `$ctx` in a dry run (a shell variable set by the printed
/// `mktemp` line), a real temporary directory otherwise.
pub const DRY_RUN_STAGE: &str = "$ctx";

impl fmt::Display for Step {
    /// Shell-quoted, so that a dry run can be pasted into a shell.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|a| {
                if a.contains(DRY_RUN_STAGE) {
                    format!("\"{a}\"")
                } else {
                    shell_quote(a)
                }
            })
            .collect();
        f.write_str(&words.join(" "))
    }
}

/// `word` as a POSIX shell reads it back: bare when it is plain, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// The `build` command line. `stage` is the directory holding `out/BINARY` when a prebuilt
/// binary replaces the build stage.
pub fn build_step(
    engine: Engine,
    kind: Kind,
    reference: &str,
    context: &Path,
    labels: &Labels,
    platform: Option<&str>,
    stage: Option<&str>,
) -> Step {
    let ctx = context.display().to_string();
    let mut argv: Vec<String> = vec![
        engine.program().into(),
        "build".into(),
        "--file".into(),
        context.join(DOCKERFILE).display().to_string(),
        "--target".into(),
        kind.target().into(),
        "--tag".into(),
        reference.into(),
        "--build-arg".into(),
        format!("VERSION={}", labels.version),
        "--build-arg".into(),
        format!("REVISION={}", labels.revision),
    ];
    if engine == Engine::Podman {
        // Podman's default OCI format has no HEALTHCHECK; the Docker format keeps it.
        argv.extend(["--format".into(), "docker".into()]);
    }
    if let Some(p) = platform {
        argv.extend(["--platform".into(), p.into()]);
    }
    if let Some(dir) = stage {
        argv.extend([
            "--build-context".into(),
            format!("{}={dir}", kind.build_stage()),
        ]);
    }
    argv.push(ctx);
    Step { argv }
}

/// What the OCI labels say besides the Dockerfile's fixed ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    /// `org.opencontainers.image.version`: the spec's `app.tag`.
    pub version: String,
    /// `org.opencontainers.image.revision`: the commit, `-dirty` when the tree has changes.
    pub revision: String,
}

/// The checkout's commit (`unknown` outside a git checkout; `-dirty` with uncommitted changes).
pub fn revision(context: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(context)
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(sha) if !sha.is_empty() => {
            match git(&["status", "--porcelain", "--untracked-files=no"]) {
                Some(changes) if !changes.is_empty() => format!("{sha}-dirty"),
                _ => sha,
            }
        }
        _ => "unknown".into(),
    }
}

/// Picks the engine: the one asked for, else docker when its daemon answers, else podman.
pub fn pick_engine(asked: Option<Engine>) -> Result<Engine, Failure> {
    if let Some(e) = asked {
        return match which(e.program()) {
            Some(_) => Ok(e),
            None => Err(Failure::Failed(anyhow!(
                "{} is not on PATH; install it or pick the other engine with --engine",
                e.program()
            ))),
        };
    }
    let docker = which("docker");
    if docker.is_some() {
        let answers = Command::new("docker")
            .args(["version", "--format", "{{.Server.Version}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if answers {
            return Ok(Engine::Docker);
        }
    }
    if which("podman").is_some() {
        return Ok(Engine::Podman);
    }
    Err(Failure::Failed(match docker {
        Some(_) => anyhow!(
            "docker is on PATH but its daemon does not answer (`docker version`); start it, or \
             install podman"
        ),
        None => anyhow!(
            "neither docker nor podman is on PATH; install one (Debian: `apt-get install podman`)"
        ),
    }))
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_image_sits_beside_the_shop_image() {
        let app = "ghcr.io/bookstore-rs/bookstore-app";
        assert_eq!(
            reference(Kind::App, app, "0.1.0"),
            "ghcr.io/bookstore-rs/bookstore-app:0.1.0"
        );
        assert_eq!(
            reference(Kind::Cli, app, "0.1.0"),
            "ghcr.io/bookstore-rs/bookstore:0.1.0"
        );
        assert_eq!(reference(Kind::Cli, "shop", "1"), "bookstore:1");
    }

    #[test]
    fn words_are_quoted_only_when_the_shell_needs_it() {
        assert_eq!(shell_quote("VERSION=0.1.0"), "VERSION=0.1.0");
        assert_eq!(shell_quote("my shop"), "'my shop'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn registries_are_found_like_docker_finds_them() {
        assert_eq!(registry("ghcr.io/o/bookstore-app:1"), "ghcr.io");
        assert_eq!(
            registry("123456789012.dkr.ecr.eu-west-1.amazonaws.com/bookstore-app:1"),
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
        );
        assert_eq!(registry("localhost/bookstore-app:1"), "localhost");
        assert_eq!(registry("me/bookstore-app:1"), "docker.io");
        assert_eq!(registry("bookstore-app:1"), "docker.io");
    }

    #[test]
    fn podman_keeps_the_healthcheck_and_a_binary_replaces_the_build_stage() {
        let labels = Labels {
            version: "0.1.0".into(),
            revision: "abc".into(),
        };
        let step = build_step(
            Engine::Podman,
            Kind::App,
            "r/bookstore-app:0.1.0",
            Path::new("."),
            &labels,
            Some("linux/arm64"),
            Some(DRY_RUN_STAGE),
        );
        assert_eq!(
            step.to_string(),
            "podman build --file ./app/Dockerfile --target app --tag r/bookstore-app:0.1.0 \
             --build-arg VERSION=0.1.0 --build-arg REVISION=abc --format docker \
             --platform linux/arm64 --build-context \"build-app=$ctx\" ."
        );
        let docker = build_step(
            Engine::Docker,
            Kind::Cli,
            "r/bookstore:1",
            Path::new("/src/my shop"),
            &labels,
            None,
            None,
        );
        assert_eq!(
            docker.to_string(),
            "docker build --file '/src/my shop/app/Dockerfile' --target cli --tag r/bookstore:1 \
             --build-arg VERSION=0.1.0 --build-arg REVISION=abc '/src/my shop'"
        );
    }
}
