//! The `loadtest:` section: the Job of load generators.

use super::checker::Checker;
use super::formats::*;
use crate::spec::loadtest::{parse_millis, parse_stages, parse_think};
use crate::spec::{LoadtestScenario, Spec};

/// Checks `loadtest`.
pub(super) fn check(c: &mut Checker, spec: &Spec) {
    let l = &spec.loadtest;
    if let Some(url) = &l.url {
        if let Some(why) = web_url_problem(url) {
            c.fail(
                "loadtest.url",
                format!("`{url}` is not a URL the generators can load: {why}; for example `https://shop.example.com`"),
            );
        } else if is_loopback_url(url) {
            c.fail(
                "loadtest.url",
                format!("`{url}` is this machine's loopback, which inside a generator pod is the pod itself; \
                         give the shop's public URL, or null for `https://{}`", spec.domain.name),
            );
        }
    }
    c.range("loadtest.shards", l.shards, 1, 500, "the generator pods");
    let too_few = |users: u64| {
        format!(
            "{users} user(s) cannot be shared by {} shards: every generator needs at least one user; \
             raise the users or lower `loadtest.shards`",
            l.shards
        )
    };
    match &l.stages {
        Some(stages) => match parse_stages(stages) {
            Ok(plan) if plan.peak_users < u64::from(l.shards) => {
                c.fail("loadtest.stages", too_few(plan.peak_users))
            }
            Ok(_) => {}
            Err(e) => c.fail("loadtest.stages", e),
        },
        None => {
            c.range("loadtest.users", l.users, 1, 1_000_000, "the users");
            if l.users >= 1 && l.users < l.shards {
                c.fail("loadtest.users", too_few(u64::from(l.users)));
            }
            if let Err(e) = parse_millis(&l.ramp) {
                c.fail("loadtest.ramp", e);
            }
            match parse_millis(&l.duration) {
                Ok(ms) if ms < 1000 => c.fail("loadtest.duration", "must be at least 1s"),
                Ok(_) => {}
                Err(e) => c.fail("loadtest.duration", e),
            }
        }
    }
    if let Some(think) = &l.think {
        if let Err(e) = parse_think(think) {
            c.fail("loadtest.think", e);
        }
    }
    if l.scenario != LoadtestScenario::Browse && !l.yes_write {
        c.fail(
            "loadtest.scenario",
            format!(
                "`{}` registers accounts, buys real stock and lists books on {}. If that shop \
                 is yours to write to, set `loadtest.yes_write: true` (the rows are marked: e-mails \
                 @loadtest.invalid, titles starting [loadtest]; loadtests/README.md has the cleanup); to \
                 read only, use `scenario: browse`",
                l.scenario.name(),
                l.target_url(&spec.domain.name)
            ),
        );
    }
    gates(c, &l.gates);
    c.pattern(
        "loadtest.namespace",
        &l.namespace,
        is_dns_label(&l.namespace),
        "a Kubernetes namespace (lowercase letters, digits and dashes)",
    );
    if let Some(image) = &l.image {
        c.pattern(
            "loadtest.image",
            image,
            is_pinned_image(image),
            "a pinned image such as `ghcr.io/owner/bookstore:0.1.0` (repository:tag, not `latest`, or repository@sha256:digest)",
        );
    }
    let r = &l.resources;
    c.pattern(
        "loadtest.resources.cpu",
        &r.cpu,
        parse_quantity(&r.cpu).is_some_and(|v| v >= 0.1),
        "a CPU quantity of at least 100m, such as `500m` or `2`",
    );
    c.pattern(
        "loadtest.resources.memory",
        &r.memory,
        parse_quantity(&r.memory).is_some_and(|v| v >= 64.0 * 1024.0 * 1024.0),
        "a memory quantity of at least 64Mi, such as `512Mi` or `1Gi`",
    );
}

fn gates(c: &mut Checker, g: &crate::spec::LoadtestGates) {
    if let Some(ms) = g.max_p95_ms {
        c.require(
            ms.is_finite() && ms > 0.0,
            "loadtest.gates.max_p95_ms",
            || format!("must be a number of milliseconds above 0, got {ms}"),
        );
    }
    if let Some(pct) = g.max_error_rate_percent {
        c.require(
            pct.is_finite() && (0.0..=100.0).contains(&pct),
            "loadtest.gates.max_error_rate_percent",
            || format!("must be a percentage from 0 to 100, got {pct}"),
        );
    }
    if let Some(n) = g.expect_instances {
        c.range(
            "loadtest.gates.expect_instances",
            n,
            1,
            10_000,
            "the instances",
        );
    }
    if let Some(n) = g.expect_scale_in {
        c.range(
            "loadtest.gates.expect_scale_in",
            n,
            1,
            10_000,
            "the instances",
        );
    }
}

/// `repository:tag` (not `latest`) or `repository@sha256:<64 hex>`.
fn is_pinned_image(s: &str) -> bool {
    if let Some((repo, digest)) = s.split_once("@sha256:") {
        return is_image_repo(repo)
            && digest.len() == 64
            && digest
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    }
    s.rsplit_once(':')
        .is_some_and(|(repo, tag)| is_image_repo(repo) && is_tag(tag) && tag != "latest")
}

/// True when the URL's host is 127.0.0.0/8, `[::1]` or `localhost`.
fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
