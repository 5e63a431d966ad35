//! The authorization rule, in one place: what each route needs ([`need`]), and whether a
//! caller ([`Principal`]) has it.
//!
//! | route | needs |
//! |---|---|
//! | `/healthz`, `/openapi.json` | nothing (no state is revealed) |
//! | `/livez`, `/readyz` | nothing (probes; only whether the hub works, and why not) |
//! | `/metrics` | nothing from a loopback peer (a local Prometheus), else a reader |
//! | `GET` `/api/v1/…` (and the watch) | `reader`; scoped tokens see their clusters only |
//! | `POST /api/v1/watch/tickets` | `reader` (a ticket for one watch) |
//! | `/api/v1/outbox/…` | `reader` without a scope (rows of every cluster) |
//! | `/api/v1/audit/verify`, `…/export`, `…/public-key` | `reader` without a scope (the whole log); `…/log`, `…/replay`: a reader, scoped tokens name their cluster |
//! | placements, decisions, bindings (and their watch) | `reader`/`writer` without a scope (they select among every cluster) |
//! | other methods on `/api/v1/…` | `writer`; scoped tokens change their clusters only |
//! | `/api/v1/tokens…` | `admin`, unscoped |
//!
//! The role is checked for every request before its handler runs (`api::guard`); the
//! scope is checked by the handlers, which are the ones that know the cluster (from the
//! path, the query or the body).

use axum::http::Method;

use crate::store::{ApiToken, Role, ScopeEntry};

/// The caller of a request: the token it presented.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The token's name: the actor recorded for what the request changes.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// Its scope; `None` = every cluster.
    pub scope: Option<Vec<ScopeEntry>>,
    /// Its digest, to look the token up again (watch tickets do, so a token revoked
    /// after the ticket was issued cannot redeem it).
    pub digest: String,
}

impl From<ApiToken> for Principal {
    fn from(t: ApiToken) -> Self {
        Principal {
            name: t.name,
            role: t.role,
            scope: t.scope,
            digest: t.hash,
        }
    }
}

impl Principal {
    /// Whether this caller may see or touch `cluster`.
    pub fn may_touch(&self, cluster: &str) -> bool {
        match &self.scope {
            None => true,
            Some(entries) => entries.iter().any(|e| match e {
                ScopeEntry::Cluster(c) => c == cluster,
            }),
        }
    }

    /// Whether this caller has no scope (every cluster).
    pub fn unscoped(&self) -> bool {
        self.scope.is_none()
    }

    /// Whether the role is at least `role`.
    pub fn has(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// What a request needs before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing.
    Public,
    /// Nothing from a loopback peer, else [`Need::Role`] reader.
    LoopbackOrReader,
    /// A token with at least this role (the scope is the handler's).
    Role(Role),
    /// A token with at least this role and no scope.
    Unscoped(Role),
}

impl Need {
    /// Whether `principal` satisfies this need (`Public` needs no principal at all).
    pub fn allows(self, principal: &Principal) -> bool {
        match self {
            Need::Public => true,
            Need::LoopbackOrReader => principal.has(Role::Reader),
            Need::Role(r) => principal.has(r),
            Need::Unscoped(r) => principal.has(r) && principal.unscoped(),
        }
    }
}

/// Whether `method` changes state (everything but GET, HEAD and OPTIONS).
pub fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The watch endpoint, the one route that also takes a ticket instead of a header.
pub const WATCH_PATH: &str = "/api/v1/watch/works";
/// Where watch tickets are issued.
pub const TICKETS_PATH: &str = "/api/v1/watch/tickets";

/// Whether `path` is a Placement route (placements, decisions, bindings, their watch).
fn is_placement_path(path: &str) -> bool {
    const NAMESPACED: [&str; 3] = [
        "/placements",
        "/placementdecisions",
        "/managedclustersetbindings",
    ];
    let namespaced = path
        .strip_prefix("/api/v1/namespaces/")
        .is_some_and(|rest| {
            rest.split_once('/').is_some_and(|(_, tail)| {
                NAMESPACED
                    .iter()
                    .any(|p| ("/".to_owned() + tail).starts_with(p))
            })
        });
    namespaced
        || path == "/api/v1/placements"
        || path == "/api/v1/managedclustersetbindings"
        || path == "/api/v1/watch/placements"
}

/// What a request for `path` with `method` needs (see the module table). Unknown paths
/// need a reader, so an anonymous caller cannot even probe which routes exist.
pub fn need(method: &Method, path: &str) -> Need {
    match path {
        "/healthz" | "/openapi.json" => return Need::Public,
        "/livez" | "/readyz" => return Need::Public,
        "/metrics" => return Need::LoopbackOrReader,
        TICKETS_PATH => return Need::Role(Role::Reader),
        _ => {}
    }
    if path == "/api/v1/tokens"
        || path.starts_with("/api/v1/tokens/")
        || path == "/api/v1/bootstraptokens"
        || path.starts_with("/api/v1/bootstraptokens/")
    {
        return Need::Unscoped(Role::Admin);
    }
    if (path == "/api/v1/clustersets" || path.starts_with("/api/v1/clustersets/"))
        && is_mutation(method)
    {
        return Need::Unscoped(Role::Writer);
    }
    if path.starts_with("/api/v1/outbox/") || path == "/api/v1/replicas" {
        return Need::Unscoped(Role::Reader);
    }
    // The whole audit log (every cluster's records): see `api::audit`.
    if matches!(
        path,
        "/api/v1/audit/verify" | "/api/v1/audit/export" | "/api/v1/audit/public-key"
    ) {
        return Need::Unscoped(Role::Reader);
    }
    if is_placement_path(path) {
        let role = if is_mutation(method) {
            Role::Writer
        } else {
            Role::Reader
        };
        return Need::Unscoped(role);
    }
    if is_mutation(method) {
        Need::Role(Role::Writer)
    } else {
        Need::Role(Role::Reader)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(role: Role, scope: Option<Vec<&str>>) -> Principal {
        Principal {
            name: "t".into(),
            role,
            scope: scope.map(|s| {
                s.into_iter()
                    .map(|c| ScopeEntry::Cluster(c.into()))
                    .collect()
            }),
            digest: String::new(),
        }
    }

    #[test]
    fn roles_are_ordered_and_routes_classified() {
        let reader = principal(Role::Reader, None);
        let writer = principal(Role::Writer, None);
        let admin = principal(Role::Admin, None);
        let scoped_admin = principal(Role::Admin, Some(vec!["a"]));
        let works = "/api/v1/works";
        assert!(need(&Method::GET, works).allows(&reader));
        assert!(!need(&Method::POST, works).allows(&reader));
        assert!(need(&Method::POST, works).allows(&writer));
        assert!(!need(&Method::GET, "/api/v1/tokens").allows(&writer));
        assert!(need(&Method::DELETE, "/api/v1/tokens/x").allows(&admin));
        assert!(!need(&Method::GET, "/api/v1/tokens").allows(&scoped_admin));
        assert!(need(&Method::POST, TICKETS_PATH).allows(&reader));
        assert_eq!(need(&Method::GET, "/healthz"), Need::Public);
        assert_eq!(need(&Method::GET, "/livez"), Need::Public);
        assert_eq!(need(&Method::GET, "/readyz"), Need::Public);
        assert_eq!(need(&Method::GET, "/metrics"), Need::LoopbackOrReader);
        assert!(!need(&Method::GET, "/api/v1/outbox/parked").allows(&scoped_admin));
        assert!(!need(&Method::POST, "/api/v1/bootstraptokens").allows(&writer));
        assert!(!need(&Method::POST, "/api/v1/bootstraptokens").allows(&scoped_admin));
        assert!(need(&Method::DELETE, "/api/v1/bootstraptokens/x").allows(&admin));
        assert!(!need(&Method::POST, "/api/v1/clustersets").allows(&scoped_admin));
        assert!(need(&Method::GET, "/api/v1/clustersets").allows(&reader));
        assert!(need(&Method::POST, "/api/v1/clusters/c/accept").allows(&writer));
        assert!(!need(&Method::POST, "/api/v1/clusters/c/accept").allows(&reader));
        let placement = "/api/v1/namespaces/ns/placements/p";
        let scoped_writer = principal(Role::Writer, Some(vec!["a"]));
        assert!(need(&Method::PUT, placement).allows(&writer));
        assert!(!need(&Method::PUT, placement).allows(&reader));
        assert!(!need(&Method::PUT, placement).allows(&scoped_writer));
        assert!(!need(&Method::GET, placement).allows(&scoped_writer));
        assert!(need(&Method::GET, "/api/v1/placements").allows(&reader));
        let binding = "/api/v1/namespaces/ns/managedclustersetbindings/s";
        assert!(!need(&Method::DELETE, binding).allows(&scoped_admin));
        assert!(need(&Method::DELETE, binding).allows(&writer));
    }

    #[test]
    fn a_scope_lists_the_clusters_a_token_may_touch() {
        let scoped = principal(Role::Writer, Some(vec!["a", "b"]));
        assert!(scoped.may_touch("a") && scoped.may_touch("b"));
        assert!(!scoped.may_touch("c"));
        assert!(principal(Role::Reader, None).may_touch("c"));
    }
}
