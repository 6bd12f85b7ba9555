//! The load-test Job beyond what the validators check: an Indexed Job whose shards each run
//! once, restricted pods, a NetworkPolicy, and arguments that `bookstore loadtest`'s own parser
//! reads as the spec says.

use super::loadtest_job::{all_specs, argv, container, flag, job, render, INDEX, START_AT};
use super::objective3::{docs, kind, s, u};
use serde_yaml::Value;
use std::collections::BTreeMap;

#[test]
fn the_job_is_indexed_runs_each_shard_once_and_is_restricted() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let job = job(&files);
        let l = &spec.loadtest;
        let js = &job["spec"];
        assert_eq!(s(&js["completionMode"]), "Indexed", "{name}");
        assert_eq!(u(&js["completions"]), u64::from(l.shards), "{name}");
        assert_eq!(u(&js["parallelism"]), u64::from(l.shards), "{name}");
        assert_eq!(
            u(&js["backoffLimitPerIndex"]),
            0,
            "{name}: a shard is never re-run"
        );
        assert!(
            js["maxFailedIndexes"].is_null(),
            "{name}: one failed shard must not stop the others"
        );
        assert_eq!(u(&js["ttlSecondsAfterFinished"]), 86_400, "{name}");
        let rules = js["podFailurePolicy"]["rules"].as_sequence().unwrap();
        let by_code: BTreeMap<u64, &str> = rules
            .iter()
            .map(|r| {
                assert_eq!(s(&r["onExitCodes"]["containerName"]), "loadtest", "{name}");
                assert_eq!(s(&r["onExitCodes"]["operator"]), "In", "{name}");
                let codes = r["onExitCodes"]["values"].as_sequence().unwrap();
                assert_eq!(codes.len(), 1, "{name}");
                (u(&codes[0]), s(&r["action"]))
            })
            .collect();
        assert_eq!(by_code, [(2, "FailJob"), (3, "FailIndex")].into(), "{name}");
        // The deadline leaves the planned load, the stop grace and the start allowance.
        let planned = l.planned_seconds().unwrap();
        assert_eq!(
            u(&js["activeDeadlineSeconds"]),
            planned + 40 + 600,
            "{name}"
        );

        let pod = &js["template"]["spec"];
        assert_eq!(s(&pod["restartPolicy"]), "Never", "{name}");
        assert_eq!(
            pod["automountServiceAccountToken"],
            Value::Bool(false),
            "{name}"
        );
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"],
            Value::Bool(true),
            "{name}"
        );
        assert_eq!(
            s(&pod["securityContext"]["seccompProfile"]["type"]),
            "RuntimeDefault"
        );
        let c = container(&job);
        assert_eq!(s(&c["name"]), "loadtest");
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], Value::Bool(true), "{name}");
        assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true), "{name}");
        assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false), "{name}");
        assert_eq!(
            sc["capabilities"]["drop"][0].as_str(),
            Some("ALL"),
            "{name}"
        );
        assert_eq!(s(&sc["seccompProfile"]["type"]), "RuntimeDefault", "{name}");
        let r = &c["resources"];
        assert_eq!(r["requests"], r["limits"], "{name}: Guaranteed QoS");
        assert_eq!(s(&r["limits"]["cpu"]), l.resources.cpu, "{name}");
        assert_eq!(s(&r["limits"]["memory"]), l.resources.memory, "{name}");
        let image = s(&c["image"]);
        match &l.image {
            Some(i) => assert_eq!(image, i, "{name}"),
            None => assert_eq!(
                image,
                bookstore::image::reference(
                    bookstore::image::Kind::Cli,
                    &spec.app.image,
                    &spec.app.tag
                ),
                "{name}: the image `bookstore image build --cli` names"
            ),
        }
        // $(JOB_COMPLETION_INDEX) and $(START_AT) come from the container's own env: the index from
        // the Job's annotation, the start from the ConfigMap README.md creates.
        let env: BTreeMap<&str, &Value> = c["env"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| (s(&e["name"]), &e["valueFrom"]))
            .collect();
        assert_eq!(
            s(&env["JOB_COMPLETION_INDEX"]["fieldRef"]["fieldPath"]),
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        let cm = format!("{}-loadtest-start", spec.project.name);
        assert_eq!(s(&env["START_AT"]["configMapKeyRef"]["name"]), cm, "{name}");
        assert_eq!(s(&env["START_AT"]["configMapKeyRef"]["key"]), "START_AT");
        // The NetworkPolicy lets nothing in and the generators out to DNS and the target's port.
        let np = &docs(&files["networkpolicy.yaml"])[0];
        assert_eq!(kind(np), "NetworkPolicy");
        let pod_labels = &js["template"]["metadata"]["labels"];
        for (k, v) in np["spec"]["podSelector"]["matchLabels"]
            .as_mapping()
            .unwrap()
        {
            assert_eq!(
                &pod_labels[s(k)],
                v,
                "{name}: the policy selects the generators"
            );
        }
        assert!(
            np["spec"]["ingress"].is_null(),
            "{name}: no ingress rule: nothing gets in"
        );
        let want_port: u64 = match l
            .target_url(&spec.domain.name)
            .split('/')
            .nth(2)
            .unwrap()
            .rsplit_once(':')
        {
            Some((_, p)) => p.parse().unwrap(),
            None if l.target_url(&spec.domain.name).starts_with("http://") => 80,
            None => 443,
        };
        assert_eq!(
            u(&np["spec"]["egress"][1]["ports"][0]["port"]),
            want_port,
            "{name}"
        );
        let readme = &files["README.md"];
        assert!(
            readme.contains(&format!(
                "kubectl -n {} create configmap {cm} \\\n  --from-literal=START_AT=\"$(date -u -d '+2 min' +%Y-%m-%dT%H:%M:%SZ)\"",
                l.namespace
            )),
            "{name}: README.md creates the ConfigMap the Job reads:\n{readme}"
        );
    }
}

/// The rendered argv, parsed by `bookstore loadtest`'s own clap parser and checked by its own
/// `validate`, says what the spec says, down to the shard, the start time and `--result-stdout`.
#[test]
fn the_rendered_args_parse_with_the_loadtest_parser() {
    use bookstore::cli::{Cli, Command as Cmd};
    use clap::Parser as _;
    for (name, spec) in all_specs() {
        let job = job(&render(&spec));
        let l = &spec.loadtest;
        let argv = argv(&job);
        assert_eq!(
            argv[0], "loadtest",
            "{name}: the image's entrypoint is `bookstore`"
        );
        // The shard arguments, exactly as the CLI side takes them (0-based index / shards).
        let n = argv.len();
        assert_eq!(
            &argv[n - 5..],
            [
                "--shard".to_string(),
                format!("{INDEX}/{}", l.shards),
                "--start-at".into(),
                START_AT.into(),
                "--result-stdout".into()
            ],
            "{name}"
        );
        let raw = container(&job)["args"].as_sequence().unwrap().clone();
        assert_eq!(
            s(&raw[n - 4]),
            format!("$(JOB_COMPLETION_INDEX)/{}", l.shards),
            "{name}"
        );
        assert_eq!(s(&raw[n - 2]), "$(START_AT)", "{name}");

        // The whole argv through the real parser.
        let cli = Cli::try_parse_from(
            std::iter::once("bookstore").chain(argv.iter().map(String::as_str)),
        )
        .unwrap_or_else(|e| panic!("{name}: {argv:?} does not parse: {e}"));
        let Cmd::Loadtest(parsed) = cli.command else {
            panic!("{name}: not `bookstore loadtest`")
        };
        assert!(parsed.tool.is_none(), "{name}: a run, not merge/collect");
        let mut a = parsed.run.expect("the run's flags");
        let shard = a.shard.expect("--shard parsed");
        assert_eq!(
            (shard.index, shard.count),
            (INDEX.parse().unwrap(), l.shards as usize),
            "{name}"
        );
        assert_eq!(
            a.start_at.map(|t| t.to_rfc3339()),
            Some("2026-12-02T16:00:00+00:00".into()),
            "{name}"
        );
        assert_eq!(
            START_AT, "2026-12-02T16:00:00Z",
            "the start time asserted above"
        );
        assert!(a.result_stdout, "{name}");
        // The start time is checked against the clock at run time (a time long past is refused).
        a.start_at = None;
        bookstore_loadtests::args::validate(&a)
            .unwrap_or_else(|e| panic!("{name}: `bookstore loadtest` refuses {argv:?}: {e}"));
        assert_eq!(a.url, l.target_url(&spec.domain.name), "{name}");
        assert_eq!(a.scenario.name(), l.scenario.name(), "{name}");
        assert_eq!(a.yes_write, l.yes_write, "{name}");
        match &l.stages {
            Some(stages) => {
                let want = bookstore_loadtests::shape::parse_stages(stages).unwrap();
                assert_eq!(a.stages.as_ref(), Some(&want), "{name}");
                assert!(flag(&argv, "--users").is_none(), "{name}");
            }
            None => {
                assert!(a.stages.is_none(), "{name}");
                assert_eq!(a.users, l.users as usize, "{name}");
                assert_eq!(
                    a.ramp,
                    bookstore_loadtests::parse_duration(&l.ramp).unwrap(),
                    "{name}"
                );
                assert_eq!(
                    a.duration,
                    bookstore_loadtests::parse_duration(&l.duration).unwrap(),
                    "{name}"
                );
            }
        }
        // The spec's own plan length agrees with the parser's: the Job's deadline is computed from it.
        assert_eq!(
            a.plan().total().as_secs(),
            l.planned_seconds().unwrap(),
            "{name}"
        );
        assert_eq!(
            a.think,
            l.think
                .as_deref()
                .map(|t| bookstore_loadtests::shape::parse_think(t).unwrap()),
            "{name}"
        );
        let g = &l.gates;
        assert_eq!(a.max_p95, g.max_p95_ms, "{name}");
        assert_eq!(a.max_error_rate, g.max_error_rate_percent, "{name}");
        assert_eq!(a.gate_whole_run, g.whole_run, "{name}");
        assert_eq!(
            a.expect_instances,
            g.expect_instances.map(|n| n as usize),
            "{name}"
        );
        assert_eq!(a.expect_scale_out, g.expect_scale_out, "{name}");
        assert_eq!(
            a.expect_scale_in,
            g.expect_scale_in.map(|n| n as usize),
            "{name}"
        );
    }
}

/// README.md's collect and merge commands name the rendered Job and namespace, with the flags the
/// CLI side takes.
#[test]
fn the_readme_collects_this_job_and_merges_its_results() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let readme = &files["README.md"];
        let l = &spec.loadtest;
        for line in [
            format!(
                "bookstore loadtest collect --job {}-loadtest --namespace {} --out loadtest-results",
                spec.project.name, l.namespace
            ),
            "bookstore loadtest merge loadtest-results".to_string(),
            format!("kubectl -n {} delete job {}-loadtest --ignore-not-found", l.namespace, spec.project.name),
            "kubectl apply -k out/loadtest".to_string(),
            "bookstore image build --cli && bookstore image push --cli".to_string(),
        ] {
            assert!(readme.contains(&line), "{name}: README.md lacks `{line}`:\n{readme}");
        }
    }
}
