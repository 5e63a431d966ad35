//! `get replicas`: the hub replicas on this hub's store and the partitions each
//! publishes (`GET /api/v1/replicas`; ARCHITECTURE.md "Several hubs"), as a table:
//! REPLICA, ADDRESS, HEARTBEAT (seconds since the last one), PARTITIONS, and `*` on the
//! replica that answered.

use serde_json::Value;

/// The table of a `GET /api/v1/replicas` answer.
pub fn table(v: &Value) -> String {
    let mut rows = vec![[
        "REPLICA".to_string(),
        "ADDRESS".to_string(),
        "HEARTBEAT".to_string(),
        "PARTITIONS".to_string(),
    ]];
    let items = v["items"].as_array().cloned().unwrap_or_default();
    for item in &items {
        let me = if item["self"].as_bool() == Some(true) {
            "*"
        } else {
            ""
        };
        let name = item["replicaId"].as_str().unwrap_or("(single hub)");
        rows.push([
            format!("{name}{me}"),
            item["restAddress"].as_str().unwrap_or("-").to_string(),
            item["heartbeatAgeSeconds"]
                .as_f64()
                .map_or("-".into(), |s| format!("{s:.1}s")),
            format!(
                "{}/{}",
                item["partitionsOwned"].as_u64().unwrap_or(0),
                v["partitions"].as_u64().unwrap_or(0)
            ),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replicas_are_listed_with_their_share() {
        let v = json!({"mode": "replicated", "partitions": 64, "items": [
            {"replicaId": "hub-a", "self": true, "restAddress": "10.0.0.1:8443",
             "heartbeatAgeSeconds": 0.3, "partitionsOwned": 32},
            {"replicaId": "hub-b", "self": false, "restAddress": "10.0.0.2:8443",
             "heartbeatAgeSeconds": 1.0, "partitionsOwned": 32},
        ]});
        assert_eq!(
            table(&v),
            "REPLICA   ADDRESS         HEARTBEAT   PARTITIONS\n\
             hub-a*    10.0.0.1:8443   0.3s        32/64\n\
             hub-b     10.0.0.2:8443   1.0s        32/64\n"
        );
    }
}
