//! The IPv6 DNS servers of the adapters that are up (GetAdaptersAddresses,
//! iphlpapi, XP SP1 and later), read at start and every minute when neither
//! the command line nor the file names upstreams.

use core::net::{SocketAddr, SocketAddrV6};

use dns64d_xp::address::{self, DNS_PORT};
use dns64d_xp::upstreams::MAX_UPSTREAMS;
use windows_sys::Win32::NetworkManagement::IpHelper::{
    GAA_FLAG_SKIP_ANYCAST, GAA_FLAG_SKIP_MULTICAST, GAA_FLAG_SKIP_UNICAST, GetAdaptersAddresses,
    IP_ADAPTER_ADDRESSES_LH,
};
use windows_sys::Win32::NetworkManagement::Ndis::IfOperStatusUp;
use windows_sys::Win32::Networking::WinSock::AF_INET6;

use super::net::RawAddress;
use super::system::Global;

/// ERROR_NO_DATA.
const NO_DATA: u32 = 232;
/// DNS_ERROR_NO_DNS_SERVERS.
const NO_DNS_SERVERS: u32 = 9852;

/// Room for the adapter list (a few adapters need a few KiB).
const BUFFER_LEN: usize = 32 * 1024;

/// 8-byte aligned storage for the adapter list.
#[repr(C, align(8))]
struct Storage([u8; BUFFER_LEN]);

static STORAGE: Global<Storage> = Global::new(Storage([0; BUFFER_LEN]));

/// Fills `found` with the IPv6 DNS servers of the up adapters, skipping
/// those the loop rules refuse; returns how many, or the Win32 error.
pub fn adapter_dns_servers(
    listen: &[SocketAddr],
    found: &mut [SocketAddrV6; MAX_UPSTREAMS],
) -> Result<usize, u32> {
    // SAFETY: `Global::get` needs no other reference to STORAGE alive:
    // only this function takes it, on the relay's one thread (at start and
    // from the relay loop, never re-entered), and the reference and the
    // adapter list in it end with the call.
    let storage = unsafe { STORAGE.get() };
    let mut size = BUFFER_LEN as u32;
    let first = storage.0.as_mut_ptr().cast::<IP_ADAPTER_ADDRESSES_LH>();
    // SAFETY: the buffer holds `size` bytes, aligned for the structure.
    let result = unsafe {
        GetAdaptersAddresses(
            u32::from(AF_INET6),
            GAA_FLAG_SKIP_UNICAST | GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST,
            core::ptr::null(),
            first,
            &mut size,
        )
    };
    match result {
        0 => {}
        // No adapter (ERROR_NO_DATA), or none with a DNS server of this
        // family (DNS_ERROR_NO_DNS_SERVERS, as Wine answers): none found.
        NO_DATA | NO_DNS_SERVERS => return Ok(0),
        code => return Err(code),
    }
    let mut count = 0;
    let mut adapter = first.cast_const();
    // SAFETY: GetAdaptersAddresses returned a linked list inside the
    // buffer; only fields present in XP's shorter IP_ADAPTER_ADDRESSES
    // (Next, FirstDnsServerAddress, OperStatus) are read.
    unsafe {
        while !adapter.is_null() {
            if (*adapter).OperStatus == IfOperStatusUp {
                let mut server = (*adapter).FirstDnsServerAddress.cast_const();
                while !server.is_null() {
                    let address = RawAddress::read(
                        (*server).Address.lpSockaddr,
                        (*server).Address.iSockaddrLength,
                    );
                    if let Some(SocketAddr::V6(found_address)) = address {
                        let with_port = SocketAddrV6::new(
                            *found_address.ip(),
                            DNS_PORT,
                            0,
                            found_address.scope_id(),
                        );
                        let is_new = !found.get(..count).unwrap_or(&[]).contains(&with_port);
                        if is_new && address::check_upstream(with_port, listen).is_ok() {
                            if let Some(slot) = found.get_mut(count) {
                                *slot = with_port;
                                count += 1;
                            }
                        }
                    }
                    server = (*server).Next.cast_const();
                }
            }
            adapter = (*adapter).Next.cast_const();
        }
    }
    Ok(count)
}
