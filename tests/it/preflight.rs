//! `bookstore preflight`: stand-in `aws` and `kubectl` executables on PATH print the real CLIs'
//! documented JSON shapes (and log every call, which must be read-only), and a DNS responder on
//! loopback answers for the domain. Never the real internet.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;

const OWN: &str = "project:\n  name: shop\ndomain:\n  name: shop.bookstore-rs.dev\n  letsencrypt_email: ops@bookstore-rs.dev\n";

/// `aws`: sts get-caller-identity, ssm get-parameters (names in $MISSING are InvalidParameters),
/// cloudformation describe-stacks (PublicIp $PUBLIC_IP), route53 get-hosted-zone.
const AWS: &str = r#"#!/bin/sh
echo "$*" >> "$CALL_LOG"
case "$1 $2" in
"sts get-caller-identity")
  echo '{"UserId": "AIDASAMPLEUSERID", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:user/DevAdmin"}' ;;
"ssm get-parameters")
  printf '{"Parameters": ['
  sep=""; names=0; invalid=""
  for a in "$@"; do
    if [ "$names" = 1 ]; then
      case " $MISSING " in
      *" $a "*) invalid="$invalid${invalid:+, }\"$a\"" ;;
      *) printf '%s{"Name": "%s", "Type": "SecureString", "Value": "AQICAHh...", "Version": 1, "LastModifiedDate": "2026-11-30T10:00:00.000000+00:00", "ARN": "arn:aws:ssm:us-east-1:123456789012:parameter%s", "DataType": "text"}' "$sep" "$a" "$a"; sep=", " ;;
      esac
    fi
    [ "$a" = "--names" ] && names=1
  done
  printf '], "InvalidParameters": [%s]}\n' "$invalid" ;;
"cloudformation describe-stacks")
  echo '{"Stacks": [{"StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/shop-production-vm/1", "StackName": "shop-production-vm", "StackStatus": "CREATE_COMPLETE", "Outputs": [{"OutputKey": "PublicIp", "OutputValue": "'"$PUBLIC_IP"'", "Description": "Elastic IP"}]}]}' ;;
"route53 get-hosted-zone")
  echo '{"HostedZone": {"Id": "/hostedzone/Z0123456789ABCDEFGHIJ", "Name": "bookstore-rs.dev.", "CallerReference": "1", "Config": {"PrivateZone": false}, "ResourceRecordSetCount": 4}, "DelegationSet": {"NameServers": ["ns-1.awsdns-01.org"]}}' ;;
*)
  echo "aws: unexpected call: $*" >&2; exit 252 ;;
esac
"#;

/// `kubectl get crd -o json`: a List of the CRDs in $CRDS; `kubectl get deployments -A -o json`:
/// the Deployments in $DEPLOYMENTS (`namespace/name`, each with one available replica).
const KUBECTL: &str = r#"#!/bin/sh
echo "kubectl $*" >> "$CALL_LOG"
printf '{"apiVersion": "v1", "items": ['
sep=""
case "$*" in
"get crd -o json")
  for c in $CRDS; do
    printf '%s{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "%s"}}' "$sep" "$c"; sep=", "
  done ;;
"get deployments -A -o json")
  for d in $DEPLOYMENTS; do
    printf '%s{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "%s", "namespace": "%s"}, "status": {"availableReplicas": 1, "readyReplicas": 1, "replicas": 1}}' "$sep" "${d#*/}" "${d%%/*}"; sep=", "
  done ;;
*) echo "kubectl: unexpected call: $*" >&2; exit 1 ;;
esac
printf '], "kind": "List", "metadata": {"resourceVersion": ""}}\n'
"#;

/// Answers every A query with `addr`, on a loopback UDP port, from a thread.
fn dns_responder(addr: Ipv4Addr) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let local = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = sock.recv_from(&mut buf) {
            let q = &buf[..n];
            let mut r = Vec::from(&q[..2]);
            r.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0]);
            r.extend_from_slice(&q[12..]);
            r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&addr.octets());
            let _ = sock.send_to(&r, peer);
        }
    });
    local
}

struct Run {
    code: i32,
    out: String,
    calls: String,
}

fn preflight(dir: &Path, path: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let log = dir.join("calls.log");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_bookstore"));
    cmd.current_dir(dir)
        .env("NO_COLOR", "1")
        .env("PATH", path)
        .env("CALL_LOG", &log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd
        .arg("preflight")
        .args(args)
        .output()
        .expect("run bookstore");
    Run {
        code: out.status.code().expect("exit code"),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
        calls: std::fs::read_to_string(&log).unwrap_or_default(),
    }
}

fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for (name, text) in [("aws", AWS), ("kubectl", KUBECTL)] {
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut std::fs::metadata(&p).unwrap().permissions(),
            0o755,
        );
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.path().join("own.yaml"), OWN).unwrap();
    (dir, bin.display().to_string())
}

fn line<'a>(out: &'a str, status: &str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{status:<4}  {name} ")))
        .unwrap_or_else(|| panic!("no `{status} {name}` line in:\n{out}"))
}

fn read_only(calls: &str) {
    assert!(!calls.is_empty(), "no CLI call was made");
    for call in calls.lines() {
        let verb = call
            .split_whitespace()
            .find(|w| w.starts_with("get") || w.starts_with("describe"));
        assert!(verb.is_some(), "not a read-only call: {call}");
    }
}

#[test]
fn objective1_ready_to_deploy_passes_and_a_missing_parameter_fails_with_the_command() {
    let (dir, bin) = setup();
    let dns = dns_responder(Ipv4Addr::new(127, 0, 0, 2)).to_string();
    let args = [
        "objective1",
        "--spec",
        "own.yaml",
        "--dns-server",
        dns.as_str(),
    ];
    let r = preflight(
        dir.path(),
        &bin,
        &[("PUBLIC_IP", "127.0.0.2"), ("MISSING", "")],
        &args,
    );
    assert_eq!(r.code, 0, "{}", r.out);
    line(&r.out, "ok", "aws credentials");
    assert!(line(&r.out, "ok", "secrets.database_root_password")
        .contains("/bookstore/database-root-password exists"));
    assert!(line(&r.out, "ok", "DNS shop.bookstore-rs.dev")
        .ends_with("resolves to 127.0.0.2, the VM's Elastic IP (stack shop-production-vm)"));
    line(&r.out, "ok", "domain.letsencrypt_email");
    assert!(r.out.ends_with("preflight: no check failed\n"), "{}", r.out);
    read_only(&r.calls);

    let r = preflight(
        dir.path(),
        &bin,
        &[
            ("PUBLIC_IP", "127.0.0.2"),
            ("MISSING", "/bookstore/admin-password"),
        ],
        &args,
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(line(&r.out, "fail", "secrets.admin_password").contains(
        "SSM parameter /bookstore/admin-password does not exist in us-east-1; create it: aws ssm put-parameter --region us-east-1 --type SecureString --name /bookstore/admin-password"
    ), "{}", r.out);
    assert!(
        r.out.ends_with("preflight: 1 check(s) failed\n"),
        "{}",
        r.out
    );
}

#[test]
fn dns_pointing_elsewhere_fails_with_both_addresses() {
    let (dir, bin) = setup();
    let dns = dns_responder(Ipv4Addr::new(127, 0, 0, 3)).to_string();
    let r = preflight(
        dir.path(),
        &bin,
        &[("PUBLIC_IP", "127.0.0.2")],
        &["objective1", "--spec", "own.yaml", "--dns-server", &dns],
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(line(&r.out, "fail", "DNS shop.bookstore-rs.dev").contains(
        "resolves to 127.0.0.3, not the VM's Elastic IP 127.0.0.2: certbot cannot get a certificate until the A record points at 127.0.0.2"
    ));
}

#[test]
fn aws_missing_says_so_and_exits_1() {
    let (dir, _) = setup();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let dns = dns_responder(Ipv4Addr::new(127, 0, 0, 2)).to_string();
    let r = preflight(
        dir.path(),
        &empty.display().to_string(),
        &[],
        &["objective2", "--spec", "own.yaml", "--dns-server", &dns],
    );
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(line(&r.out, "fail", "aws credentials")
        .contains("`aws` is not on PATH: install AWS CLI v2"));
    line(&r.out, "skip", "account checks");
}

#[test]
fn offline_needs_no_account_and_still_refuses_example_names() {
    let (dir, bin) = setup();
    let r = preflight(dir.path(), &bin, &[], &["objective1", "--offline"]);
    assert_eq!(r.code, 1, "{}", r.out);
    assert!(r.calls.is_empty(), "--offline called out: {}", r.calls);
    assert!(line(&r.out, "fail", "domain.letsencrypt_email")
        .contains("`ops@example.com` is at a reserved example domain"));
    line(&r.out, "fail", "domain.name");
    line(&r.out, "ok", "objective1 user-data size");
    assert!(line(&r.out, "skip", "account checks").contains("skipped (--offline)"));
    let r = preflight(
        dir.path(),
        &bin,
        &[],
        &["objective2", "--offline", "--spec", "own.yaml"],
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(
        !r.out.contains("letsencrypt_email"),
        "objective 2 uses ACM, not Let's Encrypt:\n{}",
        r.out
    );
}

#[test]
fn objective3_needs_the_gateway_and_cert_manager_crds_and_controllers() {
    let (dir, bin) = setup();
    let dns = dns_responder(Ipv4Addr::new(127, 0, 0, 2)).to_string();
    let args = [
        "objective3",
        "--spec",
        "own.yaml",
        "--dns-server",
        dns.as_str(),
    ];
    let some = "certificates.cert-manager.io issuers.cert-manager.io";
    let r = preflight(dir.path(), &bin, &[("CRDS", some)], &args);
    assert_eq!(r.code, 1, "{}", r.out);
    line(&r.out, "ok", "CRD certificates.cert-manager.io");
    assert!(
        line(&r.out, "fail", "CRD gateways.gateway.networking.k8s.io")
            .contains("missing: install the Gateway API CRDs first")
    );
    assert!(r.calls.contains("kubectl get crd -o json"));
    read_only(&r.calls);
    assert!(line(&r.out, "fail", "controller envoy-gateway")
        .contains("not found: install Envoy Gateway first"));
    let all = format!("{some} gateways.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io backendtrafficpolicies.gateway.envoyproxy.io");
    let deployments = "kube-system/aws-load-balancer-controller cert-manager/cert-manager envoy-gateway-system/envoy-gateway kube-system/metrics-server";
    let r = preflight(
        dir.path(),
        &bin,
        &[("CRDS", all.as_str()), ("DEPLOYMENTS", deployments)],
        &args,
    );
    assert_eq!(r.code, 0, "{}", r.out);
    assert!(line(&r.out, "ok", "controller envoy-gateway")
        .ends_with("available in namespace envoy-gateway-system"));
    assert!(r.calls.contains("kubectl get deployments -A -o json"));
}
