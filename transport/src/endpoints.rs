//! The broker addresses of one session (the nodes of a clustered broker, or one broker)
//! and the rule that picks the address of the next connection attempt.
//!
//! **Order.** The first address is the preferred one: the first connection goes there.
//! A lost or refused connection moves on to the next address, round robin, so a session
//! stays on whichever node it reached until that node fails it. Waits ([`Pause`]):
//! - after losing a connection that was up: the first reconnect delay (jittered, so a
//!   fleet thrown off one node does not arrive at the next in lock-step), then the
//!   next address;
//! - after a failed attempt: the next address at once, unless every address has now
//!   failed in a row since the cycle began — then the next backoff delay (growing as
//!   before, so the backoff counts full cycles, not single addresses);
//! - after a reconnect the owner asked for (certificate rotation): the same address,
//!   at once.
//!
//! With a single address this is the transport's behaviour before several existed:
//! every attempt after a failure waits the next backoff delay.

use std::fmt;

pub use workbus_schemas::config::BrokerAddr as Endpoint;
use workbus_schemas::config::{ConfigError, split_broker_list};

/// A non-empty, ordered list of broker addresses (see the module documentation for
/// how the order is used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints(Vec<Endpoint>);

/// An empty list of broker addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("at least one broker address is needed")]
pub struct NoEndpoints;

impl Endpoints {
    /// One broker at `host:port`.
    pub fn one(host: impl Into<String>, port: u16) -> Endpoints {
        Endpoints(vec![Endpoint {
            host: host.into(),
            port,
        }])
    }

    /// These addresses, in this order; repeats are dropped.
    pub fn new(list: impl IntoIterator<Item = Endpoint>) -> Result<Endpoints, NoEndpoints> {
        let mut list = list.into_iter();
        let first = list.next().ok_or(NoEndpoints)?;
        Ok(Endpoints::starting_with(first, list))
    }

    /// `first`, then `rest` in order; repeats are dropped.
    pub fn starting_with(first: Endpoint, rest: impl IntoIterator<Item = Endpoint>) -> Endpoints {
        let mut out = vec![first];
        for e in rest {
            if !out.contains(&e) {
                out.push(e);
            }
        }
        Endpoints(out)
    }

    /// `host:port[,host:port…]` as the `--broker` flags take it.
    pub fn parse(value: &str) -> Result<Endpoints, ConfigError> {
        Ok(Endpoints(split_broker_list(value)?))
    }

    /// The preferred (first) address.
    pub fn first(&self) -> &Endpoint {
        &self.0[0]
    }

    /// The address at `index` (taken modulo the length).
    pub fn get(&self, index: usize) -> &Endpoint {
        &self.0[index % self.0.len()]
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Never true; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The addresses in order.
    pub fn iter(&self) -> impl Iterator<Item = &Endpoint> {
        self.0.iter()
    }
}

impl fmt::Display for Endpoints {
    /// `a:1883,b:1883`, as the flags take it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// How a connection (or an attempt at one) ended, as far as the choice of the next
/// address is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It was up (CONNACK received) and was lost, taken over, or closed by us after a
    /// refused subscription.
    Lost,
    /// It never came up: refused, unreachable, timed out.
    Failed,
    /// The owner asked for a new connection ([`crate::Publisher::reconnect`]).
    Requested,
}

/// How long to wait before the next connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    /// The next delay of the backoff sequence.
    Backoff,
    /// None.
    None,
}

/// Where the session is in its list of addresses: the pure rule of the module
/// documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rotation {
    len: usize,
    current: usize,
    /// Attempts failed in a row since the current cycle began.
    failed: usize,
}

impl Rotation {
    /// Starting at the first of `len` addresses.
    pub(crate) fn new(len: usize) -> Rotation {
        Rotation {
            len: len.max(1),
            current: 0,
            failed: 0,
        }
    }

    /// The index of the address the next (or current) attempt uses.
    pub(crate) fn current(&self) -> usize {
        self.current
    }

    /// A connection to the current address came up: a new cycle begins.
    pub(crate) fn connected(&mut self) {
        self.failed = 0;
    }

    /// The connection to the current address ended so: which address comes next and
    /// how long to wait first.
    pub(crate) fn after(&mut self, ending: Ending) -> (usize, Pause) {
        let pause = match ending {
            Ending::Requested => return (self.current, Pause::None),
            Ending::Lost => {
                self.failed = 0;
                Pause::Backoff
            }
            Ending::Failed => {
                self.failed += 1;
                if self.failed >= self.len {
                    self.failed = 0;
                    Pause::Backoff
                } else {
                    Pause::None
                }
            }
        };
        self.current = (self.current + 1) % self.len;
        (self.current, pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(len: usize, endings: &[Ending]) -> Vec<(usize, Pause)> {
        let mut r = Rotation::new(len);
        endings.iter().map(|e| r.after(*e)).collect()
    }

    #[test]
    fn one_address_waits_a_backoff_delay_before_every_retry() {
        use Ending::*;
        assert_eq!(
            run(1, &[Failed, Failed, Lost, Failed]),
            vec![
                (0, Pause::Backoff),
                (0, Pause::Backoff),
                (0, Pause::Backoff),
                (0, Pause::Backoff)
            ]
        );
        assert_eq!(run(1, &[Requested]), vec![(0, Pause::None)]);
    }

    #[test]
    fn failed_attempts_go_round_the_list_and_back_off_once_per_cycle() {
        use Ending::*;
        assert_eq!(
            run(3, &[Failed, Failed, Failed, Failed, Failed, Failed]),
            vec![
                (1, Pause::None),
                (2, Pause::None),
                (0, Pause::Backoff),
                (1, Pause::None),
                (2, Pause::None),
                (0, Pause::Backoff),
            ]
        );
    }

    #[test]
    fn a_lost_connection_moves_on_after_the_first_delay_and_starts_a_cycle() {
        use Ending::*;
        // Connected to 0 (after one failure), lost it: 1 after a delay, then 2 at once,
        // then 0 — every address failed since the loss — after the next delay.
        assert_eq!(
            run(3, &[Failed, Lost, Failed, Failed, Failed]),
            vec![
                (1, Pause::None),
                (2, Pause::Backoff),
                (0, Pause::None),
                (1, Pause::None),
                (2, Pause::Backoff),
            ]
        );
        let mut r = Rotation::new(2);
        assert_eq!(r.after(Lost), (1, Pause::Backoff));
        assert_eq!(r.current(), 1);
    }

    #[test]
    fn a_requested_reconnect_stays_on_the_address() {
        use Ending::*;
        let mut r = Rotation::new(3);
        r.after(Failed);
        assert_eq!(r.after(Requested), (1, Pause::None));
        // ... and does not count towards the cycle that began at 0.
        assert_eq!(r.after(Failed), (2, Pause::None));
        assert_eq!(r.after(Failed), (0, Pause::Backoff));
        // A connection starts a new cycle.
        r.connected();
        assert_eq!(r.after(Requested), (0, Pause::None));
        assert_eq!(r.after(Failed), (1, Pause::None));
    }

    #[test]
    fn endpoint_lists() {
        let e = Endpoints::parse("a:1, b:2,a:1").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e.to_string(), "a:1,b:2");
        assert_eq!(
            e.first(),
            &Endpoint {
                host: "a".into(),
                port: 1
            }
        );
        assert_eq!(e.get(3).host, "b");
        assert_eq!(Endpoints::new([]), Err(NoEndpoints));
        assert_eq!(Endpoints::one("::1", 1883).to_string(), "[::1]:1883");
    }
}
