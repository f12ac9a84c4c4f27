//! The shipped examples apply as users apply them and read back intact; kubectl shows the
//! printer columns and explains the fields.

use serde_json::Value;

use crate::support::{self, kubectl};

/// Whether every field of `applied` is in `stored` with the same value (defaults may add).
fn is_subset(applied: &Value, stored: &Value, path: &str) -> Result<(), String> {
    match (applied, stored) {
        (Value::Object(a), Value::Object(s)) => {
            for (key, value) in a {
                let child = format!("{path}.{key}");
                match s.get(key) {
                    Some(stored_value) => is_subset(value, stored_value, &child)?,
                    None => return Err(format!("{child} was pruned")),
                }
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(s)) => {
            if a.len() != s.len() {
                return Err(format!(
                    "{path}: {} items applied, {} stored",
                    a.len(),
                    s.len()
                ));
            }
            for (i, (x, y)) in a.iter().zip(s).enumerate() {
                is_subset(x, y, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        (a, s) if a == s => Ok(()),
        (a, s) => Err(format!("{path}: applied {a}, stored {s}")),
    }
}

fn examples() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("manifests/examples")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read example");
            (p.display().to_string(), text)
        })
        .collect()
}

#[tokio::test]
async fn every_example_applies_and_reads_back_as_a_superset() {
    support::install_crds().await;
    let client = support::client().await;
    let ns = support::namespace(&client, "examples").await;
    let all = examples();
    assert!(all.len() >= 5, "expected the five seed examples");
    for (path, text) in &all {
        let out = kubectl(&["apply", "-n", &ns, "-f", path], None);
        assert!(out.success, "{path}: {out:?}");
        let applied: Value = serde_yaml::from_str(text).expect("example yaml");
        let name = applied["metadata"]["name"].as_str().expect("name");
        let got = kubectl(&["get", "journey", name, "-n", &ns, "-o", "json"], None);
        assert!(got.success, "{got:?}");
        let stored: Value = serde_json::from_str(&got.stdout).expect("json");
        if let Err(diff) = is_subset(&applied["spec"], &stored["spec"], "spec") {
            panic!("{path}: {diff}\n{}", support::dump_journeys(&ns));
        }
    }

    let table = kubectl(&["get", "jny", "-n", &ns], None);
    assert!(table.success, "{table:?}");
    let header: Vec<&str> = table
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "PHASE", "VERSION", "INSIDE", "HELD", "HELDBY", "AGE"
        ]
    );
    let wide = kubectl(&["get", "jny", "-n", &ns, "-o", "wide"], None);
    let header: Vec<&str> = wide
        .stdout
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "PHASE", "VERSION", "INSIDE", "HELD", "HELDBY", "AGE", "ACTIVE", "MODE",
            "FILTER"
        ]
    );
    assert!(
        wide.stdout.contains(r#"profile.country == "FR""#),
        "{}",
        wide.stdout
    );
}

#[tokio::test]
async fn kubectl_explain_reads_like_reference_documentation() {
    support::install_crds().await;
    let out = kubectl(&["explain", "journey.spec.pause.mode"], None);
    assert!(out.success, "{out:?}");
    for expected in [
        "Hold",
        "Discard",
        "EntryOnly",
        "profiles wait at their next action step",
    ] {
        assert!(
            out.stdout.contains(expected),
            "missing {expected:?} in:\n{}",
            out.stdout
        );
    }
    let spec = kubectl(&["explain", "journey.spec.globalFilter"], None);
    assert!(
        spec.stdout.contains("excluded at their next action step"),
        "{}",
        spec.stdout
    );
}
