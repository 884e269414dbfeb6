//! Batched, blocking UDP I/O for the listener threads on Linux: one
//! `recvmmsg` waits for a query and takes up to [`BATCH`] waiting ones, and
//! one `sendmmsg` sends the fast path's answers to them.
//!
//! Why it exists: on a warm cache the work per query is a few hundred
//! nanoseconds of user space; the rest is system calls. Measured with the
//! benchmark in bench/, one receive and one send per batch instead of per
//! packet is the difference between about 1.25x and 1.6x Unbound's queries
//! per CPU-second. The socket is blocking and never registered with epoll:
//! a registered socket makes the kernel run the epoll callback for every
//! datagram sent (the send buffer's "writable" wake-up), and the event loop
//! adds a wait and an empty receive per batch. Other systems use the
//! one-packet tokio loop in `server`.
//!
//! This module holds most of the `unsafe` code in dns64d (the control
//! messages are `pktinfo`'s): it fills the kernel's
//! `mmsghdr` arrays with pointers into buffers it owns and rebuilds those
//! pointers before every call, so nothing self-referential outlives a call,
//! and it sets one socket option that socket2 does not offer.
//!
//! On a wildcard socket each datagram also carries control data: received,
//! the address it was sent to; sent, the address to answer from (see
//! [`pktinfo`]). Batches of a socket bound to one address carry none.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use socket2::{SockAddr, SockAddrStorage, Socket, socklen_t};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::edge::pktinfo::{self, ControlBuffer, ReplySource};

/// Queries taken per receive call, and answers sent per send call.
pub(crate) const BATCH: usize = 32;

/// Sets the Don't Fragment bit on the socket's IPv4 datagrams, with the
/// interface MTU as the limit (`IP_PMTUDISC_PROBE`): RFC 9715 §3.1 asks DNS
/// responders for DF on IPv4, and forged ICMP "fragmentation needed" can
/// then not shrink what dns64d sends. A datagram over the interface MTU
/// fails with `EMSGSIZE`; the listener then sends it truncated (TC=1).
/// It also spares the kernel a hashed IP ID per datagram (DF datagrams of
/// unconnected sockets carry ID 0, RFC 6864 §4.1).
pub(crate) fn set_dont_fragment(socket: &impl AsRawFd) -> io::Result<()> {
    let value: libc::c_int = libc::IP_PMTUDISC_PROBE;
    // SAFETY: the option value is a live c_int of the stated size.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MTU_DISCOVER,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as socklen_t,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Registers a (blocking) listener socket with the current runtime, to wait
/// for it to be readable; dropping the result unregisters it. Reads through
/// it must not block: use [`ReceiveBatch::receive`] without `wait`.
pub(crate) fn register(socket: &Arc<Socket>) -> io::Result<AsyncFd<Arc<Socket>>> {
    // SAFETY: the `AsyncFd` owns a clone of the `Arc`, so the descriptor
    // stays open, and refers to the same socket, for the whole registration.
    let registered =
        unsafe { AsyncFd::register_with_interest(Arc::clone(socket), Interest::READABLE) }?;
    Ok(registered)
}

/// Buffers for one `recvmmsg` call and the datagrams it received.
pub(crate) struct ReceiveBatch {
    /// `BATCH` slots of `slot_size` bytes each.
    buffers: Box<[u8]>,
    slot_size: usize,
    sources: Box<[libc::sockaddr_storage]>,
    lengths: [usize; BATCH],
    source_lengths: [socklen_t; BATCH],
    /// Control data of each slot, on a wildcard socket only.
    controls: Option<Box<[ControlBuffer]>>,
    /// The address each datagram was sent to, read from `controls`.
    destinations: [Option<ReplySource>; BATCH],
    received: usize,
}

impl ReceiveBatch {
    /// Room for [`BATCH`] datagrams of up to `slot_size` bytes (pages the
    /// kernel never writes are never made resident). With
    /// `with_destinations` (a wildcard socket with [`pktinfo::enable`]),
    /// also the address each datagram was sent to.
    pub(crate) fn new(slot_size: usize, with_destinations: bool) -> Self {
        // SAFETY: all zeros is a valid `sockaddr_storage`.
        let zeroed: libc::sockaddr_storage = unsafe { mem::zeroed() };
        ReceiveBatch {
            buffers: vec![0u8; slot_size * BATCH].into_boxed_slice(),
            slot_size,
            sources: vec![zeroed; BATCH].into_boxed_slice(),
            lengths: [0; BATCH],
            source_lengths: [0; BATCH],
            controls: with_destinations
                .then(|| vec![ControlBuffer::default(); BATCH].into_boxed_slice()),
            destinations: [None; BATCH],
            received: 0,
        }
    }

    /// Takes as many waiting datagrams as fit. With `wait`, first waits
    /// until the socket (a blocking one) has one: an interrupted wait returns
    /// `ErrorKind::Interrupted`, and a socket shut down for reading returns
    /// at once. Without, returns `ErrorKind::WouldBlock` when none waits.
    pub(crate) fn receive(&mut self, socket: &impl AsRawFd, wait: bool) -> io::Result<usize> {
        self.clear();
        // SAFETY: iovec and mmsghdr are plain C structs of integers and raw
        // pointers, for which all-zero bytes are a valid (empty) value.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: mmsghdr is a msghdr (integers and raw pointers) and an
        // integer length; all-zero bytes are a valid (empty) value of it.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        for (index, (iovec, header)) in iovecs.iter_mut().zip(headers.iter_mut()).enumerate() {
            let slot = &mut self.buffers[index * self.slot_size..(index + 1) * self.slot_size];
            iovec.iov_base = slot.as_mut_ptr().cast();
            iovec.iov_len = slot.len();
            header.msg_hdr.msg_name =
                (&mut self.sources[index] as *mut libc::sockaddr_storage).cast();
            header.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as socklen_t;
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
        }
        if let Some(controls) = &mut self.controls {
            for (header, control) in headers.iter_mut().zip(controls.iter_mut()) {
                header.msg_hdr.msg_control = control.as_mut_ptr();
                header.msg_hdr.msg_controllen = ControlBuffer::capacity() as _;
            }
        }
        // SAFETY: every header points at a live buffer of the stated length,
        // at a `sockaddr_storage` and, if any, at a control buffer of the
        // stated length; all of them outlive the call.
        let count = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                if wait {
                    libc::MSG_WAITFORONE
                } else {
                    libc::MSG_DONTWAIT
                } as _,
                std::ptr::null_mut(),
            )
        };
        if count < 0 {
            return Err(io::Error::last_os_error());
        }
        let count = count as usize;
        for (index, header) in headers.iter().take(count).enumerate() {
            self.lengths[index] = header.msg_len as usize;
            self.source_lengths[index] = header.msg_hdr.msg_namelen;
        }
        if let Some(controls) = &self.controls {
            for ((header, control), destination) in headers
                .iter()
                .zip(controls.iter())
                .zip(self.destinations.iter_mut())
                .take(count)
            {
                // `msg_controllen` is a `size_t` on glibc, a `socklen_t` on musl.
                #[allow(clippy::unnecessary_cast)]
                let length = header.msg_hdr.msg_controllen as usize;
                *destination = pktinfo::parse(control, length);
            }
        }
        self.received = count;
        Ok(count)
    }

    /// Forgets the datagrams of the last call.
    pub(crate) fn clear(&mut self) {
        self.received = 0;
    }

    /// The received datagrams with their senders and, on a wildcard socket,
    /// the address to answer from (datagrams from senders that are not IP
    /// sockets, which cannot happen on a UDP socket, are skipped).
    pub(crate) fn datagrams(
        &self,
    ) -> impl Iterator<Item = (&[u8], SocketAddr, Option<ReplySource>)> {
        (0..self.received).filter_map(move |index| {
            let start = index * self.slot_size;
            let packet = &self.buffers[start..start + self.lengths[index].min(self.slot_size)];
            let mut storage = SockAddrStorage::zeroed();
            // SAFETY: `view_as` requires one of the platform's sockaddr
            // types, large and aligned enough for the storage to hold it;
            // `sockaddr_storage` is the largest of them, the storage's own layout.
            unsafe { *storage.view_as::<libc::sockaddr_storage>() = self.sources[index] };
            // SAFETY: `index < received`, so the last recvmmsg wrote this
            // datagram's sender into `sources[index]`, with the family in
            // `ss_family` and its length in `source_lengths[index]`: the
            // family and length match the address, as `SockAddr::new` requires.
            let source = unsafe { SockAddr::new(storage, self.source_lengths[index]) };
            Some((packet, source.as_socket()?, self.destinations[index]))
        })
    }
}

/// Answers collected while a receive batch is processed, sent with `sendmmsg`.
#[derive(Default)]
pub(crate) struct SendBatch {
    bytes: Vec<u8>,
    /// End offset in `bytes`, destination and source (on a wildcard
    /// socket) of each answer.
    answers: Vec<(usize, SockAddr, Option<ReplySource>)>,
    /// Control data for one call, made on the first answer with a source.
    controls: Vec<ControlBuffer>,
}

impl SendBatch {
    /// Queues one answer, to be sent from `source` when given.
    pub(crate) fn push(
        &mut self,
        answer: &[u8],
        destination: SocketAddr,
        source: Option<ReplySource>,
    ) {
        self.bytes.extend_from_slice(answer);
        self.answers
            .push((self.bytes.len(), SockAddr::from(destination), source));
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// Sends every queued answer on a blocking socket (waiting while its
    /// send buffer is full). An answer the kernel refuses (say, an
    /// unreachable destination) is handed to `refused` with its source and
    /// the error, then dropped, as a failed `send_to` would be; the ones
    /// after it are sent.
    pub(crate) fn flush(
        &mut self,
        socket: &impl AsRawFd,
        mut refused: impl FnMut(&[u8], SocketAddr, Option<ReplySource>, io::Error),
    ) {
        let mut next = 0;
        while next < self.answers.len() {
            match self.send_now(socket, next) {
                Ok(sent) => next += sent.max(1),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let start = if next == 0 {
                        0
                    } else {
                        self.answers[next - 1].0
                    };
                    let (end, destination, source) = &self.answers[next];
                    if let Some(destination) = destination.as_socket() {
                        refused(&self.bytes[start..*end], destination, *source, error);
                    }
                    next += 1;
                }
            }
        }
        self.bytes.clear();
        self.answers.clear();
    }

    /// One `sendmmsg` of the answers from `first` on.
    fn send_now(&mut self, socket: &impl AsRawFd, first: usize) -> io::Result<usize> {
        // SAFETY: iovec and mmsghdr are plain C structs of integers and raw
        // pointers, for which all-zero bytes are a valid (empty) value.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { mem::zeroed() };
        // SAFETY: mmsghdr is a msghdr (integers and raw pointers) and an
        // integer length; all-zero bytes are a valid (empty) value of it.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { mem::zeroed() };
        let pending = &self.answers[first..];
        let count = pending.len().min(BATCH);
        let mut start = if first == 0 {
            0
        } else {
            self.answers[first - 1].0
        };
        for (index, (end, destination, source)) in pending.iter().take(count).enumerate() {
            let answer = &self.bytes[start..*end];
            start = *end;
            iovecs[index].iov_base = answer.as_ptr() as *mut libc::c_void;
            iovecs[index].iov_len = answer.len();
            let header = &mut headers[index].msg_hdr;
            header.msg_name = destination.as_ptr() as *mut libc::c_void;
            header.msg_namelen = destination.len();
            header.msg_iov = &mut iovecs[index];
            header.msg_iovlen = 1;
            if let Some(source) = source {
                if self.controls.is_empty() {
                    self.controls = vec![ControlBuffer::default(); BATCH];
                }
                let control = &mut self.controls[index];
                header.msg_controllen = pktinfo::encode(*source, control) as _;
                header.msg_control = control.as_mut_ptr();
            }
        }
        // SAFETY: every header points at queued bytes, an address and, if
        // any, control data that live in `self` for the whole call; the
        // kernel only reads them.
        let sent = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                count as libc::c_uint,
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sent as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn bound() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").unwrap()
    }

    #[test]
    fn a_batch_is_received_and_each_answer_reaches_its_sender() {
        let server = bound();
        let address = server.local_addr().unwrap();
        let mut clients = Vec::new();
        for index in 0..5u8 {
            let client = bound();
            client.send_to(&[index; 3], address).unwrap();
            clients.push(client);
        }
        let mut received = ReceiveBatch::new(512, false);
        let mut answers = SendBatch::default();
        let mut seen = Vec::new();
        while seen.len() < clients.len() {
            received.receive(&server, true).unwrap();
            for (packet, source, destination) in received.datagrams() {
                assert_eq!(destination, None, "a socket without pktinfo");
                seen.push((packet.to_vec(), source));
                // Answer with the packet doubled, so each sender can check its own.
                answers.push(&[packet, packet].concat(), source, None);
            }
        }
        // An answer the kernel refuses (an IPv6 destination on an IPv4
        // socket) is reported and dropped without losing the ones queued after it.
        answers.push(b"lost", "[::1]:9".parse().unwrap(), None);
        answers.push(b"lost", "[::1]:9".parse().unwrap(), None);
        let extra = bound();
        answers.push(b"after", extra.local_addr().unwrap(), None);
        let mut refused = Vec::new();
        answers.flush(&server, |bytes, destination, _, _| {
            refused.push((bytes.to_vec(), destination))
        });
        assert!(answers.is_empty());
        let lost = (b"lost".to_vec(), "[::1]:9".parse().unwrap());
        assert_eq!(refused, [lost.clone(), lost]);

        for (index, client) in clients.iter().enumerate() {
            let expected = (client.local_addr().unwrap(), vec![index as u8; 3]);
            assert!(
                seen.iter()
                    .any(|(packet, source)| (*source, packet.clone()) == expected)
            );
            let mut buffer = [0u8; 16];
            let (length, from) = client.recv_from(&mut buffer).unwrap();
            assert_eq!(from, address);
            assert_eq!(&buffer[..length], &[index as u8; 6]);
        }
        let mut buffer = [0u8; 16];
        let (length, _) = extra.recv_from(&mut buffer).unwrap();
        assert_eq!(&buffer[..length], b"after");
    }

    #[test]
    fn more_answers_than_one_call_takes_are_all_sent() {
        let server = bound();
        let client = bound();
        let mut answers = SendBatch::default();
        for index in 0..(BATCH * 2 + 3) {
            answers.push(
                &(index as u16).to_be_bytes(),
                client.local_addr().unwrap(),
                None,
            );
        }
        answers.flush(&server, |_, destination, _, error| {
            panic!("{destination}: {error}")
        });
        for index in 0..(BATCH * 2 + 3) {
            let mut buffer = [0u8; 4];
            let (length, _) = client.recv_from(&mut buffer).unwrap();
            assert_eq!(&buffer[..length], &(index as u16).to_be_bytes());
        }
    }

    #[test]
    fn a_datagram_longer_than_a_slot_is_cut_to_the_slot() {
        let server = bound();
        let client = bound();
        client
            .send_to(&[7u8; 100], server.local_addr().unwrap())
            .unwrap();
        let mut received = ReceiveBatch::new(16, false);
        assert_eq!(received.receive(&server, true).unwrap(), 1);
        let (packet, source, _) = received.datagrams().next().unwrap();
        assert_eq!(packet, &[7u8; 16]);
        assert_eq!(source, client.local_addr().unwrap());
        assert_eq!(
            received.receive(&server, false).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    /// The bug of issue 15 on loopback, where every 127.0.0.0/8 address is
    /// local: a wildcard socket answers a query sent to 127.0.0.2 or
    /// 127.0.0.3 from that address, not from the 127.0.0.1 that routing
    /// would pick for a client on 127.0.0.1. (IPv6 has only ::1 on loopback;
    /// the namespace test in tests/ covers it.)
    #[test]
    fn a_wildcard_socket_answers_from_the_address_each_query_was_sent_to() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        pktinfo::enable(&server, false).unwrap();
        let port = server.local_addr().unwrap().port();
        let asked: Vec<SocketAddr> = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
            .iter()
            .map(|address| SocketAddr::new(address.parse().unwrap(), port))
            .collect();
        let client = bound();
        for (index, address) in asked.iter().enumerate() {
            client.send_to(&[index as u8], address).unwrap();
        }
        let mut received = ReceiveBatch::new(512, true);
        let mut answers = SendBatch::default();
        let mut count = 0;
        while count < asked.len() {
            received.receive(&server, true).unwrap();
            for (packet, source, destination) in received.datagrams() {
                let destination = destination.expect("pktinfo reports the destination");
                assert_eq!(destination.address, asked[usize::from(packet[0])].ip());
                assert_ne!(destination.interface, 0);
                answers.push(packet, source, Some(destination));
                count += 1;
            }
        }
        answers.flush(&server, |_, destination, _, error| {
            panic!("{destination}: {error}")
        });
        for _ in 0..asked.len() {
            let mut buffer = [0u8; 4];
            let (length, from) = client.recv_from(&mut buffer).unwrap();
            assert_eq!(length, 1);
            assert_eq!(from, asked[usize::from(buffer[0])], "reply source");
        }
    }
}
