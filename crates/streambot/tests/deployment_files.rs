//! The deployment files: `docker/docker-compose.yml` (services, volumes, a scalable worker),
//! `docker/Dockerfile` (two stages, non-root, health check, ffmpeg), and `scripts/setup.sh`
//! (shellcheck, `--dry-run` prints the unit it would write and changes nothing). Tools that are
//! not installed (shellcheck) make their part skip with a message. The Compose file is checked by
//! parsing it (the `docker compose` plugin is not in the package registries this project can use).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_norway::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(workspace_root().join(relative))
        .unwrap_or_else(|error| panic!("{relative}: {error}"))
}

fn compose() -> Value {
    let mut value: Value =
        serde_norway::from_str(&read("docker/docker-compose.yml")).expect("compose file is YAML");
    // `<<: *streambot` merges the shared service settings.
    value.apply_merge().expect("merge keys");
    value
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose
        .get("services")
        .and_then(|services| services.get(name))
        .unwrap_or_else(|| panic!("service {name} missing"))
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(text)) => vec![text.clone()],
        _ => Vec::new(),
    }
}

fn environment(service: &Value, name: &str) -> Option<String> {
    service
        .get("environment")
        .and_then(|environment| environment.get(name))
        .and_then(|value| value.as_str().map(str::to_string))
}

#[test]
fn compose_has_the_services_volumes_and_restart_policies() {
    let compose = compose();
    for name in ["redis", "bot", "worker", "scheduler", "dashboard"] {
        let service = service(&compose, name);
        assert_eq!(
            service.get("restart").and_then(Value::as_str),
            Some("unless-stopped"),
            "{name} restart policy"
        );
    }
    let volumes = compose.get("volumes").expect("top-level volumes");
    for volume in ["redis-data", "recordings"] {
        assert!(volumes.get(volume).is_some(), "volume {volume}");
    }

    // Redis persists (AOF) on a volume.
    let redis = service(&compose, "redis");
    let command = strings(redis.get("command")).join(" ");
    assert!(command.contains("--appendonly yes"), "{command}");
    assert!(
        strings(redis.get("volumes"))
            .iter()
            .any(|volume| volume.starts_with("redis-data:")),
        "redis data volume"
    );
    assert!(redis.get("ports").is_none(), "redis is not published");

    // The roles share Redis, .env and the recordings volume.
    for name in ["bot", "worker", "scheduler", "dashboard"] {
        let service = service(&compose, name);
        assert_eq!(
            strings(service.get("command")),
            vec![name.to_string()],
            "{name} runs its role"
        );
        assert!(
            strings(service.get("env_file"))
                .iter()
                .any(|file| file.ends_with(".env")),
            "{name} env_file"
        );
        assert!(
            environment(service, "REDIS_URL").is_some_and(|url| url.starts_with("redis://redis")),
            "{name} REDIS_URL"
        );
        let recordings = environment(service, "LOCAL_STORAGE_PATH").expect("LOCAL_STORAGE_PATH");
        assert!(
            strings(service.get("volumes"))
                .iter()
                .any(|volume| *volume == format!("recordings:{recordings}")),
            "{name} mounts the recordings volume at LOCAL_STORAGE_PATH={recordings}"
        );
        assert!(service.get("healthcheck").is_some(), "{name} health check");
    }
}

#[test]
fn the_worker_scales_and_the_dashboard_is_on_loopback_only() {
    let compose = compose();
    let worker = service(&compose, "worker");
    assert!(
        worker.get("container_name").is_none(),
        "a container_name stops --scale worker=N"
    );
    assert!(
        worker.get("ports").is_none(),
        "fixed host ports stop --scale worker=N"
    );
    assert!(
        environment(worker, "WORKER_ID").is_none(),
        "each replica has its own id"
    );

    let dashboard = service(&compose, "dashboard");
    let ports = strings(dashboard.get("ports"));
    assert!(!ports.is_empty(), "the dashboard is published");
    for port in ports {
        assert!(
            port.starts_with("127.0.0.1:"),
            "{port}: bind the dashboard to the host's loopback"
        );
    }
    for name in ["redis", "bot", "worker", "scheduler"] {
        assert!(
            service(&compose, name).get("container_name").is_none(),
            "{name}"
        );
    }
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_as_a_user_in_another() {
    let dockerfile = read("docker/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .collect();
    let stages: Vec<&&str> = instructions
        .iter()
        .filter(|line| line.starts_with("FROM "))
        .collect();
    assert_eq!(stages.len(), 2, "two stages: {stages:?}");
    assert!(stages[0].starts_with("FROM rust:"), "{}", stages[0]);
    assert!(stages[1].contains("debian:"), "{}", stages[1]);
    assert!(
        dockerfile.contains("cargo build --release"),
        "builds with cargo"
    );
    assert!(
        dockerfile.contains("-p streambot"),
        "builds the streambot binary"
    );
    assert!(
        dockerfile.contains("COPY --from=builder"),
        "the runtime takes the binary from the builder"
    );
    let runtime = dockerfile
        .split_once(stages[1])
        .map(|(_, runtime)| runtime)
        .expect("runtime stage");
    for package in ["ffmpeg", "ca-certificates"] {
        assert!(
            runtime.contains("apt-get install") && runtime.contains(package),
            "the runtime installs {package}"
        );
    }
    let user = instructions
        .iter()
        .rev()
        .find(|line| line.starts_with("USER "))
        .expect("a USER instruction");
    let user = user.trim_start_matches("USER ").trim();
    assert!(
        user != "root" && user != "0" && !user.starts_with("0:"),
        "runs as {user}"
    );
    assert!(
        instructions
            .iter()
            .any(|line| line.starts_with("HEALTHCHECK ")),
        "HEALTHCHECK"
    );
    assert!(
        instructions
            .iter()
            .any(|line| line.starts_with("VOLUME ") && line.contains("/data")),
        "VOLUME /data"
    );
    // The configuration reference is compiled into the binary (`streambot config check`), so
    // the build context must keep it.
    let ignored = read(".dockerignore");
    assert!(!ignored.lines().any(|line| line.trim() == ".env.example"));
    assert!(
        ignored.lines().any(|line| line.trim() == ".env"),
        "keep .env out of the image"
    );
}

/// `shellcheck SCRIPT`'s findings (empty when clean), or None when shellcheck is not installed.
fn shellcheck(script: &str) -> Option<String> {
    let output = Command::new("shellcheck")
        .arg(script)
        .current_dir(workspace_root())
        .output()
        .ok()?;
    if output.status.code() == Some(0) {
        return Some(String::new());
    }
    let findings = String::from_utf8_lossy(&output.stdout).into_owned();
    // 1: findings; anything else (not installed as expected, bad usage) counts as unavailable.
    (output.status.code() == Some(1)).then_some(findings)
}

#[test]
fn setup_sh_passes_shellcheck() {
    match shellcheck("scripts/setup.sh") {
        None => streambot_testkit::requirements::skip_or_fail(
            "shellcheck",
            "apt-get install -y shellcheck",
        ),
        Some(findings) => assert!(
            findings.is_empty(),
            "shellcheck scripts/setup.sh:\n{findings}"
        ),
    }
}

#[test]
fn the_other_scripts_pass_shellcheck_or_are_reported() {
    let mut scripts: Vec<String> = std::fs::read_dir(workspace_root().join("scripts"))
        .expect("scripts/")
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name == "test.sh" || (name.starts_with("bench-") && name.ends_with(".sh")))
        .map(|name| format!("scripts/{name}"))
        .collect();
    scripts.sort();
    assert!(
        scripts.contains(&"scripts/test.sh".to_string()),
        "{scripts:?}"
    );
    // These belong to other parts of the project: a finding is a warning here, not a failure.
    for script in scripts {
        match shellcheck(&script) {
            None => {
                streambot_testkit::requirements::skip_or_fail(
                    "shellcheck",
                    "apt-get install -y shellcheck",
                );
                return;
            }
            Some(findings) if !findings.is_empty() => {
                eprintln!("warning: shellcheck {script} reports:\n{findings}")
            }
            Some(_) => {}
        }
    }
}

#[test]
fn setup_sh_dry_run_prints_the_unit_and_changes_nothing() {
    let watched = [
        "/etc/systemd/system/streambot-run.service",
        "/etc/streambot",
        "/opt/streambot",
        "/var/lib/streambot",
        "/usr/local/bin/streambot",
    ];
    let before: Vec<bool> = watched
        .iter()
        .map(|path| Path::new(path).exists())
        .collect();
    let binary = env!("CARGO_BIN_EXE_streambot");
    let output = Command::new("bash")
        .args([
            "scripts/setup.sh",
            "--dry-run",
            "--roles",
            "run",
            "--binary",
            binary,
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run scripts/setup.sh --dry-run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "setup.sh --dry-run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let after: Vec<bool> = watched
        .iter()
        .map(|path| Path::new(path).exists())
        .collect();
    assert_eq!(before, after, "a dry run changed {watched:?}");

    if !before[0] {
        assert!(
            stdout.contains("would write /etc/systemd/system/streambot-run.service"),
            "{stdout}"
        );
        for line in [
            "ExecStart=/opt/streambot/bin/streambot run",
            "User=streambot",
            "Restart=always",
            "RestartSec=",
            "EnvironmentFile=/etc/streambot/streambot.env",
        ] {
            assert!(stdout.contains(line), "the unit has {line}:\n{stdout}");
        }
        assert!(
            !stdout.lines().any(|line| line
                .trim_start_matches([' ', '|'])
                .starts_with("WatchdogSec=")),
            "no watchdog: streambot does not speak sd_notify"
        );
    }
    assert!(
        stdout.contains("would run: systemctl enable streambot-run.service"),
        "{stdout}"
    );
    assert!(
        !stdout
            .lines()
            .any(|line| line.starts_with("setup.sh: running:")),
        "a dry run ran something:\n{stdout}"
    );
}
