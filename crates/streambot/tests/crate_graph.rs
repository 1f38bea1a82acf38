//! The workspace's crate graph, read from `cargo metadata`: the layers stay apart, so the bot and
//! the dashboard (which only need the job store) do not compile the recorder, and `core` stays the
//! shared vocabulary with no workspace dependency.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// Each workspace package's normal (non-dev, non-build) dependencies on workspace packages.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .filter_map(|package| package["name"].as_str().map(str::to_string))
        .collect();
    packages
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("name").to_string();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|dependency| dependency["kind"].is_null())
                .filter_map(|dependency| dependency["name"].as_str())
                .filter(|dependency| names.contains(*dependency))
                .map(str::to_string)
                .collect();
            (name, dependencies)
        })
        .collect()
}

fn dependencies_of<'a>(
    graph: &'a BTreeMap<String, BTreeSet<String>>,
    package: &str,
) -> &'a BTreeSet<String> {
    graph
        .get(package)
        .unwrap_or_else(|| panic!("{package} is a workspace package"))
}

/// The crates that record, transcode or store files: what a crate that only needs the job store
/// must not compile.
const RECORDING_SIDE: [&str; 6] = [
    "streambot-hls",
    "streambot-ffmpeg",
    "streambot-mp4remux",
    "streambot-recorder",
    "streambot-worker",
    "streambot-storage",
];

#[test]
fn core_depends_on_no_workspace_crate() {
    let graph = workspace_dependencies();
    assert_eq!(
        dependencies_of(&graph, "streambot-core"),
        &BTreeSet::new(),
        "core is the shared vocabulary"
    );
}

#[test]
fn the_native_remuxer_depends_on_no_workspace_crate() {
    let graph = workspace_dependencies();
    assert_eq!(
        dependencies_of(&graph, "streambot-mp4remux"),
        &BTreeSet::new(),
        "mp4remux is pure parsing and box writing"
    );
}

#[test]
fn the_store_depends_on_core_only() {
    let graph = workspace_dependencies();
    assert_eq!(
        dependencies_of(&graph, "streambot-store"),
        &BTreeSet::from(["streambot-core".to_string()])
    );
}

#[test]
fn the_dashboard_does_not_compile_the_recording_side() {
    let graph = workspace_dependencies();
    let dependencies = dependencies_of(&graph, "streambot-dashboard");
    for forbidden in RECORDING_SIDE {
        assert!(
            !dependencies.contains(forbidden),
            "streambot-dashboard depends on {forbidden}"
        );
    }
}

/// Dependencies of the bot on the recording side that are still needed, with the reason.
const BOT_ALLOWED: [(&str, &str); 2] = [
    (
        "streambot-hls",
        "the bot checks a URL before it makes a job (hls::url_safety, NetworkPolicy)",
    ),
    (
        "streambot-storage",
        "the bot reaches Drive/local storage itself (admin storage check, BotContext::storage) until delivery moves to the worker (issue 13)",
    ),
];

#[test]
fn the_bot_does_not_compile_the_recording_side_beyond_its_allow_list() {
    let graph = workspace_dependencies();
    let dependencies = dependencies_of(&graph, "streambot-bot");
    for forbidden in RECORDING_SIDE {
        let allowed = BOT_ALLOWED.iter().any(|(name, _reason)| *name == forbidden);
        assert!(
            allowed || !dependencies.contains(forbidden),
            "streambot-bot depends on {forbidden}"
        );
    }
    // An allow-list entry that is no longer needed is removed.
    for (name, reason) in BOT_ALLOWED {
        assert!(
            dependencies.contains(name),
            "streambot-bot no longer depends on {name}: drop its allow-list entry ({reason})"
        );
    }
}

#[test]
fn the_worker_uses_the_store_and_the_recording_side() {
    let graph = workspace_dependencies();
    let dependencies = dependencies_of(&graph, "streambot-worker");
    for needed in [
        "streambot-store",
        "streambot-recorder",
        "streambot-hls",
        "streambot-ffmpeg",
        "streambot-storage",
    ] {
        assert!(dependencies.contains(needed), "the worker uses {needed}");
    }
    assert!(
        !graph.contains_key("streambot-jobs"),
        "crates/jobs was split"
    );
}
