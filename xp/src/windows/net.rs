//! Thin Winsock wrappers: owned non-blocking sockets, `core::net`
//! addresses to and from `SOCKADDR_IN`/`SOCKADDR_IN6`, and a `select`
//! set larger than Winsock's default 64 (Winsock honours `fd_count`; the
//! 64 is only the C header's default array size).

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use windows_sys::Win32::Networking::WinSock::{
    AF_INET, AF_INET6, FD_SET, FIONBIO, INVALID_SOCKET, IPPROTO_TCP, IPPROTO_UDP,
    SIO_UDP_CONNRESET, SO_EXCLUSIVEADDRUSE, SO_RCVBUF, SOCK_DGRAM, SOCK_STREAM, SOCKADDR,
    SOCKADDR_IN, SOCKADDR_IN6, SOCKET, SOCKET_ERROR, SOL_SOCKET, SOMAXCONN, TIMEVAL, WSADATA,
    WSAGetLastError, WSAIoctl, WSAStartup, accept, bind, closesocket, connect, ioctlsocket, recv,
    recvfrom, select, send, sendto, setsockopt, socket,
};

/// A Winsock error code (WSAGetLastError).
pub type ErrorCode = i32;

/// Starts Winsock 2.2.
pub fn start() -> Result<(), ErrorCode> {
    let mut data = WSADATA::default();
    // SAFETY: `data` is a live, writable WSADATA; WSAStartup only writes it.
    match unsafe { WSAStartup(0x0202, &mut data) } {
        0 => Ok(()),
        code => Err(code),
    }
}

fn last_error() -> ErrorCode {
    // SAFETY: WSAGetLastError takes no arguments and reads thread state only.
    unsafe { WSAGetLastError() }
}

/// A socket address in Winsock's layout.
#[repr(C)]
#[derive(Clone, Copy)]
pub union RawAddress {
    v4: SOCKADDR_IN,
    v6: SOCKADDR_IN6,
}

impl RawAddress {
    /// An all-zero address for `recvfrom` to fill.
    pub fn empty() -> Self {
        Self {
            v6: SOCKADDR_IN6::default(),
        }
    }

    /// The Winsock form of `address` and its length.
    pub fn from_address(address: SocketAddr) -> (Self, i32) {
        match address {
            SocketAddr::V4(address) => {
                let mut raw = SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: address.port().to_be(),
                    ..Default::default()
                };
                raw.sin_addr.S_un.S_addr = u32::from_ne_bytes(address.ip().octets());
                (Self { v4: raw }, size_of::<SOCKADDR_IN>() as i32)
            }
            SocketAddr::V6(address) => {
                let mut raw = SOCKADDR_IN6 {
                    sin6_family: AF_INET6,
                    sin6_port: address.port().to_be(),
                    sin6_flowinfo: 0,
                    ..Default::default()
                };
                raw.sin6_addr.u.Byte = address.ip().octets();
                raw.Anonymous.sin6_scope_id = address.scope_id();
                (Self { v6: raw }, size_of::<SOCKADDR_IN6>() as i32)
            }
        }
    }

    /// The address this holds, if IPv4 or IPv6.
    pub fn to_address(self) -> Option<SocketAddr> {
        // SAFETY: both variants start with the family at the same offset,
        // and it is always initialised. A value whose family is AF_INET6
        // was written whole as a SOCKADDR_IN6 (by `from_address`, or
        // `empty`, which zeroes the larger variant, then Winsock), so only
        // initialised bytes are read, and every bit pattern of these plain
        // integer structs is valid.
        unsafe {
            match self.v4.sin_family {
                AF_INET => Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(self.v4.sin_addr.S_un.S_addr.to_ne_bytes()),
                    u16::from_be(self.v4.sin_port),
                ))),
                AF_INET6 => Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(self.v6.sin6_addr.u.Byte),
                    u16::from_be(self.v6.sin6_port),
                    0,
                    self.v6.Anonymous.sin6_scope_id,
                ))),
                _ => None,
            }
        }
    }

    /// Reads a `SOCKADDR` of `length` bytes (from GetAdaptersAddresses).
    ///
    /// # Safety
    /// `pointer` must be null or valid for `length` bytes.
    pub unsafe fn read(pointer: *const SOCKADDR, length: i32) -> Option<SocketAddr> {
        if pointer.is_null() || length <= 0 {
            return None;
        }
        let length = (length as usize).min(size_of::<Self>());
        let mut raw = Self::empty();
        // SAFETY: the caller guarantees `length` readable bytes; the
        // target holds at least `length` bytes.
        unsafe {
            core::ptr::copy_nonoverlapping(
                pointer.cast::<u8>(),
                (&raw mut raw).cast::<u8>(),
                length,
            )
        };
        raw.to_address()
    }
}

/// Why a socket call failed, with the call's name for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketError {
    /// The Winsock function.
    pub call: &'static str,
    /// WSAGetLastError.
    pub code: ErrorCode,
}

impl core::fmt::Display for SocketError {
    fn fmt(&self, formatter: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            formatter,
            "{} failed with Winsock error {}",
            self.call, self.code
        )
    }
}

fn check(result: i32, call: &'static str) -> Result<i32, SocketError> {
    if result == SOCKET_ERROR {
        Err(SocketError {
            call,
            code: last_error(),
        })
    } else {
        Ok(result)
    }
}

/// An owned non-blocking socket, closed on drop.
pub struct Socket(SOCKET);

/// The transport of a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Socket {
    /// A new non-blocking socket for `address`'s family.
    pub fn new(address: SocketAddr, transport: Transport) -> Result<Self, SocketError> {
        let family = if address.is_ipv4() { AF_INET } else { AF_INET6 };
        let (kind, protocol) = match transport {
            Transport::Udp => (SOCK_DGRAM, IPPROTO_UDP),
            Transport::Tcp => (SOCK_STREAM, IPPROTO_TCP),
        };
        // SAFETY: socket takes three integers and reads no memory; the
        // handle it returns is owned by the `Socket` made right after.
        let handle = unsafe { socket(i32::from(family), kind, protocol) };
        if handle == INVALID_SOCKET {
            return Err(SocketError {
                call: "socket",
                code: last_error(),
            });
        }
        let socket = Self(handle);
        let mut non_blocking: u32 = 1;
        // SAFETY: an open socket, and FIONBIO's argument: a live, writable u32.
        let result = unsafe { ioctlsocket(socket.0, FIONBIO, &mut non_blocking) };
        check(result, "ioctlsocket")?;
        Ok(socket)
    }

    /// Binds exclusively (no other program can bind the same port over it).
    pub fn bind(&self, address: SocketAddr) -> Result<(), SocketError> {
        let exclusive: i32 = 1;
        // SAFETY: an open socket and an i32 option value. Failure is
        // harmless (the bind below still decides).
        unsafe {
            setsockopt(
                self.0,
                SOL_SOCKET,
                SO_EXCLUSIVEADDRUSE,
                (&raw const exclusive).cast(),
                size_of::<i32>() as i32,
            )
        };
        let (raw, length) = RawAddress::from_address(address);
        // SAFETY: `raw` holds `length` bytes of a socket address.
        check(
            unsafe { bind(self.0, (&raw const raw).cast(), length) },
            "bind",
        )
        .map(drop)
    }

    /// Binds to the wildcard address of `family_of`'s family on `port`.
    pub fn bind_any(&self, family_of: SocketAddr, port: u16) -> Result<(), SocketError> {
        let any = match family_of {
            SocketAddr::V4(_) => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
            SocketAddr::V6(_) => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
        };
        let (raw, length) = RawAddress::from_address(any);
        // SAFETY: as in `bind`.
        check(
            unsafe { bind(self.0, (&raw const raw).cast(), length) },
            "bind",
        )
        .map(drop)
    }

    /// Stops ICMP port-unreachable errors from ending later `recvfrom`
    /// calls on a UDP listener (a client that went away must not disturb
    /// the others).
    pub fn ignore_connection_resets(&self) {
        let off: u32 = 0;
        let mut returned = 0u32;
        // SAFETY: SIO_UDP_CONNRESET takes a BOOL in and nothing out.
        // Failure only means resets are also handled in `receive_from`.
        unsafe {
            WSAIoctl(
                self.0,
                SIO_UDP_CONNRESET,
                (&raw const off).cast(),
                4,
                core::ptr::null_mut(),
                0,
                &mut returned,
                core::ptr::null_mut(),
                None,
            )
        };
    }

    /// Asks for a receive buffer of `bytes` (UDP listeners take bursts).
    pub fn set_receive_buffer(&self, bytes: i32) {
        // SAFETY: an open socket and an i32 option value. On failure the
        // default buffer stays, which only means more drops in a burst.
        unsafe {
            setsockopt(
                self.0,
                SOL_SOCKET,
                SO_RCVBUF,
                (&raw const bytes).cast(),
                size_of::<i32>() as i32,
            )
        };
    }

    /// Listens (TCP).
    pub fn listen(&self) -> Result<(), SocketError> {
        // SAFETY: an open, bound socket.
        check(
            unsafe { windows_sys::Win32::Networking::WinSock::listen(self.0, SOMAXCONN as i32) },
            "listen",
        )
        .map(drop)
    }

    /// Connects (UDP: fixes the peer; TCP: starts a non-blocking connect,
    /// WSAEWOULDBLOCK meaning under way).
    pub fn connect(&self, address: SocketAddr) -> Result<(), SocketError> {
        let (raw, length) = RawAddress::from_address(address);
        // SAFETY: `raw` holds `length` bytes of a socket address.
        check(
            unsafe { connect(self.0, (&raw const raw).cast(), length) },
            "connect",
        )
        .map(drop)
    }

    /// Accepts a connection, made non-blocking.
    pub fn accept(&self) -> Result<Socket, SocketError> {
        // SAFETY: a listening socket; the peer address is not asked for.
        let handle = unsafe { accept(self.0, core::ptr::null_mut(), core::ptr::null_mut()) };
        if handle == INVALID_SOCKET {
            return Err(SocketError {
                call: "accept",
                code: last_error(),
            });
        }
        let socket = Socket(handle);
        let mut non_blocking: u32 = 1;
        // SAFETY: as in `new`.
        let result = unsafe { ioctlsocket(socket.0, FIONBIO, &mut non_blocking) };
        check(result, "ioctlsocket")?;
        Ok(socket)
    }

    /// Receives a datagram and its sender.
    pub fn receive_from(
        &self,
        buffer: &mut [u8],
    ) -> Result<(usize, Option<SocketAddr>), SocketError> {
        let mut raw = RawAddress::empty();
        let mut length = size_of::<RawAddress>() as i32;
        // SAFETY: `buffer` and `raw` are valid for the lengths given.
        let received = check(
            unsafe {
                recvfrom(
                    self.0,
                    buffer.as_mut_ptr(),
                    buffer.len().min(i32::MAX as usize) as i32,
                    0,
                    (&raw mut raw).cast(),
                    &mut length,
                )
            },
            "recvfrom",
        )?;
        Ok((received as usize, raw.to_address()))
    }

    /// Sends a datagram to `address`.
    pub fn send_to(&self, bytes: &[u8], address: SocketAddr) -> Result<usize, SocketError> {
        let (raw, length) = RawAddress::from_address(address);
        // SAFETY: `bytes` and `raw` are valid for the lengths given.
        check(
            unsafe {
                sendto(
                    self.0,
                    bytes.as_ptr(),
                    bytes.len() as i32,
                    0,
                    (&raw const raw).cast(),
                    length,
                )
            },
            "sendto",
        )
        .map(|sent| sent as usize)
    }

    /// Receives on a connected socket (0 = the peer closed, for TCP).
    pub fn receive(&self, buffer: &mut [u8]) -> Result<usize, SocketError> {
        // SAFETY: `buffer` is valid for its length.
        check(
            unsafe {
                recv(
                    self.0,
                    buffer.as_mut_ptr(),
                    buffer.len().min(i32::MAX as usize) as i32,
                    0,
                )
            },
            "recv",
        )
        .map(|received| received as usize)
    }

    /// Sends on a connected socket.
    pub fn send(&self, bytes: &[u8]) -> Result<usize, SocketError> {
        // SAFETY: `bytes` is valid for its length.
        check(
            unsafe { send(self.0, bytes.as_ptr(), bytes.len() as i32, 0) },
            "send",
        )
        .map(|sent| sent as usize)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: our socket, closed once.
        unsafe { closesocket(self.0) };
    }
}

/// Winsock error: the operation would block.
pub const WOULD_BLOCK: ErrorCode = windows_sys::Win32::Networking::WinSock::WSAEWOULDBLOCK;
/// Winsock error: the peer reset (for UDP: ICMP port unreachable).
pub const CONNECTION_RESET: ErrorCode = windows_sys::Win32::Networking::WinSock::WSAECONNRESET;
/// Winsock error: the datagram was larger than the buffer.
pub const MESSAGE_TOO_LONG: ErrorCode = windows_sys::Win32::Networking::WinSock::WSAEMSGSIZE;
/// Winsock error: the address is in use (port 53 taken).
pub const ADDRESS_IN_USE: ErrorCode = windows_sys::Win32::Networking::WinSock::WSAEADDRINUSE;
/// Winsock error: access denied (port 53 held exclusively).
pub const ACCESS_DENIED: ErrorCode = windows_sys::Win32::Networking::WinSock::WSAEACCES;
/// Winsock errors meaning the address family is missing (no IPv6 stack).
pub const NO_FAMILY: [ErrorCode; 2] = [
    windows_sys::Win32::Networking::WinSock::WSAEAFNOSUPPORT,
    windows_sys::Win32::Networking::WinSock::WSAEPROTONOSUPPORT,
];

/// How many sockets one `select` set holds.
pub const SET_CAPACITY: usize = 2048;

/// A `select` set with room for [`SET_CAPACITY`] sockets, laid out as
/// Winsock's `fd_set` (count, then the array).
#[repr(C)]
pub struct SocketSet {
    count: u32,
    sockets: [SOCKET; SET_CAPACITY],
}

impl SocketSet {
    /// An empty set.
    pub const fn new() -> Self {
        Self {
            count: 0,
            sockets: [0; SET_CAPACITY],
        }
    }

    /// Empties the set.
    pub fn clear(&mut self) {
        self.count = 0;
    }

    /// Adds `socket`; false when full.
    pub fn insert(&mut self, socket: &Socket) -> bool {
        match self.sockets.get_mut(self.count as usize) {
            Some(slot) => {
                *slot = socket.0;
                self.count += 1;
                true
            }
            None => false,
        }
    }

    /// Whether `select` left `socket` in the set.
    pub fn contains(&self, socket: &Socket) -> bool {
        self.sockets
            .get(..self.count as usize)
            .is_some_and(|sockets| sockets.contains(&socket.0))
    }

    fn as_raw(&mut self) -> *mut FD_SET {
        (self as *mut Self).cast()
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Waits up to `timeout_ms` until a socket in `read` is readable, one in
/// `write` writable or one in `error` failed (a failed connect); the sets
/// are left holding those. Returns how many are ready (0 on timeout).
pub fn wait(
    read: &mut SocketSet,
    write: &mut SocketSet,
    error: &mut SocketSet,
    timeout_ms: u32,
) -> Result<usize, SocketError> {
    let timeout = TIMEVAL {
        tv_sec: (timeout_ms / 1000) as i32,
        tv_usec: ((timeout_ms % 1000) * 1000) as i32,
    };
    if read.is_empty() && write.is_empty() && error.is_empty() {
        // Winsock's select fails with WSAEINVAL on three empty sets.
        // SAFETY: Sleep takes an integer and has no preconditions.
        unsafe { windows_sys::Win32::System::Threading::Sleep(timeout_ms) };
        return Ok(0);
    }
    // SAFETY: the sets are laid out as fd_set with their counts within
    // their arrays.
    let ready = unsafe { select(0, read.as_raw(), write.as_raw(), error.as_raw(), &timeout) };
    check(ready, "select").map(|ready| ready as usize)
}
