//! Linux legacy lock: the abstract Unix socket `\0/var/lib/juju/mutex-/NAME`
//! that juju/mutex v1 bound (its `filepath.Join("@/var/lib/juju/mutex-", name)`
//! put the slash after the dash). Binding fails with `EADDRINUSE` while
//! another process has it bound; the kernel frees the name when the socket
//! closes, also when its process dies. Abstract names are per network
//! namespace.

use std::os::unix::io::OwnedFd;
use std::path::PathBuf;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::LegacyBackend;
use crate::{legacy_socket_name, Error, LEGACY_SOCKET_PREFIX as SOCKET_PREFIX};

mod holder;

pub(crate) use self::holder::holder;

/// A bound legacy socket; dropping it closes the socket and frees the name.
#[derive(Debug)]
pub(crate) struct LegacySocket {
    _fd: OwnedFd,
}

impl LegacyBackend for LegacySocket {
    fn try_bind(name: &str) -> Result<Option<LegacySocket>, Error> {
        // Built on the stack: the prefix (21 bytes) and a valid name (<= 40).
        let mut buf = [0u8; 128];
        let len = SOCKET_PREFIX.len() + name.len();
        let fail = |action, e: Errno| Error::io(action, display_name(name), e.into());
        let target = buf
            .get_mut(..len)
            .ok_or_else(|| fail("bind legacy socket", Errno::NAMETOOLONG))?;
        target[..SOCKET_PREFIX.len()].copy_from_slice(SOCKET_PREFIX.as_bytes());
        target[SOCKET_PREFIX.len()..].copy_from_slice(name.as_bytes());
        let addr =
            SocketAddrUnix::new_abstract_name(target).map_err(|e| fail("bind legacy socket", e))?;
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| fail("create legacy socket", e))?;
        match rustix::net::bind(&fd, &addr) {
            Ok(()) => Ok(Some(LegacySocket { _fd: fd })),
            Err(Errno::ADDRINUSE) => Ok(None),
            Err(e) => Err(fail("bind legacy socket", e)),
        }
    }
}

/// The socket name as `/proc/net/unix` shows it: `@` for the NUL byte.
fn display_name(name: &str) -> PathBuf {
    PathBuf::from(legacy_socket_name(name))
}
