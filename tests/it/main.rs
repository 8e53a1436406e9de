//! The single integration-test binary: each module drives the compiled helper as a user would.

mod configure_docker;
