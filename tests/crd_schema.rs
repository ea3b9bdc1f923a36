//! The custom resources against a real API server: the generated CRDs install and become
//! Established, every example is accepted (through kubectl and through kube-rs), every
//! manifest in tests/bad-manifests is rejected with a message that tells the user what to
//! fix, and `kubectl get alicloud-rollouts` shows the printer columns.
//!
//! Each test works in its own namespace, deleted with its objects when the test ends.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alicloud_rollouts::crd::{
    EasServiceRollout, EsaContainerAppRollout, EsaRegion, EsaRoutineRollout,
};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::Value;
use support::apiserver::{self, ApiServer};

/// Bound on any single kubectl invocation.
const KUBECTL_TIMEOUT_SECS: &str = "60";
/// Bound on any single kube-rs call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl` for the test server, killed if it runs longer than a minute.
fn kubectl(server: &ApiServer) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg(KUBECTL_TIMEOUT_SECS)
        .arg(server.bin_dir.join("kubectl"))
        .arg("--request-timeout=30s")
        .env("KUBECONFIG", &server.kubeconfig);
    cmd
}

fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("kubectl starts");
    {
        let mut input = child.stdin.take().expect("stdin is piped");
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .expect("kubectl reads stdin");
        }
    }
    child.wait_with_output().expect("kubectl finishes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `kubectl apply --validate=false` of `manifest` in `namespace`.
fn apply(server: &ApiServer, namespace: &str, manifest: &str) -> Output {
    let mut cmd = kubectl(server);
    cmd.args(["apply", "--validate=false", "-n", namespace, "-f", "-"]);
    run(cmd, Some(manifest))
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{prefix}-{}-{:06}", std::process::id(), nanos % 1_000_000)
}

/// A namespace of this test run; it is deleted, with its objects, when it is dropped.
struct TestNamespace {
    server: ApiServer,
    name: String,
}

impl TestNamespace {
    fn new(server: &ApiServer, prefix: &str) -> TestNamespace {
        let name = unique(prefix);
        server.create_namespace(&name);
        TestNamespace {
            server: server.clone(),
            name,
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        self.server.delete_namespace(&self.name);
    }
}

/// The test server with the generated CRDs from crds/ installed, Established and serving
/// their current schema.
fn server() -> ApiServer {
    static READY: OnceLock<ApiServer> = OnceLock::new();
    READY
        .get_or_init(|| {
            let server = apiserver::ensure();
            install_crds(&server);
            server
        })
        .clone()
}

fn install_crds(server: &ApiServer) {
    let crds = root().join("crds");
    let mut cmd = kubectl(server);
    cmd.args([
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=crd-schema-test",
        "--validate=false",
        "-f",
    ])
    .arg(&crds);
    let out = run(cmd, None);
    assert!(
        out.status.success(),
        "the generated CRDs install:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let mut cmd = kubectl(server);
    cmd.args(["wait", "--for=condition=Established", "--timeout=60s", "-f"])
        .arg(&crds);
    let out = run(cmd, None);
    assert!(
        out.status.success(),
        "the CRDs become Established:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // An updated CRD is served with its new schema a moment after it is Established: wait
    // until a probe that only the new rules reject is rejected by each kind.
    let probes = [
        "eas-partition-and-batch.yaml",
        "routine-sum-below-100.yaml",
        "app-version-without-prefix.yaml",
    ];
    let namespace = unique("crd-probe");
    server.create_namespace(&namespace);
    for probe in probes {
        let bad = BadManifest::load(&root().join("tests/bad-manifests").join(probe));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut cmd = kubectl(server);
            cmd.args([
                "apply",
                "--dry-run=server",
                "--validate=false",
                "-n",
                &namespace,
                "-f",
                "-",
            ]);
            let out = run(cmd, Some(bad.documents.last().expect("one document")));
            if !out.status.success() && text(&out.stderr).contains(&bad.expect) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the new schema is not served after 60s: probe {probe} gave\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn examples() -> Vec<PathBuf> {
    let files = yaml_files(&root().join("examples"));
    assert!(files.len() >= 7, "examples/ holds every variant: {files:?}");
    files
}

/// `sent` is contained in `stored`: every field the manifest sets survived (none was pruned
/// as unknown) with the same value.
fn assert_contains(stored: &Value, sent: &Value, path: &str) {
    match (stored, sent) {
        (Value::Object(stored), Value::Object(sent)) => {
            for (key, value) in sent {
                let child = format!("{path}.{key}");
                let Some(kept) = stored.get(key) else {
                    panic!("{child} was dropped by the API server (unknown field?)");
                };
                assert_contains(kept, value, &child);
            }
        }
        (Value::Array(stored), Value::Array(sent)) => {
            assert_eq!(stored.len(), sent.len(), "{path}");
            for (i, (a, b)) in stored.iter().zip(sent).enumerate() {
                assert_contains(a, b, &format!("{path}[{i}]"));
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64(), b.as_f64(), "{path}");
        }
        _ => assert_eq!(stored, sent, "{path}"),
    }
}

#[test]
fn every_example_is_accepted_by_kubectl_and_kept_whole() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-examples");
    for file in examples() {
        let manifest = std::fs::read_to_string(&file).expect("example is readable");
        let out = apply(&server, &ns.name, &manifest);
        assert!(
            out.status.success(),
            "{} is rejected:\n{}",
            file.display(),
            text(&out.stderr)
        );
        let sent: Value = serde_yaml::from_str(&manifest).expect("example is YAML");
        let kind = sent["kind"].as_str().expect("example has a kind");
        let name = sent["metadata"]["name"]
            .as_str()
            .expect("example has a name");
        let mut cmd = kubectl(&server);
        cmd.args(["get", kind, name, "-n", &ns.name, "-o", "json"]);
        let out = run(cmd, None);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let stored: Value = serde_json::from_slice(&out.stdout).expect("kubectl prints JSON");
        assert_contains(
            &stored["spec"],
            &sent["spec"],
            &format!("{}: spec", file.display()),
        );
    }
}

/// Create `object` with the typed API, read it back and return what the server stored.
async fn create_typed<K>(client: &kube::Client, namespace: &str, object: K) -> K
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::Serialize
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.meta().name.clone().expect("examples are named");
    tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &object))
        .await
        .expect("create answers in time")
        .unwrap_or_else(|e| panic!("creating {name} through kube-rs: {e}"));
    tokio::time::timeout(CALL_TIMEOUT, api.get(&name))
        .await
        .expect("get answers in time")
        .expect("the created object can be read")
}

#[tokio::test]
async fn every_example_is_accepted_through_the_typed_api_and_round_trips() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-typed");
    let client = server.client().await;
    for file in examples() {
        let manifest = std::fs::read_to_string(&file).expect("example is readable");
        let kind: Value = serde_yaml::from_str(&manifest).expect("example is YAML");
        match kind["kind"].as_str() {
            Some("EasServiceRollout") => {
                let sent: EasServiceRollout =
                    serde_yaml::from_str(&manifest).expect("example fits the Rust type");
                let stored = create_typed(&client, &ns.name, sent.clone()).await;
                assert_eq!(stored.spec, sent.spec, "{}", file.display());
            }
            Some("EsaRoutineRollout") => {
                let sent: EsaRoutineRollout =
                    serde_yaml::from_str(&manifest).expect("example fits the Rust type");
                let stored = create_typed(&client, &ns.name, sent.clone()).await;
                let mut expected = sent.spec.clone();
                expected.region.get_or_insert(EsaRegion::CnHangzhou);
                assert_eq!(stored.spec, expected, "{}", file.display());
            }
            Some("EsaContainerAppRollout") => {
                let sent: EsaContainerAppRollout =
                    serde_yaml::from_str(&manifest).expect("example fits the Rust type");
                let stored = create_typed(&client, &ns.name, sent.clone()).await;
                let mut expected = sent.spec.clone();
                expected.region.get_or_insert(EsaRegion::CnHangzhou);
                assert_eq!(stored.spec, expected, "{}", file.display());
            }
            other => panic!("{}: unexpected kind {other:?}", file.display()),
        }
    }
}

/// The API server fills in the defaults, so controllers never see a missing value.
#[tokio::test]
async fn defaults_are_applied_by_the_api_server() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-defaults");
    let client = server.client().await;

    // Send the bare JSON (not the typed value, whose serde defaults would fill the fields).
    let api: Api<EasServiceRollout> = Api::namespaced(client.clone(), &ns.name);
    let bare = serde_json::json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": "defaults"},
        "spec": {"region": "cn-shanghai", "serviceName": "qwen_chat", "strategy": {"batch": {}}},
    });
    tokio::time::timeout(
        CALL_TIMEOUT,
        api.patch(
            "defaults",
            &PatchParams::apply("crd-schema-test"),
            &Patch::Apply(&bare),
        ),
    )
    .await
    .expect("apply answers in time")
    .expect("a minimal batch rollout is accepted");
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns.name,
        &kube::api::ApiResource::erase::<EasServiceRollout>(&()),
    );
    let stored = tokio::time::timeout(CALL_TIMEOUT, raw.get("defaults"))
        .await
        .expect("get answers in time")
        .expect("the object can be read");
    let spec = &stored.data["spec"];
    assert_eq!(spec["strategy"]["batch"]["size"], "25%");
    assert_eq!(spec["paused"], false);
    assert_eq!(spec["deletionPolicy"], "Retain");

    let bare_app = serde_json::json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EsaContainerAppRollout",
        "metadata": {"name": "defaults"},
        "spec": {"appId": "app-880688675783794688", "versionId": "ver-879626371616514048", "env": "production"},
    });
    let apps: Api<EsaContainerAppRollout> = Api::namespaced(client.clone(), &ns.name);
    let stored = tokio::time::timeout(
        CALL_TIMEOUT,
        apps.patch(
            "defaults",
            &PatchParams::apply("crd-schema-test"),
            &Patch::Apply(&bare_app),
        ),
    )
    .await
    .expect("apply answers in time")
    .expect("an app rollout without percentage, regions or steps is accepted (it means 100%)");
    assert_eq!(stored.spec.region, Some(EsaRegion::CnHangzhou));
    assert!(!stored.spec.paused);
    assert!(!stored.spec.rollback);
}

/// A rejected write through kube-rs carries the rule's message, so a client (or a
/// controller) sees the same explanation as a kubectl user.
#[tokio::test]
async fn typed_api_reports_the_rule_message() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-typed-bad");
    let client = server.client().await;
    let manifest = std::fs::read_to_string(root().join("examples/routine-canary.yaml")).unwrap();
    let mut bad: EsaRoutineRollout = serde_yaml::from_str(&manifest).unwrap();
    let canary = bad.spec.canary.as_mut().expect("the example is a canary");
    canary.canary_version = canary.stable_version.clone();
    let api: Api<EsaRoutineRollout> = Api::namespaced(client, &ns.name);
    let err = tokio::time::timeout(CALL_TIMEOUT, api.create(&PostParams::default(), &bad))
        .await
        .expect("create answers in time")
        .expect_err("a canary of the stable version is rejected");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status
                    .message
                    .contains("canary.canaryVersion must differ from canary.stableVersion"),
                "{}",
                status.message
            );
        }
        other => panic!("expected an API error, got {other}"),
    }
}

/// With strict field validation (kubectl's default), a misspelt or unknown field is an
/// error rather than silently dropped.
#[tokio::test]
async fn unknown_fields_are_refused_under_strict_validation() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-strict");
    let client = server.client().await;
    let api: Api<EasServiceRollout> = Api::namespaced(client, &ns.name);
    let body = serde_json::json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": "strict"},
        "spec": {
            "region": "cn-shanghai",
            "serviceName": "qwen_chat",
            "strategy": {"partition": "2", "maxSurge": "1"},
        },
    });
    let err = tokio::time::timeout(
        CALL_TIMEOUT,
        api.patch(
            "strict",
            &PatchParams::apply("crd-schema-test").validation_strict(),
            &Patch::Apply(&body),
        ),
    )
    .await
    .expect("apply answers in time")
    .expect_err("an unknown field is refused");
    assert!(
        err.to_string().contains("spec.strategy.maxSurge"),
        "the error names the field: {err}"
    );
}

/// A service config using the fields of the EAS service config reference the way its
/// examples do: the typed schema takes it whole (nothing refused, nothing pruned).
#[test]
fn a_full_eas_service_config_is_kept_whole() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-eas-config");
    let manifest = r#"
apiVersion: rollouts.alicloud.dev/v1alpha1
kind: EasServiceRollout
metadata:
  name: full-config
spec:
  region: cn-shanghai
  serviceName: demo
  strategy:
    partition: "1"
  serviceConfig:
    name: demo
    metadata:
      name: demo
      instance: 2
      workspace_id: "12345"
      cpu: 2
      memory: 4000
      gpu: 1
      shm_size: 64
      enable_grpc: true
      rpc.keepalive: 60000
      rpc.batching: false
      eas.termination_grace_period: 30
      rolling_strategy: {max_surge: "10%", max_unavailable: 1}
      labels: {eas.aliyun.com/enable-rollout: "true"}
    cloud:
      computing:
        instances:
          - type: ecs.c7a.large
          - type: ecs.gn6i-c4g1.xlarge
            spot_price_limit: 3.5
      networking:
        vpc_id: vpc-1
        vswitch_id: vsw-1
        security_group_id: sg-1
    containers:
      - image: eas-registry-vpc.cn-hangzhou.cr.aliyuncs.com/pai-eas/python-inference:py39-ubuntu2004
        script: python app.py
        port: 8000
        env:
          - {name: MODEL, value: /models/qwen}
        prepare:
          pythonRequirements: [fastapi, uvicorn]
    storage:
      - mount_path: /models
        oss: {path: "oss://bucket/models/", readOnly: true}
      - mount_path: /data
        nfs: {path: /share, server: 0a1b.cn-shanghai.nas.aliyuncs.com, readOnly: false}
      - mount_path: /dev/shm
        empty_dir: {medium: memory, size_limit: 20}
    networking: {disable_internet_endpoint: true}
    autoscaler:
      min: 1
      max: 4
      scaleStrategies:
        - {metricName: qps, threshold: 10}
    runtime: {enable_crash_block: false}
    features: {eas.aliyun.com/extra-ephemeral-storage: 100Gi}
    labels: {team: ml}
    unit: {specification: small}
"#;
    let out = apply(&server, &ns.name, manifest);
    assert!(out.status.success(), "refused:\n{}", text(&out.stderr));
    let mut cmd = kubectl(&server);
    cmd.args([
        "get",
        "easservicerollout",
        "full-config",
        "-n",
        &ns.name,
        "-o",
        "json",
    ]);
    let out = run(cmd, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stored: Value = serde_json::from_slice(&out.stdout).expect("kubectl prints JSON");
    let sent: Value = serde_yaml::from_str(manifest).expect("YAML");
    assert_contains(&stored["spec"], &sent["spec"], "spec");
}

/// `{"n":{"n":...}}` nested `levels` deep around `leaf`.
fn nested(levels: usize, leaf: Value) -> Value {
    (0..levels).fold(leaf, |inner, _| serde_json::json!({ "n": inner }))
}

fn eas_body(name: &str, service_config: Value) -> Value {
    serde_json::json!({
        "apiVersion": "rollouts.alicloud.dev/v1alpha1",
        "kind": "EasServiceRollout",
        "metadata": {"name": name},
        "spec": {
            "region": "cn-shanghai",
            "serviceName": "qwen_chat",
            "strategy": {"partition": "2"},
            "serviceConfig": service_config,
        },
    })
}

/// The hostile service configs of issue 13: a document nested 300 levels deep and one of
/// 1 MB. Neither is ever stored: refused with a message naming the field, or (the unknown
/// field, under non-strict validation) pruned before it is stored.
#[tokio::test]
async fn deep_and_huge_service_configs_are_refused_or_never_stored() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-hostile");
    let client = server.client().await;
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client,
        &ns.name,
        &kube::api::ApiResource::erase::<EasServiceRollout>(&()),
    );
    let create = |name: &str, config: Value, strict: bool| {
        let api = api.clone();
        let body: kube::api::DynamicObject =
            serde_json::from_value(eas_body(name, config)).expect("a dynamic object");
        let name = name.to_string();
        async move {
            let call = async {
                if strict {
                    let params = PatchParams::apply("crd-schema-test").validation_strict();
                    api.patch(&name, &params, &Patch::Apply(&body)).await
                } else {
                    api.create(&PostParams::default(), &body).await
                }
            };
            tokio::time::timeout(CALL_TIMEOUT, call)
                .await
                .expect("the call answers in time")
        }
    };

    // 300 levels of a field EAS does not have.
    let deep = nested(300, Value::String("deep".into()));
    let err = create("deep-strict", deep.clone(), true)
        .await
        .expect_err("strict validation refuses the unknown field");
    assert!(
        err.to_string().contains("spec.serviceConfig.n"),
        "the error names the field: {err}"
    );
    let stored = create("deep-lax", deep, false)
        .await
        .expect("without strict validation the unknown field is dropped");
    assert_eq!(
        stored.data["spec"]["serviceConfig"],
        serde_json::json!({}),
        "nothing deep is stored"
    );

    // 300 levels where the schema has a place for a value: refused by type.
    let deep_label =
        serde_json::json!({"metadata": {"labels": {"team": nested(300, Value::Null)}}});
    let err = create("deep-label", deep_label, false)
        .await
        .expect_err("a label holding an object is refused");
    assert!(
        err.to_string().contains("must be of type string"),
        "the error says what the field takes: {err}"
    );

    // 1 MB in one script, and 1 MB spread over unknown fields.
    let huge_script = serde_json::json!({"containers": [{"image": "registry/qwen:2", "script": "x".repeat(1 << 20)}]});
    let err = create("huge-script", huge_script, false)
        .await
        .expect_err("a 1 MB script is refused");
    assert!(
        err.to_string()
            .contains("spec.serviceConfig.containers[0].script")
            && err.to_string().contains("may not be more than 4096 bytes"),
        "the error names the field and its bound: {err}"
    );
    let huge_keys: serde_json::Map<String, Value> = (0..1024)
        .map(|i| (format!("k{i}"), Value::String("v".repeat(1024))))
        .collect();
    let err = create(
        "huge-labels",
        serde_json::json!({"labels": Value::Object(huge_keys)}),
        false,
    )
    .await
    .expect_err("1 MB of labels is refused");
    assert!(
        err.to_string().contains("spec.serviceConfig.labels"),
        "the error names the field: {err}"
    );
}

/// One file of tests/bad-manifests: what the user wrote and what they must be told.
struct BadManifest {
    /// Fragment the API server's error must contain (`# expect: ...`).
    expect: String,
    /// YAML documents: all but the last must be accepted (they set up an object to
    /// update); the last must be rejected.
    documents: Vec<String>,
}

impl BadManifest {
    fn load(path: &Path) -> BadManifest {
        let content = std::fs::read_to_string(path).expect("bad manifest is readable");
        let expect = content
            .lines()
            .find_map(|l| l.strip_prefix("# expect:"))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| panic!("{} has no `# expect: ...` line", path.display()));
        let documents = content
            .split("\n---\n")
            .map(str::to_string)
            .filter(|d| {
                d.lines()
                    .any(|l| !l.starts_with('#') && !l.trim().is_empty())
            })
            .collect::<Vec<_>>();
        assert!(!documents.is_empty(), "{} has no document", path.display());
        BadManifest { expect, documents }
    }
}

#[test]
fn every_bad_manifest_is_rejected_with_a_message_saying_what_to_fix() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-bad");
    let files = yaml_files(&root().join("tests/bad-manifests"));
    assert!(
        files.len() >= 25,
        "the corpus covers every rule: {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let bad = BadManifest::load(file);
        let (last, setup) = bad.documents.split_last().expect("one document");
        for document in setup {
            let out = apply(&server, &ns.name, document);
            assert!(
                out.status.success(),
                "{}: the object to update is rejected:\n{}",
                file.display(),
                text(&out.stderr)
            );
        }
        let out = apply(&server, &ns.name, last);
        let stderr = text(&out.stderr);
        if out.status.success() {
            failures.push(format!(
                "{}: accepted ({})",
                file.display(),
                text(&out.stdout).trim()
            ));
        } else if !stderr.contains(&bad.expect) {
            failures.push(format!(
                "{}: rejected without {:?}:\n{stderr}",
                file.display(),
                bad.expect
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad manifests misbehaved:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

/// The column headers kubectl prints for each kind.
const HEADERS: [&[&str]; 3] = [
    &[
        "NAME", "SERVICE", "STRATEGY", "PHASE", "UPDATED", "TOTAL", "READY", "AGE",
    ],
    &["NAME", "ROUTINE", "ENV", "PHASE", "SPLIT", "STEP", "AGE"],
    &[
        "NAME",
        "APP",
        "VERSION",
        "ENV",
        "PHASE",
        "PUBLISH STATUS",
        "PERCENT",
        "AGE",
    ],
];

fn patch_status(server: &ApiServer, namespace: &str, resource: &str, status: Value) -> Output {
    let mut cmd = kubectl(server);
    cmd.args([
        "patch",
        resource,
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
    ])
    .arg(serde_json::json!({ "status": status }).to_string());
    run(cmd, None)
}

#[test]
fn category_lists_every_kind_with_its_printer_columns() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-columns");
    for example in [
        "eas-partition.yaml",
        "routine-canary.yaml",
        "containerapp-percentage.yaml",
    ] {
        let manifest = std::fs::read_to_string(root().join("examples").join(example)).unwrap();
        let out = apply(&server, &ns.name, &manifest);
        assert!(out.status.success(), "{example}: {}", text(&out.stderr));
    }
    let now = "2026-06-05T16:00:00Z";
    let ready = |status: &str| {
        serde_json::json!([{
            "type": "Ready", "status": status, "reason": "Rolling", "message": "",
            "lastTransitionTime": now,
        }])
    };
    let statuses = [
        (
            "easservicerollout/qwen-chat",
            serde_json::json!({
                "phase": "Running", "cloudStrategy": "partition=4", "updatedReplicas": 2,
                "totalReplicas": 6, "conditions": ready("False"),
            }),
        ),
        (
            "esaroutinerollout/image-resizer-staging",
            serde_json::json!({
                "phase": "Progressing", "split": "1723688023417750321:20,1723599747213377175:80",
                "currentStep": 1, "conditions": ready("False"),
            }),
        ),
        (
            "esacontainerapprollout/checkout-api",
            serde_json::json!({
                "phase": "Completed", "publishStatus": "published", "publishPercentage": 10,
                "conditions": ready("True"),
            }),
        ),
    ];
    for (resource, status) in statuses {
        let out = patch_status(&server, &ns.name, resource, status);
        assert!(out.status.success(), "{resource}: {}", text(&out.stderr));
    }

    let mut cmd = kubectl(&server);
    cmd.args(["get", "alicloud-rollouts", "-n", &ns.name]);
    let out = run(cmd, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    for headers in HEADERS {
        let line = table
            .lines()
            .find(|l| l.starts_with("NAME") && headers.iter().all(|h| l.contains(h)))
            .unwrap_or_else(|| panic!("no header line with {headers:?} in\n{table}"));
        assert!(!line.is_empty());
    }
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("{name} is not listed:\n{table}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let eas = row("/qwen-chat");
    assert_eq!(
        eas[1..7],
        [
            "qwen_chat_prod",
            "partition=4",
            "Running",
            "2",
            "6",
            "False"
        ],
        "{table}"
    );
    let routine = row("/image-resizer-staging");
    assert_eq!(
        routine[1..6],
        [
            "image-resizer",
            "staging",
            "Progressing",
            "1723688023417750321:20,1723599747213377175:80",
            "1"
        ],
        "{table}"
    );
    let app = row("/checkout-api");
    assert_eq!(
        app[1..7],
        [
            "app-880688675783794688",
            "ver-879626371616514048",
            "production",
            "Completed",
            "published",
            "10"
        ],
        "{table}"
    );
}

/// `status.conditions` is a list map keyed by `type`: two conditions of one type are refused
/// (and server-side apply can merge conditions written by different managers).
#[test]
fn conditions_are_keyed_by_type() {
    let server = server();
    let ns = TestNamespace::new(&server, "crd-conditions");
    let manifest = std::fs::read_to_string(root().join("examples/eas-batch.yaml")).unwrap();
    let out = apply(&server, &ns.name, &manifest);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let condition = |status: &str| {
        serde_json::json!({
            "type": "Ready", "status": status, "reason": "Rolling", "message": "",
            "lastTransitionTime": "2026-06-05T16:00:00Z",
        })
    };
    let out = patch_status(
        &server,
        &ns.name,
        "easservicerollout/bert-embeddings",
        serde_json::json!({ "conditions": [condition("True"), condition("False")] }),
    );
    assert!(!out.status.success(), "two Ready conditions are refused");
    assert!(
        text(&out.stderr).contains("Duplicate value"),
        "{}",
        text(&out.stderr)
    );
    let out = patch_status(
        &server,
        &ns.name,
        "easservicerollout/bert-embeddings",
        serde_json::json!({ "conditions": [condition("True")], "phase": "Completed" }),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}
