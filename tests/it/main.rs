//! The single integration-test binary: each module drives the compiled
//! `docker-credential-stackit` as a real client would.

mod kubelet;
