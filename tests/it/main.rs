//! The single integration-test binary: each module drives the compiled helper as a user would.

// Checks file modes, owners and symlinks with std::os::unix.
#[cfg(unix)]
mod configure_docker;
