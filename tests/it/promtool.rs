//! `promtool test rules` over series captured from a real `/metrics`: each capture (two scrapes
//! some seconds apart) becomes promtool `input_series`, gauges repeated at their value and
//! counters growing at their measured rate, over the alerts' `for:` windows.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// How many one-minute samples each input series has: longer than every rule's range plus
/// its `for:` (15m + 15m at most).
const SAMPLES: u32 = 45;
/// When the alerts are evaluated: after every `for:` has elapsed on the repeated samples.
pub const EVAL_TIME: &str = "35m";

/// One series of a scrape: its name and labels as the exposition format writes them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    name: String,
    labels: String,
}

/// The samples of a scrape by series, and the metric families' types from `# TYPE`.
fn parse(scrape: &str) -> (BTreeMap<SeriesKey, f64>, BTreeMap<String, String>) {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    for line in scrape.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                types.insert(name.to_string(), kind.to_string());
            }
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample line: series value");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("a value in {line:?}"));
        samples.insert(
            SeriesKey {
                name: name.to_string(),
                labels: labels.to_string(),
            },
            value,
        );
    }
    (samples, types)
}

/// Counters (and histograms' parts) increase; everything else is a gauge.
fn is_counter(name: &str, types: &BTreeMap<String, String>) -> bool {
    let family = ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| {
            name.strip_suffix(suffix)
                .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
        })
        .unwrap_or(name);
    types
        .get(family)
        .is_some_and(|t| t == "counter" || t == "histogram")
}

/// promtool `input_series` from two scrapes `seconds` apart, each series with `extra` labels
/// (what Prometheus adds from the target, `job`): a gauge at its second value, a counter from
/// its first value growing by its measured rate per one-minute sample.
pub fn input_series(first: &str, second: &str, seconds: f64, extra: &str) -> Vec<Value> {
    let (before, _) = parse(first);
    let (after, types) = parse(second);
    after
        .iter()
        .map(|(key, value)| {
            let labels = [key.labels.as_str(), extra]
                .into_iter()
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(",");
            let values = if is_counter(&key.name, &types) {
                let start = before.get(key).copied().unwrap_or(0.0);
                let per_minute = ((value - start) / seconds * 60.0).max(0.0);
                format!("{start}+{per_minute}x{SAMPLES}")
            } else {
                format!("{value}+0x{SAMPLES}")
            };
            json!({"series": format!("{}{{{labels}}}", key.name), "values": values})
        })
        .collect()
}

/// An `alert_rule_test` entry: `alert` expected to fire at [`EVAL_TIME`] exactly with `firing`
/// (labels, annotations), or not at all when `firing` is empty.
pub fn alert_test(alert: &str, firing: Vec<(Value, Value)>) -> Value {
    json!({
        "eval_time": EVAL_TIME,
        "alertname": alert,
        "exp_alerts": firing
            .into_iter()
            .map(|(labels, annotations)| json!({"exp_labels": labels, "exp_annotations": annotations}))
            .collect::<Vec<_>>(),
    })
}

/// An alert's annotations rendered for `labels`: the kit's annotations template only
/// `{{ $labels.NAME }}`, which this substitutes (any other template is refused).
pub fn annotations(rule: &serde_yaml::Value, labels: &Value) -> Value {
    let mut out = serde_json::Map::new();
    let Some(map) = rule["annotations"].as_mapping() else {
        return Value::Object(out);
    };
    for (k, v) in map {
        let mut text = v.as_str().expect("an annotation string").to_string();
        while let Some(start) = text.find("{{") {
            let end = start + text[start..].find("}}").expect("a closed template");
            let inner = text[start + 2..end].trim();
            let name = inner.strip_prefix("$labels.").unwrap_or_else(|| {
                panic!("only {{{{ $labels.NAME }}}} is rendered here, not {inner}")
            });
            let value = labels[name].as_str().unwrap_or_default().to_string();
            text.replace_range(start..end + 2, &value);
        }
        out.insert(k.as_str().expect("key").to_string(), Value::String(text));
    }
    Value::Object(out)
}

/// Writes `rules` (a rules file's groups) and the tests into `dir`, runs `promtool check
/// rules` and `promtool test rules`, and fails with promtool's output when either fails.
pub fn check_and_test(dir: &Path, groups: &serde_yaml::Value, tests: Vec<Value>) {
    let rules = dir.join("rules.yaml");
    std::fs::write(
        &rules,
        serde_yaml::to_string(&json!({"groups": groups})).expect("rules yaml"),
    )
    .expect("rules file");
    let test = dir.join("rules-test.yaml");
    let file = json!({
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": tests,
    });
    std::fs::write(&test, serde_yaml::to_string(&file).expect("test yaml")).expect("test file");
    for args in [
        ["check", "rules", "rules.yaml"],
        ["test", "rules", "rules-test.yaml"],
    ] {
        let out = Command::new(crate::support::promtool())
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running promtool");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}\n--- {}:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            test.display(),
            std::fs::read_to_string(&test).unwrap_or_default()
        );
    }
}
