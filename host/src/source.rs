//! Lua sources for services, found by the host along skynet's `?` search paths so that a
//! guest never names a host path: `luaservice` for service scripts, `lua_path` for modules
//! (`require`). The host function is in `abi/source.rs` (`load_source`, docs/abi.md §4.13).

use std::path::Path;

/// skynet's default `luaservice`.
pub const DEFAULT_SERVICE_PATH: &str = "./service/?.lua";
/// skynet's default `lua_path`.
pub const DEFAULT_MODULE_PATH: &str = "./lualib/?.lua;./lualib/?/init.lua";
/// Longest name a guest may ask for.
const MAX_NAME: usize = 255;

/// What is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A service script (`luaservice`); the name is used as written.
    Service,
    /// A module (`lua_path`); dots in the name become `/`, as Lua's `package.searchpath`.
    Module,
}

/// A source file found along a search path.
#[derive(Debug, PartialEq, Eq)]
pub struct Found {
    /// The search-path pattern that matched (skynet's loader derives `SERVICE_PATH` from it).
    pub pattern: String,
    /// The file's path, as the pattern made it.
    pub path: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

impl Found {
    /// The answer a guest receives: pattern, NUL, path, NUL, the file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.pattern.len() + self.path.len() + 2 + self.bytes.len());
        out.extend_from_slice(self.pattern.as_bytes());
        out.push(0);
        out.extend_from_slice(self.path.as_bytes());
        out.push(0);
        out.extend_from_slice(&self.bytes);
        out
    }
}

/// Why nothing was found.
#[derive(Debug, PartialEq, Eq)]
pub enum Missing {
    /// The name could reach outside the search path (`..`, an absolute path) or is malformed.
    BadName,
    /// No file exists at any of these paths.
    NotFound(Vec<String>),
}

/// Finds `name` along `search_path` (patterns separated by `;`, each with `?` standing for the
/// name). The first pattern whose file can be read wins.
pub fn find(kind: Kind, name: &str, search_path: &str) -> Result<Found, Missing> {
    if !acceptable(name) {
        return Err(Missing::BadName);
    }
    let substitute = match kind {
        Kind::Service => name.to_string(),
        Kind::Module => name.replace('.', "/"),
    };
    let mut tried = Vec::new();
    for pattern in search_path.split(';').filter(|p| !p.is_empty()) {
        let path = pattern.replace('?', &substitute);
        // Regular files only: a pipe or a device on a search path would hold the worker.
        match open_regular(Path::new(&path))
            .and_then(|(file, len)| read_bounded(file, len, u64::MAX))
        {
            Ok(bytes) => {
                return Ok(Found {
                    pattern: pattern.to_string(),
                    path,
                    bytes,
                })
            }
            Err(_) => tried.push(path),
        }
    }
    Err(Missing::NotFound(tried))
}

/// The directory of a service found through a directory pattern, such as `./test/?/` for
/// `./test/?/init.lua` (skynet's loader: the pattern matches `(.*/)[^/?]+$`, with `?` then
/// replaced by the name). skynet puts `<dir>?.lua` before `lua_path`, so a service's own
/// modules are found next to it; `None` when the file name part holds the `?`.
pub fn service_dir(pattern: &str, name: &str) -> Option<String> {
    let (dir, file) = pattern.rsplit_once('/')?;
    if file.is_empty() || file.contains('?') || !dir.contains('?') {
        return None;
    }
    Some(format!("{}/", dir.replace('?', name)))
}

/// The directory of a snax service found through `pattern`: the pattern up to its `?`, then
/// the name and a `/` (skynet's snaxd puts `<dir>?.lua` before `package.path`).
pub fn snax_dir(pattern: &str, name: &str) -> Option<String> {
    let (before, _) = pattern.split_once('?')?;
    Some(format!("{before}{name}/"))
}

/// The search path for `require` in a service: its own directory first, when it has one
/// ([`service_dir`]), then `lua_path`.
pub fn module_path(service_dir: Option<&str>, lua_path: &str) -> String {
    match service_dir {
        Some(dir) => format!("{dir}?.lua;{lua_path}"),
        None => lua_path.to_string(),
    }
}

/// Reads a file named by the node's own configuration (`preload`): no search, no name check.
pub fn read_file(path: &str) -> Result<Found, Missing> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Found {
            pattern: path.to_string(),
            path: path.to_string(),
            bytes,
        }),
        Err(_) => Err(Missing::NotFound(vec![path.to_string()])),
    }
}

/// Why a data file was not read ([`read_data`]).
#[derive(Debug, PartialEq, Eq)]
pub enum DataRefused {
    /// No such file (or it cannot be opened).
    NotFound,
    /// The path is not inside any of the data directories.
    Outside,
    /// Not a regular file (a directory, a device, a pipe).
    NotAFile,
    /// Larger than the bound.
    TooLarge,
}

/// Reads a data file for a Lua service (`lua_data_path`): `path` is as the service wrote
/// it (relative to the node's working directory, as skynet's `io.open`), and must resolve
/// — symbolic links followed — to a regular file inside one of `dirs`, of at most `max`
/// bytes. Only regular files are opened, so a device or a pipe never holds the worker.
pub fn read_data(path: &str, dirs: &[String], max: u64) -> Result<Found, DataRefused> {
    if path.is_empty() || path.contains('\0') {
        return Err(DataRefused::NotFound);
    }
    let inside = |real: &Path| {
        dirs.iter()
            .find(|dir| std::fs::canonicalize(dir).is_ok_and(|d| real.starts_with(d)))
    };
    let Ok(real) = std::fs::canonicalize(path) else {
        // Missing only if it would be inside: a path outside is refused whether it exists
        // or not, so a service cannot probe the host's files.
        let parent = Path::new(path).parent().and_then(|p| {
            let p = if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            };
            std::fs::canonicalize(p).ok()
        });
        return Err(match parent.as_deref().and_then(inside) {
            Some(_) => DataRefused::NotFound,
            None => DataRefused::Outside,
        });
    };
    let dir = inside(&real).ok_or(DataRefused::Outside)?;
    let (file, len) = open_regular(&real)?;
    let bytes = read_bounded(file, len, max)?;
    Ok(Found {
        pattern: dir.clone(),
        path: path.to_string(),
        bytes,
    })
}

/// Opens `path` for reading if it is a regular file, and its length. Opened without
/// blocking (a pipe swapped in would otherwise hold the worker in `open`), then checked on
/// the open descriptor itself.
fn open_regular(path: &Path) -> Result<(std::fs::File, u64), DataRefused> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|_| DataRefused::NotFound)?;
    let meta = file.metadata().map_err(|_| DataRefused::NotFound)?;
    if !meta.is_file() {
        return Err(DataRefused::NotAFile);
    }
    Ok((file, meta.len()))
}

/// The bytes of `file` (of `len` when opened), at most `max` of them. The file may have
/// grown since it was opened: one byte past the bound is read to know.
fn read_bounded(file: std::fs::File, len: u64, max: u64) -> Result<Vec<u8>, DataRefused> {
    use std::io::Read;
    if len > max {
        return Err(DataRefused::TooLarge);
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|_| DataRefused::NotFound)?;
    if bytes.len() as u64 > max {
        return Err(DataRefused::TooLarge);
    }
    Ok(bytes)
}

/// A name stays inside the directories of its search path: relative, no `..` anywhere (a
/// module name's dots become slashes), no backslash or NUL, not empty, at most 255 bytes.
fn acceptable(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && !name.starts_with('/')
        && !name.contains(['\\', '\0'])
        && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_files_are_read_only_inside_their_directories_and_within_the_bound() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        std::fs::create_dir_all(data.join("sub")).unwrap();
        std::fs::write(data.join("sub/items.lua"), "return {1, 2}").unwrap();
        std::fs::write(root.path().join("secret"), "key").unwrap();
        std::os::unix::fs::symlink(root.path().join("secret"), data.join("link")).unwrap();
        let dirs = [data.display().to_string()];
        let inside = format!("{}/sub/items.lua", data.display());
        let found = read_data(&inside, &dirs, 1 << 20).unwrap();
        assert_eq!(found.bytes, b"return {1, 2}");
        assert_eq!(found.path, inside);
        assert_eq!(found.pattern, dirs[0]);
        // `..` and links that lead out are outside; so is a sibling with the same prefix
        let escape = format!("{}/sub/../../secret", data.display());
        assert_eq!(
            read_data(&escape, &dirs, 1 << 20),
            Err(DataRefused::Outside)
        );
        let link = format!("{}/link", data.display());
        assert_eq!(read_data(&link, &dirs, 1 << 20), Err(DataRefused::Outside));
        std::fs::create_dir_all(root.path().join("data2")).unwrap();
        std::fs::write(root.path().join("data2/x"), "x").unwrap();
        let sibling = format!("{}/data2/x", root.path().display());
        assert_eq!(
            read_data(&sibling, &dirs, 1 << 20),
            Err(DataRefused::Outside)
        );
        // missing, a directory, too large, no directories at all
        let missing = format!("{}/none", data.display());
        assert_eq!(
            read_data(&missing, &dirs, 1 << 20),
            Err(DataRefused::NotFound)
        );
        let dir = format!("{}/sub", data.display());
        assert_eq!(read_data(&dir, &dirs, 1 << 20), Err(DataRefused::NotAFile));
        assert_eq!(read_data(&inside, &dirs, 5), Err(DataRefused::TooLarge));
        assert_eq!(read_data(&inside, &[], 1 << 20), Err(DataRefused::Outside));
        assert_eq!(read_data("", &dirs, 1 << 20), Err(DataRefused::NotFound));
        // a device inside a "data directory" is not a regular file
        assert_eq!(
            read_data("/dev/zero", &["/dev".to_string()], 1 << 20),
            Err(DataRefused::NotAFile)
        );
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("service")).unwrap();
        std::fs::create_dir_all(dir.path().join("lualib/skynet")).unwrap();
        std::fs::write(dir.path().join("service/main.lua"), "print 'main'").unwrap();
        std::fs::write(dir.path().join("lualib/skynet/queue.lua"), "return {}").unwrap();
        std::fs::write(dir.path().join("lualib/skynet/init.lua"), "return 1").unwrap();
        dir
    }

    #[test]
    fn the_first_matching_pattern_wins() {
        let dir = tree();
        let root = dir.path().display();
        let path = format!("{root}/nowhere/?.lua;{root}/service/?.lua");
        let found = find(Kind::Service, "main", &path).unwrap();
        assert_eq!(found.pattern, format!("{root}/service/?.lua"));
        assert_eq!(found.path, format!("{root}/service/main.lua"));
        assert_eq!(found.bytes, b"print 'main'");
        let encoded = found.encode();
        assert!(encoded.ends_with(b"\0print 'main'"));
    }

    #[test]
    fn modules_turn_dots_into_directories() {
        let dir = tree();
        let root = dir.path().display();
        let path = format!("{root}/lualib/?.lua;{root}/lualib/?/init.lua");
        assert_eq!(
            find(Kind::Module, "skynet.queue", &path).unwrap().bytes,
            b"return {}"
        );
        assert_eq!(
            find(Kind::Module, "skynet", &path).unwrap().bytes,
            b"return 1"
        );
        // A service name is used as written.
        assert!(matches!(
            find(Kind::Service, "skynet.queue", &path),
            Err(Missing::NotFound(_))
        ));
    }

    #[test]
    fn missing_files_list_every_path_tried() {
        let err = find(Kind::Service, "x", "a/?.lua;;b/?/init.lua").unwrap_err();
        assert_eq!(
            err,
            Missing::NotFound(vec!["a/x.lua".into(), "b/x/init.lua".into()])
        );
    }

    #[test]
    fn directory_services_find_their_own_modules_first() {
        assert_eq!(
            service_dir("./test/?/init.lua", "agent").as_deref(),
            Some("./test/agent/")
        );
        assert_eq!(service_dir("./service/?.lua", "agent"), None);
        assert_eq!(service_dir("main.lua", "main"), None);
        assert_eq!(service_dir("./fixed/init.lua", "x"), None);
        let dir = tree();
        let root = dir.path().display();
        std::fs::create_dir_all(dir.path().join("service/agent")).unwrap();
        std::fs::write(dir.path().join("service/agent/helper.lua"), "return 2").unwrap();
        let pattern = format!("{root}/service/?/init.lua");
        let own = service_dir(&pattern, "agent");
        let path = module_path(own.as_deref(), &format!("{root}/lualib/?.lua"));
        assert_eq!(
            find(Kind::Module, "helper", &path).unwrap().bytes,
            b"return 2"
        );
        assert_eq!(
            find(Kind::Module, "skynet.queue", &path).unwrap().bytes,
            b"return {}"
        );
    }

    #[test]
    fn names_cannot_leave_the_search_path() {
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "a/../../b",
            "a\\b",
            "a\0b",
            "..",
            "a..b",
        ] {
            assert_eq!(
                find(Kind::Service, bad, "./?.lua"),
                Err(Missing::BadName),
                "{bad:?}"
            );
        }
        assert_eq!(
            find(Kind::Module, &"x".repeat(256), "./?.lua"),
            Err(Missing::BadName)
        );
        assert!(acceptable("sub/dir/name"));
        assert!(acceptable("skynet.queue"));
    }
}
