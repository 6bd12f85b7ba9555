//! The auto-scaling group's actions, shared by the autoscaler, the manual steps and the API:
//! setting the desired capacity, launching an instance and registering it, deregistering,
//! draining and terminating one; each recorded in the decision log and the status.

use super::{lock, By, Instance, Shared, TargetState};
use crate::rehearse::autoscale::{
    Entry, InstanceEvent, InstanceEventKind, InstanceState, Manual, Scale,
};
use crate::rehearse::say;
use crate::rehearse::supervise::http_get;
use anyhow::{anyhow, bail, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Shared {
    /// Appends to the decision log; a failure to write is reported, not fatal.
    pub(super) fn record(&self, e: Entry) {
        if let Err(err) = self.log.record(e) {
            say(true, format!("cannot write the decision log: {err:#}"));
        }
    }

    pub(super) fn event(&self, id: &str, event: InstanceEventKind) {
        self.record(Entry::Instance(InstanceEvent {
            instance: id.to_string(),
            event,
        }));
    }

    /// Waits until the router answers with `generation` and its workers of older generations
    /// have exited (until then an old worker may still accept a connection and answer with the
    /// old target list).
    pub(super) fn wait_generation(&self, generation: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok((200, body)) = http_get(
                self.front.router_port,
                "/__rehearsal/generation",
                Duration::from_secs(1),
            ) {
                let settled = || {
                    let f = lock(&self.fleet);
                    f.router.as_ref().is_some_and(|r| r.workers_settled(1))
                };
                if body.trim().parse::<u64>().is_ok_and(|g| g >= generation) && settled() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the load balancer did not reload within 10 s")
    }

    /// Sets the group's desired capacity and starts launching or terminating instances to
    /// match (in worker threads); logs the change (`scale`, or `manual` when a person asked)
    /// with the instances it adds or removes, whose ids it returns.
    pub(super) fn set_desired(
        self: &Arc<Self>,
        desired: u32,
        rule: String,
        by: By,
    ) -> Result<Vec<String>> {
        let (current, added, removed) = {
            let mut f = lock(&self.fleet);
            let current = f.desired;
            f.desired = desired;
            let live = f.live();
            let mut added = Vec::new();
            for _ in live..desired {
                let seq = f.next_seq;
                f.next_seq += 1;
                let id = format!("i-rehearsal-{seq}");
                f.pending.insert(seq, (id.clone(), Instant::now()));
                added.push((seq, id));
            }
            // Scale-in: the oldest instances go first.
            let mut removed = Vec::new();
            let excess = live.saturating_sub(desired) as usize;
            for i in f
                .instances
                .values_mut()
                .filter(|i| i.state != TargetState::Draining)
                .take(excess)
            {
                i.state = TargetState::Draining;
                removed.push(i.id.clone());
            }
            (current, added, removed)
        };
        let ids: Vec<String> = added
            .iter()
            .map(|(_, id)| id.clone())
            .chain(removed.iter().cloned())
            .collect();
        self.board.update(|s| s.desired = desired);
        match by {
            By::Autoscaler => self.record(Entry::Scale(Scale {
                current,
                desired,
                rule: rule.clone(),
                instances_added: added.iter().map(|(_, id)| id.clone()).collect(),
                instances_removed: removed.clone(),
            })),
            By::Person => self.record(Entry::Manual(Manual {
                current,
                desired,
                rule: if ids.is_empty() {
                    rule.clone()
                } else {
                    format!("{rule}: {}", ids.join(", "))
                },
            })),
        }
        if current != desired || !ids.is_empty() {
            say(
                self.verbose,
                match by {
                    By::Autoscaler => format!("auto-scaling group: {rule}"),
                    By::Person => format!("auto-scaling group: {current} -> {desired}: {rule}"),
                },
            );
        }
        let mut workers = self.workers.lock().unwrap_or_else(|e| e.into_inner());
        for (seq, id) in added {
            let s = self.clone();
            workers.push(std::thread::spawn(move || {
                if let Err(e) = s.launch_instance(seq, &id) {
                    say(true, format!("{id}: launch failed: {e:#}"));
                }
            }));
        }
        for id in removed {
            let s = self.clone();
            workers.push(std::thread::spawn(move || {
                if let Err(e) = s.drain_instance(&id) {
                    say(true, format!("{id}: termination failed: {e:#}"));
                }
            }));
        }
        workers.retain(|w| !w.is_finished());
        Ok(ids)
    }

    /// Starts the instance reserved as `seq`/`id` and registers it with the load balancer.
    pub(super) fn launch_instance(&self, seq: u32, id: &str) -> Result<()> {
        self.event(id, InstanceEventKind::Launched);
        self.board.set_instance(id, InstanceState::Pending);
        let started = self.launch.start_instance(id, &self.meter);
        let mut f = lock(&self.fleet);
        f.pending.remove(&seq);
        match started {
            Ok(inst) if !self.stop.load(Ordering::SeqCst) => {
                say(
                    self.verbose,
                    format!(
                        "{id}: launched (app 127.0.0.1:{}, nginx 127.0.0.1:{}); InService after {:.1} s; registered",
                        inst.app_port,
                        inst.nginx_port,
                        inst.launched_at.elapsed().as_secs_f64()
                    ),
                );
                f.instances.insert(seq, inst);
                Ok(())
            }
            Ok(inst) => {
                drop(f);
                drop(inst);
                self.event(id, InstanceEventKind::Terminated);
                Ok(())
            }
            Err(e) => {
                drop(f);
                self.event(id, InstanceEventKind::Terminated);
                self.board.remove_instance(id);
                Err(e)
            }
        }
    }

    /// Deregisters instance `id` (already marked draining), waits the deregistration delay,
    /// stops it and removes it. Returns whether the shop finished its drain cleanly.
    pub(super) fn drain_instance(&self, id: &str) -> Result<bool> {
        let generation = {
            let mut f = lock(&self.fleet);
            self.front.reconcile(&mut f)?
        };
        self.event(id, InstanceEventKind::Draining);
        self.board.set_instance(id, InstanceState::Draining);
        say(self.verbose, format!("{id}: deregistered; draining"));
        if let Some(g) = generation {
            self.wait_generation(g)?;
        }
        let until = Instant::now() + self.deregistration;
        while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
        let inst = {
            let mut f = lock(&self.fleet);
            let seq = f
                .instances
                .iter()
                .find(|(_, i)| i.id == id)
                .map(|(s, _)| *s)
                .ok_or_else(|| anyhow!("{id} is gone"))?;
            f.instances.remove(&seq).expect("instance present")
        };
        let Instance {
            mut app,
            mut nginx,
            cpu,
            ..
        } = inst;
        let (status, in_time) = app.stop();
        nginx.stop();
        drop(cpu);
        say(
            self.verbose,
            format!(
                "{id}: terminated ({})",
                status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "killed".into())
            ),
        );
        self.event(id, InstanceEventKind::Terminated);
        self.board.remove_instance(id);
        Ok(in_time && status.is_some_and(|s| s.success()))
    }
}
