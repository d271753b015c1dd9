//! Documentation that must stay true to the code: the configuration reference (generated
//! from the config types) and the Kubernetes manifests' config and variables.

use std::path::Path;

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn config_reference_is_generated_from_the_config_types() {
    let generated = mnema::config::reference();
    let file = repo("docs/config.md");
    if std::env::var_os("MNEMA_BLESS").is_some() {
        std::fs::write(&file, &generated).expect("write docs/config.md");
    }
    let committed = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/config.md differs from mnema::config::reference(); regenerate with MNEMA_BLESS=1 cargo test --test it config_reference"
    );
    // Every key a default config has is documented, with its environment variable.
    fn keys(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        if let serde_json::Value::Object(m) = v {
            for (k, v) in m {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                if v.is_object() { keys(&key, v, out) } else { out.push(key) }
            }
        }
    }
    let mut all = Vec::new();
    keys("", &serde_json::to_value(mnema::NodeConfig::default()).expect("json"), &mut all);
    for k in all {
        let env = format!("`MNEMA_{}`", k.to_ascii_uppercase().replace('.', "__"));
        assert!(generated.contains(&env), "{k} ({env}) missing from the reference");
    }
}

/// The TOML block of `deploy/k8s/config.yaml`'s ConfigMap.
fn manifest_toml() -> String {
    let yaml = std::fs::read_to_string(repo("deploy/k8s/config.yaml")).expect("config.yaml");
    let mut lines = yaml.lines().skip_while(|l| !l.trim_start().starts_with("mnema.toml: |"));
    lines.next();
    lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| l.get(4..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_kubernetes_config_and_variables_are_keys_the_node_accepts() {
    let text = manifest_toml();
    assert!(text.contains("discovery_strategy = \"k8s\""), "{text}");
    let mut cfg = mnema::NodeConfig::from_toml(&text).expect("the ConfigMap's mnema.toml parses");
    // What the pods' environment sets.
    cfg.node.name = "mnema@mnema-core-0.mnema-core.default.svc.cluster.local".into();
    cfg.cluster.k8s.namespace = "default".into();
    cfg.validate().expect("the ConfigMap's config validates");
    assert_eq!(cfg.node.data_dir, Path::new("/opt/emqx/data"));
    assert_eq!(cfg.http.listen.as_deref(), Some("0.0.0.0:8081"));
    let reference = mnema::config::reference();
    for file in ["core.yaml", "replicant.yaml"] {
        let yaml = std::fs::read_to_string(repo(&format!("deploy/k8s/{file}"))).expect("manifest");
        for var in yaml
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("name: ").or(Some(w)))
            .filter(|w| w.starts_with("MNEMA_"))
        {
            assert!(reference.contains(&format!("`{var}`")), "{file}: {var} is not a config key");
        }
        for probe in ["path: /ready", "path: /health"] {
            assert!(yaml.contains(probe), "{file} probes {probe}");
        }
    }
}

/// Shell words of `line` (single and double quotes, backslash escapes in double quotes).
fn shell_words(line: &str) -> Vec<String> {
    let (mut words, mut cur, mut any) = (Vec::new(), String::new(), false);
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                any = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                any = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => cur.extend(chars.next()),
                        c => cur.push(c),
                    }
                }
            }
            c if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[test]
fn every_mnema_ctl_command_in_the_operations_guide_parses() {
    let text = std::fs::read_to_string(repo("docs/operations.md")).expect("operations.md");
    let mut in_block = false;
    let mut checked = 0;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        let Some(at) = line.find("mnema ctl ").filter(|_| in_block) else { continue };
        // Drop a trailing comment (two spaces, then `#`).
        let cmd = line[at..].split("  #").next().unwrap_or("").trim();
        let mut args = shell_words(cmd).split_off(1);
        // Point every command at a port nobody listens on: only the CLI's parsing is judged.
        if let Some(i) = args.iter().position(|a| a == "--node") {
            args[i + 1] = "127.0.0.1:1".into();
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mnema"))
            .args(&args)
            .env("MNEMA_NODE__COOKIE", "docs-test")
            .output()
            .expect("run mnema");
        // clap exits 2 on a usage error; a command it accepts fails to reach the node (1).
        assert_ne!(out.status.code(), Some(2), "`{cmd}`: {}", String::from_utf8_lossy(&out.stderr));
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} commands found");
}
