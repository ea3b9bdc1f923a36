//! The container image, built with no container daemon (`scripts/image.sh`): an OCI image
//! whose one layer holds a statically linked operator binary and the non-root user it runs
//! as. The test reads the image as a runtime would (index, manifest, config, layers, each
//! blob checked against its digest), unpacks the layers into an empty root, and runs the
//! binary's `--version` there, chrooted, as the image's user: with no libc in that root, it
//! only runs if it is static.
//!
//! It packs the static binary of the dev profile, built before the tests: the packing is
//! the same as for a release image (`scripts/image.sh build`), and a second, release build
//! of every dependency would double the compile time of the suite.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

const USER: &str = "65532:65532";
const BINARY: &str = "/usr/local/bin/alicloud-rollouts";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The target dir of this build (the operator binary is at `<dir>/debug/alicloud-rollouts`).
fn target_dir() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_alicloud-rollouts"));
    bin.parent()
        .and_then(Path::parent)
        .expect("the binary is in <target>/<profile>/")
        .to_path_buf()
}

/// The static binary of the dev profile. `cargo test` holds the build directory's lock
/// while tests run, so a test cannot build it: `scripts/image.sh static-binary --profile
/// dev` does, before the tests (scripts/test.sh runs it).
fn static_binary() -> PathBuf {
    let path = target_dir().join("x86_64-unknown-linux-gnu/debug/alicloud-rollouts");
    assert!(
        path.exists(),
        "{} is missing: build it with `scripts/image.sh static-binary --profile dev` \
         (scripts/test.sh does) before `cargo test`",
        path.display()
    );
    path
}

/// `scripts/image.sh build` of the static binary into `out`; the image's name@digest.
fn build_image(out: &Path) -> String {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/image.sh"))
        .arg("build")
        .arg("--binary")
        .arg(static_binary())
        .arg("--out")
        .arg(out)
        .output()
        .expect("scripts/image.sh runs");
    assert!(
        output.status.success(),
        "scripts/image.sh build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A blob of the OCI layout, checked against its digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("a sha256 digest: {digest}"));
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest}: {e}"));
    let actual = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    assert_eq!(actual, hex, "the blob's content matches its digest");
    bytes
}

fn json_blob(layout: &Path, descriptor: &Value) -> Value {
    let digest = descriptor["digest"].as_str().expect("a digest");
    let bytes = blob(layout, digest);
    assert_eq!(
        descriptor["size"].as_u64(),
        Some(bytes.len() as u64),
        "{descriptor}"
    );
    serde_json::from_slice(&bytes).expect("JSON")
}

/// Whether an ELF file names a program interpreter (a dynamic loader): a statically
/// linked executable has no PT_INTERP program header.
fn elf_interpreter(elf: &[u8]) -> Option<usize> {
    assert_eq!(&elf[..4], b"\x7fELF", "an ELF file");
    assert_eq!(elf[4], 2, "64-bit");
    assert_eq!(elf[5], 1, "little-endian");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[o..o + 8]);
        u64::from_le_bytes(b) as usize
    };
    assert_eq!(u16_at(0x12), 62, "x86-64");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum)
        .map(|i| phoff + i * phentsize)
        .find(|&h| u32_at(h) == PT_INTERP)
}

#[test]
fn the_image_runs_the_static_binary_as_its_non_root_user() {
    let dir = tempfile::tempdir().expect("temp dir");
    let reference = build_image(dir.path());
    let layout = dir.path().join("oci");

    // index.json -> the manifest, named with the crate's version.
    let index: Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json")).expect("the layout has an index"),
    )
    .expect("index JSON");
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 1, "{index}");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        manifests[0]["annotations"]["org.opencontainers.image.ref.name"], version,
        "{index}"
    );
    assert!(
        reference.contains(&format!(
            "@{}",
            manifests[0]["digest"].as_str().unwrap_or("?")
        )),
        "the script prints the image's digest: {reference}"
    );
    let manifest = json_blob(&layout, &manifests[0]);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    // The config: who runs what.
    let config = json_blob(&layout, &manifest["config"]);
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["config"]["User"], USER, "a non-root user: {config}");
    assert_eq!(config["config"]["Entrypoint"], serde_json::json!([BINARY]));
    assert_eq!(
        config["config"]["Labels"]["org.opencontainers.image.version"],
        version
    );

    // Unpack every layer, in order, into an empty root.
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).expect("rootfs");
    let layers = manifest["layers"].as_array().expect("layers");
    assert!(!layers.is_empty());
    for layer in layers {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let digest = layer["digest"].as_str().expect("digest");
        blob(&layout, digest);
        let path = layout.join("blobs/sha256").join(&digest["sha256:".len()..]);
        let out = Command::new("tar")
            .arg("-xzf")
            .arg(&path)
            .arg("-C")
            .arg(&rootfs)
            .output()
            .expect("tar runs");
        assert!(
            out.status.success(),
            "unpacking {digest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let passwd = std::fs::read_to_string(rootfs.join("etc/passwd")).expect("/etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nonroot:x:65532:65532:")),
        "the user is named in /etc/passwd: {passwd}"
    );
    let binary = rootfs.join(&BINARY[1..]);
    let elf = std::fs::read(&binary).expect("the binary is in the image");
    assert_eq!(
        elf_interpreter(&elf),
        None,
        "the binary is statically linked (no program interpreter)"
    );
    let libs: Vec<_> = ["lib", "lib64", "usr/lib"]
        .iter()
        .filter(|d| rootfs.join(d).exists())
        .collect();
    assert!(
        libs.is_empty(),
        "no shared libraries in the image: {libs:?}"
    );

    // Run it there, as the image's user, with nothing else in the root.
    let out = Command::new("chroot")
        .arg(format!("--userspec={USER}"))
        .arg(&rootfs)
        .args([BINARY, "--version"])
        .output()
        .expect("chroot runs");
    assert!(
        out.status.success(),
        "the binary runs in the image as {USER} (chroot needs root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("alicloud-rollouts {version}")
    );

    // And the tarball for `docker load` / `podman load` / `crane push` is there too.
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(dir.path().join("alicloud-rollouts.tar"))
        .output()
        .expect("tar runs");
    assert!(
        String::from_utf8_lossy(&listing.stdout)
            .lines()
            .any(|l| l == "manifest.json"),
        "a docker-archive tarball"
    );
}
