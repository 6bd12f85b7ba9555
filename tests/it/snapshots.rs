//! Snapshots of every rendered file, for the default spec and two others.

use super::specs;

#[test]
fn every_rendered_file_matches_its_snapshot() {
    for (name, spec) in specs::all() {
        for r in specs::render(&spec) {
            for f in &r.files {
                let snap = format!("{name}__{}__{}", r.objective, f.path.replace('/', "__"));
                insta::with_settings!({ snapshot_path => "snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
                    insta::assert_snapshot!(snap, &f.content);
                });
            }
        }
    }
}

#[test]
fn a_spec_change_shows_up_where_it_should() {
    let base = bookstore::spec::Spec::default();
    let mut changed = base.clone();
    changed.domain.name = "changed.example.com".into();
    changed.app.port = 9123;
    let a = specs::render(&base);
    let b = specs::render(&changed);
    let compose = specs::file(&b, "objective1", "docker-compose.yml");
    assert!(compose.contains("127.0.0.1:9123:9123"), "{compose}");
    let nginx = specs::file(&b, "objective1", "nginx/bookstore.conf");
    assert!(
        nginx.contains("server_name changed.example.com;"),
        "{nginx}"
    );
    assert!(nginx.contains("server 127.0.0.1:9123"), "{nginx}");
    assert!(
        nginx.contains("/etc/letsencrypt/live/changed.example.com/fullchain.pem"),
        "{nginx}"
    );
    assert!(!specs::file(&a, "objective1", "nginx/bookstore.conf").contains("changed.example.com"));
    let certbot = specs::file(&b, "objective1", "certbot/obtain-certificate.sh");
    assert!(certbot.contains("changed.example.com"), "{certbot}");
    let server = |spec: &bookstore::spec::Spec| {
        let rendered = specs::render(spec);
        let text = specs::file(&rendered, "objective1", "certbot/obtain-certificate.sh");
        let flag = text.split("--server '").nth(1).expect("certbot --server");
        flag[..flag.find('\'').expect("closing quote")].to_string()
    };
    assert_eq!(
        server(&base),
        "https://acme-v02.api.letsencrypt.org/directory"
    );
    let mut staging = base.clone();
    staging.domain.letsencrypt_staging = true;
    assert_eq!(
        server(&staging),
        "https://acme-staging-v02.api.letsencrypt.org/directory"
    );
    let mut own_ca = base.clone();
    own_ca.domain.acme_server = Some("https://ca.internal:9000/acme/acme/directory".into());
    assert_eq!(
        server(&own_ca),
        "https://ca.internal:9000/acme/acme/directory"
    );
}
