//! Tenancy end to end (issue 14, items 1-3): CloudAccounts decide which namespaces may
//! drive which cloud objects with which credentials.
//!
//! Each test runs the operator binary with no account of the harness's (`start_bare`):
//! it sees only the accounts the test makes. Refusals are checked in the simulator's call
//! log: a refused rollout makes no cloud call at all.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::e2e::{Kubectl, Operator, Sim, apply_account, cluster, condition, namespace};

const SEED: &str = r#"
services:
  - name: llm-chat
    region: cn-shanghai
    replicas: 2
    config:
      metadata: {instance: 2, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "llm:v1"}]
  - name: team-chat
    region: cn-shanghai
    replicas: 2
    config:
      metadata: {instance: 2, labels: {"eas.aliyun.com/enable-rollout": "true"}}
      containers: [{image: "llm:v1"}]
"#;

const WAIT: Duration = Duration::from_secs(90);

struct Tenant {
    sim: Sim,
    operator: Operator,
    kubectl: Kubectl,
    namespace: String,
}

async fn start(test: &str) -> Tenant {
    let api = cluster();
    let sim = Sim::start(SEED, 100.0).await;
    let namespace = namespace(test);
    let operator = Operator::start_bare(&api, &sim, &namespace, "eas");
    let kubectl = Kubectl::new(&api, &namespace);
    Tenant {
        sim,
        operator,
        kubectl,
        namespace,
    }
}

impl Tenant {
    /// An account seen by this test's operator only (named after the namespace).
    fn account(&self, name: &str, spec: Value) -> String {
        let full = format!("{}-{name}", self.namespace);
        apply_account(&self.kubectl.api, &self.namespace, &full, spec);
        full
    }

    async fn wait(&self, what: &str, name: &str, check: impl Fn(&Value) -> bool) -> Value {
        let resource = format!("easservicerollout/{name}");
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let seen = self.kubectl.try_get(&resource);
            if let Some(obj) = &seen
                && check(obj)
            {
                return obj.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what} on {name}; last: {}\n{}",
                seen.map(|o| o["status"].to_string()).unwrap_or_default(),
                self.operator.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    async fn degraded(&self, name: &str, reason: &str) -> Value {
        self.wait(&format!("Degraded {reason}"), name, |o| {
            condition(o, "Degraded") == Some(("True".into(), reason.into()))
        })
        .await
    }

    async fn ready(&self, name: &str) -> Value {
        self.wait("Ready", name, |o| {
            condition(o, "Ready").map(|c| c.0).as_deref() == Some("True")
        })
        .await
    }

    /// The calls in the simulator's log that name `service` (or every call).
    async fn calls(&self, service: Option<&str>) -> Vec<Value> {
        let log = self.sim.call_log().await;
        log.into_iter()
            .filter(|c| match service {
                Some(s) => c["target"]
                    .as_str()
                    .is_some_and(|t| t.ends_with(&format!("/{s}"))),
                None => true,
            })
            .collect()
    }
}

fn rollout(name: &str, service: &str, account: Option<&str>, image: &str) -> String {
    let mut spec = json!({
        "region": "cn-shanghai",
        "serviceName": service,
        "strategy": {"batch": {"size": "50%", "interval": "1s"}},
        "serviceConfig": {"containers": [{"image": image}]},
    });
    if let Some(a) = account {
        spec["accountRef"] = json!({"name": a});
    }
    json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": name},
        "spec": spec,
    })
    .to_string()
}

fn message(obj: &Value) -> String {
    obj["status"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Rule: a namespace cannot use an account not granted to it, by name or by label
/// selector; a label added grants it, and removing it takes effect on the next reconcile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_uses_only_the_accounts_granted_to_it() {
    let t = start("tenancy-grant").await;
    let elsewhere = t.account(
        "elsewhere",
        json!({"operatorIdentity": {}, "namespaces": {"names": ["some-other-team"]}}),
    );
    let by_label = t.account(
        "by-label",
        json!({"operatorIdentity": {}, "namespaces": {"selector": {"matchLabels": {"team": "b"}}}}),
    );
    t.kubectl
        .apply(&rollout("by-name", "llm-chat", Some(&elsewhere), "llm:v2"));
    t.kubectl.apply(&rollout(
        "by-selector",
        "team-chat",
        Some(&by_label),
        "llm:v2",
    ));
    let obj = t.degraded("by-name", "NamespaceNotGranted").await;
    assert!(message(&obj).contains(&elsewhere), "{obj}");
    assert!(message(&obj).contains("spec.namespaces"), "{obj}");
    t.degraded("by-selector", "NamespaceNotGranted").await;
    assert!(
        t.calls(None).await.is_empty(),
        "a refused rollout makes no cloud call: {:?}",
        t.calls(None).await
    );

    // The namespace gets the label: the account grants it now.
    t.kubectl
        .must(&["label", "namespace", &t.namespace, "team=b"]);
    t.ready("by-selector").await;
    assert!(t.calls(Some("llm-chat")).await.is_empty());

    // The label goes: the next reconcile refuses, and nothing more is sent.
    t.kubectl
        .must(&["label", "namespace", &t.namespace, "team-"]);
    t.degraded("by-selector", "NamespaceNotGranted").await;
    let before = t.calls(Some("team-chat")).await.len();
    t.kubectl.apply(&rollout(
        "by-selector",
        "team-chat",
        Some(&by_label),
        "llm:v3",
    ));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(t.calls(Some("team-chat")).await.len(), before);
}

/// Rule: the operator's own identity is used only through an account; a default account
/// serves rollouts that name none, and its patterns limit the cloud objects; removing the
/// namespace from it takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_account_patterns_and_removal() {
    let t = start("tenancy-default").await;
    t.kubectl
        .apply(&rollout("team", "team-chat", None, "llm:v2"));
    t.kubectl
        .apply(&rollout("other", "llm-chat", None, "llm:v2"));
    let obj = t.degraded("team", "NoCloudAccount").await;
    assert!(message(&obj).contains("spec.accountRef"), "{obj}");
    assert!(t.calls(None).await.is_empty());

    let spec = |names: &[&str]| {
        json!({
            "operatorIdentity": {},
            "namespaces": {"names": names},
            "resources": {"easServices": [{"region": "cn-shanghai", "name": "team-*"}]},
            "default": true,
        })
    };
    let account = t.account("default", spec(&[&t.namespace]));
    t.ready("team").await;
    let obj = t.degraded("other", "ObjectNotGranted").await;
    assert!(
        message(&obj).contains("spec.resources.easServices"),
        "{obj}"
    );
    assert!(message(&obj).contains("cn-shanghai/team-*"), "{obj}");
    assert!(
        t.calls(Some("llm-chat")).await.is_empty(),
        "nothing is called for an object outside the patterns"
    );

    // The namespace is removed from the account.
    apply_account(
        &t.kubectl.api,
        &t.namespace,
        &account,
        spec(&["someone-else"]),
    );
    t.degraded("team", "NamespaceNotGranted").await;
    let before = t.calls(Some("team-chat")).await.len();
    t.kubectl
        .apply(&rollout("team", "team-chat", None, "llm:v3"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(t.calls(Some("team-chat")).await.len(), before);
}

/// One operator drives two Alibaba Cloud accounts: each CloudAccount assumes its own role
/// with the operator's identity, and each rollout's calls run in its role's account.
/// No secret shows in status or Events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_operator_drives_two_accounts() {
    let t = start("tenancy-two").await;
    let (one, two) = ("1000000000000001", "1000000000000002");
    let grant = json!({"names": [t.namespace]});
    let a = t.account(
        "a",
        json!({"assumeRole": {"roleArn": format!("acs:ram::{one}:role/rollouts")}, "namespaces": grant}),
    );
    let b = t.account(
        "b",
        json!({"assumeRole": {"roleArn": format!("acs:ram::{two}:role/rollouts"), "sessionName": "team-b"},
               "namespaces": grant}),
    );
    t.kubectl
        .apply(&rollout("in-a", "llm-chat", Some(&a), "llm:v2"));
    t.kubectl
        .apply(&rollout("in-b", "llm-chat", Some(&b), "llm:v3"));
    let in_a = t.ready("in-a").await;
    let in_b = t.ready("in-b").await;
    assert_eq!(in_a["status"]["cloudAccount"], one, "{in_a}");
    assert_eq!(in_b["status"]["cloudAccount"], two, "{in_b}");

    let log = t.calls(None).await;
    let assumed: Vec<&Value> = log.iter().filter(|c| c["action"] == "AssumeRole").collect();
    assert!(!assumed.is_empty(), "{log:?}");
    for c in &assumed {
        assert_eq!(
            c["accessKeyId"], "testid",
            "signed with the operator's own key: {c}"
        );
    }
    for (account, image) in [(one, "llm:v2"), (two, "llm:v3")] {
        let pushes: Vec<&Value> = log
            .iter()
            .filter(|c| c["action"] == "UpdateService" && c["account"] == account)
            .collect();
        assert_eq!(pushes.len(), 1, "one push in account {account}: {log:?}");
        assert!(
            pushes[0]["request"]
                .as_str()
                .unwrap_or_default()
                .contains(image),
            "{:?}",
            pushes[0]
        );
        let key = pushes[0]["accessKeyId"].as_str().unwrap_or_default();
        assert!(key.starts_with("STS."), "the role's credentials: {key}");
    }
    // Credentials are cached: one AssumeRole per role (not one per reconcile).
    assert!(assumed.len() <= 2, "{assumed:?}");
    let state = t.sim.state().await;
    let _ = state;

    let events = t
        .kubectl
        .must(&["get", "events.events.k8s.io", "-o", "json"]);
    for shown in [events, in_a.to_string(), in_b.to_string()] {
        assert!(!shown.contains("testsecret"), "{shown}");
        assert!(!shown.contains("CAIS"), "no STS token: {shown}");
    }
}
