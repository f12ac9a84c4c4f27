//! `kubectl -l` label selectors (`a=b,c!=d,e in (x,y),f notin (z),g,!h`) as a hold's
//! `HoldSelector`: equality goes to `matchLabels`, the rest to `matchExpressions` (`!=` is
//! `NotIn` with one value).

use journey_operator::api::hold::{HoldSelector, SelectorOperator, SelectorRequirement};

/// Parses a selector; the error names the requirement that is wrong.
pub fn parse(text: &str) -> Result<HoldSelector, String> {
    if text.trim().is_empty() {
        return Err("the selector is empty (e.g. -l team=growth)".into());
    }
    let mut selector = HoldSelector::default();
    for term in split_terms(text)? {
        let term = term.trim();
        if term.is_empty() {
            return Err(format!(
                "{text:?} has an empty requirement (a stray comma?)"
            ));
        }
        requirement(term, &mut selector)?;
    }
    Ok(selector)
}

/// Splits on the commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let mut terms = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err(format!("{text:?}: nested parentheses")),
            ')' if depth == 1 => depth = 0,
            ')' => return Err(format!("{text:?}: unbalanced ')'")),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("{text:?}: unclosed '('"));
    }
    terms.push(&text[start..]);
    Ok(terms)
}

fn requirement(term: &str, selector: &mut HoldSelector) -> Result<(), String> {
    if let Some(key) = term.strip_prefix('!') {
        let key = key.trim();
        check_key(key, term)?;
        selector
            .match_expressions
            .push(expression(key, SelectorOperator::DoesNotExist, vec![]));
        return Ok(());
    }
    if let Some(open) = term.find('(') {
        let head = term[..open].trim();
        let Some(inner) = term[open + 1..].strip_suffix(')') else {
            return Err(format!("{term:?}: text after ')'"));
        };
        let (key, operator) = if let Some(key) = head.strip_suffix(" notin") {
            (key.trim(), SelectorOperator::NotIn)
        } else if let Some(key) = head.strip_suffix(" in") {
            (key.trim(), SelectorOperator::In)
        } else {
            return Err(format!(
                "{term:?}: a set needs `in` or `notin` (e.g. tier in (prod,staging))"
            ));
        };
        check_key(key, term)?;
        let values: Vec<String> = inner.split(',').map(|v| v.trim().to_string()).collect();
        if values.iter().any(String::is_empty) {
            return Err(format!("{term:?}: empty value in the set"));
        }
        for v in &values {
            check_value(v, term)?;
        }
        selector
            .match_expressions
            .push(expression(key, operator, values));
        return Ok(());
    }
    if let Some((key, value)) = term.split_once("!=") {
        let (key, value) = (key.trim(), value.trim());
        check_key(key, term)?;
        check_value(value, term)?;
        selector.match_expressions.push(expression(
            key,
            SelectorOperator::NotIn,
            vec![value.to_string()],
        ));
        return Ok(());
    }
    if let Some((key, value)) = term.split_once('=') {
        let value = value.strip_prefix('=').unwrap_or(value);
        let (key, value) = (key.trim(), value.trim());
        check_key(key, term)?;
        check_value(value, term)?;
        if let Some(old) = selector.match_labels.get(key)
            && old != value
        {
            return Err(format!("{key} cannot equal both {old:?} and {value:?}"));
        }
        selector
            .match_labels
            .insert(key.to_string(), value.to_string());
        return Ok(());
    }
    check_key(term, term)?;
    selector
        .match_expressions
        .push(expression(term, SelectorOperator::Exists, vec![]));
    Ok(())
}

fn expression(key: &str, operator: SelectorOperator, values: Vec<String>) -> SelectorRequirement {
    SelectorRequirement {
        key: key.to_string(),
        operator,
        values,
    }
}

/// A label key: an optional DNS prefix and `/`, then a name of at most 63 characters.
fn check_key(key: &str, term: &str) -> Result<(), String> {
    let name = key.rsplit_once('/').map_or(
        key,
        |(prefix, name)| {
            if prefix.is_empty() { "" } else { name }
        },
    );
    let ok = !name.is_empty()
        && name.len() <= 63
        && key.len() <= 317
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("{term:?}: {key:?} is not a label key"))
    }
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric (or empty).
fn check_value(value: &str, term: &str) -> Result<(), String> {
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!("{term:?}: {value:?} is not a label value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, operator: SelectorOperator, values: &[&str]) -> SelectorRequirement {
        expression(
            key,
            operator,
            values.iter().map(|v| v.to_string()).collect(),
        )
    }

    #[test]
    fn every_kubectl_requirement_maps_to_the_hold_selector() {
        let s = parse("a=b,c!=d,e in (x, y),f notin (z),g,!h,i==j").unwrap();
        assert_eq!(
            s.match_labels,
            [("a", "b"), ("i", "j")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        );
        assert_eq!(
            s.match_expressions,
            vec![
                req("c", SelectorOperator::NotIn, &["d"]),
                req("e", SelectorOperator::In, &["x", "y"]),
                req("f", SelectorOperator::NotIn, &["z"]),
                req("g", SelectorOperator::Exists, &[]),
                req("h", SelectorOperator::DoesNotExist, &[]),
            ]
        );
        let prefixed = parse("app.kubernetes.io/instance=shop").unwrap();
        assert_eq!(prefixed.to_query(), "app.kubernetes.io/instance=shop");
        assert_eq!(parse(" team = growth ").unwrap().to_query(), "team=growth");
    }

    #[test]
    fn bad_selectors_are_errors_that_name_the_requirement() {
        for bad in [
            "",
            "a=b,",
            ",a",
            "e in (x",
            "e in x)",
            "e in ()",
            "e in (x,)",
            "e within (x)",
            "e in (x) y",
            "a=b=c",
            "a=b,a=c",
            "bad key=x",
            "-a=b",
            "a=-b",
            "!",
            "/x",
            "e in ((x))",
        ] {
            let err = parse(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}");
        }
        assert!(parse("a=b,a=c").unwrap_err().contains('a'));
        assert!(parse("team=gr owth").unwrap_err().contains("gr owth"));
    }
}
