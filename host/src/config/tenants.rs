//! The config's `tenants` table, typed: read once into entries ([`TenantEntry`]: each
//! setting as text, lists joined with `;`), then into [`TenantSpec`]s. `tenants = { guest =
//! { cpu = 100, launch = {"snlua"} } }` is the entry `guest` with `cpu = "100"` and `launch
//! = "snlua"`. Errors name a setting as `tenants.NAME.KEY`. The `tenants` table is not part
//! of the env (`GETENV` does not see it).
//!
//! Settings are typed from text, as every other config value is (skynet's env holds
//! strings, and a size such as `64M` is text either way): one parser per kind of value,
//! shared with the node-wide keys.

use super::{parse_size, ConfigError, TenantEntry};
use crate::tenant::{
    hash_seed_setting, AddressPattern, Capabilities, Limits, TenantSpec, NODE_TENANT,
};

/// Builds the tenant specs from the config's `tenants` entries; an entry named `node`
/// configures the trusted tenant. `origin` names the config in errors.
///
/// # Errors
/// A [`ConfigError`] naming the key (`tenants.NAME.KEY`) for an unknown key or a malformed
/// value, or a name that is not one.
pub fn specs_from(
    entries: &[TenantEntry],
    defaults: &Limits,
    origin: &str,
) -> Result<Vec<TenantSpec>, ConfigError> {
    let mut specs = vec![TenantSpec::node(defaults)];
    for entry in entries {
        let name = entry.name.as_str();
        let bad = |field: &str, value: &str, want: &str| ConfigError::Value {
            place: origin.to_string(),
            key: format!("tenants.{name}.{field}"),
            value: value.to_string(),
            want: want.to_string(),
        };
        if !valid_tenant_name(name) {
            let (field, value) = entry
                .settings
                .first()
                .map_or(("", ""), |(f, v)| (f.as_str(), v.as_str()));
            return Err(bad(
                field,
                value,
                "a tenant's name is letters, digits, `_` and `-`",
            ));
        }
        let index = match specs.iter().position(|s| s.name == name) {
            Some(index) => index,
            None => {
                specs.push(TenantSpec::untrusted(name, defaults));
                specs.len() - 1
            }
        };
        let spec = &mut specs[index];
        for (field, value) in &entry.settings {
            apply_field(spec, field, value).map_err(|want| bad(field, value, &want))?;
        }
        if spec.trusted {
            // A trusted tenant runs as the node's own services do: their CPU and mailbox
            // defaults (docs/config.md), where its entry sets none.
            let set = |key: &str| entry.settings.iter().any(|(field, _)| field == key);
            if !set("cpu") {
                spec.limits.cpu_ms = defaults.cpu_ms;
                if !set("cpu_soft") {
                    spec.limits.cpu_soft_ms = defaults.cpu_soft_ms;
                }
            }
            if !set("mailbox") {
                spec.limits.mailbox = defaults.mailbox;
            }
        }
    }
    for spec in &mut specs {
        if spec.name == NODE_TENANT {
            spec.trusted = true;
        }
        if spec.trusted {
            // Trusted means what any skynet service may do: the allow-lists do not apply.
            spec.capabilities = Capabilities::TRUSTED;
            spec.launch = None;
            spec.getenv = None;
            spec.setenv = None;
            spec.logon = true;
            spec.listen = None;
            spec.connect = None;
        } else {
            // Forging a source and reading host files are never granted to untrusted code.
            spec.capabilities.redirect = false;
            spec.capabilities.files = false;
        }
        if spec.limits.cpu_soft_ms >= spec.limits.cpu_ms {
            spec.limits.cpu_soft_ms = 0;
        }
    }
    Ok(specs)
}

fn valid_tenant_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn list(value: &str) -> Vec<String> {
    value
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn apply_field(spec: &mut TenantSpec, field: &str, value: &str) -> Result<(), String> {
    let number = |max: u64| -> Result<u64, String> {
        match value.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(format!("expected an integer in 0..={max}")),
        }
    };
    let size = || parse_size(value).ok_or_else(|| "expected a size such as 64K, 256M".to_string());
    let flag = || match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("expected true or false".to_string()),
    };
    let patterns = || {
        list(value)
            .iter()
            .map(|p| AddressPattern::parse(p))
            .collect::<Result<Vec<_>, _>>()
    };
    let limits = &mut spec.limits;
    match field {
        "trusted" => spec.trusted = flag()?,
        "cpu" => {
            limits.cpu_ms = number(3_600_000)?.max(10);
            limits.cpu_soft_ms = limits.cpu_ms / 2;
        }
        "cpu_soft" => limits.cpu_soft_ms = number(3_600_000)?,
        "memory" => limits.memory = size()?,
        "tenant_memory" => limits.tenant_memory = size()?,
        "mailbox" => limits.mailbox = number(1 << 32)?.max(1) as usize,
        "message_size" => limits.message_size = (size()?.clamp(1, 1 << 31)) as usize,
        "services" => limits.services = number(u64::from(u32::MAX))? as u32,
        "spawn_rate" => limits.spawn_rate = number(1_000_000)? as u32,
        "workers" => limits.workers = number(1024)?.max(1) as usize,
        "timers" => limits.timers = number(u64::from(u32::MAX))? as u32,
        "max_sockets" => limits.sockets = number(u64::from(u32::MAX))? as u32,
        "mailbox_bytes" => limits.mailbox_bytes = size()?.clamp(1, 1 << 40) as usize,
        "socket_backlog" => limits.socket_backlog = size()?.clamp(64 << 10, 1 << 40) as usize,
        "names" => limits.names = number(1_000_000)? as u32,
        "tenant_mailbox_bytes" => {
            limits.tenant_mailbox_bytes = size()?.clamp(1, 1 << 50) as usize
        }
        "tenant_names" => limits.tenant_names = number(100_000_000)? as u32,
        "log_rate" => limits.log_rate = number(1_000_000)? as u32,
        "tenant_log_rate" => limits.tenant_log_rate = number(100_000_000)? as u32,
        "module_size" => limits.module_size = size()?.max(1),
        "launch" => spec.launch = Some(list(value)),
        "getenv" => spec.getenv = Some(list(value)),
        "setenv" => spec.setenv = Some(list(value)),
        "export" => spec.export = list(value),
        "start" => spec.start = list(value),
        "sockets" => spec.capabilities.sockets = flag()?,
        "harbor" => spec.capabilities.harbor = flag()?,
        "listen" => spec.listen = Some(patterns()?),
        "connect" => spec.connect = Some(patterns()?),
        "logon" => spec.logon = flag()?,
        "lua_hash_seed" => spec.lua_hash_seed = Some(hash_seed_setting(value)?),
        "lua_data_path" => spec.lua_data_path = Some(list(value)),
        _ => {
            return Err(
                "unknown tenant key (trusted, cpu, cpu_soft, memory, tenant_memory, mailbox, \
                 message_size, services, spawn_rate, workers, timers, max_sockets, mailbox_bytes, tenant_mailbox_bytes, socket_backlog, names, tenant_names, log_rate, tenant_log_rate, module_size, launch, getenv, setenv, export, start, \
                 sockets, harbor, listen, connect, logon, lua_hash_seed, lua_data_path)"
                    .into(),
            )
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::test_limits;

    /// The `tenants` entries a config with these `tenants.NAME.KEY = value` settings has.
    fn entries(settings: &[(&str, &str)]) -> Vec<TenantEntry> {
        let mut entries: Vec<TenantEntry> = Vec::new();
        for (key, value) in settings {
            let rest = key.strip_prefix("tenants.").expect("a tenants key");
            let (name, field) = rest.split_once('.').expect("tenants.NAME.KEY");
            let at = match entries.iter().position(|e| e.name == name) {
                Some(at) => at,
                None => {
                    entries.push(TenantEntry {
                        name: name.to_string(),
                        settings: Vec::new(),
                    });
                    entries.len() - 1
                }
            };
            entries[at]
                .settings
                .push((field.to_string(), value.to_string()));
        }
        entries
    }

    #[test]
    fn untrusted_tenants_get_safe_defaults_and_their_settings() {
        let specs = specs_from(
            &entries(&[
                ("tenants.guest.cpu", "100"),
                ("tenants.guest.launch", "snlua worker;pong"),
                ("tenants.guest.getenv", "game_*"),
                ("tenants.guest.export", ".room"),
                ("tenants.guest.sockets", "true"),
            ]),
            &test_limits(),
            "t",
        )
        .unwrap();
        assert_eq!(specs.len(), 2);
        assert!(specs[0].trusted && specs[0].name == NODE_TENANT);
        let guest = &specs[1];
        assert!(!guest.trusted);
        assert_eq!(guest.limits.cpu_ms, 100);
        assert_eq!(guest.limits.cpu_soft_ms, 50);
        assert_eq!(guest.limits.message_size, 4 << 20);
        assert_eq!(guest.limits.workers, 3, "one worker is left for the others");
        assert!(guest.may_launch("snlua", "worker 1 2"));
        assert!(!guest.may_launch("snlua", "other"));
        assert!(guest.may_launch("pong", ""));
        assert!(guest.may_getenv("game_mode") && guest.may_getenv("lua_path"));
        assert!(!guest.may_getenv("secret") && !guest.may_setenv("game_mode"));
        assert!(guest.capabilities.sockets && !guest.capabilities.redirect);
        assert_eq!(guest.export, vec![".room".to_string()]);
    }

    #[test]
    fn a_trusted_tenant_takes_the_nodes_cpu_and_mailbox_unless_it_sets_them() {
        let defaults = Limits {
            cpu_ms: 10_000,
            cpu_soft_ms: 5_000,
            mailbox: usize::MAX,
            ..test_limits()
        };
        let specs = specs_from(
            &entries(&[
                ("tenants.gate.trusted", "true"),
                ("tenants.own.trusted", "true"),
                ("tenants.own.cpu", "300"),
                ("tenants.own.mailbox", "7"),
                ("tenants.guest.launch", "snlua"),
            ]),
            &defaults,
            "t",
        )
        .unwrap();
        let limits = |name: &str| {
            let spec = specs.iter().find(|s| s.name == name).unwrap();
            (
                spec.limits.cpu_ms,
                spec.limits.cpu_soft_ms,
                spec.limits.mailbox,
            )
        };
        assert_eq!(limits("gate"), (10_000, 5_000, usize::MAX));
        assert_eq!(limits("own"), (300, 150, 7));
        assert_eq!(limits("guest"), (1000, 500, 100_000));
    }

    #[test]
    fn socket_allow_lists_match_host_and_port() {
        let specs = specs_from(
            &entries(&[
                ("tenants.g.listen", "127.0.0.1:8000-8010; [::1]:*"),
                ("tenants.g.connect", "*:443;db.internal:5432"),
            ]),
            &test_limits(),
            "t",
        )
        .unwrap();
        let g = &specs[1];
        assert!(g.may_listen("127.0.0.1", 8000) && g.may_listen("127.0.0.1", 8010));
        assert!(!g.may_listen("127.0.0.1", 8011) && !g.may_listen("", 8000));
        assert!(g.may_listen("::1", 1) && g.may_listen("[::1]", 65535));
        assert!(g.may_connect("example.com", 443) && g.may_connect("DB.internal", 5432));
        assert!(!g.may_connect("db.internal", 5433) && !g.may_connect("10.0.0.1", 80));
        assert!(specs[0].may_listen("", 1), "the node's tenant has no list");
        for bad in ["127.0.0.1", "h:70000", "h:9-1", ":80", "h:x"] {
            assert!(AddressPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_tenant_keys_name_the_key() {
        for (key, value) in [
            ("tenants.guest.cpuu", "1"),
            ("tenants.guest.cpu", "lots"),
            ("tenants.g!.cpu", "1"),
            ("tenants.guest.trusted", "yes"),
        ] {
            let err = specs_from(&entries(&[(key, value)]), &test_limits(), "t").unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("t: `{key} = ")),
                "{err}"
            );
        }
    }

    #[test]
    fn trusted_tenants_keep_every_capability() {
        let specs = specs_from(
            &entries(&[("tenants.ops.trusted", "true"), ("tenants.node.cpu", "50")]),
            &test_limits(),
            "t",
        )
        .unwrap();
        assert_eq!(specs[0].limits.cpu_ms, 50);
        let ops = specs.iter().find(|s| s.name == "ops").unwrap();
        assert_eq!(ops.capabilities, Capabilities::TRUSTED);
        assert!(ops.may_launch("anything", ""));
    }
}
