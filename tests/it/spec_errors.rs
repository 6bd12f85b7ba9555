//! Bad specs: each one must be refused with the exact message, line and column.

use bookstore::spec::{parse, parse_bytes, SpecSource};

fn error_of(text: &str) -> String {
    let source = SpecSource::File("bad.yaml".into());
    match parse(text, source) {
        Ok(_) => panic!("spec was accepted but should be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn one(text: &str) -> String {
    let all = error_of(text);
    let mut lines = all.lines();
    assert_eq!(lines.next(), Some("1 problem in bad.yaml:"), "{all}");
    let line = lines.next().expect("a problem line").trim().to_string();
    assert_eq!(lines.next(), None, "{all}");
    line
}

#[test]
fn unknown_nested_key() {
    assert_eq!(
        one("objective1:\n  instanse_type: t3.small\n"),
        "bad.yaml:2:3: `objective1.instanse_type`: unknown key `instanse_type`; did you mean `instance_type`? (valid keys here: instance_type, ami_parameter, root_volume_gb, allowed_cidrs, aws_cli_image)"
    );
}

#[test]
fn unknown_top_level_key() {
    assert_eq!(
        one("objectiv1:\n  instance_type: t3.small\n"),
        "bad.yaml:1:1: `objectiv1`: unknown key `objectiv1`; did you mean `objective1`? (valid keys here: project, domain, app, database, secrets, shared_files, nginx, objective1, objective2, objective3, loadtest)"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        one("objective2:\n  min_size: two\n"),
        "bad.yaml:2:13: `objective2.min_size`: expected a whole number (no quotes), found string \"two\""
    );
}

#[test]
fn bad_domain() {
    assert_eq!(
        one("domain:\n  name: shop_example\n"),
        "bad.yaml:2:3: `domain.name`: `shop_example` is not a fully qualified domain name such as `shop.example.com`"
    );
}

#[test]
fn bad_email() {
    assert_eq!(
        one("domain:\n  letsencrypt_email: ops.example.com\n"),
        "bad.yaml:2:3: `domain.letsencrypt_email`: `ops.example.com` is not an e-mail address (name@example.com)"
    );
}

#[test]
fn min_above_max() {
    assert_eq!(
        one("objective2:\n  min_size: 4\n  desired_capacity: 4\n  max_size: 3\n"),
        "bad.yaml:4:3: `objective2.max_size`: max_size (3) is below desired_capacity (4); need min_size <= desired_capacity <= max_size"
    );
}

#[test]
fn secret_value_inline() {
    assert_eq!(
        one("secrets:\n  database_password: S3cr3t-Passw0rd!\n"),
        "bad.yaml:2:3: `secrets.database_password`: this is not a reference and looks like a secret value (not shown); store the value with `aws ssm put-parameter --type SecureString --name /bookstore/NAME --value ...` and write `ssm:/bookstore/NAME` here"
    );
}

#[test]
fn empty_file() {
    assert_eq!(
        one("# nothing here\n\n"),
        "bad.yaml:1:1: the spec is empty; run `bookstore init` for a commented starting point"
    );
}

#[test]
fn tab_indentation() {
    assert_eq!(
        one("project:\n\tname: shop\n"),
        "bad.yaml:2:1: a tab is used for indentation; YAML allows only spaces there, so replace the tab with spaces"
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        one("app:\n  port: 8080\n  port: 9090\n"),
        "bad.yaml:3:3: `app.port`: duplicate key `port`; keep only one of them"
    );
}

#[test]
fn cidr_host_bits() {
    assert_eq!(
        one("objective1:\n  allowed_cidrs:\n    - 203.0.113.7/24\n"),
        "bad.yaml:3:7: `objective1.allowed_cidrs[0]`: `203.0.113.7/24` has host bits set; the network is `203.0.113.0/24`"
    );
}

#[test]
fn cidr_syntax() {
    assert_eq!(
        one("objective2:\n  network:\n    vpc_cidr: 10.0.0.0/33\n"),
        "bad.yaml:3:5: `objective2.network.vpc_cidr`: `10.0.0.0/33` is not an IPv4 CIDR such as `10.0.0.0/16`"
    );
}

#[test]
fn percentage_out_of_range() {
    assert_eq!(
        one("objective2:\n  target_cpu_percent: 150\n"),
        "bad.yaml:2:3: `objective2.target_cpu_percent`: a percentage must be between 1 and 100, got 150"
    );
}

#[test]
fn port_zero() {
    assert_eq!(
        one("app:\n  port: 0\n"),
        "bad.yaml:2:3: `app.port`: port 0 is not a usable port; pick one in 1..=65535"
    );
}

#[test]
fn port_too_large() {
    assert_eq!(
        one("database:\n  port: 70000\n"),
        "bad.yaml:2:9: `database.port`: expected a number from 1 to 65535, found integer 70000"
    );
}

#[test]
fn replicas_above_max() {
    assert_eq!(
        one("objective3:\n  replicas: 12\n  max_replicas: 10\n"),
        "bad.yaml:3:3: `objective3.max_replicas`: max_replicas (10) is below replicas (12); need min_replicas <= replicas <= max_replicas"
    );
}

#[test]
fn latest_tag() {
    assert_eq!(
        one("app:\n  tag: latest\n"),
        "bad.yaml:2:3: `app.tag`: `latest` is not a pinned image tag (letters, digits, `.`, `_`, `-`; not `latest`)"
    );
}

#[test]
fn secret_in_env() {
    assert_eq!(
        one("app:\n  env:\n    STRIPE_API_KEY: sk_live_abc\n"),
        "bad.yaml:3:5: `app.env.STRIPE_API_KEY`: `STRIPE_API_KEY` looks like a secret, and a secret value belongs in SSM Parameter Store, not in the spec; add a reference under `secrets` instead"
    );
}

#[test]
fn contract_variable_in_env() {
    // The rendered files set these from the spec (app.max_upload_mb, the TLS to the database);
    // a second value in app.env would fight them.
    for key in ["BOOKSTORE_MAX_UPLOAD_MB", "BOOKSTORE_DATABASE_TLS"] {
        assert_eq!(
            one(&format!("app:\n  env:\n    {key}: \"9\"\n")),
            format!("bad.yaml:3:5: `app.env.{key}`: `{key}` is set by the blueprints from the spec; set the matching spec field instead")
        );
    }
}

#[test]
fn eol_mysql() {
    assert_eq!(
        one("database:\n  engine_version: \"8.0\"\n"),
        "bad.yaml:2:3: `database.engine_version`: `8.0` is not a MySQL 8.4 LTS version (`8.4` or `8.4.x`; 8.0 reached end of life in April 2026)"
    );
}

#[test]
fn subnet_outside_vpc() {
    assert_eq!(
        one("objective2:\n  network:\n    vpc_cidr: 10.40.0.0/16\n    public_subnet_cidrs:\n      - 10.40.0.0/24\n      - 10.41.1.0/24\n"),
        "bad.yaml:6:9: `objective2.network.public_subnet_cidrs[1]`: `10.41.1.0/24` is outside the VPC `10.40.0.0/16`"
    );
}

#[test]
fn broken_flow() {
    assert_eq!(
        one("project: {name: shop\n"),
        "bad.yaml:2:1: `project`: YAML syntax error: did not find expected ',' or '}'; check brackets, quotes and indentation here"
    );
}

#[test]
fn scalar_document() {
    assert_eq!(
        one("just a string\n"),
        "bad.yaml:1:1: expected a mapping of keys (`key: value` lines below it), found string \"just a string\""
    );
}

#[test]
fn empty_name() {
    assert_eq!(
        one("project:\n  name: \"\"\n"),
        "bad.yaml:2:3: `project.name`: must not be empty"
    );
}

#[test]
fn every_problem_is_reported_at_once_in_document_order() {
    let text = "domain:\n  name: bad_domain\n  letsencrypt_email: nobody\nobjective2:\n  target_cpu_percent: 0\nobjective3:\n  min_replicas: 5\n  replicas: 3\n";
    assert_eq!(
        error_of(text),
        "4 problems in bad.yaml:\n  \
         bad.yaml:2:3: `domain.name`: `bad_domain` is not a fully qualified domain name such as `shop.example.com`\n  \
         bad.yaml:3:3: `domain.letsencrypt_email`: `nobody` is not an e-mail address (name@example.com)\n  \
         bad.yaml:5:3: `objective2.target_cpu_percent`: a percentage must be between 1 and 100, got 0\n  \
         bad.yaml:8:3: `objective3.replicas`: replicas (3) is below min_replicas (5); need min_replicas <= replicas <= max_replicas\n"
    );
}

#[test]
fn a_secret_value_never_appears_in_the_message() {
    for field in [
        "database_password",
        "secret_key",
        "admin_password",
        "database_root_password",
    ] {
        let text = format!("secrets:\n  {field}: Tr0ub4dor-and-3\n");
        let msg = error_of(&text);
        assert!(msg.contains(&format!("`secrets.{field}`")), "{msg}");
        assert!(!msg.contains("Tr0ub4dor"), "secret echoed: {msg}");
    }
    // Also when the value has the wrong type.
    let msg = error_of("secrets:\n  secret_key: 123456789\n");
    assert!(!msg.contains("123456789"), "secret echoed: {msg}");
}

#[test]
fn non_utf8_bytes_are_refused_with_the_offset() {
    let err = parse_bytes(
        b"project:\n  name: caf\xe9\n",
        SpecSource::File("bad.yaml".into()),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "1 problem in bad.yaml:\n  bad.yaml:2:12: the spec is not UTF-8 text (byte 0xE9 here); save it as UTF-8\n"
    );
}

#[test]
fn a_valid_partial_spec_fills_in_defaults() {
    let spec = parse("objective2:\n  max_size: 9\n", SpecSource::Embedded).expect("valid");
    assert_eq!(spec.objective2.max_size, 9);
    assert_eq!(
        spec.objective2.min_size,
        bookstore::spec::Spec::default().objective2.min_size
    );
}

#[test]
fn unknown_keys_and_meaning_checks_are_reported_together() {
    assert_eq!(
        error_of("objective2:\n  instanse_type: t3.small\n  target_cpu_percent: 0\nobjectiv1: {}\n"),
        "3 problems in bad.yaml:\n  \
         bad.yaml:2:3: `objective2.instanse_type`: unknown key `instanse_type`; did you mean `instance_type`? (valid keys here: instance_type, ami_parameter, min_size, desired_capacity, max_size, target_cpu_percent, target_requests_per_instance, root_volume_gb, health_check_grace_seconds, instance_warmup_seconds, certificate_arn, nginx_image, aws_cli_image, network)\n  \
         bad.yaml:3:3: `objective2.target_cpu_percent`: a percentage must be between 1 and 100, got 0\n  \
         bad.yaml:4:1: `objectiv1`: unknown key `objectiv1`; did you mean `objective1`? (valid keys here: project, domain, app, database, secrets, shared_files, nginx, objective1, objective2, objective3, loadtest)\n"
    );
}
