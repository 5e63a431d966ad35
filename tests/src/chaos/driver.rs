//! The operation phase of a chaos leg: one worker per cluster taking operation tickets
//! (a global count, so faults trigger at operation numbers) and the fault schedule
//! injected at its trigger points. While a fault is in progress, workers run at most up
//! to the next fault's trigger point, so faults never pile up at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;
use tokio::sync::watch;

use super::fleet::{Fleet, READY};
use super::model::{ClusterModel, Op, OpStream};
use super::rest::{Reply, Rest};
use super::{BrokerKind, Params, faults, report, stream_rng};

/// Live counters shared by the workers (for progress lines).
#[derive(Default)]
struct Progress {
    done: AtomicU64,
    answered: AtomicU64,
    unknown: AtomicU64,
    not_sent: AtomicU64,
}

/// The operation phase: the workers and the fault schedule, to the end of both.
pub async fn operate(
    params: &Params,
    leg: BrokerKind,
    fleet: &mut Fleet,
    rep: &mut report::LegReport,
) -> Vec<ClusterModel> {
    let t0 = Instant::now();
    let deadline = t0 + params.op_deadline();
    let schedule = faults::schedule(
        &mut stream_rng(params.seed, leg, 0),
        params.ops,
        params.faults,
        params.agents,
        Duration::from_secs(params.keep_alive_secs),
    );
    rep.schedule(&schedule);
    let tickets = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(Progress::default());
    let first = schedule.first().map_or(params.ops, |f| f.at_op);
    let (gate, gate_rx) = watch::channel(first);
    let workers: Vec<_> = fleet
        .clusters
        .iter()
        .enumerate()
        .map(|(i, cluster)| {
            let w = Worker {
                cluster: cluster.clone(),
                rest: fleet.rest.clone(),
                stream: OpStream::new(stream_rng(params.seed, leg, 1 + i as u64), params.names),
                pace_rng: stream_rng(params.seed, leg, 1_000_000 + i as u64),
                pace: params.pace(),
                tickets: tickets.clone(),
                total: params.ops,
                gate: gate_rx.clone(),
                progress: progress.clone(),
                deadline,
            };
            tokio::spawn(w.run())
        })
        .collect();
    let mut last_line = Instant::now();
    let mut line = |done: usize, force: bool| {
        if force || last_line.elapsed() >= Duration::from_secs(2) {
            last_line = Instant::now();
            eprintln!(
                "[chaos {} {:6.1}s] ops {}/{} (answered {}, unknown {}, refused {}); faults {done}/{}",
                leg.name(),
                t0.elapsed().as_secs_f64(),
                progress.done.load(Ordering::Relaxed),
                params.ops,
                progress.answered.load(Ordering::Relaxed),
                progress.unknown.load(Ordering::Relaxed),
                progress.not_sent.load(Ordering::Relaxed),
                schedule.len()
            );
        }
    };
    for (k, fault) in schedule.iter().enumerate() {
        while tickets.load(Ordering::SeqCst) <= fault.at_op
            && !workers.iter().all(|w| w.is_finished())
            && Instant::now() < deadline
        {
            line(k, false);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let next = schedule.get(k + 1).map_or(params.ops, |f| f.at_op);
        let _ = gate.send(next);
        if let Err(e) = fleet.restart_crashed().await {
            rep.fail("restart", e);
        }
        eprintln!(
            "[chaos {} {:6.1}s] fault {}/{}: {fault}",
            leg.name(),
            t0.elapsed().as_secs_f64(),
            k + 1,
            schedule.len()
        );
        match faults::inject(fleet, fault, t0).await {
            Ok(done) => rep.fault_done(done),
            Err(e) => rep.fail("fault", format!("{fault}: {e}")),
        }
        line(k + 1, true);
    }
    let _ = gate.send(params.ops);
    let mut models = Vec::new();
    for w in workers {
        while !w.is_finished() && Instant::now() < deadline {
            line(schedule.len(), false);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !w.is_finished() {
            w.abort();
            rep.fail(
                "deadline",
                format!(
                    "the operation phase exceeded {:?}; a worker was stopped",
                    params.op_deadline()
                ),
            );
        }
        match w.await {
            Ok(m) => models.push(m),
            Err(e) => rep.fail("worker", e.to_string()),
        }
    }
    line(schedule.len(), true);
    models
}

/// One cluster's operation driver.
struct Worker {
    cluster: String,
    rest: Rest,
    stream: OpStream,
    pace_rng: Xoshiro256PlusPlus,
    pace: Duration,
    tickets: Arc<AtomicUsize>,
    total: usize,
    gate: watch::Receiver<usize>,
    progress: Arc<Progress>,
    deadline: Instant,
}

impl Worker {
    /// Takes operation tickets until all are taken; returns the cluster's model.
    async fn run(mut self) -> ClusterModel {
        let mut model = ClusterModel::new(&self.cluster);
        loop {
            let ticket = self.tickets.fetch_add(1, Ordering::SeqCst);
            if ticket >= self.total || Instant::now() >= self.deadline {
                return model;
            }
            // Wait while a fault is in progress and this ticket is past the next one's
            // trigger point.
            while *self.gate.borrow_and_update() <= ticket {
                let left = self.deadline.saturating_duration_since(Instant::now());
                if !matches!(
                    tokio::time::timeout(left, self.gate.changed()).await,
                    Ok(Ok(()))
                ) {
                    return model;
                }
            }
            let (name, op) = self.stream.next(&model, ticket);
            let path = format!("/api/v1/clusters/{}/works/{name}", self.cluster);
            let reply = match &op {
                Op::Put(spec) => {
                    let body = spec.work_body(&self.cluster, &name);
                    self.rest.call_async("PUT", &path, Some(body)).await
                }
                Op::Delete => self.rest.call_async("DELETE", &path, None).await,
            };
            model.record(ticket, &name, &op, &reply);
            let p = &self.progress;
            p.done.fetch_add(1, Ordering::Relaxed);
            match reply {
                Reply::Answer { .. } => p.answered.fetch_add(1, Ordering::Relaxed),
                Reply::Unknown(_) => p.unknown.fetch_add(1, Ordering::Relaxed),
                Reply::NotSent(_) => {
                    // The hub is down: wait for it rather than burn the tickets.
                    let _ = self.rest.wait_healthy(READY).await;
                    p.not_sent.fetch_add(1, Ordering::Relaxed)
                }
            };
            let pause = self.pace.mul_f64(self.pace_rng.random_range(0.0..2.0));
            tokio::time::sleep(pause).await;
        }
    }
}
