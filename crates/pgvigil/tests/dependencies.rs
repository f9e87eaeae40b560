//! The library an application embeds compiles no terminal or command-line crate: its normal
//! dependency tree, as cargo resolves it, holds none of them.

use std::process::Command;

#[test]
fn the_library_depends_on_no_tui_or_cli_crate() {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "pgvigil",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
            "--locked",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(tree.starts_with("pgvigil v"), "{tree}");
    assert!(tree.contains("sqlx v"), "{tree}");
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    for banned in [
        "ratatui",
        "crossterm",
        "tui-logger",
        "color-eyre",
        "clap",
        "nix",
        "pgvigil-cluster",
        "pgvigil-test-support",
    ] {
        assert!(
            !crates.contains(&banned),
            "the library now depends on {banned}:\n{tree}"
        );
    }
}
