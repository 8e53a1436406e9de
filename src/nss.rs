//! Name lookups in the statically linked Linux build.
//!
//! A static glibc binary still resolves names and users the usual way for the services glibc
//! carries itself: `files` (`/etc/hosts`, `/etc/passwd`) and `dns` (the servers in
//! `/etc/resolv.conf`). Any other service `/etc/nsswitch.conf` names (`mdns4_minimal`, `resolve`,
//! `myhostname`, `mymachines`, `sss`, `ldap`, `winbind`, ...) it would `dlopen` from the system's
//! shared glibc, which is only supported when that is exactly the glibc the binary was linked
//! with; on any other machine it can fail oddly or crash. So a static process limits host and
//! user lookups to `files` and `dns` before its first lookup. A dynamically linked process (and
//! any other platform) keeps the system's configuration.
//!
//! Only the cold path looks names up (the token endpoint, a proxy, `check`'s registries), and
//! user entries only when `HOME` is unset, so the warm path never pays for this.

/// A name service database the helper uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// Host names (`getaddrinfo`): `files dns`.
    Hosts,
    /// Users (`getpwuid_r`, for the home directory when `HOME` is unset): `files`.
    Passwd,
}

/// Limits `database` to glibc's built-in services if this process is statically linked against
/// glibc; otherwise does nothing. Cheap after the first call per database.
pub fn builtin_services_only(database: Database) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::Once;
        static HOSTS: Once = Once::new();
        static PASSWD: Once = Once::new();
        let (once, name, services) = match database {
            Database::Hosts => (&HOSTS, c"hosts", c"files dns"),
            Database::Passwd => (&PASSWD, c"passwd", c"files"),
        };
        once.call_once(|| {
            if statically_linked() {
                // SAFETY: both arguments are NUL-terminated strings that outlive the call;
                // glibc copies what it keeps. The Once keeps concurrent callers out.
                let rc = unsafe { __nss_configure_lookup(name.as_ptr(), services.as_ptr()) };
                if rc != 0 {
                    crate::log::debug!("cannot limit {name:?} lookups to {services:?}; using /etc/nsswitch.conf");
                }
            }
        });
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = database;
}

/// True when no dynamic loader started this process: the kernel passes the loader's base
/// address in `AT_BASE`, and there is none for a static executable.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn statically_linked() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; 0 means absent.
    unsafe { libc::getauxval(libc::AT_BASE) == 0 }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
unsafe extern "C" {
    /// glibc (`<nss.h>`): replaces the services of one database for this process, meant for
    /// static programs. Returns 0 on success.
    fn __nss_configure_lookup(dbname: *const libc::c_char, service_line: *const libc::c_char) -> libc::c_int;
}
