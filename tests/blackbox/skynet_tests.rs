//! skynet's own test scripts, unchanged, on skywasm: a config as skynet's examples write it
//! (no `bootstrap`, `luaservice`/`lua_path`/`snax` into a real skynet tree), the `skywasm`
//! binary, and the lines each script prints on skynet. skynet is built outside the
//! repository (DEVELOPERS.md): these run when `SKYWASM_SKYNET` names its directory, and are
//! skipped with a message otherwise (CI has none).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The directory of a skynet tree, or `None` (after saying why the test is skipped).
fn skynet_dir() -> Option<PathBuf> {
    match std::env::var_os("SKYWASM_SKYNET") {
        Some(dir) if Path::new(&dir).join("test").is_dir() => Some(PathBuf::from(dir)),
        Some(dir) => panic!("SKYWASM_SKYNET={dir:?} is not a skynet tree"),
        None => {
            eprintln!("skipped: set SKYWASM_SKYNET to a skynet tree to run skynet's test scripts");
            None
        }
    }
}

/// Runs skynet's `test/<script>.lua` on skywasm until its log has every line of `expected`
/// (each a substring of one line), then stops it; fails on an error a script does not
/// expect (`expected_errors`: substrings of the error lines it provokes on skynet too).
fn run_skynet_script(script: &str, expected: &[&str], expected_errors: &[&str]) {
    let done = |log: &str| expected.iter().all(|line| log.contains(line));
    if let Some(log) = run_until(script, &done, expected_errors) {
        for line in expected {
            assert!(
                log.contains(line),
                "{script}: never printed {line:?}; log:\n{log}"
            );
        }
    }
}

/// A skywasm node running skynet's `test/<script>.lua` (or an example), from a config as
/// skynet's examples write it, in the skynet tree as its working directory.
struct ScriptNode {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl ScriptNode {
    fn start(skynet: &Path, script: &str) -> ScriptNode {
        Self::start_with(skynet, script, "")
    }

    /// As [`ScriptNode::start`], with `extra` config lines.
    fn start_with(skynet: &Path, script: &str, extra: &str) -> ScriptNode {
        let dir = tempfile::tempdir().unwrap();
        let root = skynet.display();
        let config = format!(
            "root = \"{root}/\"\nthread = 2\nharbor = 0\nstart = \"{script}\"\n\
             luaservice = root..\"service/?.lua;\"..root..\"test/?.lua;\"..root..\"examples/?.lua;\"..root..\"test/?/init.lua\"\n\
             lualoader = root..\"lualib/loader.lua\"\n\
             lua_path = root..\"lualib/?.lua;\"..root..\"lualib/?/init.lua\"\n\
             lua_cpath = root..\"luaclib/?.so\"\ncpath = root..\"cservice/?.so\"\n\
             snax = root..\"examples/?.lua;\"..root..\"test/?.lua\"\nlua_data_path = root\n\
             logger = \"{log}\"\n{extra}",
            log = dir.path().join("node.log").display()
        );
        let path = dir.path().join("config");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_skywasm"))
            .arg(&path)
            .current_dir(skynet)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the binary starts");
        ScriptNode { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) until `done` says the log is complete; the log.
    fn wait_for(&self, done: &dyn Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = self.log();
            if done(&log) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the node and fails on an error its log shows that is not expected.
    fn finish(mut self, script: &str, expected_errors: &[&str]) -> String {
        self.stop();
        let log = self.log();
        for line in log.lines() {
            let failed = line.contains("init service failed")
                || line.contains("lua loader error")
                || (line.contains(" error : ")
                    && !expected_errors.iter().any(|e| line.contains(e)));
            assert!(!failed, "{script}: {line}\nlog:\n{log}");
        }
        log
    }
}

impl Drop for ScriptNode {
    fn drop(&mut self) {
        // (also when a test fails midway: no node outlives its test)
        self.stop();
    }
}

/// As [`run_skynet_script`], waiting until `done` says the log is complete; the log
/// (`None` when skipped).
fn run_until(
    script: &str,
    done: &dyn Fn(&str) -> bool,
    expected_errors: &[&str],
) -> Option<String> {
    let skynet = skynet_dir()?;
    let node = ScriptNode::start(&skynet, script);
    node.wait_for(done);
    Some(node.finish(script, expected_errors))
}

#[test]
fn testping_snax_newservice_post_req_hotfix_and_exit() {
    run_skynet_script(
        "testping",
        &[
            "ping server start:\thello world",
            "foobar",
            "Hotfix (i) :\t1",
            "fix\t101\thello",
            "hello\tcount:2",
            "ping server exit:\texit",
        ],
        &["throw an error", "<TRACE "],
    );
}

#[test]
fn testqueue_snax_uniqueservice_and_a_queue() {
    run_skynet_script(
        "testqueue",
        &[
            "ping server start:\ttest queue",
            "queue=\ttrue\t100",
            "20\thello",
        ],
        &[],
    );
}

#[test]
fn testtimeout_service_new_and_a_call_with_a_timeout() {
    run_skynet_script(
        "testtimeout",
        &["] 1 ", "] 2 ", "] false", "] 3 ", "] true", "] 4 "],
        &[],
    );
}

#[test]
fn testservice_skynet_service_from_a_directory_service() {
    run_skynet_script("testservice", &["db1\t1\t2", "db10\t19\t20"], &[]);
}

#[test]
fn testcoroutine_skynet_coroutine_and_profile() {
    run_skynet_script(
        "testcoroutine",
        &[
            "main step\tbegin",
            "main thread time:",
            "close\ttrue",
            "STATUS\tsuspended",
            "status thread\tnil",
        ],
        &[],
    );
}

#[test]
fn testmulticast_ten_subscribers_get_the_publish() {
    let done = |log: &str| log.matches("Hello World").count() >= 10;
    if let Some(log) = run_until("testmulticast", &done, &[]) {
        assert_eq!(
            log.matches("Hello World").count(),
            10,
            "each of the ten subscribers prints it once:\n{log}"
        );
        assert!(log.contains("===>\t[Multicast:"), "{log}");
    }
}

#[test]
fn teststm_a_reader_sees_the_writers_versions() {
    run_skynet_script(
        "teststm",
        &[
            "read:\ttrue\t1\t2\t3\t4\t5",
            "read:\ttrue\thello world\t1",
            "read:\ttrue\thello world\t4",
        ],
        &[],
    );
}

#[test]
fn testsharetable_loadtable_loadstring_query_and_queryall() {
    run_skynet_script(
        "testsharetable",
        &[
            "hello world\ttrue",
            "] 3\t3",
            "test_two\tmessage\thello two",
            "test queryall default",
            "test_three\tmessage\thello three",
        ],
        &[],
    );
}

#[test]
fn testdatasheet_a_builder_s_updates_reach_a_held_sub_table() {
    run_skynet_script(
        "testdatasheet",
        &[
            "[CHILD].c\t1\t3",
            "[1].c\t1\t3",
            "[2]\tb\t4",
            "[2.c]\t1\t5",
            "[3]\tc\t7",
            "[3]\td\t8",
        ],
        &[],
    );
}

/// Runs a script that asserts and then exits (`skynet.start(skynet.exit)`): it passed when
/// both it and bootstrap have logged `KILL self` with no error (a failed assertion logs
/// one, and `init service failed`).
fn run_asserting_script(script: &str, expected: &[&str]) {
    let done = |log: &str| {
        log.contains("init service failed")
            || (log.matches("KILL self").count() >= 2
                && expected.iter().all(|line| log.contains(line)))
    };
    if let Some(log) = run_until(script, &done, &[]) {
        assert!(done(&log), "{script} did not finish; log:\n{log}");
        for line in expected {
            assert!(
                log.contains(line),
                "{script}: never printed {line:?}; log:\n{log}"
            );
        }
    }
}

#[test]
fn testcrypt_des_with_both_paddings_and_base64() {
    run_asserting_script("testcrypt", &[]);
}

#[test]
fn testsha_sha1_and_hmac_sha1_vectors() {
    run_asserting_script("testsha", &["] 1\n", "] 90\n", "] 199\n"]);
}

/// skynet's Redis scripts use fixed ports (6379, and 6300 with a password): one test at a
/// time starts its server there.
static FIXED_PORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `script` against a real redis-server on skynet's `port` (with `password`).
fn with_redis(port: u16, password: Option<&str>, run: impl FnOnce()) {
    if skynet_dir().is_none() {
        return;
    }
    let _one_at_a_time = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let _server = crate::servers::redis(Some(port), password);
    run();
}

#[test]
fn testredis_commands_multi_exec_and_a_watch_with_patterns() {
    with_redis(6379, None, || {
        run_skynet_script(
            "testredis",
            &[
                "] hello\n",
                "] world\n",
                "10\t10",
                "Exec\thello",
                "Exec\tworld",
                "] hello world\n",
                "] false\n",
                "Watch\t10\tfoo",
                "Watch\t20\thello.foo\thello.*",
            ],
            &[],
        );
    });
}

#[test]
fn testredis2_a_quarter_million_fields_in_one_hmset() {
    // add1 overflows Lua's stack in table.unpack, on skynet too; add2 sends them all
    with_redis(6300, Some("foobared"), || {
        run_skynet_script(
            "testredis2",
            &[
                "dbsize:\t0",
                "add1 failed",
                "add2 succeed",
                "dbsize:\t1",
                "redistest launched",
            ],
            &[],
        );
    });
}

#[test]
fn testpipeline_a_pipeline_by_function_and_by_table() {
    with_redis(6379, None, || {
        run_skynet_script(
            "testpipeline",
            &[
                "test function",
                "test table",
                "] 2\n",
                "] 1\n",
                "] OK\n",
                "3\t3",
            ],
            &[],
        );
    });
}

#[test]
fn testsm_a_sharemap_writer_s_commits_reach_a_reader() {
    run_skynet_script(
        "testsm",
        &["x=\t1", "y=\t0", "s=\thello", "y=\t2", "s=\tworld"],
        &[],
    );
}

/// skynet's sproto RPC example, unchanged: examples/main.lua (protoloader, watchdog, gate,
/// agents speaking sproto) on skywasm, and examples/client.lua run by skynet's own Lua.
#[test]
fn the_sproto_rpc_example_serves_skynet_s_own_client() {
    let Some(skynet) = skynet_dir() else {
        return;
    };
    // ports 8888 (the gate) and 8000 (the debug console) are the example's
    let _one_at_a_time = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let node = ScriptNode::start(&skynet, "main");
    let log = node.wait_for(&|log| log.contains("Watchdog listen on"));
    assert!(log.contains("Watchdog listen on 127.0.0.1:8888"), "{log}");
    // (stdbuf: the client's prints must reach the pipe line by line)
    let mut client = Command::new("stdbuf")
        .arg("-oL")
        .arg(skynet.join("3rd/lua/lua"))
        .arg("examples/client.lua")
        .current_dir(&skynet)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("skynet's lua runs the client");
    // the client prints what it gets; it runs until killed
    const EXPECTED: [&str; 4] = [
        "RESPONSE\t1",
        "msg\tWelcome to skynet, I will send heartbeat every 5 sec.",
        "RESPONSE\t2",
        "REQUEST\theartbeat",
    ];
    let stdout = client.stdout.take().unwrap();
    let seen = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            lines.push(line);
            if EXPECTED.iter().all(|e| lines.iter().any(|l| l == e)) {
                break;
            }
        }
        lines
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seen.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = client.kill();
    let _ = client.wait();
    let lines = seen.join().unwrap();
    for expected in EXPECTED {
        assert!(
            lines.iter().any(|l| l == expected),
            "the client never printed {expected:?}:\n{}",
            lines.join("\n")
        );
    }
    let log = node.wait_for(&|log| log.contains("set\thello\tworld"));
    assert!(
        log.contains("set\thello\tworld"),
        "the agent got the set request:\n{log}"
    );
    // the example's console service reads stdin, which a sandboxed service has none of
    node.finish("main", &["socket.stdin"]);
}

#[test]
fn testmysql_queries_statements_procedures_and_multiple_results() {
    if skynet_dir().is_none() {
        return;
    }
    let _one_at_a_time = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let _server = crate::servers::mariadb(Some(3306), "123456", "skynet");
    run_skynet_script(
        "testmysql",
        &[
            "testmysql success to connect to mysql server",
            "[\"message\"] = \"&Records: 3  Duplicates: 0  Warnings: 0\"",
            "insert result : insert_id\t1\taffected_rows\t1",
            "call get_test() result : str\ttest_str\tdt\t2020-03-20 15:30:40\tflt\t3.1415\tnum\t89\tblb len\t12",
            "test stored procedure ok",
            "[\"u\"] = 255",
            "[\"multiresultset\"] = true",
            "escape string test result=\t'\\\\mysql escape %string test\\'test\\\"'",
            "[\"err\"] = \"Table 'skynet.notexisttable' doesn't exist\"",
            "test4 prepare result=",
            "test2 loop times=\t1",
            "test3 loop times=\t1",
            "test1 loop times=\t1",
        ],
        &[],
    );
}

#[test]
fn testrediscluster_slots_moved_eval_and_subscriptions() {
    if skynet_dir().is_none() {
        return;
    }
    let _one_at_a_time = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    // the script's startup nodes are 127.0.0.1:7000 and 7001
    let _cluster = crate::servers::redis_cluster_on(&[7000, 7001, 7002], 0, None);
    // (its `onmessage` lines are not waited for: the script publishes right after it
    // subscribes, without waiting for the subscription, which races on skynet too; the
    // cluster's pub/sub is tested with waits in redis_cluster.rs)
    run_skynet_script(
        "testrediscluster",
        &[
            "key1\t1",
            "key2\t2",
            "cnt:\t",
            "dbsize:\t",
            "cluster slots",
            "eval#get\tok",
        ],
        &[],
    );
}

/// skynet's testmongodb, unchanged, against the tests' MongoDB protocol peer on its fixed
/// port 27017 as user admin/123456 (no MongoDB server installs here: tests/blackbox/
/// mongo_peer.rs). It runs on real skynet first — which shows the peer answers as skynet's
/// own driver expects — then on skywasm.
#[test]
fn testmongodb_against_the_mongodb_protocol_peer_on_skynet_and_skywasm() {
    let Some(skynet) = skynet_dir() else {
        return;
    };
    let _one_at_a_time = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let peer = crate::mongo_peer::MongoPeer::start_on(27017, Some(("admin", "123456")));
    let expected = [
        "Test auth",
        "Test insert without index",
        "Test insert index",
        "Test find and remove",
        "Test runCommand",
        "Test expire index",
        "test safe batch insert",
        "test safe batch delete",
        "test_safe_update",
        "mongodb test finish.",
    ];
    let real = crate::support::SkynetNode::start(
        &skynet,
        "testmongodb",
        &skynet.join("test"),
        "harbor = 0\n",
    );
    real.wait_for("mongodb test finish.");
    let on_skynet = real.output();
    drop(real);
    for line in expected {
        assert!(
            on_skynet.contains(line),
            "real skynet never printed {line:?}:\n{on_skynet}"
        );
    }
    run_skynet_script("testmongodb", &expected, &[]);
    let rejected = peer.rejected.lock().unwrap();
    assert!(
        rejected.is_empty(),
        "requests MongoDB's BSON could not read: {rejected:#?}"
    );
}

/// A plain HTTP server on 127.0.0.1:80 answering every request with a short page and
/// closing, in place of the internet sites skynet's testhttp visits; stops when dropped.
struct LocalSite {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LocalSite {
    fn start() -> LocalSite {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:80").expect("port 80 is free");
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 19\r\n\
                      connection: close\r\n\r\n<html>local</html>\n",
                );
            }
        });
        LocalSite {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LocalSite {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// skynet's testhttp, unchanged, with a local site in place of the internet: the node's
/// `dns_hosts` points baidu.com at 127.0.0.1, where a local server answers on port 80.
/// (https is skipped by the script itself: there is no `ltls.c`.)
#[test]
fn testhttp_against_a_local_site_in_place_of_the_internet() {
    let Some(skynet) = skynet_dir() else {
        return;
    };
    let _one_at_a_time = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let _site = LocalSite::start();
    let hosts = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(hosts.path(), "127.0.0.1 baidu.com\n").unwrap();
    let node = ScriptNode::start_with(
        &skynet,
        "testhttp",
        &format!("dns_hosts = \"{}\"\n", hosts.path().display()),
    );
    let log = node.wait_for(&|log| log.contains("] true") || log.contains("] false"));
    for expected in [
        "PASS: bare hostname",
        "PASS: http://hostname:port",
        "PASS: HTTP:// uppercase",
        "resolved baidu.com -> 127.0.0.1",
        "PASS: http://ipv4:port",
        "PASS: bare ipv6 ::1 (reject)",
        "PASS: [ipv6]:port",
        "PASS: k8s 5-segment digits",
        "STATUS\t200",
        "BODY\t<html>local</html>",
        "HEAD\tcontent-length\t19",
        "url\thttp://baidu.com/get\tk1=1&k2=2",
        "[body] =====>\t200",
        "GET 127.0.0.1 (baidu.com)",
        "No ltls module, https is not supported",
        "] true",
    ] {
        assert!(
            log.contains(expected),
            "testhttp never printed {expected:?}:\n{log}"
        );
    }
    assert!(
        !log.contains("  FAIL: "),
        "every connect format passes:\n{log}"
    );
    node.finish("testhttp", &[]);
}
