//! Connections and tools: upsert, per-end-user rows, listing, deletion, tenant scoping.

use serde_json::json;

use super::tenant;
use crate::store::*;

fn connection(app_id: &str, name: &str, end_user: &str, sealed: &str) -> ConnectionRow {
    ConnectionRow {
        app_id: app_id.into(),
        name: name.into(),
        end_user: end_user.into(),
        public: json!({ "type": "bearer", "hosts": ["api.example.com"] }),
        sealed: sealed.into(),
        created_at: 1,
        updated_at: 1,
    }
}

pub(super) async fn connections_and_tools(s: &SqlStore) {
    tenant(s, "org_a", "app_a").await;
    tenant(s, "org_b", "app_b").await;
    s.put_connection(&connection("app_a", "api", "", "v1.k1.n.c1"))
        .await
        .expect("put");
    s.put_connection(&connection("app_a", "api", "alice", "v1.k1.n.c2"))
        .await
        .expect("put user");
    let mut replaced = connection("app_a", "api", "", "v1.k1.n.c3");
    replaced.updated_at = 2;
    s.put_connection(&replaced).await.expect("replace");
    let got = s
        .get_connection("app_a", "api", "")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        (got.sealed.as_str(), got.created_at, got.updated_at),
        ("v1.k1.n.c3", 1, 2)
    );
    assert_eq!(
        s.get_connection("app_a", "api", "alice")
            .await
            .expect("get")
            .map(|c| c.sealed),
        Some("v1.k1.n.c2".into())
    );
    assert_eq!(s.list_connections("app_a").await.expect("list").len(), 2);
    // Another app sees nothing and deletes nothing.
    assert!(s
        .get_connection("app_b", "api", "")
        .await
        .expect("get")
        .is_none());
    assert!(s.list_connections("app_b").await.expect("list").is_empty());
    assert!(!s
        .delete_connection("app_b", "api", "")
        .await
        .expect("delete"));
    assert!(s
        .delete_connection("app_a", "api", "alice")
        .await
        .expect("delete"));
    assert!(!s
        .delete_connection("app_a", "api", "alice")
        .await
        .expect("delete again"));

    let tool = ToolRow {
        app_id: "app_a".into(),
        name: "lookup".into(),
        spec: json!({ "url": "https://api.example.com/x", "method": "POST" }),
        created_at: 5,
        updated_at: 5,
    };
    s.put_tool(&tool).await.expect("put tool");
    assert_eq!(
        s.get_tool("app_a", "lookup").await.expect("get"),
        Some(tool.clone())
    );
    assert!(s.get_tool("app_b", "lookup").await.expect("get").is_none());
    assert_eq!(s.list_tools("app_a").await.expect("list"), vec![tool]);
    assert!(!s.delete_tool("app_b", "lookup").await.expect("delete"));
    assert!(s.delete_tool("app_a", "lookup").await.expect("delete"));
    assert!(s.list_tools("app_a").await.expect("list").is_empty());
}
