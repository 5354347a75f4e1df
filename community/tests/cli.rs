//! The community binaries start and describe themselves. (The demo runs end to end in
//! node/tests/it/demo.rs and node/tests/it/linkage.rs, the load generator in the benchmarks of
//! docs/benchmarks.md; both need validators, which the node's test helpers start.)

use std::process::Command;

fn help(exe: &str) -> String {
    let out = Command::new(exe).arg("--help").output().unwrap();
    assert!(out.status.success(), "{exe} --help failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_demo_lists_its_options() {
    let text = help(env!("CARGO_BIN_EXE_veilwatt-demo"));
    for option in [
        "--households",
        "--periods",
        "--validators",
        "--period-secs",
        "--json",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}

#[test]
fn the_load_generator_lists_its_options() {
    let text = help(env!("CARGO_BIN_EXE_veilwatt-load"));
    for option in [
        "--node",
        "--genesis",
        "--registrar-key",
        "--orders",
        "--concurrency",
    ] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
}

#[test]
fn a_bad_option_is_refused_with_a_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_veilwatt-demo"))
        .args(["--households", "many"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--households"));
}
