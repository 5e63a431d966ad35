//! One-use tickets for the SSE watch. A browser's `EventSource` cannot send an
//! `Authorization` header, and a token in the URL would end up in proxy and server
//! logs; so a client with a token asks for a ticket (`POST /api/v1/watch/tickets`) and
//! opens the watch with `?ticket=…`. A ticket works once, within [`TICKET_TTL`], so
//! one found in a log is already spent or expired. It names the token's digest, not
//! the caller: the token is looked up again on redemption, so revoking it also voids
//! its tickets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::secret::{self, RandomError};

/// How long a ticket stays redeemable.
pub const TICKET_TTL: Duration = Duration::from_secs(30);

/// Most tickets outstanding at once: a client that asks for tickets and never uses
/// them cannot grow this map without bound.
pub const MAX_OUTSTANDING: usize = 10_000;

/// Why no ticket was issued.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// Too many outstanding tickets (each expires within [`TICKET_TTL`]).
    #[error("too many outstanding watch tickets; retry in {} s", TICKET_TTL.as_secs())]
    Busy,
    /// No randomness.
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The outstanding tickets, by digest (shared by the API's handlers).
#[derive(Debug, Clone, Default)]
pub struct Tickets {
    outstanding: Arc<Mutex<HashMap<String, (String, Instant)>>>,
}

impl Tickets {
    /// Issues a ticket for the token with digest `token_digest`.
    pub fn issue(&self, token_digest: &str) -> Result<String, TicketError> {
        let ticket = secret::generate()?;
        let now = Instant::now();
        let mut map = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, expires)| *expires > now);
        if map.len() >= MAX_OUTSTANDING {
            return Err(TicketError::Busy);
        }
        map.insert(
            secret::digest(&ticket),
            (token_digest.to_string(), now + TICKET_TTL),
        );
        Ok(ticket)
    }

    /// Redeems a ticket (it is spent either way): the token digest it was issued for,
    /// if it was outstanding and unexpired.
    pub fn redeem(&self, ticket: &str) -> Option<String> {
        let mut map = self.outstanding.lock().unwrap_or_else(|p| p.into_inner());
        let (token, expires) = map.remove(&secret::digest(ticket))?;
        (expires > Instant::now()).then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_works_once() {
        let t = Tickets::default();
        let ticket = t.issue("d1").unwrap();
        assert_eq!(t.redeem("wbt_nope"), None);
        assert_eq!(t.redeem(&ticket).as_deref(), Some("d1"));
        assert_eq!(t.redeem(&ticket), None);
    }
}
