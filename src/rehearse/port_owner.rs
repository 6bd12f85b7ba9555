//! Who listens on a loopback port: the listening sockets in `/proc/net/tcp{,6}` and the processes
//! whose file descriptors hold them. A port found free can be taken by another process before the
//! rehearsal's child binds it; a connection that succeeds then proves nothing about the child (and
//! some children, like `pebble-challtestsrv`, log the failed bind and keep running without it).

use std::collections::HashSet;
use std::path::Path;

/// Who holds the listening socket(s) on a port.
#[derive(Debug, PartialEq, Eq)]
pub enum Listener {
    /// Nothing listens on the port.
    Nobody,
    /// The process or one of its descendants listens.
    Tree,
    /// Only other processes listen: the process IDs this user may see (may be empty).
    Others(Vec<u32>),
}

/// Who listens on TCP `port` (any local address, IPv4 or IPv6), seen from the process tree of `pid`.
pub fn listener(port: u16, pid: u32) -> Listener {
    let inodes = listening_inodes(port);
    if inodes.is_empty() {
        return Listener::Nobody;
    }
    let holders = holders(&inodes);
    let tree = tree(pid);
    if holders.iter().any(|p| tree.contains(p)) {
        Listener::Tree
    } else {
        Listener::Others(holders)
    }
}

/// The command line of `pid`, for messages ("" when it is gone or hidden).
pub fn command_line(pid: u32) -> String {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&raw)
        .replace('\0', " ")
        .trim()
        .to_string()
}

/// The socket inodes in state LISTEN on `port`.
fn listening_inodes(port: u16) -> HashSet<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|table| {
            table
                .lines()
                .skip(1)
                .filter_map(|line| listening_inode(line, port))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One row of `/proc/net/tcp{,6}`: `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`,
/// with the local address as `HEXADDR:HEXPORT` and LISTEN as state `0A`.
fn listening_inode(line: &str, port: u16) -> Option<u64> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local_port = fields.get(1)?.rsplit(':').next()?;
    let listening = *fields.get(3)? == "0A";
    (listening && u16::from_str_radix(local_port, 16).ok()? == port)
        .then(|| fields.get(9)?.parse().ok())
        .flatten()
}

/// The processes with a file descriptor on one of `inodes` (those whose descriptors this user
/// may read).
fn holders(inodes: &HashSet<u64>) -> Vec<u32> {
    let wanted: HashSet<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| wanted.contains(target.to_string_lossy().as_ref()))
        })
        .collect()
}

/// `pid` and its descendants.
fn tree(pid: u32) -> HashSet<u32> {
    let parents: Vec<(u32, u32)> = pids()
        .into_iter()
        .filter_map(|p| Some((p, parent(p)?)))
        .collect();
    let mut tree = HashSet::from([pid]);
    loop {
        let before = tree.len();
        for (p, ppid) in &parents {
            if tree.contains(ppid) {
                tree.insert(*p);
            }
        }
        if tree.len() == before {
            return tree;
        }
    }
}

/// Every process ID in `/proc`.
pub fn pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// The parent of `pid` (`/proc/PID/stat`: the field after the state, past the command name, which
/// may contain spaces and parentheses).
pub fn parent(pid: u32) -> Option<u32> {
    let stat =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_row_of_proc_net_tcp_is_read_by_port_and_state() {
        let listen = "   3: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 424242 1 0000000000000000 100 0 0 10 0";
        let established = "   4: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 434343 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(listening_inode(listen, 8080), Some(424242));
        assert_eq!(listening_inode(listen, 8081), None);
        assert_eq!(listening_inode(established, 8080), None);
        assert_eq!(
            listening_inode("  sl  local_address rem_address   st", 8080),
            None
        );
    }

    #[test]
    fn this_process_holds_its_own_listener_and_nobody_holds_a_closed_port() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(listener(port, std::process::id()), Listener::Tree);
        // Seen from a process that is not the holder nor its ancestor: someone else's.
        let child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let seen = listener(port, child.id());
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(seen, Listener::Others(vec![std::process::id()]));
        drop(l);
        assert_eq!(listener(port, std::process::id()), Listener::Nobody);
    }
}
