//! The kubelet's part: one thread per pod starts its container (`bookstore serve` with the pod's
//! environment, in the pod's CPU group), runs the startup, readiness and liveness probes at
//! their periods (platform time), restarts the container when liveness fails or it exits, and
//! terminates the pod when it is deleted: out of the endpoints first, then the preStop sleep,
//! SIGTERM, and SIGKILL at the end of `terminationGracePeriodSeconds`.

use super::workload::{Probe, Workload};
use super::{lock, PodState, Shared};
use crate::rehearse::autoscale::{Entry, InstanceEvent, InstanceEventKind, InstanceState};
use crate::rehearse::supervise::{free_port, http_get, random_hex, Supervised};
use crate::rehearse::{say, Differences};
use anyhow::{anyhow, Context, Result};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A probe's running count.
#[derive(Debug, Default)]
struct ProbeState {
    next: Option<Instant>,
    ok: u32,
    failed: u32,
}

impl ProbeState {
    /// Runs `p` when due; `Some(passed threshold)` when the state crossed a threshold.
    fn run(&mut self, p: &Probe, port: u16, s: &Shared, started: Instant) -> Option<bool> {
        let now = Instant::now();
        let next = *self
            .next
            .get_or_insert(started + s.clock.scale().real_secs(p.initial_delay));
        if now < next {
            return None;
        }
        self.next = Some(now + s.clock.scale().real_secs(p.period));
        let ok = matches!(
            http_get(port, &p.path, Duration::from_secs_f64(p.timeout)),
            Ok((200..=399, _))
        );
        if ok {
            self.ok += 1;
            self.failed = 0;
            (self.ok == p.success).then_some(true)
        } else {
            self.failed += 1;
            self.ok = 0;
            (self.failed == p.failure).then_some(false)
        }
    }
}

impl Shared {
    pub(super) fn event(&self, pod: &str, event: InstanceEventKind) {
        self.record(Entry::Instance(InstanceEvent {
            instance: pod.to_string(),
            event,
        }));
    }

    /// Starts pod `seq` (already listed as Pending) on its own kubelet thread.
    pub(super) fn spawn_pod(self: &Arc<Self>, seq: u32) {
        let s = self.clone();
        let t = std::thread::Builder::new()
            .name(format!("kubelet-{seq}"))
            .spawn(move || {
                if let Err(e) = s.run_pod(seq) {
                    // A pod that cannot run is gone; the ReplicaSet creates a replacement.
                    say(true, format!("{e:#}"));
                    let gone = lock(&s.cluster).pods.remove(&seq);
                    if let Some(p) = gone {
                        s.event(&p.name, InstanceEventKind::Terminated);
                        s.board.remove_instance(&p.name);
                        if let Err(e) = s.reconcile_endpoints() {
                            say(true, format!("endpoints update failed: {e:#}"));
                        }
                    }
                }
            });
        match t {
            Ok(t) => {
                let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
                threads.retain(|t| !t.is_finished());
                threads.push(t);
            }
            Err(e) => say(true, format!("cannot start a kubelet thread: {e}")),
        }
    }

    fn start_container(
        &self,
        name: &str,
        ports: &BTreeMap<u16, u16>,
        grace: Duration,
    ) -> Result<Supervised> {
        let dir = self.template.work.join("pods").join(name);
        std::fs::create_dir_all(dir.join("emptydir"))?;
        let env = self
            .template
            .env(&self.workload, name, ports, &mut Differences::default())?;
        let cpu = lock(&self.cluster)
            .pods
            .values()
            .find(|p| p.name == name)
            .and_then(|p| p.cpu.clone())
            .ok_or_else(|| anyhow!("{name} is gone"))?;
        let mut cmd = env.command(&self.template.exe, &dir, &[]);
        cpu.prepare(&mut cmd);
        let app = Supervised::spawn(
            &format!("pod {name}"),
            cmd,
            &dir.join("shop.log"),
            "TERM",
            grace,
        )?;
        cpu.track(app.pid())?;
        Ok(app)
    }

    fn set_pod(&self, seq: u32, f: impl FnOnce(&mut PodState)) {
        if let Some(p) = lock(&self.cluster).pods.get_mut(&seq) {
            f(p);
        }
    }

    /// The kubelet for pod `seq`, until it is deleted (or the rehearsal stops).
    fn run_pod(self: &Arc<Self>, seq: u32) -> Result<()> {
        let (name, ports) = {
            let c = lock(&self.cluster);
            let p = c.pods.get(&seq).ok_or_else(|| anyhow!("no pod {seq}"))?;
            (p.name.clone(), p.ports.clone())
        };
        let w = &self.workload;
        let ts = self.clock.scale();
        let prestop = ts.real_secs(w.prestop_sleep);
        // SIGTERM comes after the preStop hook, within the same grace period.
        let after_term = Duration::from_secs_f64(w.grace).saturating_sub(prestop);
        let cpu = Arc::new(self.meter.group(&name)?);
        self.set_pod(seq, |p| p.cpu = Some(cpu.clone()));
        self.event(&name, InstanceEventKind::Launched);
        self.board.set_instance(&name, InstanceState::Pending);
        let port_of = |container: u16| ports.get(&container).copied().unwrap_or(0);
        let mut app = self
            .start_container(&name, &ports, after_term)
            .with_context(|| format!("pod {name} cannot start"))?;
        let mut started = Instant::now();
        self.set_pod(seq, |p| {
            p.started = Some(started);
            p.pid = app.pid();
        });
        let (mut startup, mut readiness, mut liveness) = (
            ProbeState::default(),
            ProbeState::default(),
            ProbeState::default(),
        );
        let mut startup_done = w.startup.is_none();
        let mut ready = false;
        loop {
            let deleting = lock(&self.cluster)
                .pods
                .get(&seq)
                .is_none_or(|p| p.deleting);
            if deleting || self.stopping() {
                break;
            }
            let mut restart = None;
            if !app.is_running() {
                restart = Some("the container exited".to_string());
            } else if !startup_done {
                let p = w.startup.as_ref().expect("a startup probe");
                match startup.run(p, port_of(p.port), self, started) {
                    Some(true) => {
                        startup_done = true;
                        self.set_pod(seq, |p| p.startup_done = true);
                    }
                    Some(false) => {
                        restart = Some(format!(
                            "startup probe {} failed {} times",
                            p.path, p.failure
                        ))
                    }
                    None => {}
                }
            } else {
                if let Some(p) = &w.readiness {
                    if let Some(now_ready) = readiness.run(p, port_of(p.port), self, started) {
                        if now_ready != ready {
                            ready = now_ready;
                            self.set_ready(seq, ready);
                        }
                    }
                } else if !ready {
                    ready = true;
                    self.set_ready(seq, true);
                }
                if let Some(p) = &w.liveness {
                    if liveness.run(p, port_of(p.port), self, started) == Some(false) {
                        restart = Some(format!(
                            "liveness probe {} failed {} times",
                            p.path, p.failure
                        ));
                    }
                }
            }
            if let Some(why) = restart {
                say(
                    true,
                    format!("kubelet: {name}: {why}; restarting the container"),
                );
                if ready {
                    ready = false;
                    self.set_ready(seq, false);
                }
                app.stop();
                // CrashLoopBackOff: 10 s, doubling, at most 300 s (platform time).
                let restarts = lock(&self.cluster).pods.get(&seq).map_or(0, |p| p.restarts);
                let backoff = ts.real_secs((10.0 * 2f64.powi(restarts.min(5) as i32)).min(300.0));
                let until = Instant::now() + backoff;
                while Instant::now() < until && !self.stopping() {
                    std::thread::sleep(Duration::from_millis(25));
                }
                app = self
                    .start_container(&name, &ports, after_term)
                    .with_context(|| format!("pod {name} cannot restart"))?;
                started = Instant::now();
                startup_done = w.startup.is_none();
                (startup, readiness, liveness) = (
                    ProbeState::default(),
                    ProbeState::default(),
                    ProbeState::default(),
                );
                self.set_pod(seq, |p| {
                    p.restarts += 1;
                    p.startup_done = startup_done;
                    p.pid = app.pid();
                });
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        // Termination: the endpoints drop the pod first (as the EndpointSlice controller does
        // when the deletion timestamp is set), then the preStop hook, then SIGTERM.
        self.event(&name, InstanceEventKind::Draining);
        self.set_pod(seq, |p| {
            p.deleting = true;
            p.unrouted = true;
        });
        self.board.set_instance(&name, InstanceState::Draining);
        if let Err(e) = self.reconcile_endpoints() {
            say(true, format!("endpoints update failed: {e:#}"));
        }
        std::thread::sleep(prestop);
        let (status, in_time) = app.stop();
        say(
            self.verbose,
            format!(
                "{name}: terminated ({}{})",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "killed".into()),
                if in_time {
                    ""
                } else {
                    ", SIGKILL at the end of the grace period"
                }
            ),
        );
        // Logged before the pod leaves the list, so that whoever sees it gone finds why.
        self.event(&name, InstanceEventKind::Terminated);
        self.board.remove_instance(&name);
        let state = lock(&self.cluster).pods.remove(&seq);
        drop(state);
        drop(cpu);
        Ok(())
    }

    fn set_ready(&self, seq: u32, ready: bool) {
        self.set_pod(seq, |p| {
            p.ready = ready;
            p.transition = Instant::now();
        });
        if let Err(e) = self.reconcile_endpoints() {
            say(true, format!("endpoints update failed: {e:#}"));
        }
    }
}

/// A new pod's entry: Pending, with a loopback port per container port.
pub(super) fn pending(name: String, w: &Workload) -> Result<PodState> {
    let mut ports = BTreeMap::new();
    for p in w.ports.values() {
        ports.insert(*p, free_port()?);
    }
    let serving_port = ports[&w.service_port];
    Ok(PodState {
        name,
        ports,
        serving_port,
        started: None,
        startup_done: false,
        ready: false,
        transition: Instant::now(),
        deleting: false,
        unrouted: false,
        restarts: 0,
        pid: 0,
        cpu: None,
        usage: Default::default(),
    })
}

/// `<deployment>-<template hash>-<5 chars>`, in the alphabet Kubernetes uses for both.
pub(super) fn pod_name(deployment: &str, template_hash: &str) -> Result<String> {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let hex = random_hex(5)?;
    let suffix: String = hex
        .as_bytes()
        .chunks(2)
        .take(5)
        .map(|c| {
            let b = u8::from_str_radix(std::str::from_utf8(c).unwrap_or("0"), 16).unwrap_or(0);
            ALPHABET[b as usize % ALPHABET.len()] as char
        })
        .collect();
    Ok(format!("{deployment}-{template_hash}-{suffix}"))
}

/// The pod-template hash: 10 characters from the rendered Deployment's text.
pub(super) fn template_hash(text: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h: u64 = 0xcbf29ce484222325;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100000001b3);
    }
    (0..10)
        .map(|i| ALPHABET[((h >> (i * 6)) % ALPHABET.len() as u64) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_look_like_a_replicasets() {
        let n = pod_name("bookstore", &template_hash("x")).unwrap();
        assert!(
            n.starts_with("bookstore-") && n.len() == "bookstore-".len() + 16,
            "{n}"
        );
    }
}
