//! Commands that need no AWS call are quiet without any AWS configuration: no region or
//! credential chain is looked up, so nothing is said about one.

use std::path::Path;
use std::process::Command;

/// `query ARGS` with no AWS configuration at all: an environment without `AWS_*`
/// variables and a home without `~/.aws`.
fn query_without_aws(args: &[&str]) -> std::process::Output {
    let home = std::env::temp_dir().join(format!("streamlake-no-aws-{}", std::process::id()));
    std::fs::create_dir_all(&home).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_query"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&home);
    output
}

#[test]
fn ddl_of_a_given_dataset_needs_no_aws_configuration_and_says_nothing_else() {
    let output = query_without_aws(&[
        "--lake",
        "s3://my-bucket/data/",
        "--dataset",
        "examples/weather",
        "ddl",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr");
    assert!(
        stdout.contains("CREATE EXTERNAL TABLE") && stdout.contains("s3://my-bucket/data/"),
        "{stdout}"
    );
}

#[test]
fn help_says_nothing_on_stderr() {
    let output = query_without_aws(&["--help"]);
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"));
}
