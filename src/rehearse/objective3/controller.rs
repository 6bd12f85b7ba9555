//! The control plane's part: the Deployment's ReplicaSet (create or delete pods to match
//! `spec.replicas`), the EndpointSlice (the Ready pods, pushed to the endpoints nginx) and the
//! HorizontalPodAutoscaler controller (one sync per period of platform time: each pod's CPU as
//! metrics-server reports it, `rehearse::autoscale::hpa`, then `spec.replicas`).

use super::{lock, pods, By, Shared};
use crate::rehearse::autoscale::hpa::{ControllerFlags, CpuSample, Hpa, Pod, PodPhase};
use crate::rehearse::autoscale::{Entry, InstanceEventKind, InstanceState, Manual, Scale};
use crate::rehearse::say;
use crate::rehearse::supervise::http_get;
use anyhow::{bail, Result};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

impl Shared {
    /// Sets `spec.replicas` and creates or deletes pods to match (the ReplicaSet deletes
    /// not-ready pods first, then the most recently created); logs the change. Returns the
    /// names of the pods created or deleted.
    pub(super) fn set_replicas(
        self: &Arc<Self>,
        replicas: u32,
        rule: String,
        by: By,
    ) -> Vec<String> {
        let (current, added, removed) = {
            let mut c = lock(&self.cluster);
            let current = c.replicas;
            c.replicas = replicas;
            let live: Vec<u32> = c
                .pods
                .iter()
                .filter(|(_, p)| !p.deleting)
                .map(|(s, _)| *s)
                .collect();
            let mut added = Vec::new();
            for _ in live.len()..replicas as usize {
                let seq = c.next_seq;
                c.next_seq += 1;
                let name = match pods::pod_name(&self.workload.name, &self.template_hash()) {
                    Ok(n) => n,
                    Err(e) => {
                        say(true, format!("cannot name a pod: {e:#}"));
                        continue;
                    }
                };
                match pods::pending(name.clone(), &self.workload) {
                    Ok(p) => {
                        c.pods.insert(seq, p);
                        added.push((seq, name));
                    }
                    Err(e) => say(true, format!("cannot create a pod: {e:#}")),
                }
            }
            let mut order = live.clone();
            // Not ready first, then the newest.
            order.sort_by_key(|s| (c.pods[s].ready, std::cmp::Reverse(*s)));
            let excess = live.len().saturating_sub(replicas as usize);
            let mut removed = Vec::new();
            for s in order.into_iter().take(excess) {
                let p = c.pods.get_mut(&s).expect("listed");
                p.deleting = true;
                removed.push(p.name.clone());
            }
            (current, added, removed)
        };
        let names: Vec<String> = added
            .iter()
            .map(|(_, n)| n.clone())
            .chain(removed.iter().cloned())
            .collect();
        self.board.update(|b| b.desired = replicas);
        match by {
            By::Hpa => self.record(Entry::Scale(Scale {
                current,
                desired: replicas,
                rule: rule.clone(),
                instances_added: added.iter().map(|(_, n)| n.clone()).collect(),
                instances_removed: removed.clone(),
            })),
            By::Person => self.record(Entry::Manual(Manual {
                current,
                desired: replicas,
                rule: if names.is_empty() {
                    rule.clone()
                } else {
                    format!("{rule}: {}", names.join(", "))
                },
            })),
        }
        if current != replicas {
            say(
                self.verbose,
                format!(
                    "deployment {}: replicas {current} -> {replicas}: {rule}",
                    self.workload.name
                ),
            );
        }
        for (seq, _) in added {
            self.spawn_pod(seq);
        }
        names
    }

    fn template_hash(&self) -> String {
        pods::template_hash(&format!("{:?}", self.workload))
    }

    /// Puts the Ready pods that are not being deleted into the endpoints nginx (when that
    /// changed) and waits until it serves them; logs pods entering and leaving.
    pub(super) fn reconcile_endpoints(&self) -> Result<()> {
        let (generation, events) = {
            let mut c = lock(&self.cluster);
            let routed: Vec<u16> = c
                .pods
                .values()
                .filter(|p| p.ready && !p.unrouted)
                .map(|p| p.serving_port)
                .collect();
            if routed == c.routed {
                return Ok(());
            }
            let mut events = Vec::new();
            for p in c.pods.values() {
                let (was, is) = (
                    c.routed.contains(&p.serving_port),
                    routed.contains(&p.serving_port),
                );
                if was != is {
                    events.push((p.name.clone(), is));
                }
            }
            c.generation += 1;
            let conf = self.router.endpoints_conf(&routed, c.generation);
            match c.endpoints.as_ref() {
                Some(ep) => ep.reload(&conf)?,
                None => return Ok(()),
            }
            c.routed = routed;
            (c.generation, events)
        };
        self.wait_generation(generation)?;
        for (name, routed) in events {
            say(
                self.verbose,
                format!(
                    "endpoints: {name} {}",
                    if routed { "added (Ready)" } else { "removed" }
                ),
            );
            self.event(
                &name,
                if routed {
                    InstanceEventKind::InService
                } else {
                    InstanceEventKind::OutOfService
                },
            );
            let deleting = lock(&self.cluster)
                .pods
                .values()
                .any(|p| p.name == name && p.deleting);
            if !deleting {
                self.board.set_instance(
                    &name,
                    if routed {
                        InstanceState::InService
                    } else {
                        InstanceState::NotReady
                    },
                );
            }
        }
        Ok(())
    }

    /// Waits until the endpoints nginx answers with `generation` and its older workers exited.
    fn wait_generation(&self, generation: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok((200, body)) = http_get(
                self.router.endpoints_port,
                "/__rehearsal/generation",
                Duration::from_secs(1),
            ) {
                let settled = || {
                    lock(&self.cluster)
                        .endpoints
                        .as_ref()
                        .is_some_and(|e| e.workers_settled(1))
                };
                if body.trim().parse::<u64>().is_ok_and(|g| g >= generation) && settled() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the endpoints nginx did not reload within 10 s")
    }

    /// The pods as the HPA controller sees them, with a metrics-server CPU sample per running
    /// pod (its usage over the last sync, or over several when the clock is scaled:
    /// [`super::cpu_window`]).
    fn observe(&self, now: Instant) -> Vec<Pod> {
        let mut c = lock(&self.cluster);
        let request = self.workload.cpu_request;
        c.pods
            .values_mut()
            .map(|p| {
                let usage = p.cpu.as_ref().and_then(|g| g.usage().ok());
                let rate = usage.and_then(|u| p.usage.record(u, now));
                let cpu = match (rate, p.started) {
                    (Some(r), Some(_)) => Some(CpuSample {
                        millicores: r.millicores,
                        timestamp: self.clock.at(now),
                        window: self.clock.at(now) - self.clock.at(r.since),
                    }),
                    _ => None,
                };
                Pod {
                    name: p.name.clone(),
                    phase: if p.started.is_some() {
                        PodPhase::Running
                    } else {
                        PodPhase::Pending
                    },
                    deleting: p.deleting,
                    start_time: p.started.map(|t| self.clock.at(t)),
                    ready: p.started.map(|_| (p.ready, self.clock.at(p.transition))),
                    cpu,
                    request_millicores: request,
                }
            })
            .collect()
    }
}

/// The controllers' loop, once per `--horizontal-pod-autoscaler-sync-period` (15 s of platform
/// time): the HPA's sync (when one runs), then the ReplicaSet's replacement of pods that are gone.
pub(super) fn spawn(s: Arc<Shared>) -> Result<JoinHandle<()>> {
    let flags = ControllerFlags::default();
    let period = s.clock.scale().real_secs(flags.sync_period_secs);
    let mut hpa = s.hpa.clone().map(|spec| Hpa::new(spec, flags));
    Ok(std::thread::Builder::new()
        .name("controllers".into())
        .spawn(move || {
            // metrics-server's first window starts now.
            s.observe(Instant::now());
            let mut next = Instant::now() + period;
            let mut last_said = String::new();
            loop {
                while Instant::now() < next {
                    if s.stopping() {
                        return;
                    }
                    std::thread::sleep(
                        Duration::from_millis(20)
                            .min(next.saturating_duration_since(Instant::now())),
                    );
                }
                next += period;
                let now = Instant::now();
                let pods = s.observe(now);
                let current = lock(&s.cluster).replicas;
                let live = pods.iter().filter(|p| !p.deleting).count() as u32;
                if live < current {
                    s.set_replicas(
                        current,
                        format!("ReplicaSet: {live} pod(s) for {current} replicas: creating replacements"),
                        By::Hpa,
                    );
                }
                let Some(hpa) = hpa.as_mut() else {
                    continue;
                };
                let out = hpa.evaluate(s.clock.at(now), current, &pods);
                for mut ev in out.evaluations {
                    if ev.rule != out.rule {
                        ev.rule = format!("{}; {}", ev.rule, out.rule);
                    }
                    // On the terminal: changes of mind and actions, not every sync.
                    let gist = ev.rule.split(':').next().unwrap_or_default().to_string();
                    if out.desired != current || gist != last_said {
                        say(s.verbose, format!("hpa: {}", ev.rule));
                        last_said = gist;
                    }
                    s.record(Entry::Evaluation(ev));
                }
                if out.desired != current {
                    s.set_replicas(out.desired, out.rule, By::Hpa);
                }
            }
        })?)
}
