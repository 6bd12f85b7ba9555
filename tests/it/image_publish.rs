//! `bookstore image build|push --dry-run`, and the workflow that publishes the images from CI
//! (it cannot run here: actionlint checks it, and this file checks that it publishes what the
//! default spec deploys).

use crate::support::podman::{run, REPO};
use crate::support::validators;
use bookstore::image::{reference, revision, Kind};
use std::path::Path;
use std::process::Command;

#[test]
fn image_build_and_push_dry_runs_print_the_engine_commands() {
    let exe = env!("CARGO_BIN_EXE_bookstore");
    let binary = Path::new(REPO).join("Cargo.toml"); // any existing file: nothing is copied
    let out = run({
        let mut c = Command::new(exe);
        c.current_dir(REPO)
            .args([
                "image",
                "build",
                "--dry-run",
                "--engine",
                "podman",
                "--spec",
            ])
            .arg(Path::new(REPO).join("src/spec/default.yaml"))
            .arg("--binary")
            .arg(&binary);
        c
    });
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    let revision = revision(Path::new(REPO));
    assert_eq!(
        printed,
        format!(
            "ctx=$(mktemp -d) && mkdir \"$ctx/out\" && cp {} \"$ctx/out/bookstore-app\"\n\
             podman build --file ./app/Dockerfile --target app --tag \
             ghcr.io/bookstore-rs/bookstore-app:0.1.0 --build-arg VERSION=0.1.0 --build-arg \
             REVISION={revision} --format docker --build-context \"build-app=$ctx\" .\n",
            binary.display()
        )
    );

    let out = run({
        let mut c = Command::new(exe);
        c.current_dir(REPO)
            .args([
                "image",
                "push",
                "--cli",
                "--dry-run",
                "--engine",
                "podman",
                "--spec",
            ])
            .arg(Path::new(REPO).join("src/spec/default.yaml"));
        c
    });
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "podman push ghcr.io/bookstore-rs/bookstore:0.1.0\n"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("to publish your own, set app.image"),
        "pushing the project's own name warns"
    );

    let out = run({
        let mut c = Command::new(exe);
        c.current_dir(REPO).args([
            "image",
            "build",
            "--engine",
            "podman",
            "--binary",
            "no/such/binary",
        ]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--binary no/such/binary: no such file; build it with"),
        "{out:?}"
    );
    let elsewhere = tempfile::tempdir().unwrap();
    let out = run({
        let mut c = Command::new(exe);
        c.current_dir(elsewhere.path())
            .args(["image", "build", "--dry-run", "--engine", "podman"]);
        c
    });
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no app/Dockerfile"),
        "{out:?}"
    );
}

#[test]
fn the_publishing_workflow_lints_clean_and_publishes_the_images_the_default_spec_deploys() {
    let path = Path::new(REPO).join(".github/workflows/image.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();

    // The names it pushes are the default spec's.
    let env = &workflow["env"];
    let namespace = format!(
        "{}/{}",
        env["REGISTRY"].as_str().unwrap(),
        env["NAMESPACE"].as_str().unwrap()
    );
    let spec = bookstore::spec::embedded_default();
    let repositories: Vec<&str> = workflow["jobs"]["publish"]["strategy"]["matrix"]["include"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|i| i["repository"].as_str().unwrap())
        .collect();
    for kind in [Kind::App, Kind::Cli] {
        let wanted = reference(kind, &spec.app.image, &spec.app.tag);
        let (repo, _) = wanted.rsplit_once(':').unwrap();
        let (ns, name) = repo.rsplit_once('/').unwrap();
        assert_eq!(ns, namespace, "the workflow pushes under another namespace");
        assert!(
            repositories.contains(&name),
            "the workflow does not publish {name}"
        );
    }
    // A tag vX.Y.Z publishes :X.Y.Z, and the default spec deploys the crates' version.
    assert!(text.contains("type=semver,pattern={{version}}"));
    let cargo = std::fs::read_to_string(Path::new(REPO).join("app/Cargo.toml")).unwrap();
    let version = cargo
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .map(|v| v.trim_end_matches('"'))
        .unwrap();
    assert_eq!(
        spec.app.tag, version,
        "app.tag in src/spec/default.yaml is not the shop's version (the tag CI publishes)"
    );
    assert!(text.contains("provenance: mode=max") && text.contains("sbom: true"));
    assert!(text.contains("linux/amd64") && text.contains("linux/arm64"));

    if validators::require("actionlint") {
        let out = run({
            let mut c = Command::new(validators::tool_path("actionlint").unwrap());
            c.current_dir(REPO).arg(&path);
            c
        });
        assert!(
            out.status.success(),
            "actionlint:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
