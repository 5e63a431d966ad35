//! Watches the hub's change stream (`GET /api/v1/watch/works`, server-sent events) for
//! the whole run, reconnecting after every hub restart, and checks every change as the
//! hub reports it:
//!
//! - a `status` change is the hub accepting a status: its object carries the work's
//!   generation at acceptance and the accepted status' generation
//!   (`hub.workbus.io/status-generation`); they must be equal — a difference is a
//!   status accepted for a stale generation;
//! - a `deleted` change is the hub hard-deleting a work on the agent's `Deleted`
//!   confirmation; the work must have been marked deleting — otherwise a stale
//!   confirmation removed a live (e.g. re-created) work.
//!
//! Coverage: changes made while no watch is connected (the moments after a hub
//! restart, before the monitor reconnects) are not seen; the final check covers the
//! end state. A `lagged` event (changes dropped by the hub for a slow watcher) is
//! counted.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::hubs::condition;

/// What the monitor saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Watch connections made (1 + reconnects after hub restarts).
    pub connects: u64,
    /// `status` changes (statuses accepted).
    pub statuses: u64,
    /// `deleted` changes (deletions completed).
    pub deletions: u64,
    /// Changes the hub dropped for this watcher (`lagged`).
    pub lagged: u64,
    /// Statuses accepted for a generation other than the work's.
    pub stale_accepted: Vec<String>,
    /// Works hard-deleted without having been marked deleting.
    pub spurious_deletions: Vec<String>,
}

impl Seen {
    /// As JSON for the report.
    pub fn to_json(&self) -> Value {
        json!({
            "watch_connects": self.connects,
            "statuses_accepted_seen": self.statuses,
            "deletions_seen": self.deletions,
            "lagged": self.lagged,
            "stale_accepted": self.stale_accepted,
            "spurious_deletions": self.spurious_deletions,
        })
    }

    /// Checks one change event (`kind` = SSE event name, `data` = its JSON).
    pub fn check(&mut self, kind: &str, data: &str) {
        let Ok(change) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let work = &change["object"];
        let who = format!(
            "{}/{} (uid {})",
            work["metadata"]["namespace"].as_str().unwrap_or("?"),
            work["metadata"]["name"].as_str().unwrap_or("?"),
            work["metadata"]["uid"].as_str().unwrap_or("?")
        );
        let generation = work["metadata"]["generation"].as_i64();
        let gen_text = |g: Option<i64>| g.map_or_else(|| "?".to_string(), |g| g.to_string());
        match kind {
            "status" => {
                self.statuses += 1;
                let status_gen =
                    work["metadata"]["annotations"]["hub.workbus.io/status-generation"]
                        .as_str()
                        .and_then(|g| g.parse::<i64>().ok());
                let observed = condition(work, "Applied").map(|c| c["observedGeneration"].clone());
                if status_gen != generation {
                    self.stale_accepted.push(format!(
                        "{who}: status for generation {} (Applied observed {}) accepted \
                         while the work is at generation {}",
                        gen_text(status_gen),
                        observed.map_or_else(|| "-".to_string(), |g| g.to_string()),
                        gen_text(generation)
                    ));
                }
            }
            "deleted" => {
                self.deletions += 1;
                if work["metadata"]["deletionTimestamp"].is_null() {
                    self.spurious_deletions.push(format!(
                        "{who} at generation {}: removed by a Deleted confirmation but never \
                         marked deleting",
                        gen_text(generation)
                    ));
                }
            }
            _ => {}
        }
    }
}

/// A running monitor (a thread reading the event stream).
pub struct Monitor {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Monitor {
    /// Starts watching the hub at `base` (`http://127.0.0.1:PORT`) with API token
    /// `token`.
    pub fn start(base: &str, token: &str) -> Monitor {
        let auth = format!("Bearer {token}");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{}/api/v1/watch/works", base.trim_end_matches('/'));
        let thread = {
            let seen = seen.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("chaos-watch".into())
                .spawn(move || watch(&url, &auth, &seen, &stop))
                .expect("watch thread starts")
        };
        Monitor {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// What was seen so far.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops watching; call after the hub stopped (the read then ends). Returns what
    /// was seen.
    pub fn finish(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.seen()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        // Never blocks: a thread still reading ends when the hub's socket closes.
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads the stream until `stop`, reconnecting whenever it breaks.
fn watch(url: &str, auth: &str, seen: &Mutex<Seen>, stop: &AtomicBool) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(2)))
        .build()
        .into();
    while !stop.load(Ordering::SeqCst) {
        let Ok(resp) = agent.get(url).header("authorization", auth).call() else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        if resp.status() != 200 {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        seen.lock().unwrap_or_else(|e| e.into_inner()).connects += 1;
        let mut event = String::new();
        for line in BufReader::new(resp.into_body().into_reader()).lines() {
            let Ok(line) = line else { break };
            if let Some(name) = line.strip_prefix("event:") {
                event = name.trim().to_string();
            } else if let Some(data) = line.strip_prefix("data:") {
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                if event == "lagged" {
                    s.lagged += data.trim().parse::<u64>().unwrap_or(1);
                } else {
                    s.check(&event, data.trim());
                }
            } else if line.is_empty() {
                event.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(generation: i64, status_gen: i64, deleting: bool) -> String {
        let mut meta = json!({"namespace": "c", "name": "w", "uid": "u",
            "generation": generation,
            "annotations": {"hub.workbus.io/status-generation": status_gen.to_string()}});
        if deleting {
            meta["deletionTimestamp"] = "2026-01-01T00:00:00Z".into();
        }
        json!({"type": "status", "object": {"metadata": meta, "status": {"conditions": [
            {"type": "Applied", "status": "True", "observedGeneration": status_gen}]}}})
        .to_string()
    }

    #[test]
    fn stale_statuses_and_deletions_of_live_works_are_caught() {
        let mut s = Seen::default();
        s.check("status", &change(3, 3, false));
        assert!(s.stale_accepted.is_empty());
        s.check("status", &change(3, 2, false));
        assert_eq!(s.stale_accepted.len(), 1);
        s.check("deleted", &change(3, 3, true));
        assert!(s.spurious_deletions.is_empty());
        s.check("deleted", &change(1, 1, false));
        assert_eq!(s.spurious_deletions.len(), 1);
        assert_eq!((s.statuses, s.deletions), (2, 2));
    }
}
