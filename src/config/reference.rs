//! The configuration reference (`docs/config.md`), generated from the config types: their
//! JSON schema (schemars, which carries the doc comments) for keys, types and
//! descriptions, a default `NodeConfig` for the defaults.

use super::NodeConfig;

/// The configuration reference, generated from these types: every key with its type, its
/// default and its environment variable, described by the key's doc comment, one table per
/// section. `docs/config.md` is this text (a test keeps the two equal).
pub fn reference() -> String {
    use serde_json::Value;
    let schema = serde_json::to_value(schemars::schema_for!(NodeConfig)).unwrap_or(Value::Null);
    let defaults = serde_json::to_value(NodeConfig::default()).unwrap_or(Value::Null);
    let mut out = String::from(
        "# Configuration reference\n\n\
         <!-- Generated from src/config.rs by `mnema::config::reference()`; do not edit.\n     \
         Regenerate: MNEMA_BLESS=1 cargo test --test it config_reference -->\n\n\
         A node reads defaults, then the TOML file given to `mnema start --config`, then the\n\
         environment: `MNEMA_<SECTION>__<KEY>` (sections and keys upper-cased, dots as `__`).\n\
         Durations are written `250ms`, `5s`, `5m` or `1h`; lists may also be given as one\n\
         comma-separated string (handy in the environment). `NodeConfig::validate` checks every\n\
         key before anything is opened and names the key it refuses.\n",
    );
    let mut sections = Vec::new();
    collect(&schema, &schema, &defaults, "", &mut sections);
    for (name, doc, rows) in sections {
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("\n## `[{name}]`\n\n"));
        if !doc.is_empty() {
            out.push_str(&format!("{doc}\n\n"));
        }
        out.push_str("| Key | Type | Default | Environment | Description |\n|---|---|---|---|---|\n");
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    out
}

type Section = (String, String, Vec<String>);

fn resolve<'a>(root: &'a serde_json::Value, s: &'a serde_json::Value) -> &'a serde_json::Value {
    let target = s
        .get("$ref")
        .or_else(|| s.get("allOf").and_then(|a| a.get(0)).and_then(|x| x.get("$ref")))
        .and_then(|r| r.as_str())
        .and_then(|r| r.strip_prefix("#/$defs/"))
        .and_then(|name| root.get("$defs").and_then(|d| d.get(name)));
    target.unwrap_or(s)
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

fn type_of(root: &serde_json::Value, s: &serde_json::Value) -> String {
    let s = resolve(root, s);
    let consts: Vec<String> = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(|o| o.as_array())
        .map(|alts| {
            alts.iter()
                .filter_map(|a| a.get("const").or_else(|| a.get("enum").and_then(|e| e.get(0))))
                .map(|c| format!("`{}`", c.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if !consts.is_empty() {
        return consts.join(" \\| ");
    }
    if let Some(e) = s.get("enum").and_then(|e| e.as_array()) {
        return e.iter().map(|c| format!("`{}`", c.as_str().unwrap_or_default())).collect::<Vec<_>>().join(" \\| ");
    }
    if s.get("format").and_then(|f| f.as_str()) == Some("duration") {
        return "duration".into();
    }
    let types: Vec<&str> = match s.get("type") {
        Some(serde_json::Value::String(t)) => vec![t.as_str()],
        Some(serde_json::Value::Array(ts)) => ts.iter().filter_map(|t| t.as_str()).collect(),
        _ => Vec::new(),
    };
    let optional = types.contains(&"null");
    let main = types.iter().find(|t| **t != "null").copied().unwrap_or("");
    let shown = match main {
        "array" => format!("list of {}", s.get("items").map(|i| type_of(root, i)).unwrap_or_else(|| "values".into())),
        "integer" => "integer".into(),
        "" => match s.get("anyOf").and_then(|a| a.as_array()) {
            Some(alts) => alts
                .iter()
                .filter(|a| a.get("type").and_then(|t| t.as_str()) != Some("null"))
                .map(|a| type_of(root, a))
                .collect::<Vec<_>>()
                .join(" or "),
            None => "value".into(),
        },
        other => other.into(),
    };
    if optional || s.get("anyOf").is_some_and(|a| a.to_string().contains("\"null\"")) {
        format!("{shown} (optional)")
    } else {
        shown
    }
}

fn default_shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "unset".into(),
        serde_json::Value::String(s) => format!("`\"{s}\"`"),
        other => format!("`{other}`"),
    }
}

fn collect(
    root: &serde_json::Value,
    s: &serde_json::Value,
    defaults: &serde_json::Value,
    path: &str,
    out: &mut Vec<Section>,
) {
    let s = resolve(root, s);
    let Some(props) = s.get("properties").and_then(|p| p.as_object()) else { return };
    let doc = one_line(s.get("description").and_then(|d| d.as_str()).unwrap_or(""));
    // A doc comment that only names the section says nothing the heading does not.
    let doc = if path.is_empty() || doc.trim_end_matches('.') == format!("`[{path}]`") { String::new() } else { doc };
    let at = out.len();
    if !path.is_empty() {
        out.push((path.to_string(), doc, Vec::new()));
    }
    for (key, prop) in props {
        let full = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        let target = resolve(root, prop);
        let default = defaults.get(key).unwrap_or(&serde_json::Value::Null);
        if target.get("properties").is_some() {
            collect(root, target, default, &full, out);
            continue;
        }
        let desc = prop.get("description").or_else(|| target.get("description")).and_then(|d| d.as_str()).unwrap_or("");
        let env = format!("MNEMA_{}", full.to_ascii_uppercase().replace('.', "__"));
        let row = format!(
            "| `{key}` | {} | {} | `{env}` | {} |",
            type_of(root, prop),
            default_shown(default),
            one_line(desc)
        );
        if let Some(sec) = out.get_mut(at).filter(|_| !path.is_empty()) {
            sec.2.push(row);
        }
    }
}
