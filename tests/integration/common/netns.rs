//! Network namespaces that a test creates for itself (needs root and
//! iproute2): a private loopback where port 53 and 127.0.0.x are free, and
//! links no packet can leave. Removed on drop.

use std::process::Command;

/// What a test that needs its own namespace says when it cannot make one:
/// such tests are `#[ignore = "needs root: …"]`, and CI runs them as root
/// with `--include-ignored`.
pub const NETNS_NEEDS_ROOT: &str = "cannot create a network namespace: run as root with iproute2 (cargo test -- --include-ignored)";

/// A network namespace of the test's own.
pub struct Netns(pub String);

impl Netns {
    /// Creates a namespace with loopback up; `None` where that is impossible.
    pub fn create() -> Option<Self> {
        let name = format!("dns64d-test-{:08x}", rand::random::<u32>());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return None;
        }
        let netns = Self(name);
        netns.sysctl("net.ipv6.conf.all.accept_dad=0");
        netns.sysctl("net.ipv6.conf.default.accept_dad=0");
        netns.ip(&["link", "set", "lo", "up"]);
        Some(netns)
    }

    /// Runs `ip -n NAME ARGS…` and asserts it worked.
    pub fn ip(&self, args: &[&str]) {
        let status = Command::new("ip").args(["-n", &self.0]).args(args).status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "ip -n {} {args:?} failed",
            self.0
        );
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, setting: &str) {
        let status = Command::new("ip")
            .args(["netns", "exec", &self.0, "sysctl", "-qw", setting])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "sysctl {setting} failed");
    }

    /// Joins this namespace and `peer` with a veth pair: `name` here,
    /// `peer_name` there, both up.
    pub fn veth_to(&self, name: &str, peer: &Netns, peer_name: &str) {
        self.ip(&[
            "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", &peer.0,
        ]);
        self.ip(&["link", "set", name, "up"]);
        peer.ip(&["link", "set", peer_name, "up"]);
    }

    /// Runs `body` on a thread inside the namespace, with a current-thread
    /// runtime, so every socket it opens lives there.
    pub fn run<F, Fut>(&self, body: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()>,
    {
        self.spawn(body).join().expect("namespace thread");
    }

    /// Like [`Netns::run`], without waiting: the thread's handle gives
    /// `body`'s result (or its panic) when joined.
    pub fn spawn<F, Fut, T>(&self, body: F) -> std::thread::JoinHandle<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns takes two integers and reads no memory of ours;
            // `file` stays open across the call, and only this fresh
            // thread (which then runs `body`) changes namespace.
            let entered = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(entered, 0, "setns failed");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(body())
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status(); // best effort cleanup
    }
}

/// The interface index of `name` in the current namespace.
pub fn if_index(name: &str) -> u32 {
    let name = std::ffi::CString::new(name).unwrap();
    // SAFETY: `name` is a NUL-terminated CString that lives across the
    // call; if_nametoindex only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {name:?}");
    index
}
