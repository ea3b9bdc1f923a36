//! `kubectl alicloud-rollouts`: kubectl runs this binary for `kubectl alicloud-rollouts ...`
//! (kubectl maps the dash in a plugin name to an underscore in the file name). All the
//! logic is in the library's `plugin` module.

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    alicloud_rollouts::plugin::main().await
}
