//! Loading whole configurations: defaults, the file, flags over the file,
//! the pool rules and the messages of bad values.

use super::*;
use std::time::Duration;

fn cli(args: &[&str]) -> Cli {
    use clap::Parser;
    let mut argv = vec!["corelb"];
    argv.extend_from_slice(args);
    Cli::parse_from(argv)
}

fn load(args: &[&str], text: &str) -> Result<Config, ConfigError> {
    Config::from_toml(&cli(args), "t.toml", text)
}

fn load_err(args: &[&str], text: &str) -> String {
    load(args, text).unwrap_err().0
}

const ROUTES: &str = r#"
listen = "127.0.0.1:8081"
threads = 2
pin = false
connect_timeout = "250ms"

[[pools]]
name = "api"
algorithm = "round-robin"
backends = [{ addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002", weight = 3 }]

[[pools]]
name = "static"
hash_key = "header:X-User"
backends = [{ addr = "localhost:9003" }]

[[routes]]
path_prefix = "/api/"
pool = "api"

[[routes]]
host = "Static.Example.com"
pool = "static"

[[routes]]
pool = "static"
"#;

#[test]
fn defaults_apply() {
    let c = Config::load(&cli(&["--backend", "127.0.0.1:9000"])).unwrap();
    assert_eq!(c.listeners[0].addr, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.settings.timeouts.connect, Duration::from_secs(3));
    assert_eq!(c.settings.timeouts.client_header, Duration::from_secs(10));
    assert_eq!(c.pools.len(), 1);
    assert_eq!(c.pools[0].name, "default");
    assert_eq!(c.pools[0].backends[0].weight, 1);
    assert_eq!(c.process.backlog, 4096);
    assert_eq!(c.settings.buffer_size, 16 * 1024);
    assert_eq!(c.settings.upstream_keepalive, 1024);
    assert_eq!(c.settings.max_connections_per_ip, 0);
    assert!(c.routes.is_empty());
    assert!(c.process.pin);
}

#[test]
fn tunnel_and_body_limits_default_and_resolve_per_pool() {
    let c = Config::load(&cli(&["--backend", "127.0.0.1:9000"])).unwrap();
    assert_eq!(c.settings.timeouts.tunnel_idle, Duration::from_secs(3600));
    assert_eq!(c.pools[0].max_body_size, None, "off by default");
    assert!(c.pools[0].allow_upgrades.is_empty());
    let text = "tunnel_idle_timeout = \"5m\"\nmax_body_size = 100\n\
                [[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n\
                [[pools]]\nname = \"b\"\nmax_body_size = 0\nallow_upgrades = [\"H2C\"]\n\
                backends = [{ addr = \"127.0.0.1:2\" }]\n\
                [[pools]]\nname = \"c\"\nmax_body_size = 7\nbackends = [{ addr = \"127.0.0.1:3\" }]\n";
    let c = load(&[], text).unwrap();
    assert_eq!(c.settings.timeouts.tunnel_idle, Duration::from_secs(300));
    let limits: Vec<_> = c.pools.iter().map(|p| p.max_body_size).collect();
    assert_eq!(limits, [Some(100), None, Some(7)]);
    assert_eq!(c.pools[1].allow_upgrades, ["h2c"]);
    // The flag replaces the top-level value, not a pool's own.
    let c = load(
        &["--max-body-size", "50", "--tunnel-idle-timeout", "1s"],
        text,
    )
    .unwrap();
    let limits: Vec<_> = c.pools.iter().map(|p| p.max_body_size).collect();
    assert_eq!(limits, [Some(50), None, Some(7)]);
    assert_eq!(c.settings.timeouts.tunnel_idle, Duration::from_secs(1));
    assert_eq!(
        c.settings().timeouts.tunnel_idle,
        Duration::from_secs(1),
        "reloadable"
    );
}

#[test]
fn no_backends_is_an_error() {
    assert!(Config::load(&cli(&[])).unwrap_err().0.contains("--backend"));
    let e = load_err(&[], "threads = 1\n");
    assert!(e.starts_with("t.toml: no pools"), "{e}");
}

#[test]
fn bad_values_name_the_flag() {
    let e = Config::load(&cli(&[
        "--backend",
        "127.0.0.1:1",
        "--connect-timeout",
        "soon",
    ]))
    .unwrap_err();
    assert!(e.0.contains("--connect-timeout"), "{e}");
    assert!(e.0.contains("`soon`"), "{e}");
    let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--io-driver", "kqueue"])).unwrap_err();
    assert!(e.0.contains("--io-driver"), "{e}");
    let e = Config::load(&cli(&["--backend", "nope"])).unwrap_err();
    assert!(e.0.contains("--backend"), "{e}");
    let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--threads", "0"])).unwrap_err();
    assert!(e.0.contains("--threads"), "{e}");
    let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--hash-key", "ip"])).unwrap_err();
    assert!(e.0.contains("--hash-key"), "{e}");
    let e = Config::load(&cli(&["--backend", "127.0.0.1:1", "--algorithm", "nope"])).unwrap_err();
    assert!(e.0.contains("--algorithm"), "{e}");
}

#[test]
fn file_values_load() {
    let c = load(&[], ROUTES).unwrap();
    assert_eq!(c.listeners[0].addr, "127.0.0.1:8081".parse().unwrap());
    assert_eq!(c.process.threads, 2);
    assert!(!c.process.pin);
    assert_eq!(c.settings.timeouts.connect, Duration::from_millis(250));
    assert_eq!(c.settings.timeouts.upstream, Duration::from_secs(30));
    let names: Vec<_> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["api", "static"]);
    assert_eq!(c.pools[0].backends[1].weight, 3);
    assert_eq!(c.pools[1].backends[0].name, "localhost:9003");
    assert_eq!(c.pools[1].hash_key, HashKey::Header("x-user".into()));
    assert_eq!(
        c.routes,
        [
            RouteConfig {
                host: None,
                path_prefix: Some("/api/".into()),
                pool: 0,
                listener: None,
            },
            RouteConfig {
                host: Some("static.example.com".into()),
                path_prefix: None,
                pool: 1,
                listener: None,
            },
            RouteConfig {
                host: None,
                path_prefix: None,
                pool: 1,
                listener: None,
            },
        ]
    );
    assert_eq!(c.summary(), "2 pools, 3 backends, 3 routes");
}

#[test]
fn routes_pick_pools_through_the_snapshot() {
    let c = load(&[], ROUTES).unwrap();
    let s =
        crate::snapshot::Snapshot::build(&c, &mut crate::state::registry::Registry::new(1), 1, &[]);
    assert_eq!(s.route(0, b"x", b"/api/v1"), 0);
    assert_eq!(s.route(0, b"STATIC.example.com", b"/api/v1"), 0);
    assert_eq!(s.route(0, b"static.example.com", b"/img"), 1);
    assert_eq!(s.route(0, b"other", b"/"), 1);
}

#[test]
fn flags_override_the_file() {
    let c = load(
        &[
            "--threads",
            "1",
            "--connect-timeout",
            "5s",
            "--listen",
            "127.0.0.1:9999",
            "--pin",
        ],
        ROUTES,
    )
    .unwrap();
    assert_eq!(c.process.threads, 1);
    assert_eq!(c.settings.timeouts.connect, Duration::from_secs(5));
    assert_eq!(c.listeners[0].addr.port(), 9999);
    assert!(c.process.pin);
    let c = load(
        &["--no-pin"],
        "pin = true\n[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
    )
    .unwrap();
    assert!(!c.process.pin);
}

#[test]
fn accept_steering_is_on_unless_turned_off() {
    let pool = "[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n";
    assert!(load(&[], pool).unwrap().process.accept_steering);
    let off = format!("accept_steering = false\n{pool}");
    assert!(!load(&[], &off).unwrap().process.accept_steering);
    assert!(
        load(&["--accept-steering"], &off)
            .unwrap()
            .process
            .accept_steering
    );
    assert!(
        !load(&["--no-accept-steering"], pool)
            .unwrap()
            .process
            .accept_steering
    );
}

#[test]
fn file_is_checked_even_when_a_flag_overrides() {
    let e = load_err(&["--threads", "1"], "threads = 0\n");
    assert!(
        e.starts_with("t.toml:1:11: threads: invalid value 0"),
        "{e}"
    );
}

#[test]
fn backend_flags_replace_the_default_pool() {
    let text = r#"
[[pools]]
name = "api"
backends = [{ addr = "127.0.0.1:1" }]
[[pools]]
name = "default"
algorithm = "round-robin"
hash_key = "path"
backends = [{ addr = "127.0.0.1:2" }]
[[routes]]
path_prefix = "/api/"
pool = "api"
"#;
    // The file's `default` pool is the default pool, moved first.
    let c = load(&[], text).unwrap();
    assert_eq!(c.pools[0].name, "default");
    assert_eq!(c.pools[1].name, "api");
    assert_eq!(c.routes[0].pool, 1);
    // --backend replaces its backends and keeps its other settings.
    let c = load(
        &[
            "--backend",
            "127.0.0.1:3",
            "--backend",
            "127.0.0.1:4,weight=2",
        ],
        text,
    )
    .unwrap();
    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.pools[0].name, "default");
    assert_eq!(c.pools[0].hash_key, HashKey::Path);
    let ports: Vec<_> = c.pools[0].backends.iter().map(|b| b.addr.port()).collect();
    assert_eq!(ports, [3, 4]);
    assert_eq!(c.pools[0].backends[1].weight, 2);
    assert_eq!(c.pools[1].backends[0].addr.port(), 1);
}

#[test]
fn backend_flags_add_a_default_pool() {
    let c = load(
        &["--backend", "127.0.0.1:7", "--hash-key", "cookie:sid"],
        ROUTES,
    )
    .unwrap();
    let names: Vec<_> = c.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["default", "api", "static"]);
    assert_eq!(c.pools[0].hash_key, HashKey::Cookie("sid".into()));
    assert_eq!(c.pools[2].hash_key, HashKey::Header("x-user".into()));
    // Routes still point at the pools they name.
    assert_eq!(c.routes[0].pool, 1);
    assert_eq!(c.routes[1].pool, 2);
    assert_eq!(c.summary(), "3 pools, 4 backends, 3 routes");
}

#[test]
fn algorithm_flag_sets_only_the_default_pool() {
    let c = load(&["--hash-key", "path"], ROUTES).unwrap();
    // No `default` pool and no --backend: the first pool is the default.
    assert_eq!(c.pools[0].name, "api");
    assert_eq!(c.pools[0].hash_key, HashKey::Path);
    assert_eq!(c.pools[1].hash_key, HashKey::Header("x-user".into()));
    assert!(load_err(&["--algorithm", "nope"], ROUTES).contains("--algorithm"));
}

#[test]
fn file_errors_name_file_key_and_value() {
    let pool = |extra: &str| {
        format!("[[pools]]\nname = \"a\"\nbackends = [{{ addr = \"127.0.0.1:1\" }}]\n{extra}")
    };
    let cases: &[(String, &str)] = &[
        (
            "[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\", weight = 0 }]\n"
                .into(),
            "t.toml:3:46: pools[0].backends[0].weight: invalid value 0: must be from 1 to 10000",
        ),
        (
            pool("[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:2\" }]\n"),
            "t.toml:5:8: pools[1].name: invalid value \"a\": duplicate pool name (also pools[0].name)",
        ),
        (
            pool("[[pools]]\nname = \"\"\nbackends = [{ addr = \"127.0.0.1:2\" }]\n"),
            "t.toml:5:8: pools[1].name: invalid value \"\": must not be empty",
        ),
        (
            "[[pools]]\nname = \"a\"\nbackends = []\n".into(),
            "t.toml:3:12: pools[0].backends: a pool needs at least one backend",
        ),
        (
            pool("[[routes]]\npool = \"b\"\n"),
            "t.toml:5:8: routes[0].pool: invalid value \"b\": no pool by that name (pools: a)",
        ),
        (
            pool("[[routes]]\nhost = \"a.com:80\"\npool = \"a\"\n"),
            "t.toml:5:8: routes[0].host: invalid value \"a.com:80\": must not include a port",
        ),
        (
            pool("[[routes]]\npath_prefix = \"api\"\npool = \"a\"\n"),
            "t.toml:5:15: routes[0].path_prefix: invalid value \"api\": must start with `/`",
        ),
        (
            pool("[[routes]]\npool = \"a\"\n[[routes]]\nhost = \"x\"\npool = \"a\"\n"),
            "t.toml:8:8: routes[1]: unreachable: routes[0]",
        ),
        (
            format!("connect_timeout = \"soon\"\n{}", pool("")),
            "t.toml:1:19: connect_timeout: invalid value \"soon\": ",
        ),
        (
            format!("io_driver = \"kqueue\"\n{}", pool("")),
            "t.toml:1:13: io_driver: invalid value \"kqueue\": unknown io driver",
        ),
        (
            "[[pools]]\nname = \"a\"\nalgorithm = \"nope\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
            "t.toml:3:13: pools[0].algorithm: invalid value \"nope\": unknown algorithm",
        ),
        (
            "[[pools]]\nname = \"a\"\nhash_key = \"ip\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
            "t.toml:3:12: pools[0].hash_key: invalid value \"ip\": unknown hash key",
        ),
        (
            "[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1\" }]\n".into(),
            "t.toml:3:22: pools[0].backends[0].addr: invalid value \"127.0.0.1\": cannot resolve",
        ),
        (
            format!("max_connections_per_ip = -1\n{}", pool("")),
            "t.toml:1:26: max_connections_per_ip: invalid value -1: must be from 0 to 100000000",
        ),
        (
            format!("buffer_size = 10\n{}", pool("")),
            "t.toml:1:15: buffer_size: invalid value 10: must be from 1024 to 16777216",
        ),
        (
            format!("max_body_size = -1\n{}", pool("")),
            "t.toml:1:17: max_body_size: invalid value -1: must be from 0 to",
        ),
        (
            "[[pools]]\nname = \"a\"\nmax_body_size = -5\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
            "t.toml:3:17: pools[0].max_body_size: invalid value -5: must be 0 (no limit) or more",
        ),
        (
            "[[pools]]\nname = \"a\"\nallow_upgrades = [\"h2c\", \"web socket\"]\nbackends = [{ addr = \"127.0.0.1:1\" }]\n".into(),
            "t.toml:3:26: pools[0].allow_upgrades[1]: invalid value \"web socket\": expected a protocol name",
        ),
        (
            format!("tunnel_idle_timeout = \"forever\"\n{}", pool("")),
            "t.toml:1:23: tunnel_idle_timeout: invalid value \"forever\": ",
        ),
    ];
    for (text, want) in cases {
        let got = load_err(&[], text);
        assert!(
            got.starts_with(want),
            "\n got: {got}\nwant: {want}\ntext:\n{text}"
        );
    }
}

#[test]
fn per_ip_limit_from_the_file_or_a_flag() {
    let file = "max_connections_per_ip = 20\n[[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n";
    assert_eq!(
        load(&[], file).unwrap().settings().max_connections_per_ip,
        20
    );
    let c = load(&["--max-connections-per-ip", "0"], file).unwrap();
    assert_eq!(c.settings.max_connections_per_ip, 0);
    let e = Config::load(&cli(&[
        "--backend",
        "127.0.0.1:9000",
        "--max-connections-per-ip",
        "100000001",
    ]))
    .unwrap_err();
    assert_eq!(
        e.0,
        "invalid value `100000001` for --max-connections-per-ip: must be from 0 to 100000000"
    );
}

#[test]
fn toml_errors_have_positions() {
    let e = load_err(&[], "threads = 2\n[[pools]\n");
    assert!(e.starts_with("t.toml:2:"), "{e}");
    let e = load_err(&[], "threads = 2\nthread = 3\n");
    assert!(
        e.starts_with("t.toml:2:1: thread: unknown field `thread`"),
        "{e}"
    );
    let e = load_err(&[], "threads = \"2\"\n");
    assert!(e.starts_with("t.toml:1:11: threads: invalid type"), "{e}");
}

#[test]
fn admin_hosts_are_a_list_from_repeated_flags_or_the_file() {
    let file = "admin_host = [\"Corelb.Internal\", \"10.0.0.5\"]\n\
                admin_header_timeout = \"2s\"\n\
                [[pools]]\nname = \"a\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n";
    let c = load(&[], file).unwrap();
    assert_eq!(c.auth.admin_hosts, ["corelb.internal", "10.0.0.5"]);
    assert_eq!(c.process.admin_header_timeout, Duration::from_secs(2));
    // Flags replace the file's list.
    let c = load(
        &["--admin-host", "a.example", "--admin-host", "b.example,::1"],
        file,
    )
    .unwrap();
    assert_eq!(c.auth.admin_hosts, ["a.example", "b.example", "[::1]"]);
    let c = Config::load(&cli(&["--backend", "127.0.0.1:9000"])).unwrap();
    assert!(c.auth.admin_hosts.is_empty());
    assert_eq!(c.process.admin_header_timeout, Duration::from_secs(5));
    assert_eq!(
        load_err(&["--admin-host", "a.example:80"], file),
        "invalid value `a.example:80` for --admin-host: `a.example:80`: expected a host \
         name or an IP address, without a port (e.g. corelb.internal)"
    );
    assert_eq!(
        load_err(&[], &file.replace("10.0.0.5", "a b")),
        "t.toml:1:14: admin_host: invalid value [\"Corelb.Internal\", \"a b\"]: `a b`: \
         expected a host name or an IP address, without a port (e.g. corelb.internal)"
    );
}
