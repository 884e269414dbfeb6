//! A dns64d binary run as a child process: killed when the test ends, sent
//! signals, given a free loopback port, and queried until it answers.

use std::net::SocketAddr;
use std::process::Child;
use std::time::Instant;

use super::{Message, Q, TEST_TIMEOUT, send_udp_raw};

/// A dns64d process; killed if the test ends early.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill(); // already exited in the normal case
        let _ = self.0.wait();
    }
}

/// Sends `signal` to a child process.
pub fn signal(child: &Child, signal: i32) {
    // SAFETY: kill(2) takes two integers and touches no memory of ours.
    // (Callers signal children they have not waited for, so the pid is
    // still their child's and not a reused one.)
    let result = unsafe { libc::kill(child.id() as i32, signal) };
    assert_eq!(result, 0, "kill failed");
}

/// A free loopback port for a child process (the child binds it right after).
pub fn free_port() -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap().port()
}

/// Queries until `check` accepts the answer.
pub async fn wait_until_answer(
    server: SocketAddr,
    q: &Q,
    check: impl Fn(&Message) -> bool,
) -> Message {
    let deadline = Instant::now() + TEST_TIMEOUT;
    loop {
        if let Some(bytes) = send_udp_raw(
            server,
            &q.to_message().to_vec().unwrap(),
            std::time::Duration::from_millis(200),
        )
        .await
        {
            let m = Message::from_vec(&bytes).unwrap();
            if check(&m) {
                return m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "dns64d did not give the expected answer in time"
        );
    }
}
