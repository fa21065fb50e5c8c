package vaulttest

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// BuildPlugin builds the plugin from this repository's source with
// vaultplugin.Version stamped to version (as `make plugin VERSION=...`
// does) into dir, and returns the binary's path. Upgrade tests build two
// versions of the one source this way.
func BuildPlugin(tb testing.TB, version, dir string) string {
	tb.Helper()
	out := filepath.Join(dir, PluginName+"-"+version)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// #nosec G204 -- go build of this repository's own plugin, with a version the test names
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-X github.com/cryptokeys/terraform-provider-cryptokeys/vaultplugin.Version="+version,
		"-o", out, "./vaultplugin/cmd/"+PluginName)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building the plugin at %s: %v\n%s", version, err, b)
	}
	return out
}

// RegisterPlugin copies bin into the server's plugin directory under a
// name of its own and registers it in the catalog as another version of
// the plugin, by sha256 and the version its -version prints, as an
// operator installs an upgrade beside the running build. It returns the
// version.
func (s *Server) RegisterPlugin(tb testing.TB, bin string) string {
	tb.Helper()
	version, err := pluginVersion(bin)
	if err != nil {
		tb.Fatal(err)
	}
	command := PluginName + "-" + version
	sum, err := copyFile(bin, filepath.Join(s.PluginDir, command))
	if err != nil {
		tb.Fatal(err)
	}
	s.MustCLI(tb, "plugin", "register", "-sha256="+sum, "-version="+version, "-command="+command, "secret", PluginName)
	return version
}

// RunningPluginVersion is the plugin version Vault runs at mount (its
// mount table's running_plugin_version).
func (s *Server) RunningPluginVersion(tb testing.TB, mount string) string {
	tb.Helper()
	m, err := s.Client.Sys().GetMount(strings.Trim(mount, "/"))
	if err != nil {
		tb.Fatalf("reading mount %s: %v", mount, err)
	}
	return m.RunningVersion
}
