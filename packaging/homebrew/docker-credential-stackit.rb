# Homebrew formula for docker-credential-stackit, built from source.
#
# Before publishing in a tap: replace OWNER with the GitHub organisation that hosts the
# repository and set sha256 to `shasum -a 256` of the tag's source tarball.
class DockerCredentialStackit < Formula
  desc "Docker credential helper for the STACKIT Container Registry"
  homepage "https://github.com/OWNER/docker-credential-stackit"
  url "https://github.com/OWNER/docker-credential-stackit/archive/refs/tags/v0.1.0.tar.gz"
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "Apache-2.0"
  head "https://github.com/OWNER/docker-credential-stackit.git", branch: "main"

  # rustls + aws-lc: no OpenSSL or pkg-config; aws-lc-sys compiles its C code with the
  # system compiler from the Xcode command line tools.
  depends_on "rust" => :build

  def install
    system "cargo", "install", *std_cargo_args
    man1.install "packaging/man/docker-credential-stackit.1"
  end

  def caveats
    <<~EOS
      Keep your STACKIT service account key in ~/.stackit/sa-key.json, name it in
      ~/.stackit/credentials.json (as the STACKIT CLI does) and let Docker use the helper:
        install -D -m 600 ~/Downloads/sa-key.json ~/.stackit/sa-key.json
        (umask 077; echo '{"STACKIT_SERVICE_ACCOUNT_KEY_PATH": "'"$HOME"'/.stackit/sa-key.json"}' > ~/.stackit/credentials.json)
        docker-credential-stackit configure-docker
    EOS
  end

  test do
    assert_match "docker-credential-stackit #{version}", shell_output("#{bin}/docker-credential-stackit version")
    # A host the helper does not serve gets Docker's exact "not found" answer and exit 1.
    assert_equal "credentials not found in native keychain",
                 pipe_output("#{bin}/docker-credential-stackit get", "docker.io", 1).strip
    ENV["DOCKER_CONFIG"] = (testpath/"docker").to_s
    system bin/"docker-credential-stackit", "configure-docker"
    assert_match '"registry.onstackit.cloud": "stackit"', (testpath/"docker/config.json").read
  end
end
