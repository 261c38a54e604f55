//! Running the `trackstack` binary from integration tests.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// The binary with the developer's own `TRACKSTACK_*` environment removed, so it cannot leak into a test.
pub fn trackstack() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trackstack"));
    // The developer's own environment must not leak into these checks.
    for (key, _) in std::env::vars() {
        if key.starts_with("TRACKSTACK_") || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// Starts `trackstack server` on an ephemeral port with `env` set; returns it and its URL once it listens.
pub fn spawn_server(data_dir: &std::path::Path, env: &[(&str, String)]) -> (std::process::Child, String) {
    let mut command = trackstack();
    command.args(["server", "--bind", "127.0.0.1:0", "--data-dir"]).arg(data_dir);
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("Trackstack is listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (child, url)
}
