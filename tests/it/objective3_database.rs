//! Objective 3's database and ACME fixes (issue 15, after the first round): TLS to the database
//! verified against a CA bundle from a ConfigMap (Swarm: a config), the shop's own
//! least-privilege user made by a Job with the master secret, `domain.acme_server` honoured by
//! the Issuers, and Swarm's covers mounted over TLS (amazon-efs-utils) instead of plain NFS.

use super::objective3::{
    all_specs, config_env, docs, find, objects, one, render, s, APP_SECRET_ARN, RDS_SECRET_ARN,
};
use bookstore::blueprints::{Objective, Source};
use bookstore::explain::Fidelity;
use bookstore::spec::Spec;
use serde_yaml::Value;

fn volume<'a>(pod: &'a Value, name: &str) -> &'a Value {
    pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

fn mount<'a>(container: &'a Value, name: &str) -> Option<&'a Value> {
    container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
}

fn env<'a>(container: &'a Value, key: &str) -> Option<&'a str> {
    container["env"]
        .as_sequence()?
        .iter()
        .find(|e| e["name"] == key)
        .and_then(|e| e["value"].as_str())
}

/// TLS to the database: the shop requires it and verifies the server against the CA file, which is
/// the ConfigMap `<project>-database-ca` mounted without subPath (a new bundle reaches running
/// pods), created by the README from the region's RDS bundle; the URL names the database host
/// itself (the name its certificate carries), never an in-cluster alias. Swarm the same, through a
/// config.
#[test]
fn the_shop_verifies_the_databases_certificate_on_every_target() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let cm = config_env(&files);
        assert_eq!(cm["BOOKSTORE_DATABASE_TLS"], "verify", "{name}");
        let ca = cm["BOOKSTORE_DATABASE_CA_FILE"].clone();
        let host = &spec.objective3.database_host;
        assert!(
            cm["BOOKSTORE_DATABASE_URL"].contains(&format!("@{host}:")),
            "{name}: the URL must name {host}: {}",
            cm["BOOKSTORE_DATABASE_URL"]
        );
        let objs = objects(&files);
        let pod = &one(&objs, "Deployment")["spec"]["template"]["spec"];
        let shop = &pod["containers"][0];
        let m = mount(shop, "database-ca").expect("the CA is mounted");
        assert!(
            m["subPath"].is_null(),
            "{name}: subPath would freeze the file"
        );
        let cm_name = format!("{}-database-ca", spec.project.name);
        let v = volume(pod, "database-ca");
        assert_eq!(s(&v["configMap"]["name"]), cm_name, "{name}");
        let file = format!(
            "{}/{}",
            s(&m["mountPath"]),
            s(&v["configMap"]["items"][0]["path"])
        );
        assert_eq!(file, ca, "{name}: the CA file is the mounted key");
        let readme = &files["README.md"];
        let region = &spec.project.region;
        assert!(
            readme.contains(&format!(
                "https://truststore.pki.rds.amazonaws.com/{region}/{region}-bundle.pem"
            )) && readme.contains(&format!("create configmap {cm_name} --from-file=ca.pem=")),
            "{name}: the README creates the CA ConfigMap from the region's RDS bundle"
        );
        assert!(
            !readme.contains("not encrypted yet"),
            "{name}: the README still says the database traffic is plaintext"
        );

        let stack = &docs(&files["swarm/docker-stack.yml"])[0];
        let app = &stack["services"]["app"];
        let e = &app["environment"];
        assert_eq!(s(&e["BOOKSTORE_DATABASE_TLS"]), "verify", "{name}");
        let swarm_ca = s(&e["BOOKSTORE_DATABASE_CA_FILE"]);
        let cfg = app["configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["target"] == swarm_ca)
            .unwrap_or_else(|| panic!("{name}: no config mounted at {swarm_ca}"));
        let src = s(&cfg["source"]);
        assert_eq!(
            s(&stack["configs"][src]["name"]),
            format!("{}_database_ca", spec.project.name)
        );
        assert!(readme.contains(&format!(
            "docker config create {}_database_ca",
            spec.project.name
        )));
        assert!(s(&e["BOOKSTORE_DATABASE_URL"])
            .contains(&format!("{}_shop@{host}:", spec.database.user)));
    }
}

/// The shop's own user: the pods log in as `<database.user>_shop` with the Secret they mount;
/// only the Job mounts the administrator's Secret, logs in as the administrator over verified TLS
/// and runs `create-app-user` for that user with the pods' password file. A new image is a new
/// Job name (a Job's template is immutable), and the apply may prune the old one.
#[test]
fn a_job_makes_the_shops_least_privilege_user_with_the_master_secret() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let objs = objects(&files);
        let user = format!("{}_shop", spec.database.user);
        let master = format!("{}-database-master", spec.project.name);
        let cm = config_env(&files);
        assert!(
            cm["BOOKSTORE_DATABASE_URL"].starts_with(&format!("mysql://{user}@")),
            "{name}"
        );
        let dep = one(&objs, "Deployment");
        let shop_pod = &dep["spec"]["template"]["spec"];
        for v in shop_pod["volumes"].as_sequence().unwrap() {
            assert_ne!(
                v["secret"]["secretName"].as_str(),
                Some(master.as_str()),
                "{name}: the shop's pods must not see the master password"
            );
        }
        let job = one(&objs, "Job");
        let resources = &docs(&files["kustomization.yaml"])[0]["resources"];
        assert!(
            resources
                .as_sequence()
                .unwrap()
                .iter()
                .any(|r| r == "k8s/database-user.yaml"),
            "{name}: kustomization.yaml does not apply the Job"
        );
        let pod = &job["spec"]["template"]["spec"];
        let c = &pod["containers"][0];
        let args: Vec<&str> = c["args"].as_sequence().unwrap().iter().map(s).collect();
        assert_eq!(
            args[..3],
            ["create-app-user", "--user", user.as_str()],
            "{name}"
        );
        let password_file = args[4];
        let app_mount = mount(c, "app").unwrap();
        assert!(password_file.starts_with(s(&app_mount["mountPath"])));
        assert_eq!(
            s(&volume(pod, "app")["secret"]["secretName"]),
            spec.secrets.kubernetes_secret
        );
        assert_eq!(
            s(&volume(pod, "master")["secret"]["secretName"]),
            master,
            "{name}"
        );
        let master_file = env(c, "BOOKSTORE_DATABASE_PASSWORD_FILE").unwrap();
        assert!(master_file.starts_with(s(&mount(c, "master").unwrap()["mountPath"])));
        assert_eq!(
            env(c, "BOOKSTORE_DATABASE_URL").unwrap(),
            format!(
                "mysql://{}@{}:{}/{}",
                spec.database.user,
                spec.objective3.database_host,
                spec.database.port,
                spec.database.name
            )
        );
        assert_eq!(env(c, "BOOKSTORE_DATABASE_TLS"), Some("verify"));
        assert_eq!(
            env(c, "BOOKSTORE_DATABASE_CA_FILE"),
            Some(cm["BOOKSTORE_DATABASE_CA_FILE"].as_str())
        );
        // Its pods are not the shop's: no Service, PDB or HPA selects them, and a NetworkPolicy
        // of their own lets them reach only DNS and MySQL.
        let pod_labels = &job["spec"]["template"]["metadata"]["labels"];
        let svc_sel = &find(&objs, "Service")[0]["spec"]["selector"];
        assert_ne!(
            pod_labels["app.kubernetes.io/instance"], svc_sel["app.kubernetes.io/instance"],
            "{name}: the Service would send shoppers to the Job"
        );
        let policy = find(&objs, "NetworkPolicy")
            .into_iter()
            .find(|p| {
                p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"]
                    == pod_labels["app.kubernetes.io/instance"]
            })
            .unwrap_or_else(|| panic!("{name}: no NetworkPolicy for the Job"));
        assert!(policy["spec"]["ingress"].is_null());
        assert_eq!(
            policy["spec"]["egress"][1]["ports"][0]["port"].as_u64(),
            Some(spec.database.port as u64)
        );
        let allow = bookstore::render::prune_allowlist(&spec);
        assert!(allow.contains(&"batch/v1/Job".to_string()));
        let readme = &files["README.md"];
        assert!(
            readme.contains(&format!(
                "wait job/{} --for=condition=Complete",
                s(&job["metadata"]["name"])
            )),
            "{name}: step 3 waits for the Job"
        );
        assert!(
            readme.contains(&format!("create-app-user --user {user}")),
            "{name}: Swarm's user command"
        );
    }
    // A new image: a new Job (its template cannot change in place).
    let job_name = |spec: &Spec| {
        let objs = objects(&render(spec));
        s(&one(&objs, "Job")["metadata"]["name"]).to_string()
    };
    let a = Spec::default();
    let mut b = Spec::default();
    b.app.tag = "0.2.0".into();
    assert_ne!(job_name(&a), job_name(&b));
    assert_eq!(job_name(&a), job_name(&Spec::default()));
}

/// With objective 2's secrets, the shop's password is objective 2's AppDatabaseSecret (one user,
/// one password for both targets) and the master password the RDS-managed secret; the identity of
/// the External Secrets Operator may read exactly those. The master ARN without the app ARN is
/// refused: the Job would give objective 2's user another password.
#[test]
fn objective_2s_app_and_master_secrets_are_kept_apart() {
    let mut spec = Spec::default();
    spec.objective3.secrets_source = bookstore::spec::SecretsSource::ExternalSecrets;
    spec.objective3.database_secret_arn = Some(RDS_SECRET_ARN.into());
    spec.objective3.app_database_secret_arn = Some(APP_SECRET_ARN.into());
    let files = render(&spec);
    let objs = objects(&files);
    let es = find(&objs, "ExternalSecret");
    let by_target = |t: &str| {
        es.iter()
            .find(|o| o["spec"]["target"]["name"] == t)
            .unwrap_or_else(|| panic!("no ExternalSecret for {t}"))
    };
    let shop = by_target(&spec.secrets.kubernetes_secret);
    assert_eq!(
        s(&shop["spec"]["data"][0]["remoteRef"]["key"]),
        APP_SECRET_ARN
    );
    let master = by_target("bookstore-database-master");
    assert_eq!(
        s(&master["spec"]["data"][0]["remoteRef"]["key"]),
        RDS_SECRET_ARN
    );
    let policy: serde_json::Value =
        serde_json::from_str(&files["eks/external-secrets-policy.json"]).unwrap();
    let sm = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["Sid"] == "TheDatabasePasswords")
        .unwrap();
    assert_eq!(
        sm["Resource"],
        serde_json::json!([APP_SECRET_ARN, RDS_SECRET_ARN])
    );
    let ssm = serde_json::to_string(&policy["Statement"][0]["Resource"]).unwrap();
    assert!(!ssm.contains("database-password") && !ssm.contains("database-root-password"));

    let err = match bookstore::spec::parse(
        &format!("objective3:\n  database_secret_arn: {RDS_SECRET_ARN}\n"),
        bookstore::spec::SpecSource::File("bad.yaml".into()),
    ) {
        Ok(_) => panic!("the master ARN without the app ARN was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("`objective3.app_database_secret_arn`")
            && err.contains("AppDatabaseSecretArn"),
        "{err}"
    );
}

/// `domain.acme_server`: one Issuer of that directory, the one the Gateway or Ingress names; the
/// explain table no longer lists the field as ignored for objective 3.
#[test]
fn the_issuer_follows_the_spec_acme_directory() {
    const DIR: &str = "https://acme.internal.example.com/acme/directory";
    for (name, mut spec) in all_specs() {
        spec.domain.letsencrypt_staging = false;
        spec.domain.acme_server = Some(DIR.into());
        let files = render(&spec);
        let objs = objects(&files);
        let issuer = one(&objs, "Issuer");
        assert_eq!(s(&issuer["spec"]["acme"]["server"]), DIR, "{name}");
        let issuer_name = s(&issuer["metadata"]["name"]);
        assert_eq!(
            issuer_name,
            format!("{}-{}-acme", spec.project.name, spec.project.environment)
        );
        let routing = &objs
            .iter()
            .find(|(_, o)| matches!(o["kind"].as_str(), Some("Gateway" | "Ingress")))
            .unwrap()
            .1;
        assert_eq!(
            s(&routing["metadata"]["annotations"]["cert-manager.io/issuer"]),
            issuer_name,
            "{name}"
        );
        assert!(files["README.md"].contains(DIR), "{name}");
    }
    // Without it, Let's Encrypt: production, or staging when asked.
    for (staging, want) in [
        (false, bookstore::spec::LETSENCRYPT_PRODUCTION),
        (true, bookstore::spec::LETSENCRYPT_STAGING),
    ] {
        let mut spec = Spec::default();
        spec.domain.letsencrypt_staging = staging;
        let objs = objects(&render(&spec));
        let gw = one(&objs, "Gateway");
        let used = s(&gw["metadata"]["annotations"]["cert-manager.io/issuer"]);
        let issuer = find(&objs, "Issuer")
            .into_iter()
            .find(|i| i["metadata"]["name"] == used)
            .unwrap();
        assert_eq!(s(&issuer["spec"]["acme"]["server"]), want);
    }
    let report = bookstore::explain::report(&Source::Embedded, Objective::Objective3).unwrap();
    let row = report
        .iter()
        .find(|(f, _)| f == "domain.acme_server")
        .unwrap();
    assert!(
        matches!(&row.1, Fidelity::Honoured(files) if files.iter().any(|f| f.ends_with("k8s/issuers.yaml"))),
        "{:?}",
        row.1
    );
}

/// Swarm's covers on EFS travel over TLS: every node mounts the access point with the EFS mount
/// helper (`tls`), the tasks bind-mount that path and run only on nodes labelled as having it;
/// no plain NFS volume is left. With a plain NFS server (not EFS) the README says it is plaintext.
#[test]
fn swarm_mounts_the_efs_covers_over_tls() {
    for (name, spec) in all_specs() {
        let files = render(&spec);
        let stack = &docs(&files["swarm/docker-stack.yml"])[0];
        let app = &stack["services"]["app"];
        let readme = &files["README.md"];
        let o3 = &spec.objective3;
        let uploads = app["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["target"] == spec.shared_files.container_path.as_str())
            .unwrap();
        if o3.shared_storage == bookstore::spec::SharedStorage::EfsCsi {
            assert_eq!(s(&uploads["type"]), "bind", "{name}");
            assert_eq!(s(&uploads["source"]), spec.shared_files.mount_path);
            assert!(stack["volumes"].is_null(), "{name}: an NFS volume is left");
            let constraints: Vec<&str> = app["deploy"]["placement"]["constraints"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(s)
                .collect();
            assert!(constraints.contains(&"node.labels.uploads == efs-tls"));
            let fstab = format!(
                "{} {} efs _netdev,noresvport,tls,accesspoint={} 0 0",
                o3.efs_file_system_id, spec.shared_files.mount_path, o3.efs_access_point_id
            );
            assert!(readme.contains(&fstab), "{name}: no fstab line {fstab}");
            assert!(readme.contains("docker node update --label-add uploads=efs-tls"));
            assert!(!readme.contains("plain NFS is not encrypted"), "{name}");
        } else {
            assert_eq!(s(&uploads["type"]), "volume");
            assert_eq!(
                s(&stack["volumes"]["uploads"]["driver_opts"]["type"]),
                "nfs"
            );
            assert!(readme.contains("plain NFS is not encrypted"), "{name}");
        }
    }
}
