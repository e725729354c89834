//! The debug console (`services/lua/debug_console.lua`) over real loopback TCP: commands
//! asserted on their exact output, the one-shot HTTP form, bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::support::*;

/// A node running tests/lua/console_main.lua, and the console's port.
fn console() -> (TestNode, u16) {
    let lua = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/lua");
    let t = start(&format!(
        "luaservice = \"{lua}/?.lua\"\nstart = \"snlua console_main\"\n\
         snax = \"{lua}/snax/?.lua\"",
        lua = lua.display()
    ));
    let log = t.wait_log("Start debug console at 127.0.0.1:");
    let port = log
        .lines()
        .find_map(|l| l.split_once("Start debug console at 127.0.0.1:"))
        .and_then(|(_, port)| port.trim().parse().ok())
        .expect("the console logs its port");
    (t, port)
}

struct Session {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Session {
    fn open(port: u16) -> Session {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the console");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut session = Session {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        assert_eq!(session.line(), "Welcome to skynet console");
        session
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader
            .read_line(&mut line)
            .expect("a line from the console");
        line.trim_end_matches('\n').to_string()
    }

    /// Sends one command line; the lines of its answer up to and including the end marker.
    fn run(&mut self, command: &str) -> Vec<String> {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            let end = line == "<CMD OK>" || line == "<CMD Error>";
            lines.push(line);
            if end {
                return lines;
            }
        }
    }
}

#[test]
fn console_commands_answer_with_skynet_s_output() {
    let (t, port) = console();
    let pong = t.node.handle().query(".pong").expect(".pong");
    let mut s = Session::open(port);

    assert_eq!(s.run("getenv thread"), ["thread\t2", "<CMD OK>"]);
    assert_eq!(
        s.run("getenv no_such_key"),
        ["no_such_key\tnil", "<CMD OK>"]
    );
    assert_eq!(
        s.run("nosuchcommand"),
        [
            "Invalid command, type help for command list",
            "",
            "<CMD Error>"
        ]
    );
    // call: Lua literal arguments, every result numbered, then the count
    assert_eq!(
        s.run(&format!("call {pong} \"ECHO\", 1, \"two\", 3.5")),
        ["1\t1", "2\ttwo", "3\t3.5", "n\t3", "<CMD OK>"]
    );
    assert_eq!(
        s.run(&format!("call {pong} \"PING\"")),
        ["1\tPONG", "2\t1", "n\t2", "<CMD OK>"]
    );

    let list = s.run("list");
    assert_eq!(list.last().map(String::as_str), Some("<CMD OK>"));
    // skynet's line, then what skywasm adds: the service's wasm memory and its tenant
    let pong_line = list
        .iter()
        .find(|l| l.starts_with(&format!("{pong}\tsnlua pong [wasm ")))
        .unwrap_or_else(|| panic!("list shows the pong: {list:?}"));
    assert!(pong_line.ends_with(" KiB, tenant node]"), "{pong_line}");

    let started = s.run("start pong");
    assert_eq!(started.len(), 2, "{started:?}");
    let (address, name) = started[0].split_once('\t').expect("address and name");
    assert_eq!((name, started[1].as_str()), ("pong", "<CMD OK>"));
    let killed = s.run(&format!("kill {address}"));
    assert_eq!(
        killed,
        [format!("{address}\tsnlua pong"), "<CMD OK>".into()]
    );

    let mem = s.run("mem");
    assert!(
        mem.iter()
            .any(|l| l.starts_with(&format!("{pong}\t")) && l.contains("Kb (snlua pong) [wasm ")),
        "{mem:?}"
    );
    // skywasm: `stat` is answered by the host, for every service, without asking them.
    let stat = s.run("stat");
    assert!(
        stat.iter().any(|l| l.starts_with(&format!("{pong}\t"))
            && l.contains("mqlen:0")
            && l.contains("message:")
            && l.contains("busy:")
            && l.contains("tenant:node")),
        "{stat:?}"
    );
    let top = s.run("top queue 3");
    assert!(
        top[0].contains(" services by mailbox length (cpu: share of one worker"),
        "{top:?}"
    );
    assert!(top[1].starts_with("address"), "{top:?}");
    assert_eq!(top.last().unwrap(), "<CMD OK>");
    let top = s.run("top");
    assert!(top[0].contains("services by cpu"), "{top:?}");
    assert_eq!(s.run("top nonsense").last().unwrap(), "<CMD Error>");
    let tenants = s.run("tenants");
    assert!(tenants[0].starts_with("tenant"), "{tenants:?}");
    assert!(
        tenants[1].starts_with("node ") && tenants[1].contains(" yes "),
        "{tenants:?}"
    );
    let netstat = s.run("netstat");
    assert!(
        netstat
            .iter()
            .any(|l| l.contains("type:LISTEN") && l.contains(&format!("127.0.0.1:{port}"))),
        "{netstat:?}"
    );
    assert_eq!(s.run(&format!("ping {pong}")).last().unwrap(), "<CMD OK>");
    // inject: the host reads the file for the console; it runs inside the target
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/lua/inject_me.lua");
    assert_eq!(
        s.run(&format!("inject {pong} {}", file.display())),
        ["injected into\tpong", "<CMD OK>"]
    );
    assert_eq!(
        s.run(&format!("inject {pong} /no/such/file.lua")),
        ["Can't open /no/such/file.lua", "<CMD Error>"]
    );
    // skywasm: upgrades from the console (docs/upgrade.md); pong hands over no state
    assert_eq!(
        s.run(&format!("upgrade {pong} pong")),
        ["fresh: the running code handed over no state", "<CMD OK>"]
    );
    assert_eq!(
        s.run("upgrade-all pong"),
        [
            format!("{pong}\tfresh: the running code handed over no state"),
            "<CMD OK>".into()
        ]
    );
    assert_eq!(
        s.run(&format!("upgrade {pong} no_such_script"))
            .last()
            .unwrap(),
        "<CMD Error>"
    );
    assert_eq!(
        s.run(&format!("upgrade {pong} args_echo")),
        ["fresh: the running code handed over no state", "<CMD OK>"]
    );
    let list = s.run("list");
    assert!(
        list.iter().any(|l| l.starts_with(&format!(
            "{pong}\tsnlua pong (upgraded: snlua args_echo) [wasm "
        ))),
        "{list:?}"
    );
    let help = s.run("help");
    assert!(help.iter().any(|l| l.starts_with("list\t")), "{help:?}");
    // a command that fails prints its error and the console carries on
    assert_eq!(s.run("kill").last().unwrap(), "<CMD Error>");
    assert_eq!(s.run("getenv thread"), ["thread\t2", "<CMD OK>"]);

    // skynet's library commands (issue 25)
    let snax = s.run("snax counter 3 console");
    assert_eq!(snax.len(), 2, "{snax:?}");
    assert!(
        snax[0].starts_with(':') && snax[0].ends_with("\tcounter") && snax[1] == "<CMD OK>",
        "{snax:?}"
    );
    assert_eq!(s.run("snax no_such_snax"), ["Failed", "<CMD OK>"]);
    let cmem = s.run("cmem");
    let figure = |lines: &[String], key: &str| -> u64 {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key}\t")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} in {lines:?}"))
    };
    assert!(figure(&cmem, &pong.to_string()) > 0, "{cmem:?}");
    assert!(figure(&cmem, "total") >= figure(&cmem, &pong.to_string()));
    assert!(figure(&cmem, "block") >= 5, "{cmem:?}");
    let jmem = s.run("jmem");
    assert!(
        jmem.iter()
            .any(|l| l.starts_with("stats.allocated\t") && l.ends_with(" Mb")),
        "{jmem:?}"
    );
    assert_eq!(s.run("clearcache"), ["<CMD OK>"]);
    let heap = s.run("dumpheap");
    assert!(figure(&heap, "total") > 0, "{heap:?}");
    t.wait_log("Total memory: ");
    assert_eq!(
        s.run("profactive"),
        ["heap profilling is deactive", "<CMD OK>"]
    );
    assert_eq!(s.run("profactive on").last().unwrap(), "<CMD Error>");
}

#[test]
fn the_http_form_answers_once_and_garbage_leaves_the_console_serving() {
    let (_t, port) = console();
    let mut http = TcpStream::connect(("127.0.0.1", port)).unwrap();
    http.set_read_timeout(Some(WAIT)).unwrap();
    http.write_all(b"GET /getenv/thread HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    http.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "Welcome to skynet console\nthread\t2\n<CMD OK>\n");

    // garbage, then a client that goes away mid-line
    let mut junk = TcpStream::connect(("127.0.0.1", port)).unwrap();
    junk.write_all(&[0xff, 0, 1, 2, b'\n', 0x80, b'\n'])
        .unwrap();
    drop(junk);
    let mut s = Session::open(port);
    assert_eq!(s.run("getenv thread"), ["thread\t2", "<CMD OK>"]);
}
