//! The end-state check of a chaos leg, polled until everything agrees or the
//! convergence deadline passes.
//!
//! Three comparisons, each with its own problem class:
//! - **hub vs. acknowledged answers** ([`ClusterModel`]): every work acknowledged live is
//!   on the hub at its acknowledged generation with exactly the acknowledged manifests
//!   (`lost` otherwise); every acknowledged delete is gone (`resurrected` when live
//!   again, `stuck` while still deleting). Unknown-outcome requests widen what is
//!   acceptable, never more.
//! - **hub status**: every live work has `Applied=True` and `Available=True` observed
//!   at its generation, and the accepted status is for that generation (`stuck`).
//! - **cluster vs. hub**: the simulated cluster (the snapshot file the agent keeps in
//!   its data dir) holds, for every live work, exactly its ConfigMaps with exactly their
//!   data, owned by that work (`misapplied`), and nothing that no work on the hub owns
//!   (`orphan`).

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use workbus_schemas::work::applied;

use super::fleet::Fleet;
use super::model::{ClusterModel, Expect, Spec};
use super::rest::Reply;
use crate::hubs::condition;

/// Kinds of divergence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// An acknowledged create/update is not on the hub as acknowledged.
    Lost,
    /// An acknowledged delete was undone (or a work nobody created exists).
    Resurrected,
    /// Not converged: status not at the work's generation, or deletion never confirmed.
    Stuck,
    /// The cluster does not hold a live work's objects with exactly their data.
    Misapplied,
    /// An object on a cluster that no work on the hub owns.
    Orphan,
    /// The hub could not be read.
    Unreachable,
}

impl Class {
    /// Report name.
    pub fn name(self) -> &'static str {
        match self {
            Class::Lost => "lost",
            Class::Resurrected => "resurrected",
            Class::Stuck => "stuck",
            Class::Misapplied => "misapplied",
            Class::Orphan => "orphans",
            Class::Unreachable => "unreachable",
        }
    }
}

/// One divergence.
#[derive(Debug, Clone)]
pub struct Problem {
    /// Its class.
    pub class: Class,
    /// `cluster/work` (or `cluster/object key` for orphans).
    pub at: String,
    /// Expected vs. seen.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.class.name(), self.at, self.detail)
    }
}

/// One look at the hub and every cluster.
pub struct Observation {
    /// Per cluster: the hub's works by name (REST objects).
    pub hub: Vec<BTreeMap<String, Value>>,
    /// Per cluster: the simulated cluster's objects by key (`group/resource/ns/name`).
    pub objects: Vec<BTreeMap<String, Value>>,
    /// Per cluster: the agent's durable records by work uid (diagnostics only).
    pub agent: Vec<BTreeMap<String, Value>>,
}

/// Reads the hub (one list per cluster) and every agent's snapshot file.
pub async fn observe(fleet: &Fleet) -> Result<Observation, String> {
    let mut hub = Vec::new();
    let mut objects = Vec::new();
    let mut agent = Vec::new();
    for (i, cluster) in fleet.clusters.iter().enumerate() {
        hub.push(list_works(fleet, cluster).await?);
        objects.push(read_snapshot(&fleet.snapshot(i))?);
        agent.push(read_agent_store(&fleet.agent_works(i)));
    }
    Ok(Observation {
        hub,
        objects,
        agent,
    })
}

/// Every work of `cluster` on the hub, by name (following `continue` tokens).
async fn list_works(fleet: &Fleet, cluster: &str) -> Result<BTreeMap<String, Value>, String> {
    let mut works = BTreeMap::new();
    let mut token = String::new();
    loop {
        let path = format!("/api/v1/works?cluster={cluster}&limit=1000&continue={token}");
        let body = match fleet.rest.call_async("GET", &path, None).await {
            Reply::Answer { code: 200, body } => body,
            other => return Err(format!("GET {path}: {other:?}")),
        };
        let items = body["items"]
            .as_array()
            .ok_or_else(|| format!("GET {path}: no items in {body}"))?;
        for w in items {
            if let Some(name) = w["metadata"]["name"].as_str() {
                works.insert(name.to_string(), w.clone());
            }
        }
        match body["metadata"]["continue"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => return Ok(works),
        }
    }
}

/// The agent's work records (`<data-dir>/works/<uid>.json`) by uid; unreadable ones
/// (mid-replace) are skipped: they only explain problems, never decide them.
fn read_agent_store(dir: &std::path::Path) -> BTreeMap<String, Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let uid = path
                .file_name()?
                .to_str()?
                .strip_suffix(".json")?
                .to_string();
            let record = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            Some((uid, record))
        })
        .collect()
}

/// What the agent's record of `uid` says, for problem reports.
fn agent_view(records: &BTreeMap<String, Value>, uid: &str) -> String {
    let Some(r) = records.get(uid) else {
        return "the agent holds no record of it".into();
    };
    let meta = &r["work"]["metadata"];
    format!(
        "the agent holds generation {}{}, applied generation {}, {}",
        meta["generation"],
        if meta["deletionTimestamp"].is_null() {
            ""
        } else {
            " (deleting)"
        },
        r["applied_generation"],
        if r["reported_hash"].as_str().is_some_and(|h| !h.is_empty()) {
            "a status acknowledged by the broker"
        } else {
            "no status acknowledged by the broker yet"
        }
    )
}

/// The objects in a simulated cluster's snapshot (none before its first write).
fn read_snapshot(path: &std::path::Path) -> Result<BTreeMap<String, Value>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let snap: Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    Ok(snap["objects"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v["object"].clone()))
                .collect()
        })
        .unwrap_or_default())
}

/// The snapshot key of ConfigMap `name` in `default`.
fn cm_key(name: &str) -> String {
    format!("/configmaps/default/{name}")
}

/// Every divergence between the models and `obs`.
pub fn evaluate(models: &[ClusterModel], obs: &Observation) -> Vec<Problem> {
    let mut out = Vec::new();
    for (i, model) in models.iter().enumerate() {
        let hub = &obs.hub[i];
        let objects = &obs.objects[i];
        let at = |what: &str| format!("{}/{what}", model.cluster);
        let mut names: Vec<&String> = model.works.keys().chain(hub.keys()).collect();
        names.sort();
        names.dedup();
        // Object key → (work, uid, value when the work is live).
        let mut owned: BTreeMap<String, (String, String, Option<String>)> = BTreeMap::new();
        for name in names {
            let acceptable = model
                .works
                .get(name)
                .map_or_else(|| vec![Expect::Gone], |w| w.acceptable());
            let expected = acceptable
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(" or ");
            let may_be_gone = acceptable.contains(&Expect::Gone);
            let Some(work) = hub.get(name) else {
                if !may_be_gone {
                    out.push(Problem {
                        class: Class::Lost,
                        at: at(name),
                        detail: format!("acknowledged {expected}; the hub has no such work"),
                    });
                }
                continue;
            };
            let generation = work["metadata"]["generation"].as_i64().unwrap_or(-1);
            let uid = work["metadata"]["uid"].as_str().unwrap_or("").to_string();
            let spec = Spec::of_work(work).unwrap_or_default();
            let deleting = !work["metadata"]["deletionTimestamp"].is_null();
            for cm in spec.0.keys() {
                let value = (!deleting).then(|| spec.0[cm].clone());
                owned.insert(cm_key(cm), (name.clone(), uid.clone(), value));
            }
            if deleting {
                let class = if may_be_gone {
                    Class::Stuck
                } else {
                    Class::Lost
                };
                out.push(Problem {
                    class,
                    at: at(name),
                    detail: format!(
                        "acknowledged {expected}; the hub still has it deleting (generation \
                         {generation}, uid {uid}, deletion never confirmed); {}",
                        agent_view(&obs.agent[i], &uid)
                    ),
                });
                continue;
            }
            let matches = acceptable.iter().any(|e| match e {
                Expect::Live {
                    generation: g,
                    spec: s,
                } => *s == spec && g.is_none_or(|g| g == generation),
                Expect::Gone => false,
            });
            if !matches {
                let class = if acceptable == [Expect::Gone] {
                    Class::Resurrected
                } else {
                    Class::Lost
                };
                out.push(Problem {
                    class,
                    at: at(name),
                    detail: format!(
                        "acknowledged {expected}; the hub has live gen {generation} {spec}"
                    ),
                });
            }
            if let Some(why) = status_lag(work, generation) {
                out.push(Problem {
                    class: Class::Stuck,
                    at: at(name),
                    detail: format!("{why}; {}", agent_view(&obs.agent[i], &uid)),
                });
            }
        }
        cluster_problems(
            &model.cluster,
            &owned,
            hub,
            objects,
            &obs.agent[i],
            &mut out,
        );
    }
    out
}

/// Why the work's status is not "applied and available at `generation`", if it is not.
fn status_lag(work: &Value, generation: i64) -> Option<String> {
    let status_gen = work["metadata"]["annotations"]["hub.workbus.io/status-generation"]
        .as_str()
        .and_then(|g| g.parse::<i64>().ok());
    let cond = |t: &str| {
        condition(work, t).map(|c| (c["status"].clone(), c["observedGeneration"].clone()))
    };
    let ok = |c: &Option<(Value, Value)>| {
        c.as_ref()
            .is_some_and(|(s, g)| s == "True" && g.as_i64() == Some(generation))
    };
    let (applied, available) = (cond("Applied"), cond("Available"));
    if status_gen == Some(generation) && ok(&applied) && ok(&available) {
        return None;
    }
    Some(format!(
        "work at generation {generation}; status for generation {status_gen:?}, \
         Applied {applied:?}, Available {available:?} (status, observedGeneration)"
    ))
}

/// True for the snapshot key of an AppliedManifestWork (the agent's record of a work).
fn is_applied_work(key: &str) -> bool {
    key.starts_with(&format!("{}/{}/", applied::GROUP, applied::RESOURCE))
}

/// Compares a cluster's objects with what the hub's works own: every object of a work
/// is owned by that work's AppliedManifestWork, and every AppliedManifestWork belongs to
/// a work the hub has.
fn cluster_problems(
    cluster: &str,
    owned: &BTreeMap<String, (String, String, Option<String>)>,
    hub: &BTreeMap<String, Value>,
    objects: &BTreeMap<String, Value>,
    agent: &BTreeMap<String, Value>,
    out: &mut Vec<Problem>,
) {
    // AppliedManifestWork uid → the work it records.
    let applied_works: BTreeMap<&str, &str> = objects
        .iter()
        .filter(|(k, _)| is_applied_work(k))
        .filter_map(|(_, o)| {
            Some((
                o["metadata"]["uid"].as_str()?,
                o["spec"]["manifestWorkName"].as_str()?,
            ))
        })
        .collect();
    for (key, (work, uid, value)) in owned {
        let Some(value) = value else { continue };
        let at = format!("{cluster}/{work}");
        let Some(obj) = objects.get(key) else {
            out.push(Problem {
                class: Class::Misapplied,
                at,
                detail: format!(
                    "{key} (v={value}) missing on the cluster; {}",
                    agent_view(agent, uid)
                ),
            });
            continue;
        };
        if obj["data"] != json!({ "v": value }) {
            out.push(Problem {
                class: Class::Misapplied,
                at: at.clone(),
                detail: format!(
                    "{key}: data {} instead of {{\"v\":{value:?}}}; {}",
                    obj["data"],
                    agent_view(agent, uid)
                ),
            });
        }
        let owners = &obj["metadata"]["ownerReferences"];
        let owned_by_work = owners.as_array().is_some_and(|o| {
            o.iter().any(|r| {
                r["kind"] == applied::KIND
                    && r["uid"]
                        .as_str()
                        .and_then(|u| applied_works.get(u))
                        .is_some_and(|w| w == work)
            })
        });
        if !owned_by_work {
            out.push(Problem {
                class: Class::Misapplied,
                at,
                detail: format!(
                    "{key}: owners {owners} do not include the work's AppliedManifestWork \
                     (work uid {uid})"
                ),
            });
        }
    }
    for (key, obj) in objects {
        if is_applied_work(key) {
            let work = obj["spec"]["manifestWorkName"].as_str().unwrap_or_default();
            if !hub.contains_key(work) {
                out.push(Problem {
                    class: Class::Orphan,
                    at: format!("{cluster}/{key}"),
                    detail: format!(
                        "an AppliedManifestWork of {work:?}, which the hub does not have"
                    ),
                });
            }
            continue;
        }
        if !owned.contains_key(key) {
            out.push(Problem {
                class: Class::Orphan,
                at: format!("{cluster}/{key}"),
                detail: format!(
                    "no work on the hub owns it (data {}, owners {})",
                    obj["data"], obj["metadata"]["ownerReferences"]
                ),
            });
        }
    }
}

/// Result of [`converge`].
pub struct Convergence {
    /// Time until everything agreed (`None`: it never did).
    pub took: Option<Duration>,
    /// What still diverged at the deadline (empty when converged).
    pub problems: Vec<Problem>,
    /// Observations made.
    pub polls: u64,
}

/// Polls [`observe`] + [`evaluate`] until no problem remains or `within` passed,
/// printing what is still open every 5 s (prefixed with `label`).
pub async fn converge(
    fleet: &Fleet,
    models: &[ClusterModel],
    within: Duration,
    label: &str,
) -> Convergence {
    let start = Instant::now();
    let mut polls = 0;
    let mut last_line = Instant::now();
    loop {
        polls += 1;
        let problems = match observe(fleet).await {
            Ok(obs) => evaluate(models, &obs),
            Err(e) => vec![Problem {
                class: Class::Unreachable,
                at: "hub".into(),
                detail: e,
            }],
        };
        if problems.is_empty() {
            return Convergence {
                took: Some(start.elapsed()),
                problems,
                polls,
            };
        }
        if last_line.elapsed() >= Duration::from_secs(5) {
            last_line = Instant::now();
            let mut by_class: BTreeMap<&str, usize> = BTreeMap::new();
            for p in &problems {
                *by_class.entry(p.class.name()).or_default() += 1;
            }
            eprintln!(
                "[chaos {label} {:5.1}s] converging: open {by_class:?}; e.g. {}",
                start.elapsed().as_secs_f64(),
                problems[0]
            );
        }
        if start.elapsed() >= within {
            return Convergence {
                took: None,
                problems,
                polls,
            };
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::model::Op;

    fn live_work(name: &str, generation: i64, spec: &Spec, status_gen: i64) -> Value {
        let mut w = spec.work_body("c", name);
        w["metadata"]["generation"] = generation.into();
        w["metadata"]["uid"] = format!("uid-{name}").into();
        w["metadata"]["annotations"] =
            json!({"hub.workbus.io/status-generation": status_gen.to_string()});
        w["status"] = json!({"conditions": [
            {"type": "Applied", "status": "True", "observedGeneration": status_gen},
            {"type": "Available", "status": "True", "observedGeneration": status_gen}]});
        w
    }

    /// An object owned by the AppliedManifestWork with uid `owner_uid`.
    fn object(name: &str, v: &str, owner_uid: &str) -> Value {
        json!({"data": {"v": v}, "metadata": {"name": name,
               "ownerReferences": [{"kind": applied::KIND, "uid": owner_uid}]}})
    }

    /// The snapshot entry of `work`'s AppliedManifestWork (uid `amw-<work>`).
    fn applied_work(work: &str) -> (String, Value) {
        (
            format!("{}/{}//h-{work}", applied::GROUP, applied::RESOURCE),
            json!({"metadata": {"name": format!("h-{work}"), "uid": format!("amw-{work}")},
                   "spec": {"manifestWorkName": work}}),
        )
    }

    fn classes(p: &[Problem]) -> Vec<Class> {
        p.iter().map(|p| p.class).collect()
    }

    #[test]
    fn every_class_of_divergence_is_reported() {
        let a = Spec([("w0-m0".to_string(), "1".to_string())].into());
        let mut model = ClusterModel::new("c");
        let created = Reply::Answer {
            code: 201,
            body: live_work("w0", 1, &a, 1),
        };
        model.record(0, "w0", &Op::Put(a.clone()), &created);
        let hub: BTreeMap<String, Value> = [("w0".to_string(), live_work("w0", 1, &a, 1))].into();
        let good: BTreeMap<String, Value> = [
            (cm_key("w0-m0"), object("w0-m0", "1", "amw-w0")),
            applied_work("w0"),
        ]
        .into();
        let obs = |hub: &BTreeMap<String, Value>, objects: &BTreeMap<String, Value>| {
            evaluate(
                std::slice::from_ref(&model),
                &Observation {
                    hub: vec![hub.clone()],
                    objects: vec![objects.clone()],
                    agent: vec![BTreeMap::new()],
                },
            )
        };
        assert!(obs(&hub, &good).is_empty());
        // The hub lost the work: its object and its AppliedManifestWork are left over.
        assert_eq!(
            classes(&obs(&BTreeMap::new(), &good)),
            [Class::Lost, Class::Orphan, Class::Orphan]
        );
        assert_eq!(
            classes(&obs(&BTreeMap::new(), &BTreeMap::new())),
            [Class::Lost]
        );
        let stale: BTreeMap<String, Value> = [("w0".to_string(), live_work("w0", 1, &a, 0))].into();
        assert_eq!(classes(&obs(&stale, &good)), [Class::Stuck]);
        let wrong: BTreeMap<String, Value> = [
            (cm_key("w0-m0"), object("w0-m0", "2", "amw-w0")),
            applied_work("w0"),
        ]
        .into();
        assert_eq!(classes(&obs(&hub, &wrong)), [Class::Misapplied]);
        // Owned by something else than the work's AppliedManifestWork.
        let foreign_owner: BTreeMap<String, Value> = [
            (cm_key("w0-m0"), object("w0-m0", "1", "uid-w0")),
            applied_work("w0"),
        ]
        .into();
        assert_eq!(classes(&obs(&hub, &foreign_owner)), [Class::Misapplied]);
        let extra: BTreeMap<String, Value> = good
            .clone()
            .into_iter()
            .chain([(cm_key("w9-m0"), object("w9-m0", "1", "x"))])
            .collect();
        assert_eq!(classes(&obs(&hub, &extra)), [Class::Orphan]);
        let phantom: BTreeMap<String, Value> = hub
            .clone()
            .into_iter()
            .chain([("w5".to_string(), live_work("w5", 1, &Spec::default(), 1))])
            .collect();
        assert_eq!(classes(&obs(&phantom, &good)), [Class::Resurrected]);
    }
}
