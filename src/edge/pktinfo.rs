//! The address a UDP query was sent to, so the answer leaves from it.
//!
//! A socket bound to a wildcard address (`0.0.0.0`, `[::]`) receives queries
//! sent to every local address, but a plain `sendto` lets the kernel pick the
//! reply's source address from the route back to the client. On a host with
//! several addresses that is often not the address the client asked, and
//! resolvers drop such replies. With `IP_PKTINFO` / `IPV6_RECVPKTINFO` the
//! kernel reports, with each datagram, the local address and interface it
//! arrived on; the reply carries the same `in_pktinfo` / `in6_pktinfo` back,
//! so it leaves from that address and out of that interface.
//!
//! This module owns the socket options and the control-message encoding
//! (libc's `CMSG_*` helpers) on Linux; `udp_batch` and `server` attach the
//! buffers to their `recvmmsg`/`sendmmsg`/`sendmsg` calls. Sockets bound to
//! one address need none of this and never pay for it. Elsewhere only
//! [`ReplySource`] exists, and the portable listener binds one socket per
//! local address instead (see `server`).

#[cfg(target_os = "linux")]
pub(crate) use linux::*;
use std::net::IpAddr;

/// Where a reply must come from: the local address a query was sent to and
/// the interface it arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReplySource {
    /// The local address to send from.
    pub address: IpAddr,
    /// The interface index to send out of (0: let routing choose).
    pub interface: u32,
}

#[cfg(target_os = "linux")]
mod linux {
    use std::io;
    use std::mem;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::os::fd::AsRawFd;

    use socket2::socklen_t;

    use super::ReplySource;

    /// Room for one packet-information control message, aligned as the kernel
    /// lays out `cmsghdr` (the IPv6 one, the larger, takes 40 bytes with its
    /// padding on 64-bit systems).
    #[derive(Clone, Copy)]
    #[repr(C, align(8))]
    pub(crate) struct ControlBuffer([u8; 64]);

    impl Default for ControlBuffer {
        fn default() -> Self {
            ControlBuffer([0; 64])
        }
    }

    impl ControlBuffer {
        /// The buffer as the kernel's `msg_control`.
        pub(crate) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
            self.0.as_mut_ptr().cast()
        }

        /// The buffer's size, as `msg_controllen` for a receive.
        pub(crate) const fn capacity() -> usize {
            64
        }

        /// The first `length` bytes (an encoded control message).
        pub(crate) fn bytes(&self, length: usize) -> &[u8] {
            &self.0[..length.min(Self::capacity())]
        }
    }

    /// Asks the kernel to report each datagram's destination address and
    /// interface on a socket of the given family.
    pub(crate) fn enable(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
        let (level, option) = if ipv6 {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
        } else {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        };
        let on: libc::c_int = 1;
        // SAFETY: the option value is a live c_int of the stated size.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                option,
                (&on as *const libc::c_int).cast(),
                mem::size_of::<libc::c_int>() as socklen_t,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// A `msghdr` whose control buffer is the first `length` bytes of `buffer`,
    /// for the `CMSG_*` helpers.
    fn control_header(buffer: &ControlBuffer, length: usize) -> libc::msghdr {
        // SAFETY: all zeros is a valid `msghdr` (null pointers, zero lengths).
        let mut header: libc::msghdr = unsafe { mem::zeroed() };
        header.msg_control = buffer.0.as_ptr() as *mut libc::c_void;
        header.msg_controllen = length.min(ControlBuffer::capacity()) as _;
        header
    }

    /// The reply source reported in the first `length` bytes of `buffer` (the
    /// control data of one received datagram); `None` when there is none.
    pub(crate) fn parse(buffer: &ControlBuffer, length: usize) -> Option<ReplySource> {
        let header = control_header(buffer, length);
        // SAFETY: `header` points at `length` bytes (at most the buffer's size)
        // of `buffer`, which outlives this function; the helpers stay inside
        // `msg_controllen` and return null past its end.
        let mut message = unsafe { libc::CMSG_FIRSTHDR(&header) };
        while !message.is_null() {
            // SAFETY: `message` is non-null and inside the buffer (see above),
            // and 8-byte aligned like the buffer.
            let (level, kind, message_length) = unsafe {
                (
                    (*message).cmsg_level,
                    (*message).cmsg_type,
                    (*message).cmsg_len as usize,
                )
            };
            // SAFETY: as above; `CMSG_DATA` only offsets the pointer.
            let data = unsafe { libc::CMSG_DATA(message) };
            let data_offset = data as usize - buffer.0.as_ptr() as usize;
            let header_length = data as usize - message as usize;
            let data_length = message_length.saturating_sub(header_length);
            let available = length
                .min(ControlBuffer::capacity())
                .saturating_sub(data_offset);
            if level == libc::IPPROTO_IP
                && kind == libc::IP_PKTINFO
                && data_length >= mem::size_of::<libc::in_pktinfo>()
                && available >= mem::size_of::<libc::in_pktinfo>()
            {
                // SAFETY: the kernel wrote an `in_pktinfo` here, inside the
                // buffer (checked above); read unaligned, as a copy.
                let info: libc::in_pktinfo =
                    unsafe { data.cast::<libc::in_pktinfo>().read_unaligned() };
                // `ipi_spec_dst` is the local address a reply should come from:
                // the destination for unicast, the interface's for broadcast.
                let address = Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr));
                return Some(ReplySource {
                    address: IpAddr::V4(address),
                    interface: u32::try_from(info.ipi_ifindex).unwrap_or(0),
                });
            }
            if level == libc::IPPROTO_IPV6
                && kind == libc::IPV6_PKTINFO
                && data_length >= mem::size_of::<libc::in6_pktinfo>()
                && available >= mem::size_of::<libc::in6_pktinfo>()
            {
                // SAFETY: as for IPv4, with an `in6_pktinfo`.
                let info: libc::in6_pktinfo =
                    unsafe { data.cast::<libc::in6_pktinfo>().read_unaligned() };
                let address = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                if address.is_multicast() {
                    // A query to a group address: no unicast address to answer from.
                    return None;
                }
                return Some(ReplySource {
                    address: IpAddr::V6(address),
                    interface: info.ipi6_ifindex,
                });
            }
            // SAFETY: `message` is a valid header inside `header`'s buffer.
            message = unsafe { libc::CMSG_NXTHDR(&header, message) };
        }
        None
    }

    /// Writes the control message that sends a reply from `source` into
    /// `buffer`; returns its length (the `msg_controllen` to send with).
    ///
    /// The length is `CMSG_LEN`, without the padding after the one message:
    /// the kernel reads the control data of a send into a stack buffer of
    /// exactly `cmsghdr` plus 20 bytes (an `in6_pktinfo`), and anything
    /// longer (an IPv6 `CMSG_SPACE` is 40) costs an allocation per datagram.
    pub(crate) fn encode(source: ReplySource, buffer: &mut ControlBuffer) -> usize {
        let (level, kind, data_length) = match source.address {
            IpAddr::V4(_) => (
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                mem::size_of::<libc::in_pktinfo>(),
            ),
            IpAddr::V6(_) => (
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                mem::size_of::<libc::in6_pktinfo>(),
            ),
        };
        // SAFETY: CMSG_LEN is arithmetic on its argument; it reads no memory.
        let message_length = unsafe { libc::CMSG_LEN(data_length as libc::c_uint) } as usize;
        const {
            // SAFETY: CMSG_SPACE is arithmetic on its argument; it reads no memory.
            let largest = unsafe { libc::CMSG_SPACE(mem::size_of::<libc::in6_pktinfo>() as u32) };
            assert!(largest as usize <= ControlBuffer::capacity());
        }
        let header = control_header(buffer, message_length);
        // SAFETY: `message_length` bytes (checked at compile time to fit) of
        // the buffer hold exactly one message of `data_length` bytes; the
        // buffer is aligned for `cmsghdr` and the data is written unaligned.
        unsafe {
            let message = libc::CMSG_FIRSTHDR(&header);
            (*message).cmsg_level = level;
            (*message).cmsg_type = kind;
            (*message).cmsg_len = message_length as _;
            let data = libc::CMSG_DATA(message);
            match source.address {
                IpAddr::V4(address) => {
                    data.cast::<libc::in_pktinfo>()
                        .write_unaligned(libc::in_pktinfo {
                            ipi_ifindex: libc::c_int::try_from(source.interface).unwrap_or(0),
                            ipi_spec_dst: libc::in_addr {
                                s_addr: u32::from(address).to_be(),
                            },
                            ipi_addr: libc::in_addr { s_addr: 0 },
                        })
                }
                IpAddr::V6(address) => {
                    data.cast::<libc::in6_pktinfo>()
                        .write_unaligned(libc::in6_pktinfo {
                            ipi6_addr: libc::in6_addr {
                                s6_addr: address.octets(),
                            },
                            ipi6_ifindex: source.interface,
                        })
                }
            }
        }
        message_length
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::edge::pktinfo::ReplySource;

        #[test]
        fn an_encoded_source_parses_back() {
            let cases = [
                ("IPv4 on lo", "127.0.0.2".parse().unwrap(), 1),
                ("IPv4, any interface", "192.0.2.7".parse().unwrap(), 0),
                ("IPv6 global", "2001:db8::53".parse().unwrap(), 7),
                ("IPv6 link-local", "fe80::1".parse().unwrap(), 3),
            ];
            for (case, address, interface) in cases {
                let source = ReplySource { address, interface };
                let mut buffer = ControlBuffer::default();
                let length = encode(source, &mut buffer);
                // The kernel's buffer for a send's control data, beyond
                // which it allocates (net/socket.c, `____sys_sendmsg`).
                let on_stack = mem::size_of::<libc::cmsghdr>() + 20;
                assert!(length <= on_stack, "{case}: {length} bytes");
                assert_eq!(parse(&buffer, length), Some(source), "{case}");
                for cut in 0..length {
                    assert_eq!(parse(&buffer, cut), None, "{case}: cut to {cut}");
                }
            }
        }

        #[test]
        fn no_or_foreign_control_data_is_no_source() {
            let mut buffer = ControlBuffer::default();
            assert_eq!(parse(&buffer, 0), None);
            assert_eq!(parse(&buffer, ControlBuffer::capacity()), None);
            let source = ReplySource {
                address: "ff02::1".parse().unwrap(),
                interface: 2,
            };
            let length = encode(source, &mut buffer);
            assert_eq!(parse(&buffer, length), None, "a multicast destination");
        }
    }
}
