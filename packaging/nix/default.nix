# Nix derivation for docker-credential-stackit, built from this checkout.
#
#   nix-build -E 'with import <nixpkgs> {}; callPackage ./packaging/nix {}'
#
# For nixpkgs, replace `src` with fetchFromGitHub and `cargoLock` with cargoHash.
{
  lib,
  rustPlatform,
  installShellFiles,
}:

rustPlatform.buildRustPackage {
  pname = "docker-credential-stackit";
  version = "0.1.0";

  src = lib.cleanSourceWith {
    src = ../..;
    # Keep the build inputs only, so a local target/ directory is never copied into the store.
    filter =
      path: type:
      let
        rel = lib.removePrefix (toString ../.. + "/") (toString path);
      in
      !(lib.hasPrefix "target" rel) && lib.cleanSourceFilter path type;
  };
  cargoLock.lockFile = ../../Cargo.lock;

  # rustls + aws-lc: no openssl or pkg-config (unlike reqwest/native-tls helpers); aws-lc-sys
  # compiles its C code with the stdenv compiler.
  nativeBuildInputs = [ installShellFiles ];

  # The tests run the compiled binary with a cleared environment and a temporary HOME, and the
  # fake token endpoint listens on loopback, so they work inside the build sandbox.
  doCheck = true;

  postInstall = ''
    installManPage packaging/man/docker-credential-stackit.1
  '';

  meta = {
    description = "Docker credential helper for the STACKIT Container Registry";
    license = lib.licenses.asl20;
    mainProgram = "docker-credential-stackit";
    platforms = lib.platforms.unix;
  };
}
