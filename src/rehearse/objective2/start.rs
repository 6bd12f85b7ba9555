//! Starting the objective 2 rehearsal: read the rendered files (stopping on a value the
//! rehearsal cannot use before anything runs), then MariaDB, the launch template, the load
//! balancer, the decision log and its status server, the first instances and the autoscaler.

use super::front::Front;
use super::launch::Launch;
use super::{cloudformation, scaler, By, Fleet, Rehearsal, Shared, DEFAULT_INSTANCE_CPU};
use super::{BOOT_PATH, COMPOSE_PATH, NGINX_PATH, STACK_ENV_PATH};
use crate::blueprints::Objective;
use crate::rehearse::autoscale::{
    Autoscaler, CpuMeter, DecisionLog, PlatformClock, Status, StatusBoard, StatusServer,
};
use crate::rehearse::mariadb::LocalMariaDb;
use crate::rehearse::nginx::{self, Nginx};
use crate::rehearse::rendered::RenderedFiles;
use crate::rehearse::supervise::with_free_port;
use crate::rehearse::{
    compose, generate_secrets, provision_database, say, Differences, Options, Scaling, WorkDir,
};
use anyhow::{anyhow, bail, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

impl Rehearsal {
    /// Renders objective 2 from the spec (or reads `opts.rendered`), starts MariaDB, the
    /// instances (`opts.instances`, else the rendered `DesiredCapacity`), the load balancer, the
    /// decision log's status server and, with [`Scaling::Autoscaler`], the autoscaler; waits
    /// until every instance is in service. A rendered file the rehearsal cannot use stops it
    /// before anything starts, with a [`super::rendered::RenderedError`].
    pub fn start(opts: &Options) -> Result<Rehearsal> {
        let files = RenderedFiles::load(opts, Objective::Objective2)?;
        let cfn_label = files.label("cloudformation.yaml");
        let template =
            cloudformation::Template::parse(&cfn_label, files.get("cloudformation.yaml")?)?;
        let health = template.health_check()?;
        let scaling = template.scaling(opts.scaling == Scaling::Autoscaler)?;
        let user_data = files.get("user-data.yaml")?;
        let from_user_data = |path: &str| -> Result<String> {
            compose::cloud_config_file(user_data, path)?
                .ok_or_else(|| anyhow!("{} writes no {path}", files.label("user-data.yaml")))
        };
        let compose_text = from_user_data(COMPOSE_PATH)?;
        let site = from_user_data(NGINX_PATH)?;
        let boot = from_user_data(BOOT_PATH)?;
        let stack_env: HashMap<String, String> = from_user_data(STACK_ENV_PATH)?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (standalone, embedded, path) in [
            ("docker-compose.yml", &compose_text, COMPOSE_PATH),
            ("nginx/bookstore.conf", &site, NGINX_PATH),
        ] {
            if files.find(standalone).is_some_and(|s| s != embedded) {
                bail!(
                    "{} differs from the copy {} writes to {path}",
                    files.label(standalone),
                    files.label("user-data.yaml")
                );
            }
        }
        let meter = CpuMeter::new(opts.instance_cpu.unwrap_or(DEFAULT_INSTANCE_CPU))?;
        let work = WorkDir::new(opts.workdir.as_deref())?;
        let mut diffs = Differences::default();

        say(opts.verbose, "starting MariaDB (the RDS stand-in)");
        let db = LocalMariaDb::start_in(&work.path().join("mariadb"))?;
        diffs.add(
            "database",
            "RDS MySQL 8.4 Multi-AZ (Database.Endpoint.Address:3306)",
            format!("MariaDB on 127.0.0.1:{}", db.port()),
        );
        generate_secrets(&compose_text, &work, &mut diffs)?;
        let nginx_svc = compose::service(&compose_text, "nginx")?;
        let app_svc = compose::service(&compose_text, "app")?;
        let uploads_host = app_svc
            .volumes
            .first()
            .map(|(h, _)| work.host(h))
            .ok_or_else(|| anyhow!("the compose app service mounts no uploads directory"))?;
        std::fs::create_dir_all(&uploads_host)?;
        diffs.add(
            "shared uploads (EFS, mounted with TLS at /srv/bookstore/uploads)",
            "EFS access point",
            format!(
                "{} (one directory for every instance)",
                uploads_host.display()
            ),
        );
        let nginx_mounts = nginx_svc
            .volumes
            .iter()
            .map(|(h, c)| (c.clone(), work.host(h)))
            .collect();
        let launch = Launch {
            exe: opts.exe.clone(),
            compose: compose_text.clone(),
            site,
            stack_env,
            boot,
            db_port: db.port(),
            work: work.path().to_path_buf(),
            uploads_host,
            nginx_mounts,
        };

        // The database as the first instance would find it: schema, admin, demo books.
        let probe = launch.env("i-rehearsal-seed", 0, &mut diffs)?;
        let (_, database) = provision_database(&db, &probe)?;
        say(
            opts.verbose,
            format!("seeding {} demo books", opts.seed_books),
        );
        probe.seed(&opts.exe, work.path(), opts.seed_books)?;
        diffs.add(
            "BOOKSTORE_INSTANCE_ID",
            "the EC2 instance ID (IMDSv2), via runtime.env",
            "i-rehearsal-N",
        );
        diffs.add(
            "instance containers",
            "app + nginx containers on a compose network",
            "`bookstore serve` and Debian nginx as child processes",
        );
        diffs.add(
            "operating system",
            format!(
                "the AMI's own packages, from its archive (user-data.yaml `packages:` {})",
                compose::cloud_config_packages(user_data)?.join(", ")
            ),
            "this machine's, no Docker (the packages are not installed)",
        );

        let tls = nginx::tls_files(&work.path().join("tls"), &opts.spec.domain.name)?;
        // The router, then the client-facing load balancer; each binds its own ports, and a
        // port taken by someone else in the meantime is replaced by another.
        let front_with = |http_port, https_port, router_port| Front {
            tls: tls.clone(),
            http_port,
            https_port,
            router_port,
            targets_log: work.path().join("router/logs/targets.log"),
            verbose: opts.verbose,
        };
        let (router_port, router) = with_free_port(|p| {
            let conf = front_with(0, 0, p).router_conf(&[], 0);
            Ok((
                p,
                Nginx::start("router", &work.path().join("router"), &conf, "1", p)?,
            ))
        })?;
        let (http_port, https_port, alb) = with_free_port(|http| {
            with_free_port(|https| {
                let conf = front_with(http, https, router_port).alb_conf();
                let alb = Nginx::start(
                    "load balancer",
                    &work.path().join("alb"),
                    &conf,
                    "auto",
                    https,
                )?;
                Ok((http, https, alb))
            })
        })?;
        let front = front_with(http_port, https_port, router_port);
        diffs.add(
            "load balancer",
            "ALB: 80 -> 301 to 443, HTTPS with ACM certificate",
            format!(
                "nginx 127.0.0.1:{http_port} -> 301 to 127.0.0.1:{https_port}, self-signed certificate, \
                 then a router nginx (127.0.0.1:{router_port}) holding the target list"
            ),
        );
        let ts = opts.time_scale;
        let interval = ts
            .real_secs(health.interval_on_aws as f64)
            .min(opts.health_interval);
        diffs.add(
            "target group health check",
            format!(
                "{} every {} s, healthy after {}, unhealthy after {}",
                health.path, health.interval_on_aws, health.healthy, health.unhealthy
            ),
            format!(
                "{} every {:?} (real) by the rehearsal, same thresholds; all unhealthy -> route to all (fail open, as the ALB does)",
                health.path, interval
            ),
        );
        diffs.add(
            "deregistration delay",
            format!(
                "{} s (ends early when the target has no in-flight request)",
                health.deregistration_delay
            ),
            format!(
                "{}, always waited in full, then SIGTERM (the shop drains its in-flight requests)",
                ts.describe(health.deregistration_delay as f64)
            ),
        );
        scaler::add_differences(&mut diffs, &scaling, &meter, opts);

        let clock = PlatformClock::start(ts);
        let log = DecisionLog::create(
            &work.path().join("decisions.jsonl"),
            Autoscaler::TargetTracking,
            clock,
        )?;
        let initial = match opts.instances {
            0 => scaling.desired,
            n => n as u32,
        };
        let board = StatusBoard::new(Status {
            objective: "objective2".into(),
            autoscaler: Autoscaler::TargetTracking,
            time_scale: ts.factor(),
            min: scaling.group.min,
            max: scaling.group.max,
            desired: initial,
            instances: Vec::new(),
        });
        let status = StatusServer::start(opts.status_port, log.clone(), board.clone())?;
        let shared = Arc::new(Shared {
            fleet: Mutex::new(Fleet {
                instances: BTreeMap::new(),
                pending: BTreeMap::new(),
                next_seq: 1,
                router: Some(router),
                routed: Vec::new(),
                generation: 0,
                desired: 0,
            }),
            launch,
            front,
            deregistration: ts.real_secs(health.deregistration_delay as f64),
            health,
            scaling,
            meter,
            clock,
            log,
            board,
            stop: AtomicBool::new(false),
            workers: Mutex::new(Vec::new()),
            verbose: opts.verbose,
            replaced: Default::default(),
        });
        let mut r = Rehearsal {
            shared,
            poller: None,
            scaler: None,
            status: Some(status),
            alb: Some(alb),
            http_port,
            https_port,
            db: Mutex::new(db),
            database,
            diffs,
            mode: opts.scaling,
            work,
        };
        r.poller = Some(scaler::spawn_health_checks(r.shared.clone(), interval));
        let rule = if opts.instances == 0 {
            format!(
                "0 -> {initial}: the stack creates {} with DesiredCapacity {initial}",
                r.shared.scaling.group_id
            )
        } else {
            format!(
                "0 -> {initial}: started with {initial} instance(s) (the rehearsal's --instances; rendered DesiredCapacity {})",
                r.shared.scaling.desired
            )
        };
        let ids = r.shared.set_desired(initial, rule, By::Autoscaler)?;
        for id in &ids {
            r.wait_in_service(id, Duration::from_secs(120))?;
        }
        if opts.scaling == Scaling::Autoscaler {
            r.scaler = Some(scaler::spawn_autoscaler(r.shared.clone())?);
        }
        Ok(r)
    }
}
