//! The krew manifest of the kubectl plugin: a template whose URLs and sha256 are filled at
//! release from the archives themselves (scripts/krew-manifest.sh), never by hand.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

const BIN: &str = "kubectl-alicloud_rollouts";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(args: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(root().join("scripts/krew-manifest.sh"))
        .args(args)
        .output()
        .expect("bash runs")
}

fn targets(manifest: &str) -> Vec<String> {
    let mut t: Vec<String> = manifest
        .split("@SHA256_")
        .skip(1)
        .filter_map(|rest| rest.split('@').next())
        .map(str::to_string)
        .collect();
    t.sort();
    t.dedup();
    t
}

fn archive(dist: &Path, target: &str, contents: &str) -> PathBuf {
    let path = dist.join(format!("{BIN}-v0.3.1-{target}.tar.gz"));
    std::fs::write(&path, contents).expect("archive written");
    path
}

#[test]
fn the_template_has_placeholders_only_and_names_the_built_binary() {
    let template =
        std::fs::read_to_string(root().join("plugins/alicloud-rollouts.yaml")).expect("template");
    // No sha256 that could pass for a real one.
    for line in template.lines().filter(|l| l.contains("sha256:")) {
        assert!(
            line.contains("@SHA256_"),
            "a filled sha256 in the template: {line}"
        );
    }
    // The binary krew runs is the one Cargo builds.
    let cargo = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    assert!(cargo.contains(&format!("name = \"{BIN}\"")), "{cargo}");
    assert_eq!(targets(&template).len(), 4, "{template}");
}

#[test]
fn fill_puts_each_archive_s_own_sha256_and_url() {
    let template =
        std::fs::read_to_string(root().join("plugins/alicloud-rollouts.yaml")).expect("template");
    let dist = tempfile::tempdir().expect("tempdir");
    let mut want = Vec::new();
    for target in targets(&template) {
        let path = archive(dist.path(), &target, &format!("archive for {target}"));
        let sha = hex::encode(Sha256::digest(std::fs::read(&path).expect("read")));
        want.push((target, sha));
    }
    let out = script(&[
        "fill",
        "v0.3.1",
        "https://downloads.example/alicloud-rollouts/v0.3.1/",
        "https://example/alicloud-rollouts",
        dist.path().to_str().expect("utf-8 path"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_yaml::from_str(&text).expect("the filled manifest is YAML");
    assert_eq!(manifest["kind"], "Plugin");
    assert_eq!(manifest["metadata"]["name"], "alicloud-rollouts");
    assert_eq!(manifest["spec"]["version"], "v0.3.1");
    assert_eq!(
        manifest["spec"]["homepage"],
        "https://example/alicloud-rollouts"
    );
    let platforms = manifest["spec"]["platforms"].as_array().expect("platforms");
    assert_eq!(platforms.len(), want.len());
    for (target, sha) in &want {
        let p = platforms
            .iter()
            .find(|p| {
                p["uri"]
                    .as_str()
                    .is_some_and(|u| u.contains(target.as_str()))
            })
            .unwrap_or_else(|| panic!("a platform for {target}: {text}"));
        assert_eq!(
            p["uri"],
            format!(
                "https://downloads.example/alicloud-rollouts/v0.3.1/{BIN}-v0.3.1-{target}.tar.gz"
            )
        );
        assert_eq!(p["sha256"], sha.as_str(), "{target}");
        assert_eq!(p["bin"], BIN);
    }
    assert!(!text.contains('@'), "a placeholder left: {text}");
}

#[test]
fn fill_refuses_a_missing_archive() {
    let dist = tempfile::tempdir().expect("tempdir");
    archive(dist.path(), "x86_64-unknown-linux-musl", "only one");
    let out = script(&[
        "fill",
        "0.3.1",
        "https://downloads.example",
        "https://example",
        dist.path().to_str().expect("utf-8 path"),
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no archive for"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing half-filled is printed");
}
