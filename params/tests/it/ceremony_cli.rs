//! `veilwatt-params ceremony ...` as a coordinator and contributors run it.

use std::path::Path;
use std::process::{Command, Output};

fn params(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veilwatt-params"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = params(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_ceremony_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ptau = d.join("pot.ptau");
    ok(&["dev-ptau", "--out", s(&ptau), "--seed", "3"]);
    let init = ok(&[
        "ceremony",
        "init",
        "--ptau",
        s(&ptau),
        "--out",
        s(&d.join("r0")),
        // The library's tests run every circuit through a ceremony; here the order circuit
        // alone keeps each step's process (each one rebuilds the initial keys) short.
        "--circuit",
        "order",
    ]);
    assert!(init.contains("order: 6558 constraints"), "{init}");
    assert!(!init.contains("joinsplit"), "{init}");
    for f in ["ceremony.json", "order.r1cs", "order.zkey"] {
        assert!(d.join("r0").join(f).is_file(), "{f}");
    }
    assert!(!d.join("r0").join("joinsplit.zkey").exists());
    let c1 = ok(&[
        "ceremony",
        "contribute",
        "--in",
        s(&d.join("r0")),
        "--out",
        s(&d.join("r1")),
        "--name",
        "alice",
    ]);
    assert!(
        c1.contains("Your contribution hash for the order circuit"),
        "{c1}"
    );
    // The printed hash is the one verify lists later: the first hex word of it.
    let word = c1
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let b = ok(&[
        "ceremony",
        "beacon",
        "--in",
        s(&d.join("r1")),
        "--out",
        s(&d.join("r2")),
        "--beacon",
        "0x0123456789abcdef",
        "--iterations",
        "10",
    ]);
    assert!(b.contains("Beacon contribution hash"), "{b}");
    let v = ok(&["ceremony", "verify", s(&d.join("r2"))]);
    assert!(
        v.contains("contribution #1 alice") && v.contains(&word),
        "{v}"
    );
    assert!(
        v.contains("contribution #2 final beacon [beacon 0123456789abcdef"),
        "{v}"
    );
    assert!(v.contains("transcript OK"), "{v}");
    let f = ok(&[
        "ceremony",
        "finalize",
        "--in",
        s(&d.join("r2")),
        "--out",
        s(&d.join("keys")),
    ]);
    let vk_id = f
        .lines()
        .find_map(|l| l.strip_prefix("vk_id "))
        .unwrap()
        .to_owned();
    let pk_id = f
        .lines()
        .find_map(|l| l.strip_prefix("pk_id "))
        .unwrap()
        .to_owned();
    let check = ok(&[
        "check",
        "--dir",
        s(&d.join("keys")),
        "--vk-id",
        &vk_id,
        "--pk-id",
        &pk_id,
    ]);
    assert!(check.contains("\"kind\":\"ceremony\""), "{check}");

    // Refusals, each with a clear message and a non-zero exit.
    let fails = |args: &[&str], needle: &str| {
        let out = params(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(err.contains(needle), "{args:?}: {err}");
    };
    fails(
        &[
            "ceremony",
            "contribute",
            "--in",
            s(&d.join("r1")),
            "--out",
            s(&d.join("r1")),
        ],
        "must differ",
    );
    fails(
        &[
            "ceremony",
            "beacon",
            "--in",
            s(&d.join("r1")),
            "--out",
            s(&d.join("rb")),
            "--beacon",
            "zz",
            "--iterations",
            "10",
        ],
        "hex",
    );
    fails(
        &[
            "ceremony",
            "beacon",
            "--in",
            s(&d.join("r1")),
            "--out",
            s(&d.join("rb")),
            "--beacon",
            "01",
            "--iterations",
            "5",
        ],
        "10..=63",
    );
    fails(
        &[
            "ceremony",
            "finalize",
            "--in",
            s(&d.join("r0")),
            "--out",
            s(&d.join("k0")),
        ],
        "no contribution",
    );
    let small = d.join("small.ptau");
    ok(&["dev-ptau", "--out", s(&small), "--power", "10"]);
    fails(
        &[
            "ceremony",
            "init",
            "--ptau",
            s(&small),
            "--out",
            s(&d.join("x")),
        ],
        "power 10",
    );
    fails(
        &[
            "ceremony",
            "init",
            "--ptau",
            s(&ptau),
            "--out",
            s(&d.join("y")),
            "--circuit",
            "mint",
        ],
        "unknown circuit",
    );
    let zkey = d.join("r2").join("order.zkey");
    let bytes = std::fs::read(&zkey).unwrap();
    std::fs::write(&zkey, &bytes[..bytes.len() - 7]).unwrap();
    fails(&["ceremony", "verify", s(&d.join("r2"))], "truncated");
}
